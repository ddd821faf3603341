package limits_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"tollgate/gateway/limits"
	"tollgate/store/storetest"
)

// With Redis unreachable every call is answered by the fallback, with this
// replica's share of each limit, without waiting on Redis.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := redis.NewClient(redisOptions(t, closedAddr(t)))
	t.Cleanup(func() { rdb.Close() })
	g := limits.New(rdb, limits.Options{Prefix: "tgtest:down:", Replicas: 2})
	run(t, g)
	waitUp(t, g, false, 5*time.Second)

	var slowest time.Duration
	timed := func(f func()) {
		start := time.Now()
		f()
		slowest = max(slowest, time.Since(start))
	}
	start := time.Now()

	// Rates: 10 a minute over 2 replicas is 5 here.
	rpm := []limits.Rate{{Name: "key:k1:rpm", Limit: 10}}
	allowed := 0
	for range 100 {
		timed(func() {
			if d := g.Allow(ctx, rpm, nil, 0); d.Allowed {
				allowed++
			} else if d.Denied != "key:k1:rpm" || d.RetryAfter <= 0 {
				t.Errorf("fallback denial %+v", d)
			}
		})
	}
	if allowed != 5 {
		t.Errorf("fallback allowed %d of a 10 rpm limit over 2 replicas, want 5", allowed)
	}
	// A limit finer than a nanosecond per unit (1e12 tokens a minute) is
	// no reason to panic.
	huge := []limits.Rate{{Name: "key:k1:huge-tpm", Limit: 1e12}}
	if d := g.Allow(ctx, nil, huge, 1000); !d.Allowed {
		t.Errorf("fallback with a 1e12 tpm limit = %+v", d)
	}
	g.Adjust(ctx, huge, 500)
	// Tokens stay all or nothing: 1000 tpm is 500 here.
	tpm := []limits.Rate{{Name: "key:k1:tpm", Limit: 1000}}
	other := []limits.Rate{{Name: "key:k2:rpm", Limit: 100}}
	timed(func() {
		if d := g.Allow(ctx, other, tpm, 400); !d.Allowed || d.RemainingTokens != 100 || d.RemainingRequests != 49 {
			t.Errorf("fallback Allow(400 tokens) = %+v", d)
		}
		if d := g.Allow(ctx, other, tpm, 200); d.Allowed || d.Denied != "key:k1:tpm" {
			t.Errorf("fallback Allow(200 of 100 tokens) = %+v, want denied", d)
		}
		g.Adjust(ctx, tpm, -300)
		if d := g.Allow(ctx, other, tpm, 200); !d.Allowed || d.RemainingRequests != 48 || d.RemainingTokens != 200 {
			t.Errorf("fallback after a refusal and Adjust(-300) = %+v, want 48 requests and 200 tokens left", d)
		}
	})

	// Slots: 3 over 2 replicas is 1 here.
	slots := []limits.Slot{{Name: "key:k1", Max: 3}}
	taken := 0
	for i := range 100 {
		timed(func() {
			if ok, _ := g.Acquire(ctx, slots, fmt.Sprint(i)); ok {
				taken++
			}
		})
	}
	if taken != 1 {
		t.Errorf("fallback gave %d slots of 3 over 2 replicas, want 1", taken)
	}
	timed(func() {
		g.Release(ctx, slots, "0")
		if ok, _ := g.Acquire(ctx, slots, "again"); !ok {
			t.Error("fallback slot not freed by Release")
		}
	})

	// Budgets: PostgreSQL's spend plus this process's reservations.
	var spendCalls atomic.Int64
	budget := []limits.Budget{{Name: "key:k1:1", Max: 1, Spend: spendOf(0.5, &spendCalls)}}
	var admitted []string
	for i := range 100 {
		timed(func() {
			id := fmt.Sprint(i)
			ok, denied, spent, err := g.Reserve(ctx, budget, id, 0.2)
			switch {
			case err != nil:
				t.Error(err)
			case ok:
				admitted = append(admitted, id)
			case denied != "key:k1:1" || !near(spent, 0.9):
				t.Errorf("fallback refusal %q at %v, want key:k1:1 at 0.9", denied, spent)
			}
		})
	}
	if len(admitted) != 2 {
		t.Fatalf("fallback admitted %d reservations of 0.2 with 0.5 of 1.0 spent, want 2", len(admitted))
	}
	timed(func() {
		if got := g.Settle(ctx, budget, admitted[0], 0.3); !near(got[0], 0.8) {
			t.Errorf("fallback settled spend = %v, want 0.5 + 0.3", got[0])
		}
		if ok, _, spent, _ := g.Reserve(ctx, budget, "x", 0.1); ok || !near(spent, 1.0) {
			t.Errorf("fallback Reserve(0.1) at 0.8 settled + 0.2 reserved = %v at %v, want refused at 1.0", ok, spent)
		}
		g.ReleaseBudget(ctx, budget, admitted[1])
		if ok, _, _, _ := g.Reserve(ctx, budget, "x", 0.2); !ok {
			t.Error("fallback Reserve(0.2) at 0.8 refused")
		}
	})
	if n := spendCalls.Load(); n > 2 {
		t.Errorf("Spend called %d times in well under a second, want it cached", n)
	}
	boom := errors.New("postgres away too")
	failing := []limits.Budget{{Name: "key:k9:1", Max: 1, Spend: func(context.Context) (float64, error) { return 0, boom }}}
	if ok, _, _, err := g.Reserve(ctx, failing, "y", 0.1); ok || !errors.Is(err, boom) {
		t.Errorf("fallback Reserve with Spend failing = %v %v, want the error", ok, err)
	}

	if total := time.Since(start); slowest > 50*time.Millisecond || total > 500*time.Millisecond {
		t.Errorf("fallback calls took up to %v each, %v in all: they must not wait on Redis", slowest, total)
	}
}

// A failing call marks Redis down at once, before Run notices.
func TestRedisErrorMarksDown(t *testing.T) {
	t.Parallel()
	opts := redisOptions(t, closedAddr(t))
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	g := limits.New(rdb, limits.Options{Prefix: "tgtest:err:"})
	if !g.RedisUp() {
		t.Fatal("a new Guard starts with Redis down")
	}
	if d := g.Allow(context.Background(), []limits.Rate{{Name: "r", Limit: 1}}, nil, 0); !d.Allowed {
		t.Errorf("Allow on a failing Redis = %+v, want the fallback's answer", d)
	}
	if g.RedisUp() {
		t.Error("a Redis error did not mark Redis down")
	}
}

// When Redis comes back the Guard returns to it, after telling it what
// was settled and released meanwhile.
func TestRedisBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	direct := storetest.Redis(t)
	p := startProxy(t, redisOptions(t, "").Addr)
	rdb := redis.NewClient(redisOptions(t, p.addr))
	t.Cleanup(func() { rdb.Close() })
	opts := limits.Options{Prefix: newPrefix(t, direct), Replicas: 2}
	other := limits.New(direct, opts) // a replica that keeps its Redis
	var logs logBuffer
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	g := limits.New(rdb, opts)
	run(t, g)

	budget := []limits.Budget{{Name: "key:k1:1", Max: 1}}
	slots := []limits.Slot{{Name: "key:k1", Max: 1}}
	if ok, _, _, err := g.Reserve(ctx, budget, "inflight", 0.5); !ok || err != nil {
		t.Fatalf("Reserve = %v %v", ok, err)
	}
	if ok, _ := g.Acquire(ctx, slots, "inflight"); !ok {
		t.Fatal("Acquire refused")
	}

	p.stop()
	waitUp(t, g, false, 5*time.Second)
	rpm := []limits.Rate{{Name: "key:k1:rpm", Limit: 10}}
	allowed := 0
	for range 10 {
		if g.Allow(ctx, rpm, nil, 0).Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("during the outage %d of 10 allowed, want this replica's 5", allowed)
	}
	// The request in flight when Redis went away ends during the outage.
	g.Settle(ctx, budget, "inflight", 0.4)
	g.Release(ctx, slots, "inflight")

	p.start(t)
	took := waitUp(t, g, true, 3*time.Second)
	t.Logf("Redis seen back after %v", took)

	// The settlement reached Redis (0.4 settled, the 0.5 reservation gone).
	if ok, denied, spent, _ := other.Reserve(ctx, budget, "next", 0.6); !ok {
		t.Errorf("Reserve(0.6) after the outage refused at %v by %q, want 0.4 settled and nothing reserved", spent, denied)
	}
	if ok, _, spent, _ := other.Reserve(ctx, budget, "more", 0.01); ok || !near(spent, 1.0) {
		t.Errorf("Reserve(0.01) = %v at %v, want refused at 1.0", ok, spent)
	}
	// So did the release of the slot.
	if ok, _ := other.Acquire(ctx, slots, "next"); !ok {
		t.Error("the slot released during the outage is still held in Redis")
	}
	// Rates are shared in Redis again: the whole limit, not this replica's share.
	rpm = []limits.Rate{{Name: "key:k2:rpm", Limit: 10}}
	for i := range 10 {
		if d := g.Allow(ctx, rpm, nil, 0); !d.Allowed {
			t.Fatalf("call %d after the outage denied: %+v", i, d)
		}
	}
	if d := other.Allow(ctx, rpm, nil, 0); d.Allowed {
		t.Error("the other replica does not see the calls made after the outage")
	}
	down, back := logs.count("redis unreachable"), logs.count("redis is back")
	if down != 1 || back != 1 {
		t.Errorf("logged %d down and %d back transitions, want one each", down, back)
	}
}

// logBuffer collects log lines written from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}
