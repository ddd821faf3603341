package limits

import (
	"context"
	"time"
)

// Rate is one limit: at most Limit per Window, GCRA as
// github.com/go-redis/redis_rate/v10 computes it (Limit{Rate: Limit, Burst: Limit, Period: Window});
// see admitScript.
type Rate struct {
	Name  string // e.g. "key:<id>:rpm" — the Redis key suffix and what error messages name
	Limit int64
}

// Decision is the outcome of Allow.
type Decision struct {
	Allowed    bool
	Denied     string        // Name of the first limit that refused
	RetryAfter time.Duration // when a retry could pass (>0 when denied)
	// For OpenAI-style x-ratelimit-* headers: the most constraining request limit and token
	// limit (lowest remaining after this request). Zero Limit means no limit of that kind applied.
	LimitRequests, RemainingRequests int64
	ResetRequests                    time.Duration
	LimitTokens, RemainingTokens     int64
	ResetTokens                      time.Duration
}

// note records one limit's state for the headers if it is the most constraining so far.
func (d *Decision) note(c charge, limit, remaining int64, reset time.Duration) {
	if c.tokens {
		if d.LimitTokens == 0 || remaining < d.RemainingTokens {
			d.LimitTokens, d.RemainingTokens, d.ResetTokens = limit, remaining, reset
		}
		return
	}
	if d.LimitRequests == 0 || remaining < d.RemainingRequests {
		d.LimitRequests, d.RemainingRequests, d.ResetRequests = limit, remaining, reset
	}
}

// charge is one limit and what Allow takes from it.
type charge struct {
	Rate
	n      int64
	tokens bool
}

func charges(requests, tokenLimits []Rate, tokens int64) []charge {
	cs := make([]charge, 0, len(requests)+len(tokenLimits))
	for _, r := range requests {
		cs = append(cs, charge{Rate: r, n: 1})
	}
	for _, r := range tokenLimits {
		cs = append(cs, charge{Rate: r, n: tokens, tokens: true})
	}
	return cs
}

// Allow charges 1 against every request limit and `tokens` against every token limit, all or
// nothing: if any refuses, what was already charged by this call is given back, and nothing is
// charged. A token limit smaller than `tokens` refuses (RetryAfter = Window).
func (g *Guard) Allow(ctx context.Context, requests []Rate, tokenLimits []Rate, tokens int64) Decision {
	if g.up.Load() {
		if d, ok := g.allowRedis(ctx, requests, tokenLimits, tokens); ok {
			return d
		}
	}
	return g.allowLocal(charges(requests, tokenLimits, max(tokens, 0)))
}

// allowRedis is admitScript with rates only: one round trip, all or
// nothing; ok is false when Redis failed.
func (g *Guard) allowRedis(ctx context.Context, requests, tokenLimits []Rate, tokens int64) (Decision, bool) {
	r, ok, _ := g.admitRedis(ctx, Admission{Requests: requests, TokenLimits: tokenLimits, Tokens: tokens})
	return r.Rates, ok
}

// Adjust corrects token limits once real usage is known: delta > 0 charges more (as much as
// the limit allows, never refusing — the answer already went out), delta < 0 gives back.
func (g *Guard) Adjust(ctx context.Context, tokenLimits []Rate, delta int64) {
	if delta == 0 || len(tokenLimits) == 0 {
		return
	}
	if g.up.Load() && g.adjustRedis(ctx, tokenLimits, delta) {
		return
	}
	g.adjustLocal(tokenLimits, delta)
}

func (g *Guard) adjustRedis(ctx context.Context, tokenLimits []Rate, delta int64) bool {
	_, err := g.finishRedis(ctx, nil, "", 0, nil, tokenLimits, delta)
	return !g.failed(ctx, err)
}

// rateKeyPrefix is what redis_rate puts before every key.
const rateKeyPrefix = "rate:"

// localRate is the fallback's GCRA state for one limit, kept like
// redis_rate keeps it: tat is the theoretical arrival time, the moment the
// limit is full again.
type localRate struct {
	tat  time.Time
	used time.Time // for sweep
}

// allowLocal checks every limit before charging any, under one lock, so it
// never has to give anything back.
func (g *Guard) allowLocal(cs []charge) Decision {
	now := time.Now()
	w := g.opts.Window
	g.mu.Lock()
	defer g.mu.Unlock()
	var d Decision
	next := make([]time.Time, len(cs))
	for i, c := range cs {
		limit := g.share(c.Limit)
		if c.n > limit {
			d.Denied, d.RetryAfter = c.Name, w
			return d
		}
		interval := perUnit(w, limit)
		tat := later(g.localRate(c.Name, now).tat, now)
		next[i] = tat.Add(time.Duration(c.n) * interval)
		if over := next[i].Sub(now) - w; over > 0 {
			d.note(c, limit, 0, tat.Sub(now))
			d.Denied, d.RetryAfter = c.Name, over
			return d
		}
		d.note(c, limit, int64((w-next[i].Sub(now))/interval), next[i].Sub(now))
	}
	for i, c := range cs {
		g.rates[c.Name].tat = next[i]
	}
	d.Allowed = true
	return d
}

// perUnit is the time one request or token takes to refill in window w. A
// limit finer than a nanosecond per unit rounds up to one nanosecond
// rather than to zero (which would divide by zero below).
func perUnit(w time.Duration, limit int64) time.Duration {
	return max(w/time.Duration(limit), time.Nanosecond)
}

func (g *Guard) adjustLocal(tokenLimits []Rate, delta int64) {
	now := time.Now()
	w := g.opts.Window
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range tokenLimits {
		limit := g.share(r.Limit)
		if limit <= 0 {
			continue
		}
		lr := g.localRate(r.Name, now)
		tat := later(lr.tat, now).Add(time.Duration(delta) * perUnit(w, limit))
		// never past full in either direction: at most one window of debt, no credit
		lr.tat = later(now, tat)
		if lr.tat.After(now.Add(w)) {
			lr.tat = now.Add(w)
		}
	}
}

// localRate returns the fallback state of a limit, creating it full.
// Callers hold g.mu.
func (g *Guard) localRate(name string, now time.Time) *localRate {
	lr := g.rates[name]
	if lr == nil {
		lr = &localRate{tat: now}
		g.rates[name] = lr
	}
	lr.used = now
	return lr
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
