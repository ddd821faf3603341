package limits

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Budget is a hard spending cap for one subject in one budget period.
type Budget struct {
	Name string  // e.g. "key:<id>:<period-end-unix>"; a new period is a new name, so a reset needs no Redis write
	Max  float64 // USD
	// Spend reads the subject's settled spend from PostgreSQL. Called to seed Redis when the
	// budget's counter is missing there (first use, new period, Redis restarted), and by the
	// fallback when Redis is down. A nil Spend means nothing was spent yet.
	Spend func(ctx context.Context) (float64, error)
}

func (b Budget) spend(ctx context.Context) (int64, error) {
	if b.Spend == nil {
		return 0, nil
	}
	usd, err := b.Spend(ctx)
	if err != nil {
		return 0, fmt.Errorf("read spend of budget %s: %w", b.Name, err)
	}
	return nanos(usd), nil
}

// Each budget has two keys: a hash holding the settled spend (field
// "spent"), the amount of every reservation (field "r:<request id>") and
// their running total (field "held"), and a sorted set of the
// reservations' expiries. Amounts are nano-dollars. Keeping the total lets
// a check cost the same with one request in flight or thousands: summing
// the reservations each time made Redis's work grow with the traffic.

// budgetLua holds the Lua helpers every budget script starts with. Each
// script is one EVAL, so the helpers run atomically with the rest. They
// read a budget's fields in one HMGET and write them back in one HSET:
// each redis.call costs Redis about a microsecond, and a governed request
// checks three budgets or more.
//
// read returns a budget's settled spend (nil when the counter is missing),
// its reservation total (nil when not kept yet: a counter seeded just now,
// or written by a version that kept none) and what id holds.
//
// sweep drops reservations that expired (a crashed request never settled)
// from the total, at most 500 at a time, and returns the total and what id
// holds after. When nothing is held the total is 0, whatever it said; a
// missing total is rebuilt from the reservations.
//
// admit checks n budgets, their keys after KEYS[base] and their Max after
// ARGV[maxAt], in two passes: read all, to report every missing counter at
// once ({-1, i, j...}), then sweep and decide ({0, i, used} refuses). When
// all can take amount it returns nil and their state, for hold to record
// the reservation in each.
const budgetLua = `
local function read(h, id)
  local v = redis.call('HMGET', h, 'spent', 'held', 'r:' .. id)
  return {tonumber(v[1]), tonumber(v[2]), tonumber(v[3]) or 0}
end
local function sweep(h, z, id, now, held, own)
  local gone = redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, 500)
  if #gone > 0 then
    local fields = {}
    for i, m in ipairs(gone) do fields[i] = 'r:' .. m end
    local amounts = redis.call('HMGET', h, unpack(fields))
    for i, m in ipairs(gone) do
      if held then held = held - (tonumber(amounts[i]) or 0) end
      if m == id then own = 0 end
    end
    redis.call('HDEL', h, unpack(fields))
    redis.call('ZREM', z, unpack(gone))
  end
  if redis.call('ZCARD', z) == 0 then return 0, 0 end
  if not held then
    held = 0
    for _, m in ipairs(redis.call('ZRANGE', z, 0, -1)) do
      held = held + (tonumber(redis.call('HGET', h, 'r:' .. m)) or 0)
    end
  end
  return math.max(held, 0), own
end
local function admit(base, n, maxAt, id, now, amount)
  local missing, st = {-1}, {}
  for i = 1, n do
    st[i] = read(KEYS[base + 2*i-1], id)
    if not st[i][1] then missing[#missing + 1] = i end
  end
  if #missing > 1 then return missing end
  for i = 1, n do
    local s = st[i]
    s[2], s[3] = sweep(KEYS[base + 2*i-1], KEYS[base + 2*i], id, now, s[2], s[3])
    local used = s[1] + math.max(s[2] - s[3], 0)
    local max = tonumber(ARGV[maxAt + i])
    if max <= 0 or used + amount > max then return {0, i, used} end
  end
  return nil, st
end
local function hold(base, n, id, amount, st, expires, ttl)
  for i = 1, n do
    local z = KEYS[base + 2*i]
    redis.call('ZADD', z, expires, id)
    redis.call('HSET', KEYS[base + 2*i-1], 'r:' .. id, amount, 'held', math.max(st[i][2] - st[i][3], 0) + amount)
    -- the hash's expiry is kept by seeding and settling; the set may be new
    redis.call('PEXPIRE', z, ttl)
  end
end
-- settle ends id's reservation with its actual cost and returns the
-- settled spend, or -1 when the counter is missing (nothing is added: the
-- caller seeds it and settles again).
local function settle(h, z, id, actual, ttl)
  local s = read(h, id)
  local spent, held, own = s[1], s[2], s[3]
  redis.call('ZREM', z, id)
  if own ~= 0 then redis.call('HDEL', h, 'r:' .. id) end
  if not spent then
    if own ~= 0 and held then redis.call('HSET', h, 'held', math.max(held - own, 0)) end
    return -1
  end
  spent = spent + tonumber(actual)
  if held then
    redis.call('HSET', h, 'spent', spent, 'held', math.max(held - own, 0))
  else
    redis.call('HSET', h, 'spent', spent)
  end
  redis.call('PEXPIRE', h, ttl)
  return spent
end
local function unhold(h, z, id)
  local s = read(h, id)
  redis.call('ZREM', z, id)
  if s[3] ~= 0 then
    redis.call('HDEL', h, 'r:' .. id)
    if s[2] then redis.call('HSET', h, 'held', math.max(s[2] - s[3], 0)) end
  end
end
`

// releaseScript drops reservations without spending.
// KEYS: each budget's hash and sorted set. ARGV: the request ids.
var releaseScript = redis.NewScript(budgetLua + `
for i = 1, #KEYS / 2 do
  for _, id in ipairs(ARGV) do unhold(KEYS[2*i-1], KEYS[2*i], id) end
end
return 0
`)

// errFallback says Redis failed and the fallback must decide.
var errFallback = errors.New("redis unavailable")

// Reserve atomically checks, for every budget, settled spend + reserved + amount <= Max and, if
// all pass, records a reservation of amount under requestID in each (all or nothing). It returns
// the Name of the first budget that refuses, with that budget's spend (settled + reserved) at the
// time. Reservations expire after SlotTTL. A missing counter is seeded from Spend. A Max <= 0
// budget refuses everything. The error is set only when Spend fails and nothing else can decide.
func (g *Guard) Reserve(ctx context.Context, budgets []Budget, requestID string, amount float64) (ok bool, denied string, spent float64, err error) {
	if len(budgets) == 0 {
		return true, "", 0, nil
	}
	if g.up.Load() {
		ok, denied, spent, err = g.reserveRedis(ctx, budgets, requestID, amount)
		if err != errFallback {
			return ok, denied, spent, err
		}
	}
	return g.reserveLocal(ctx, budgets, requestID, max(nanos(amount), 0))
}

// reserveRedis is admitScript with budgets only.
func (g *Guard) reserveRedis(ctx context.Context, budgets []Budget, requestID string, amount float64) (bool, string, float64, error) {
	r, ok, err := g.admitRedis(ctx, Admission{Budgets: budgets, RequestID: requestID, Amount: amount})
	if !ok {
		return false, "", 0, errFallback
	}
	return r.Budget == "" && err == nil, r.Budget, r.Spent, err
}

// seedCounter sets a missing counter to the spend PostgreSQL knows. HSETNX
// makes concurrent seeders harmless: the first wins, the others change
// nothing, so the spend is never counted twice.
func (g *Guard) seedCounter(ctx context.Context, b Budget) error {
	spent, err := b.spend(ctx)
	if err != nil {
		return err
	}
	hash, _ := g.budgetKey(b.Name)
	_, err = g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, hash, "spent", spent)
		p.PExpire(ctx, hash, counterTTL)
		return nil
	})
	if g.failed(ctx, err) {
		return errFallback
	}
	return nil
}

// Settle replaces the reservation of requestID by the actual cost in every budget: settled spend
// += actual, reservation removed. Safe if the reservation already expired (just adds actual).
// Returns each budget's settled spend after settling (same order), so the caller can see a
// soft budget being crossed. Call it before the spend log is written, so that a counter seeded
// from PostgreSQL here does not already hold this request's cost.
func (g *Guard) Settle(ctx context.Context, budgets []Budget, requestID string, actual float64) []float64 {
	out := make([]float64, len(budgets))
	if len(budgets) == 0 {
		return out
	}
	n := nanos(actual)
	heldHere := g.dropLocalHolds(budgets, requestID)
	if g.up.Load() && g.settleRedis(ctx, budgets, requestID, n, out) {
		return out
	}
	return g.settleLocal(ctx, budgets, requestID, n, heldHere)
}

// settleRedis is finishScript with budgets only; it fills out and reports
// whether Redis took the settlement.
func (g *Guard) settleRedis(ctx context.Context, budgets []Budget, requestID string, actual int64, out []float64) bool {
	res, err := g.finishRedis(ctx, budgets, requestID, actual, nil, nil, 0)
	if g.failed(ctx, err) {
		return false
	}
	g.reseed(ctx, budgets, requestID, actual, res, out)
	return true
}

// reseed fills out (when not nil) from a settlement's answer res; where
// the counter was missing (Redis restarted, or a period began mid-request)
// it seeds it and settles there again.
func (g *Guard) reseed(ctx context.Context, budgets []Budget, requestID string, actual int64, res []int64, out []float64) {
	for i, b := range budgets {
		if res[i] >= 0 {
			if out != nil {
				out[i] = dollars(res[i])
			}
			continue
		}
		if err := g.seedCounter(ctx, b); err != nil {
			// The spend log reaches PostgreSQL anyway, and the next seed reads it.
			g.log.Warn("settle budget: cannot seed counter", "budget", b.Name, "err", err)
			continue
		}
		again, err := g.finishRedis(ctx, budgets[i:i+1], requestID, actual, nil, nil, 0)
		if !g.failed(ctx, err) && again[0] >= 0 && out != nil {
			out[i] = dollars(again[0])
		}
	}
}

// ReleaseBudget drops a reservation without spending (the request failed before costing anything).
func (g *Guard) ReleaseBudget(ctx context.Context, budgets []Budget, requestID string) {
	if len(budgets) == 0 || g.dropLocalHolds(budgets, requestID) {
		return
	}
	if g.up.Load() {
		err := g.pipe.run(ctx, releaseScript, g.budgetKeys(budgets), requestID).Err()
		if !g.failed(ctx, err) {
			return
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range budgets {
		g.pending.budgets[b.Name] = append(g.pending.budgets[b.Name], requestID)
	}
}

func (g *Guard) budgetKey(name string) (hash, held string) {
	hash = g.opts.Prefix + "budget:" + name
	return hash, hash + ":held"
}

func (g *Guard) budgetKeys(budgets []Budget) []string {
	keys := make([]string, 0, 2*len(budgets))
	for _, b := range budgets {
		hash, held := g.budgetKey(b.Name)
		keys = append(keys, hash, held)
	}
	return keys
}

// localBudget is the fallback's view of a budget: the spend PostgreSQL
// reported at fetched, what this process settled since, and the
// reservations this process holds.
type localBudget struct {
	spent    int64
	fetched  time.Time
	delta    int64
	reserved map[string]hold
}

// spendCacheFor is how long the fallback trusts a Spend reading.
const spendCacheFor = time.Second

// localBudget returns the fallback state of a budget. Callers hold g.mu.
func (g *Guard) localBudget(name string) *localBudget {
	lb := g.budgets[name]
	if lb == nil {
		lb = &localBudget{reserved: map[string]hold{}}
		g.budgets[name] = lb
	}
	return lb
}

// refresh rereads a budget's spend when the cached one is older than a
// second. The PostgreSQL read happens without holding g.mu.
func (g *Guard) refresh(ctx context.Context, b Budget) error {
	g.mu.Lock()
	fresh := time.Since(g.localBudget(b.Name).fetched) < spendCacheFor
	g.mu.Unlock()
	if fresh {
		return nil
	}
	spent, err := b.spend(ctx)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	lb := g.localBudget(b.Name)
	// What this process settled is in PostgreSQL by now, or soon.
	lb.spent, lb.fetched, lb.delta = spent, time.Now(), 0
	return nil
}

func (g *Guard) reserveLocal(ctx context.Context, budgets []Budget, requestID string, amount int64) (bool, string, float64, error) {
	for _, b := range budgets {
		if err := g.refresh(ctx, b); err != nil {
			return false, b.Name, 0, err
		}
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range budgets {
		lb := g.localBudget(b.Name)
		dropExpired(lb.reserved, now)
		used := lb.spent + lb.delta
		for id, h := range lb.reserved {
			if id != requestID {
				used += h.amount
			}
		}
		if limit := nanos(b.Max); limit <= 0 || used+amount > limit {
			return false, b.Name, dollars(used), nil
		}
	}
	for _, b := range budgets {
		g.localBudget(b.Name).reserved[requestID] = hold{amount: amount, expires: now.Add(g.opts.SlotTTL)}
	}
	return true, "", 0, nil
}

// settleLocal counts the cost here until PostgreSQL reports it, and
// remembers it for Redis, which did not see it either.
func (g *Guard) settleLocal(ctx context.Context, budgets []Budget, requestID string, actual int64, heldHere bool) []float64 {
	for _, b := range budgets {
		if err := g.refresh(ctx, b); err != nil {
			g.log.Warn("settle budget without redis: cannot read spend", "budget", b.Name, "err", err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]float64, len(budgets))
	for i, b := range budgets {
		lb := g.localBudget(b.Name)
		lb.delta += actual
		out[i] = dollars(lb.spent + lb.delta)
		g.pending.spend[b.Name] += actual
		if !heldHere {
			g.pending.budgets[b.Name] = append(g.pending.budgets[b.Name], requestID)
		}
	}
	return out
}

// dropLocalHolds removes requestID's fallback reservations and reports
// whether it had any, in which case Redis never saw the reservation.
func (g *Guard) dropLocalHolds(budgets []Budget, requestID string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	found := false
	for _, b := range budgets {
		if lb := g.budgets[b.Name]; lb != nil {
			if _, ok := lb.reserved[requestID]; ok {
				found = true
				delete(lb.reserved, requestID)
			}
		}
	}
	return found
}
