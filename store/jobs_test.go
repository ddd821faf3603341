package store_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestClaimJobRun(t *testing.T) {
	st, ctx := newStore(t)
	tick := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

	for _, tc := range []struct {
		name string
		job  string
		tick time.Time
		want bool
	}{
		{"first claim wins", "partitions", tick, true},
		{"second claim of the same tick loses", "partitions", tick, false},
		{"same instant in another zone loses", "partitions", tick.In(time.FixedZone("CET", 3600)), false},
		{"next tick wins", "partitions", tick.Add(time.Second), true},
		{"another job, same tick, wins", "reports", tick, true},
		{"that job's second claim loses", "reports", tick, false},
	} {
		won, err := st.ClaimJobRun(ctx, tc.job, tc.tick)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if won != tc.want {
			t.Errorf("%s: won = %v, want %v", tc.name, won, tc.want)
		}
	}
	if n := count(t, st, `SELECT count(*) FROM job_runs`); n != 3 {
		t.Errorf("job_runs has %d rows, want 3", n)
	}

	if err := st.FinishJobRun(ctx, "partitions", tick, errors.New("disk full")); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishJobRun(ctx, "reports", tick, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ job, wantErr string }{{"partitions", "disk full"}, {"reports", ""}} {
		var row struct {
			Finished *time.Time `db:"finished_at"`
			Err      string     `db:"error"`
		}
		if err := st.DB().Get(&row, `SELECT finished_at, error FROM job_runs WHERE job = $1 AND tick = $2`, tc.job, tick); err != nil {
			t.Fatal(err)
		}
		if row.Finished == nil || row.Err != tc.wantErr {
			t.Errorf("%s run recorded as finished_at=%v error=%q, want finished with %q", tc.job, row.Finished, row.Err, tc.wantErr)
		}
	}
	// The next tick, claimed but not finished, stays open.
	if n := count(t, st, `SELECT count(*) FROM job_runs WHERE finished_at IS NULL`); n != 1 {
		t.Errorf("%d unfinished runs, want 1", n)
	}
}

func TestClaimJobRunConcurrent(t *testing.T) {
	st, ctx := newStore(t)
	for round := range 5 {
		tick := time.Date(2026, 3, 1, 10, 0, round, 0, time.UTC)
		var wins, fails atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				<-start
				won, err := st.ClaimJobRun(ctx, "race", tick)
				if err != nil {
					t.Error(err)
					fails.Add(1)
				}
				if won {
					wins.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || fails.Load() != 0 {
			t.Errorf("round %d: %d of 10 concurrent claims won (%d failed), want exactly 1", round, wins.Load(), fails.Load())
		}
	}
	if n := count(t, st, `SELECT count(*) FROM job_runs WHERE job = 'race'`); n != 5 {
		t.Errorf("job_runs has %d rows for 5 ticks", n)
	}
}

func TestDeleteExpiredSessions(t *testing.T) {
	st, ctx := newStore(t)
	_, err := st.DB().Exec(`INSERT INTO sessions (token, data, expiry) VALUES ('old', 'x', now() - interval '1 minute'), ('live', 'y', now() + interval '1 hour')`)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.DeleteExpiredSessions(ctx)
	if err != nil || n != 1 {
		t.Fatalf("deleted %d, err %v", n, err)
	}
	var left []string
	st.DB().Select(&left, `SELECT token FROM sessions`)
	if len(left) != 1 || left[0] != "live" {
		t.Errorf("sessions left: %v", left)
	}
}
