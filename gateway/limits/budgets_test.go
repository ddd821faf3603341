package limits_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/gateway/limits"
	"tollgate/store/storetest"
)

func spendOf(usd float64, calls *atomic.Int64) func(context.Context) (float64, error) {
	return func(context.Context) (float64, error) {
		if calls != nil {
			calls.Add(1)
		}
		return usd, nil
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Two replicas share one budget: reservations are atomic across them, and
// settling never takes the settled spend past Max.
func TestReserveTwoReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbA, rdbB := storetest.Redis(t), storetest.Redis(t)
	opts := limits.Options{Prefix: newPrefix(t, rdbA), Replicas: 2}
	guards := []*limits.Guard{limits.New(rdbA, opts), limits.New(rdbB, opts)}
	var spendCalls atomic.Int64
	budget := []limits.Budget{{Name: "key:k1:1767225600", Max: 1.00, Spend: spendOf(0, &spendCalls)}}

	var mu sync.Mutex
	var admitted []string
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			id := fmt.Sprintf("req-%d", i)
			ok, denied, spent, err := guards[i%2].Reserve(ctx, budget, id, 0.10)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				admitted = append(admitted, id)
				mu.Unlock()
				return
			}
			// A refusal means settled + reserved > 0.90, which in steps of 0.10 is 1.00.
			if denied != budget[0].Name || !near(spent, 1.00) {
				t.Errorf("refusal = %q with spent %v, want %q with 1.00", denied, spent, budget[0].Name)
			}
		})
	}
	wg.Wait()
	if len(admitted) != 10 {
		t.Fatalf("%d reservations of 0.10 admitted under a 1.00 budget, want 10", len(admitted))
	}
	if spendCalls.Load() == 0 {
		t.Error("the counter was never seeded from Spend")
	}

	var sum atomic.Int64 // nano-dollars
	var last sync.Map
	for i, id := range admitted {
		actual := 0.05 + rand.Float64()*0.05
		sum.Add(int64(math.Round(actual * 1e9)))
		wg.Go(func() {
			got := guards[i%2].Settle(ctx, budget, id, actual)
			last.Store(id, got[0])
		})
	}
	wg.Wait()
	settled := float64(sum.Load()) / 1e9
	var highest float64
	last.Range(func(_, v any) bool { highest = max(highest, v.(float64)); return true })
	if !near(highest, settled) {
		t.Errorf("settled spend after all settles = %v, want the sum of actuals %v", highest, settled)
	}
	if highest > 1.00 {
		t.Errorf("settled spend %v is past the 1.00 budget", highest)
	}

	// Now exactly as many 0.10 reservations fit as the settled spend leaves room for.
	room := (1_000_000_000 - sum.Load()) / 100_000_000
	for n := int64(0); ; n++ {
		ok, _, spent, err := guards[n%2].Reserve(ctx, budget, fmt.Sprintf("more-%d", n), 0.10)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if n != room {
				t.Errorf("%d further reservations admitted, want %d (settled %v)", n, room, settled)
			}
			if want := settled + float64(n)*0.10; !near(spent, want) {
				t.Errorf("refused with spent %v, want settled + reserved = %v", spent, want)
			}
			break
		}
		if n > room {
			t.Fatalf("reservation %d admitted past the budget", n)
		}
	}
}

func TestReserveSeedsFromSpend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb)})

	var calls atomic.Int64
	old := []limits.Budget{{Name: "key:k1:1000", Max: 1.00, Spend: spendOf(0.95, &calls)}}
	for range 3 {
		ok, denied, spent, err := g.Reserve(ctx, old, "r1", 0.10)
		if err != nil || ok || denied != "key:k1:1000" || !near(spent, 0.95) {
			t.Fatalf("Reserve(0.10) with 0.95 of 1.00 spent = %v %q %v %v, want a refusal at 0.95", ok, denied, spent, err)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("Spend called %d times, want once: the seeded counter is reused", calls.Load())
	}

	// The next period is a new name, seeded from its own (zero) spend.
	next := []limits.Budget{{Name: "key:k1:2000", Max: 1.00, Spend: spendOf(0, nil)}}
	if ok, denied, _, err := g.Reserve(ctx, next, "r1", 0.10); err != nil || !ok {
		t.Fatalf("Reserve in a new period = %v %q %v, want admitted", ok, denied, err)
	}
}

// Concurrent seeders must not add the PostgreSQL spend twice.
func TestSeedConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb)})
	budget := []limits.Budget{{Name: "team:t1:1", Max: 100, Spend: spendOf(0.5, nil)}}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if ok, _, _, err := g.Reserve(ctx, budget, fmt.Sprint(i), 0.01); !ok || err != nil {
				t.Errorf("Reserve = %v %v", ok, err)
			}
		})
	}
	wg.Wait()
	if got := g.Settle(ctx, budget, "0", 0.25); !near(got[0], 0.75) {
		t.Errorf("settled spend = %v, want 0.5 seeded once + 0.25", got[0])
	}
}

func TestReserveAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb)})
	key := limits.Budget{Name: "key:k1:1", Max: 10}
	team := limits.Budget{Name: "team:t1:1", Max: 0.5}
	both := []limits.Budget{key, team}

	if ok, _, _, err := g.Reserve(ctx, both, "r1", 0.4); !ok || err != nil {
		t.Fatalf("first Reserve = %v %v, want admitted", ok, err)
	}
	ok, denied, spent, err := g.Reserve(ctx, both, "r2", 0.4)
	if ok || err != nil || denied != team.Name || !near(spent, 0.4) {
		t.Fatalf("second Reserve = %v %q %v %v, want refused by the team at 0.4", ok, denied, spent, err)
	}
	// The refused reservation left nothing in the key's budget: 10 - 0.4 still fits.
	if ok, denied, spent, _ := g.Reserve(ctx, []limits.Budget{key}, "r3", 9.6); !ok {
		t.Errorf("Reserve(9.6) on the key = refused by %q at %v, want admitted", denied, spent)
	}

	// A zero budget refuses everything, even a free request.
	zero := []limits.Budget{{Name: "key:k2:1", Max: 0}}
	if ok, denied, _, _ := g.Reserve(ctx, zero, "r4", 0); ok || denied != "key:k2:1" {
		t.Errorf("Reserve on a zero budget = %v %q, want refused", ok, denied)
	}
}

func TestReleaseBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb)})
	budget := []limits.Budget{{Name: "key:k1:1", Max: 1}}

	if ok, _, _, _ := g.Reserve(ctx, budget, "r1", 0.6); !ok {
		t.Fatal("first Reserve refused")
	}
	if ok, _, _, _ := g.Reserve(ctx, budget, "r2", 0.6); ok {
		t.Fatal("second Reserve admitted past the budget")
	}
	g.ReleaseBudget(ctx, budget, "r1")
	if ok, _, _, _ := g.Reserve(ctx, budget, "r2", 0.6); !ok {
		t.Fatal("Reserve after ReleaseBudget refused")
	}
	if got := g.Settle(ctx, budget, "r1", 0); got[0] != 0 {
		t.Errorf("settled spend = %v after a release, want 0", got[0])
	}
}

func TestReservationExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb), SlotTTL: 300 * time.Millisecond})
	budget := []limits.Budget{{Name: "key:k1:1", Max: 1}}

	start := time.Now()
	if ok, _, _, _ := g.Reserve(ctx, budget, "crashed", 1); !ok {
		t.Fatal("Reserve refused")
	}
	if ok, _, _, _ := g.Reserve(ctx, budget, "next", 0.01); ok {
		t.Fatal("Reserve admitted while the budget is fully reserved")
	}
	for {
		ok, _, _, err := g.Reserve(ctx, budget, "next", 0.01)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatal("the reservation never expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("reservation gone after %v, want SlotTTL (300ms)", took)
	}
	// Settling after expiry just adds the cost.
	if got := g.Settle(ctx, budget, "crashed", 0.3); !near(got[0], 0.3) {
		t.Errorf("settled spend = %v, want 0.3", got[0])
	}
}

func TestReserveSpendFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb)})
	boom := errors.New("postgres away")
	budget := []limits.Budget{{Name: "key:k1:1", Max: 1, Spend: func(context.Context) (float64, error) { return 0, boom }}}
	if ok, _, _, err := g.Reserve(ctx, budget, "r1", 0.1); ok || !errors.Is(err, boom) {
		t.Errorf("Reserve with an unseedable counter = %v %v, want the Spend error", ok, err)
	}
}

// The running total of reservations ("held") stays the sum of the
// reservations through every way one starts and ends: Admit, Reserve,
// raising one's own reservation, Finish, Settle, ReleaseBudget and expiry.
// A counter left without a total (by a version that kept none) gets one.
func TestHeldTotal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	prefix := newPrefix(t, rdb)
	g := limits.New(rdb, limits.Options{Prefix: prefix, SlotTTL: 400 * time.Millisecond})
	budget := []limits.Budget{{Name: "team:t1:1", Max: 100}}
	hash := prefix + "budget:team:t1:1"

	check := func(step string) {
		t.Helper()
		fields, err := rdb.HGetAll(ctx, hash).Result()
		if err != nil {
			t.Fatal(err)
		}
		var sum, held int64
		for f, v := range fields {
			var n int64
			fmt.Sscan(v, &n)
			switch {
			case f == "held":
				held = n
			case len(f) > 2 && f[:2] == "r:":
				sum += n
			}
		}
		if held != sum {
			t.Fatalf("after %s: held = %d, reservations sum to %d (%v)", step, held, sum, fields)
		}
	}
	reserve := func(id string, usd float64) {
		t.Helper()
		if ok, denied, _, err := g.Reserve(ctx, budget, id, usd); !ok || err != nil {
			t.Fatalf("Reserve %s = %v %q %v", id, ok, denied, err)
		}
	}

	reserve("a", 1)
	reserve("b", 2)
	check("two reservations")
	reserve("b", 5) // a fallback raising its own reservation replaces it
	check("a raise")
	if r, err := g.Admit(ctx, limits.Admission{RequestID: "c", Budgets: budget, Amount: 3}); !r.OK() || err != nil {
		t.Fatalf("Admit = %+v %v", r, err)
	}
	check("Admit")
	g.Settle(ctx, budget, "a", 0.5)
	check("Settle")
	g.Finish(ctx, limits.Settlement{Budgets: budget, RequestID: "c", Cost: 1})
	check("Finish")
	g.ReleaseBudget(ctx, budget, "b")
	check("ReleaseBudget")
	g.Settle(ctx, budget, "never-reserved", 0.25)
	check("a settlement without a reservation")

	// Others' reservations count, one's own is replaced: 100 - 0.5 - 1 -
	// 0.25 settled leaves 98.25; "x" holds 90, so "y" can hold 8.25 only.
	reserve("x", 90)
	if ok, _, spent, _ := g.Reserve(ctx, budget, "y", 8.5); ok || !near(spent, 91.75) {
		t.Fatalf("Reserve past the budget = %v with spent %v, want refused at 91.75", ok, spent)
	}
	reserve("x", 98.25)
	check("a raise to the brim")

	// Expired reservations leave the total when the next check sweeps them.
	time.Sleep(450 * time.Millisecond)
	reserve("d", 0.1)
	check("expiry")
	if held, _ := rdb.HGet(ctx, hash, "held").Int64(); held != 100_000_000 {
		t.Errorf("held after expiry = %d nano-USD, want only d's 0.1 USD", held)
	}

	// A counter without a total: rebuilt from the reservations.
	reserve("e", 0.2)
	rdb.HDel(ctx, hash, "held")
	reserve("f", 0.3)
	check("a counter without a total")
	if held, _ := rdb.HGet(ctx, hash, "held").Int64(); held != 600_000_000 {
		t.Errorf("held rebuilt = %d nano-USD, want 0.6 USD", held)
	}
}
