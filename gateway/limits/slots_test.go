package limits_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/gateway/limits"
	"tollgate/store/storetest"
)

func TestAcquireRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbA, rdbB := storetest.Redis(t), storetest.Redis(t)
	opts := limits.Options{Prefix: newPrefix(t, rdbA), Replicas: 2}
	guards := []*limits.Guard{limits.New(rdbA, opts), limits.New(rdbB, opts)}
	slots := []limits.Slot{{Name: "key:k1", Max: 3}}

	var taken atomic.Int64
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			ok, full := guards[i%2].Acquire(ctx, slots, fmt.Sprint(i))
			if ok {
				taken.Add(1)
			} else if full != "key:k1" {
				t.Errorf("refused by %q, want key:k1", full)
			}
		})
	}
	wg.Wait()
	if taken.Load() != 3 {
		t.Fatalf("%d of 10 requests got a slot of 3", taken.Load())
	}

	if ok, _ := guards[0].Acquire(ctx, slots, "late"); ok {
		t.Fatal("a fourth request got a slot")
	}
	// Release everything (releasing a slot never taken is harmless), then two fit again.
	for i := range 10 {
		guards[i%2].Release(ctx, slots, fmt.Sprint(i))
	}
	for _, id := range []string{"a", "b", "a"} { // taking the same slot twice counts once
		if ok, full := guards[1].Acquire(ctx, slots, id); !ok {
			t.Fatalf("Acquire(%s) after release refused by %q", id, full)
		}
	}
	if ok, _ := guards[0].Acquire(ctx, slots, "c"); !ok {
		t.Fatal("third slot refused")
	}
	if ok, _ := guards[0].Acquire(ctx, slots, "d"); ok {
		t.Fatal("fourth slot taken")
	}
}

func TestAcquireAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb)})
	key := limits.Slot{Name: "key:k1", Max: 1}
	team := limits.Slot{Name: "team:t1", Max: 2}

	if ok, _ := g.Acquire(ctx, []limits.Slot{team, key}, "r1"); !ok {
		t.Fatal("first Acquire refused")
	}
	if ok, full := g.Acquire(ctx, []limits.Slot{team, key}, "r2"); ok || full != "key:k1" {
		t.Fatalf("second Acquire = %v %q, want refused by key:k1", ok, full)
	}
	// r2 did not keep the team slot it passed: the team has one place left, not zero.
	if ok, _ := g.Acquire(ctx, []limits.Slot{team}, "r3"); !ok {
		t.Fatal("the refused Acquire kept a team slot")
	}
	if ok, _ := g.Acquire(ctx, []limits.Slot{team}, "r4"); ok {
		t.Fatal("team slots overfilled")
	}
}

func TestSlotExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb), SlotTTL: 300 * time.Millisecond})
	slots := []limits.Slot{{Name: "key:k1", Max: 1}}

	start := time.Now()
	if ok, _ := g.Acquire(ctx, slots, "crashed"); !ok {
		t.Fatal("Acquire refused")
	}
	for {
		if ok, _ := g.Acquire(ctx, slots, "next"); ok {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("the leaked slot never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("slot freed after %v, want SlotTTL (300ms)", took)
	}
}
