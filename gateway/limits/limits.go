// Package limits enforces rate limits, parallel-request slots and budgets
// for the gateway, shared by every replica through Redis.
//
// Rates are GCRA limits (as redis_rate computes them): smooth, one key per
// limit, no per-window bursts at window edges. Slots are sorted sets of request ids
// scored by expiry, so a request that crashes without releasing its slot
// stops holding it after SlotTTL.
//
// Budgets are hard caps on money, and the cost of a request is known only
// after it ends, by which time many others may have started. So a request
// first reserves an estimate (Reserve), checked atomically against settled
// spend plus every outstanding reservation, and later replaces it by the
// actual cost (Settle). Without reservations, N concurrent requests would
// all see the same spend and together overshoot the cap by N requests.
//
// A budget's Name carries its period (e.g. "key:<id>:<period-end-unix>"):
// when the period rolls over the gateway simply uses a new name, whose
// counter is missing and gets seeded from PostgreSQL, so a reset needs no
// job and no Redis write, and old counters expire on their own.
//
// Money is kept in Redis as integer nano-dollars: HINCRBY is exact and
// atomic on integers, while summing float dollars would drift and Redis
// has no atomic float compare. Lua numbers are doubles, exact up to 2^53
// nano-dollars (about 9 million USD), far beyond any one budget.
//
// When Redis is unreachable, every call falls back to a per-process state
// (limits divided by the number of replicas, budgets read from PostgreSQL)
// so the gateway keeps serving with roughly the same limits; Run notices
// when Redis is back, replays what the fallback settled or released, and
// switches back. Without Run, a Guard that lost Redis never returns to it.
//
// Admit does Allow, Acquire and Reserve in one Redis round trip, all or
// nothing, and Finish does Settle, Release and Adjust in one.
//
// Keys: Prefix+"slot:"+name (sorted set), Prefix+"budget:"+name (hash of
// settled spend, reservation amounts and their total) with Prefix+"budget:"+name+":held"
// (sorted set of reservation expiries), and "rate:"+Prefix+name for rates,
// since redis_rate puts its own prefix first.
package limits

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configure a Guard.
type Options struct {
	Prefix   string        // Redis key prefix, default "tg:"
	Replicas int           // gateway replicas sharing the limits; fallback divides limits by it (default 1)
	Window   time.Duration // the "minute" of RPM/TPM limits; default time.Minute (tests shorten it)
	SlotTTL  time.Duration // how long a parallel slot or budget reservation lives if never released (crashed request); default 11 * time.Minute
	Log      *slog.Logger
}

const (
	pingEvery   = 500 * time.Millisecond
	pingTimeout = 500 * time.Millisecond
	// counterTTL outlives the longest budget period (a month) so a counter
	// is never dropped while its period can still be in use.
	counterTTL = 35 * 24 * time.Hour
)

// Guard enforces limits; safe for concurrent use.
type Guard struct {
	rdb  *redis.Client
	pipe pipeliner // every script goes through it
	opts Options
	log  *slog.Logger
	up   atomic.Bool

	mu      sync.Mutex // guards the fallback state below
	rates   map[string]*localRate
	slots   map[string]map[string]hold // slot name → request id → hold
	budgets map[string]*localBudget
	pending pending // what the fallback did that Redis must still learn
}

// New returns a Guard using rdb. It assumes Redis is up until a call or
// Run finds otherwise.
func New(rdb *redis.Client, opts Options) *Guard {
	if opts.Prefix == "" {
		opts.Prefix = "tg:"
	}
	if opts.Replicas < 1 {
		opts.Replicas = 1
	}
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.SlotTTL <= 0 {
		opts.SlotTTL = 11 * time.Minute
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Guard{rdb: rdb, pipe: pipeliner{rdb: rdb}, opts: opts, log: log,
		rates:   map[string]*localRate{},
		slots:   map[string]map[string]hold{},
		budgets: map[string]*localBudget{},
		pending: newPending(),
	}
	g.up.Store(true)
	return g
}

// Run pings Redis every 500ms until ctx ends and keeps RedisUp current;
// when Redis is down the Guard does not call Redis on the hot path at all
// (no per-request timeouts), it uses the fallback. Any Redis error on the
// hot path also marks it down at once. Logs the transitions (once each way).
func (g *Guard) Run(ctx context.Context) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		g.check(ctx)
		g.sweep(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RedisUp reports whether the Guard currently uses Redis.
func (g *Guard) RedisUp() bool { return g.up.Load() }

// check pings Redis and flips the state. Coming back, the fallback's
// settlements and releases are replayed first, while the hot path still
// stays off Redis, so no request can seed a counter before the replay.
// Calls that were still on the fallback when Redis came back are
// replayed on a later tick.
func (g *Guard) check(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	err := g.rdb.Ping(pctx).Err()
	if err == nil {
		err = g.replay(pctx)
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		g.markDown(err)
		return
	}
	if g.up.CompareAndSwap(false, true) {
		g.log.Info("redis is back; limits are shared across replicas again")
	}
}

func (g *Guard) markDown(err error) {
	if g.up.CompareAndSwap(true, false) {
		g.log.Warn("redis unreachable; limits fall back to per-process state", "replicas", g.opts.Replicas, "err", err)
	}
}

// failed reports whether a Redis call failed, in which case the caller
// uses the fallback. A call that failed because the caller's own context
// ended says nothing about Redis, so it does not mark Redis down.
func (g *Guard) failed(ctx context.Context, err error) bool {
	if err == nil {
		return false
	}
	if ctx.Err() == nil || !errors.Is(err, ctx.Err()) {
		g.markDown(err)
	}
	return true
}

// share is this process's part of a limit while Redis is down.
func (g *Guard) share(limit int64) int64 {
	if limit <= 0 {
		return 0
	}
	return max(1, limit/int64(g.opts.Replicas))
}

// sweep bounds the fallback state: rates unused for two windows are full
// again and can be forgotten, and so can budgets with nothing reserved.
func (g *Guard) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, r := range g.rates {
		if now.Sub(r.used) > 2*g.opts.Window {
			delete(g.rates, name)
		}
	}
	for name, held := range g.slots {
		dropExpired(held, now)
		if len(held) == 0 {
			delete(g.slots, name)
		}
	}
	for name, b := range g.budgets {
		dropExpired(b.reserved, now)
		if len(b.reserved) == 0 && now.Sub(b.fetched) > time.Minute {
			delete(g.budgets, name)
		}
	}
}

// hold is a slot or budget reservation held by one request in the fallback.
type hold struct {
	amount  int64 // nano-dollars; 0 for slots
	expires time.Time
}

func dropExpired(held map[string]hold, now time.Time) {
	for id, h := range held {
		if now.After(h.expires) {
			delete(held, id)
		}
	}
}

// pending is what the fallback did that Redis has to learn when it is
// back: spend settled meanwhile, and slots and reservations taken in Redis
// before the outage but released during it (else they would count until
// SlotTTL). It stays small: spend is summed per budget, and releases come
// only from requests already in flight when Redis went away.
type pending struct {
	spend   map[string]int64    // budget name → nano-dollars
	slots   map[string][]string // slot name → request ids
	budgets map[string][]string // budget name → request ids
}

func newPending() pending {
	return pending{spend: map[string]int64{}, slots: map[string][]string{}, budgets: map[string][]string{}}
}

func (p pending) empty() bool {
	return len(p.spend) == 0 && len(p.slots) == 0 && len(p.budgets) == 0
}

func (p pending) add(q pending) {
	for name, n := range q.spend {
		p.spend[name] += n
	}
	for name, ids := range q.slots {
		p.slots[name] = append(p.slots[name], ids...)
	}
	for name, ids := range q.budgets {
		p.budgets[name] = append(p.budgets[name], ids...)
	}
}

// replay applies what the fallback did, in one MULTI so that a failure
// leaves nothing half applied. Spend goes only to counters that exist: a
// missing one is seeded later from PostgreSQL, which has the spend logs.
func (g *Guard) replay(ctx context.Context) error {
	g.mu.Lock()
	p := g.pending
	g.pending = newPending()
	g.mu.Unlock()
	if p.empty() {
		return nil
	}
	_, err := g.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for name, ids := range p.slots {
			pipe.ZRem(ctx, g.slotKey(name), toAny(ids)...)
		}
		for name, ids := range p.budgets {
			hash, held := g.budgetKey(name)
			releaseScript.Eval(ctx, pipe, []string{hash, held}, toAny(ids)...)
		}
		for name, n := range p.spend {
			hash, held := g.budgetKey(name)
			// finishScript on this budget alone, with no reservation to drop
			finishScript.Eval(ctx, pipe, []string{hash, held}, 1, 0, 0, "", n, counterTTL.Milliseconds(), 0, 0)
		}
		return nil
	})
	var rerr redis.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rerr):
		// Redis answered but refused: retrying would never succeed.
		g.log.Error("replay fallback state to redis", "err", err)
		return nil
	default:
		g.mu.Lock()
		g.pending.add(p)
		g.mu.Unlock()
		return err
	}
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func nanos(usd float64) int64 { return int64(math.Round(usd * 1e9)) }

func dollars(n int64) float64 { return float64(n) / 1e9 }
