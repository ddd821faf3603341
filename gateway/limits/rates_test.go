package limits_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/gateway/limits"
	"tollgate/store/storetest"
)

// Two replicas share a limit: 120 calls as fast as possible let 60 through,
// plus one per emission interval (33ms) the burst lasts, as GCRA refills.
func TestAllowTwoReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdbA, rdbB := storetest.Redis(t), storetest.Redis(t)
	opts := limits.Options{Prefix: newPrefix(t, rdbA), Replicas: 2, Window: 2 * time.Second}
	guards := []*limits.Guard{limits.New(rdbA, opts), limits.New(rdbB, opts)}
	rpm := []limits.Rate{{Name: "key:k1:rpm", Limit: 60}}
	// Warm both connection pools so that the burst below is only Allow calls.
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() { guards[w%2].Allow(ctx, []limits.Rate{{Name: "warmup", Limit: 1000}}, nil, 0) })
	}
	wg.Wait()

	var allowed atomic.Int64
	start := time.Now()
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < 120; i += 16 {
				d := guards[i%2].Allow(ctx, rpm, nil, 0)
				if d.Allowed {
					allowed.Add(1)
					if d.LimitRequests != 60 || d.RemainingRequests < 0 || d.RemainingRequests >= 60 {
						t.Errorf("allowed with limit %d remaining %d", d.LimitRequests, d.RemainingRequests)
					}
					continue
				}
				if d.Denied != "key:k1:rpm" || d.RetryAfter <= 0 || d.RetryAfter > 2*time.Second {
					t.Errorf("denied by %q, retry after %v", d.Denied, d.RetryAfter)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	leaked := int64(took / (2 * time.Second / 60))
	if n := allowed.Load(); n < 60 || n > 61+leaked {
		t.Errorf("%d of 120 allowed in %v under a limit of 60, want 60..%d", n, took, 61+leaked)
	}
	t.Logf("120 calls in %v", took)
}

// A long window keeps GCRA's leak out of the exact counts below.
const longWindow = 10 * time.Minute

func TestAllowHeadersAndTokens(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb), Window: longWindow})
	requests := []limits.Rate{{Name: "team:t1:rpm", Limit: 100}, {Name: "key:k1:rpm", Limit: 10}}
	tokenLimits := []limits.Rate{{Name: "key:k1:tpm", Limit: 1000}}

	for i := range int64(3) {
		d := g.Allow(ctx, requests, tokenLimits, 100)
		if !d.Allowed {
			t.Fatalf("call %d denied by %q", i, d.Denied)
		}
		// The key's limit is the tighter one, so the headers describe it.
		if d.LimitRequests != 10 || d.RemainingRequests != 9-i || d.LimitTokens != 1000 || d.RemainingTokens != 900-100*i {
			t.Errorf("call %d: requests %d/%d tokens %d/%d, want 10/%d 1000/%d",
				i, d.RemainingRequests, d.LimitRequests, d.RemainingTokens, d.LimitTokens, 9-i, 900-100*i)
		}
		if d.ResetRequests <= 0 || d.ResetRequests > longWindow || d.ResetTokens <= 0 {
			t.Errorf("call %d: resets %v %v", i, d.ResetRequests, d.ResetTokens)
		}
	}

	// More tokens than remain: refused, and the request limits get their charge back.
	d := g.Allow(ctx, requests, tokenLimits, 800)
	if d.Allowed || d.Denied != "key:k1:tpm" || d.RetryAfter <= 0 {
		t.Fatalf("Allow(800 of 700 tokens) = %+v, want denied by key:k1:tpm", d)
	}
	// More tokens than the limit itself: refused for a whole window.
	d = g.Allow(ctx, requests, tokenLimits, 2000)
	if d.Allowed || d.Denied != "key:k1:tpm" || d.RetryAfter != longWindow {
		t.Fatalf("Allow(2000 tokens under 1000) = %+v, want denied with RetryAfter = Window", d)
	}
	d = g.Allow(ctx, requests, tokenLimits, 100)
	if !d.Allowed || d.RemainingRequests != 6 || d.RemainingTokens != 600 {
		t.Errorf("after two refusals: requests %d tokens %d, want 6 and 600 (refusals charge nothing)", d.RemainingRequests, d.RemainingTokens)
	}
}

// A refusal right after the first charge of a limit must give it back in
// full, although redis_rate does not write a refund that leaves a limit full.
func TestAllowGivesBackToFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	prefix := newPrefix(t, rdb)
	g := limits.New(rdb, limits.Options{Prefix: prefix, Window: longWindow})
	requests := []limits.Rate{{Name: "key:k1:rpm", Limit: 5}}
	tokenLimits := []limits.Rate{{Name: "key:k1:tpm", Limit: 100}}

	if d := g.Allow(ctx, nil, tokenLimits, 100); !d.Allowed {
		t.Fatal("first Allow denied")
	}
	if d := g.Allow(ctx, requests, tokenLimits, 1); d.Allowed || d.Denied != "key:k1:tpm" {
		t.Fatalf("Allow with no tokens left = %+v, want denied", d)
	}
	if n, _ := rdb.Exists(ctx, "rate:"+prefix+"key:k1:rpm").Result(); n != 0 {
		t.Error("the request limit was left charged in Redis")
	}
	g.Adjust(ctx, tokenLimits, -100)
	if d := g.Allow(ctx, requests, tokenLimits, 0); !d.Allowed || d.RemainingRequests != 4 || d.RemainingTokens != 100 {
		t.Errorf("after giving everything back: requests %d tokens %d, want 4 and 100", d.RemainingRequests, d.RemainingTokens)
	}
}

func TestAdjust(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(t, rdb), Window: longWindow})
	tpm := []limits.Rate{{Name: "key:k1:tpm", Limit: 1000}}
	remaining := func() int64 { return g.Allow(ctx, nil, tpm, 0).RemainingTokens }

	g.Allow(ctx, nil, tpm, 300)
	steps := []struct {
		delta, want int64
	}{
		{-200, 900},    // the answer was shorter than estimated
		{+500, 400},    // longer
		{+5000, 0},     // far longer: charge what is left, never refuse
		{-10000, 1000}, // never more than full
	}
	for _, s := range steps {
		g.Adjust(ctx, tpm, s.delta)
		if got := remaining(); got != s.want {
			t.Errorf("after Adjust(%d): %d tokens remain, want %d", s.delta, got, s.want)
		}
	}
}
