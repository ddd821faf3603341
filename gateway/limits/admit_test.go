package limits_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"tollgate/gateway/limits"
	"tollgate/store/storetest"
)

// allowByRedisRate is what Allow did before admitScript: redis_rate, one
// limit after another, giving back what was charged when one refuses.
func allowByRedisRate(ctx context.Context, t *testing.T, rdb *redis.Client, prefix string, w time.Duration, requests, toks []limits.Rate, tokens int64) limits.Decision {
	t.Helper()
	type charge struct {
		limits.Rate
		n      int64
		tokens bool
	}
	var cs []charge
	for _, r := range requests {
		cs = append(cs, charge{r, 1, false})
	}
	for _, r := range toks {
		cs = append(cs, charge{r, tokens, true})
	}
	limiter := redis_rate.NewLimiter(rdb)
	lim := func(r limits.Rate) redis_rate.Limit {
		return redis_rate.Limit{Rate: int(r.Limit), Burst: int(r.Limit), Period: w}
	}
	var d limits.Decision
	note := func(c charge, remaining int64, reset time.Duration) {
		if c.tokens {
			if d.LimitTokens == 0 || remaining < d.RemainingTokens {
				d.LimitTokens, d.RemainingTokens, d.ResetTokens = c.Limit, remaining, reset
			}
		} else if d.LimitRequests == 0 || remaining < d.RemainingRequests {
			d.LimitRequests, d.RemainingRequests, d.ResetRequests = c.Limit, remaining, reset
		}
	}
	charged := 0
	for _, c := range cs {
		if c.n > c.Limit {
			d.Denied, d.RetryAfter = c.Name, w
			break
		}
		res, err := limiter.AllowN(ctx, prefix+c.Name, lim(c.Rate), int(c.n))
		if err != nil {
			t.Fatal(err)
		}
		note(c, int64(res.Remaining), res.ResetAfter)
		if int64(res.Allowed) < c.n {
			d.Denied, d.RetryAfter = c.Name, max(res.RetryAfter, time.Millisecond)
			break
		}
		charged++
	}
	if d.Denied == "" {
		d.Allowed = true
		return d
	}
	for _, c := range cs[:charged] {
		res, err := limiter.AllowN(ctx, prefix+c.Name, lim(c.Rate), -int(c.n))
		if err != nil {
			t.Fatal(err)
		}
		if res.ResetAfter <= 0 {
			rdb.Del(ctx, "rate:"+prefix+c.Name)
		}
	}
	return d
}

// Allow in one script decides, and reports, exactly what redis_rate limit
// by limit did, and leaves the same keys with the same values.
func TestAllowMatchesRedisRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	oldPrefix, newPrefix := newPrefix(t, rdb), newPrefix(t, rdb)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix, Window: longWindow})
	reqs := []limits.Rate{{Name: "key:k:rpm", Limit: 20}, {Name: "team:t:rpm", Limit: 8}, {Name: "user:u:rpm", Limit: 30}}
	toks := []limits.Rate{{Name: "key:k:tpm", Limit: 1000}, {Name: "team:t:tpm", Limit: 700}, {Name: "user:u:tpm", Limit: 2000}}
	seen := map[string]int{}
	for i, tokens := range []int64{100, 300, 0, 250, 2000, 400, 100, 50, 10, 0, 0, 0, 0, 1} {
		want := allowByRedisRate(ctx, t, rdb, oldPrefix, longWindow, reqs, toks, tokens)
		seen[want.Denied]++
		got := g.Allow(ctx, reqs, toks, tokens)
		near := func(a, b time.Duration) bool { return (a - b).Abs() < 500*time.Millisecond }
		if got.Allowed != want.Allowed || got.Denied != want.Denied || !near(got.RetryAfter, want.RetryAfter) ||
			got.LimitRequests != want.LimitRequests || got.RemainingRequests != want.RemainingRequests || !near(got.ResetRequests, want.ResetRequests) ||
			got.LimitTokens != want.LimitTokens || got.RemainingTokens != want.RemainingTokens || !near(got.ResetTokens, want.ResetTokens) {
			t.Errorf("call %d (%d tokens):\n got %+v\nwant %+v", i, tokens, got, want)
		}
	}
	// allowed, refused by an exhausted limit, by a cost above a limit, and by a token limit
	if seen[""] < 3 || seen["team:t:rpm"] == 0 || seen["key:k:tpm"] == 0 || seen["team:t:tpm"] == 0 {
		t.Errorf("the sequence did not cover every outcome: %v", seen)
	}
	for _, r := range append(reqs, toks...) {
		o, errO := rdb.Get(ctx, "rate:"+oldPrefix+r.Name).Float64()
		n, errN := rdb.Get(ctx, "rate:"+newPrefix+r.Name).Float64()
		if (errO == nil) != (errN == nil) || math.Abs(o-n) > 0.5 {
			t.Errorf("%s: redis_rate left %v (%v), Allow %v (%v)", r.Name, o, errO, n, errN)
		}
		to, tn := rdb.TTL(ctx, "rate:"+oldPrefix+r.Name).Val(), rdb.TTL(ctx, "rate:"+newPrefix+r.Name).Val()
		if (to - tn).Abs() > time.Second {
			t.Errorf("%s: TTL %v by redis_rate, %v by Allow", r.Name, to, tn)
		}
	}
}

// A counter written by redis_rate (an older replica during a rolling
// deploy) is the one Allow reads, and the other way round.
func TestAllowSharesRedisRateKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	prefix := newPrefix(t, rdb)
	g := limits.New(rdb, limits.Options{Prefix: prefix, Window: longWindow})
	lim := redis_rate.Limit{Rate: 60, Burst: 60, Period: longWindow}
	if _, err := redis_rate.NewLimiter(rdb).AllowN(ctx, prefix+"key:k:rpm", lim, 50); err != nil {
		t.Fatal(err)
	}
	d := g.Allow(ctx, []limits.Rate{{Name: "key:k:rpm", Limit: 60}}, nil, 0)
	if !d.Allowed || d.RemainingRequests != 9 {
		t.Fatalf("after 50 by redis_rate: %+v, want allowed with 9 remaining", d)
	}
	res, err := redis_rate.NewLimiter(rdb).AllowN(ctx, prefix+"key:k:rpm", lim, 9)
	if err != nil || res.Allowed != 9 || res.Remaining != 0 {
		t.Fatalf("redis_rate after Allow: %+v %v, want 9 allowed, 0 remaining", res, err)
	}
}

// Admit takes all or nothing: a full slot or an exhausted budget leaves the
// rate limits uncharged and the earlier stages untaken.
func TestAdmitAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	prefix := newPrefix(t, rdb)
	g := limits.New(rdb, limits.Options{Prefix: prefix, Window: longWindow})
	a := limits.Admission{
		Requests:    []limits.Rate{{Name: "key:k:rpm", Limit: 10}},
		TokenLimits: []limits.Rate{{Name: "key:k:tpm", Limit: 1000}},
		Tokens:      100,
		Slots:       []limits.Slot{{Name: "key:k", Max: 1}},
		Budgets:     []limits.Budget{{Name: "key:k:1", Max: 1, Spend: func(context.Context) (float64, error) { return 0.25, nil }}},
		Amount:      0.5,
	}
	holds := func(id string) (rate, slot, budget bool) {
		rate = rdb.Exists(ctx, "rate:"+prefix+"key:k:rpm", "rate:"+prefix+"key:k:tpm").Val() > 0
		slot = rdb.ZScore(ctx, prefix+"slot:key:k", id).Err() == nil
		budget = rdb.HExists(ctx, prefix+"budget:key:k:1", "r:"+id).Val()
		return
	}

	// The slot is full.
	if ok, _ := g.Acquire(ctx, a.Slots, "other"); !ok {
		t.Fatal("Acquire refused")
	}
	a.RequestID = "r1"
	res, err := g.Admit(ctx, a)
	if err != nil || res.OK() || res.Full != "key:k" || res.Charged || res.Held || res.Reserved || !res.Rates.Allowed {
		t.Fatalf("slot full: %+v %v", res, err)
	}
	if r, s, b := holds("r1"); r || s || b {
		t.Fatalf("slot full, yet rate %v slot %v budget %v taken", r, s, b)
	}
	g.Release(ctx, a.Slots, "other")

	// The budget (seeded at 0.25 from Spend) cannot take 1.
	a.Amount = 1
	res, err = g.Admit(ctx, a)
	if err != nil || res.OK() || res.Budget != "key:k:1" || res.Spent != 0.25 || res.Charged || res.Held || res.Reserved {
		t.Fatalf("budget exhausted: %+v %v", res, err)
	}
	if r, s, b := holds("r1"); r || s || b {
		t.Fatalf("budget exhausted, yet rate %v slot %v budget %v taken", r, s, b)
	}

	// Everything passes and is taken.
	a.Amount = 0.5
	res, err = g.Admit(ctx, a)
	if err != nil || !res.OK() || !res.Charged || !res.Held || !res.Reserved ||
		res.Rates.RemainingRequests != 9 || res.Rates.RemainingTokens != 900 {
		t.Fatalf("admitted: %+v %v", res, err)
	}
	if r, s, b := holds("r1"); !r || !s || !b {
		t.Fatalf("admitted, yet rate %v slot %v budget %v", r, s, b)
	}

	// A rate refusal: the slot stays free and nothing is reserved.
	b := a
	b.RequestID, b.Slots, b.Tokens = "r2", []limits.Slot{{Name: "key:k2", Max: 1}}, 950
	res, err = g.Admit(ctx, b)
	if err != nil || res.Rates.Allowed || res.Rates.Denied != "key:k:tpm" || res.Held || res.Reserved {
		t.Fatalf("rate refused: %+v %v", res, err)
	}
	if rdb.Exists(ctx, prefix+"slot:key:k2").Val() != 0 || rdb.HExists(ctx, prefix+"budget:key:k:1", "r:r2").Val() {
		t.Fatal("rate refused, yet slot or budget taken")
	}

	// Finish settles, releases and gives the unused tokens back in one go.
	g.Finish(ctx, limits.Settlement{Budgets: a.Budgets, RequestID: "r1", Cost: 0.125, Slots: a.Slots, TokenLimits: a.TokenLimits, Delta: -100})
	if _, s, bud := holds("r1"); s || bud {
		t.Fatalf("finished, yet slot %v budget %v held", s, bud)
	}
	if spent := rdb.HGet(ctx, prefix+"budget:key:k:1", "spent").Val(); spent != strconv.Itoa(375_000_000) {
		t.Errorf("spent %s nano-USD, want 375000000", spent)
	}
	if rdb.Exists(ctx, "rate:"+prefix+"key:k:tpm").Val() != 0 {
		t.Error("all the tokens given back, yet the tpm counter is not full (deleted)")
	}
	if d := g.Allow(ctx, nil, a.TokenLimits, 1000); !d.Allowed {
		t.Errorf("tokens not given back: %+v", d)
	}
}

// Admit with a budget whose Spend fails takes nothing and reports the error.
func TestAdmitSpendFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	prefix := newPrefix(t, rdb)
	g := limits.New(rdb, limits.Options{Prefix: prefix, Window: longWindow})
	boom := errors.New("boom")
	res, err := g.Admit(ctx, limits.Admission{
		Requests:  []limits.Rate{{Name: "key:k:rpm", Limit: 10}},
		Slots:     []limits.Slot{{Name: "key:k", Max: 1}},
		RequestID: "r1",
		Budgets:   []limits.Budget{{Name: "key:k:1", Max: 1, Spend: func(context.Context) (float64, error) { return 0, boom }}},
		Amount:    0.5,
	})
	if !errors.Is(err, boom) || res.Charged || res.Held || res.Reserved {
		t.Fatalf("%+v %v", res, err)
	}
	if rdb.Exists(ctx, "rate:"+prefix+"key:k:rpm", prefix+"slot:key:k").Val() != 0 {
		t.Fatal("Spend failed, yet the rate or slot was taken")
	}
}

// Adjust leaves the counter where redis_rate's AllowAtMost (more tokens
// used) and a refund of AllowN(-n) (fewer) did.
func TestAdjustMatchesRedisRate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := storetest.Redis(t)
	oldPrefix, newPrefix := newPrefix(t, rdb), newPrefix(t, rdb)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix, Window: longWindow})
	limiter := redis_rate.NewLimiter(rdb)
	r := limits.Rate{Name: "key:k:tpm", Limit: 1000}
	lim := redis_rate.Limit{Rate: 1000, Burst: 1000, Period: longWindow}
	if _, err := limiter.AllowN(ctx, oldPrefix+r.Name, lim, 300); err != nil {
		t.Fatal(err)
	}
	g.Allow(ctx, nil, []limits.Rate{r}, 300)
	for _, delta := range []int64{500, 400, -200, -100, 50} {
		var err error
		if delta > 0 {
			_, err = limiter.AllowAtMost(ctx, oldPrefix+r.Name, lim, int(delta))
		} else {
			_, err = limiter.AllowN(ctx, oldPrefix+r.Name, lim, int(delta))
		}
		if err != nil {
			t.Fatal(err)
		}
		g.Adjust(ctx, []limits.Rate{r}, delta)
		o := rdb.Get(ctx, "rate:"+oldPrefix+r.Name).Val()
		n := rdb.Get(ctx, "rate:"+newPrefix+r.Name).Val()
		of, _ := strconv.ParseFloat(o, 64)
		nf, _ := strconv.ParseFloat(n, 64)
		if math.Abs(of-nf) > 0.5 {
			t.Errorf("after %+d: redis_rate left %s, Adjust %s", delta, o, n)
		}
	}
}
