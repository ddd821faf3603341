package store_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/store"
)

func TestListenChanges(t *testing.T) {
	st, ctx := newStore(t)
	listenCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	changes := make(chan store.Change, 64)
	var resyncs atomic.Int32
	resynced := make(chan struct{}, 8)
	done := make(chan error, 1)
	go func() {
		done <- st.ListenChanges(listenCtx,
			func(c store.Change) { changes <- c },
			func() { resyncs.Add(1); resynced <- struct{}{} })
	}()
	select {
	case <-resynced:
	case err := <-done:
		t.Fatalf("ListenChanges returned early: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("onResync was not called at start")
	}

	// expect takes the next change, which must be want.
	expect := func(step string, want store.Change) {
		t.Helper()
		select {
		case got := <-changes:
			if got != want {
				t.Fatalf("%s: got change %+v, want %+v", step, got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no change within 2s, want %+v", step, want)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	team := mustTeam(t, st, "listeners")
	expect("create team", store.Change{Table: "teams", Op: "INSERT", ID: team.ID})

	key, _ := mustKey(t, st, store.KeySpec{TeamID: &team.ID})
	expect("create key", store.Change{Table: "keys", Op: "INSERT", ID: key.ID})

	_, err := st.SetKeyBlocked(ctx, testActor, key.ID, true)
	must(err)
	expect("block key", store.Change{Table: "keys", Op: "UPDATE", ID: key.ID})

	// Bookkeeping writes must not flush the gateways' caches. Each is
	// followed by a real change, which must be the next one delivered
	// (notifications arrive in commit order).
	_, err = st.DB().Exec(`UPDATE keys SET spend = spend + 1 WHERE id = $1`, key.ID)
	must(err)
	_, err = st.DB().Exec(`UPDATE keys SET last_used_at = now(), updated_at = now() WHERE id = $1`, key.ID)
	must(err)
	_, err = st.DB().Exec(`UPDATE teams SET spend = spend + 1 WHERE id = $1`, team.ID)
	must(err)
	l := spendLog("listen-1", time.Now(), 0.5)
	l.KeyID, l.TeamID = &key.ID, &team.ID
	_, err = st.InsertSpendLogs(ctx, []store.SpendLog{l})
	must(err)
	_, err = st.UpdateTeam(ctx, testActor, team.ID, func(*store.TeamSpec) error { return nil }) // touches updated_at only
	must(err)

	_, err = st.UpdateTeam(ctx, testActor, team.ID, func(s *store.TeamSpec) error { s.MaxBudget = ptr(50.0); return nil })
	must(err)
	expect("update team (after spend-only writes)", store.Change{Table: "teams", Op: "UPDATE", ID: team.ID})

	prov := mustProvider(t, st, "listen-provider", "sk-upstream-1234")
	expect("create provider", store.Change{Table: "providers", Op: "INSERT", ID: prov.ID})

	model := mustModel(t, st, "listen-model", prov.ID)
	expect("create model", store.Change{Table: "models", Op: "INSERT", ID: model.ID})

	must(st.DeleteKey(ctx, testActor, key.ID))
	expect("delete key", store.Change{Table: "keys", Op: "DELETE", ID: key.ID})

	// A direct spend-only update on the last table, then nothing at all.
	_, err = st.DB().Exec(`UPDATE teams SET spend = spend + 2 WHERE id = $1`, team.ID)
	must(err)
	select {
	case c := <-changes:
		t.Fatalf("spend-only update delivered %+v", c)
	case <-time.After(300 * time.Millisecond):
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ListenChanges returned %v after cancel, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ListenChanges did not return after its context ended")
	}
	if n := resyncs.Load(); n != 1 {
		t.Errorf("onResync called %d times, want once", n)
	}
}
