package limits

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// admitScript is Allow, Acquire and Reserve in one round trip, all or
// nothing: every rate, slot and budget is checked before anything is
// charged, so a refusal takes nothing back because nothing was taken.
//
// The rates are GCRA exactly as github.com/go-redis/redis_rate/v10's allowN
// script computes them (same arithmetic, same keys "rate:"+Prefix+name, same
// stored value and expiry), so counters written by either stay valid across
// a rolling deploy. It is our own copy because redis_rate checks one limit
// per call and cannot charge several atomically, nor together with slots
// and budgets.
//
// KEYS: nr rate keys, ns slot keys, then each budget's hash and sorted set.
// ARGV: nr, ns, nb, window (s), request id, SlotTTL (ms), amount (nano-USD),
// counter TTL (ms), then each rate's limit and cost, each slot's Max, each
// budget's Max.
// Returns {stage, i, extra, remaining1, reset1, remaining2, reset2, ...}:
// stage 0 = all taken; 1 = rate i refused, extra = its retry-after in
// seconds ("" when its cost exceeds the limit); 2 = slot i is full; 3 =
// budget i refused, extra = its used amount. The remaining/reset pairs are
// redis_rate's for every rate checked, in order. {-1, i, j...} when the
// counters of budgets i, j... are missing: nothing was taken, seed them and
// run again.
var admitScript = redis.NewScript(budgetLua + `
local nr, ns, nb = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local period, id, ttl, amount = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local t = redis.call('TIME')
local out = {0, 0, ''}

-- rates, as redis_rate's allowN, without writing yet
local now = (t[1] - 1483228800) + (t[2] / 1000000)
local tats, news = {}, {}
for i = 1, nr do
  local key = KEYS[i]
  local limit, cost = tonumber(ARGV[7 + 2*i]), tonumber(ARGV[8 + 2*i])
  if cost > limit then
    out[1], out[2] = 1, i
    return out
  end
  local emission_interval = period / limit
  local tat = math.max(tats[key] or tonumber(redis.call('GET', key) or now), now)
  local new_tat = tat + emission_interval * cost
  local diff = now - (new_tat - emission_interval * limit)
  local remaining = diff / emission_interval
  if remaining < 0 then
    out[1], out[2], out[3] = 1, i, tostring(-diff)
    out[#out + 1] = 0
    out[#out + 1] = tostring(tat - now)
    return out
  end
  out[#out + 1] = remaining
  out[#out + 1] = tostring(new_tat - now)
  tats[key], news[i] = new_tat, new_tat
end

-- slots: a request already holding a place keeps it
local nowms = t[1] * 1000 + math.floor(t[2] / 1000)
local a = 8 + 2*nr
for i = 1, ns do
  local key = KEYS[nr + i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', nowms)
  if not redis.call('ZSCORE', key, id) and redis.call('ZCARD', key) >= tonumber(ARGV[a + i]) then
    out[1], out[2] = 2, i
    return out
  end
end

-- budgets
local b = nr + ns
local refused, st = admit(b, nb, a + ns, id, nowms, amount)
if refused then
  if refused[1] == -1 then return refused end
  out[1], out[2], out[3] = 3, refused[2], refused[3]
  return out
end

-- everything passed: take it all
for i = 1, nr do
  local reset_after = news[i] - now
  if reset_after > 0 then
    redis.call('SET', KEYS[i], news[i], 'EX', math.ceil(reset_after))
  end
end
for i = 1, ns do
  redis.call('ZADD', KEYS[nr + i], nowms + ttl, id)
  redis.call('PEXPIRE', KEYS[nr + i], ttl)
end
hold(b, nb, id, amount, st, nowms + ttl, ARGV[8])
return out
`)

// finishScript is Settle, Release and Adjust in one round trip.
// KEYS: each budget's hash and sorted set, ns slot keys, na rate keys.
// ARGV: nb, ns, na, request id, actual (nano-USD), counter TTL (ms),
// window (s), delta, then each rate's limit.
// Returns each budget's settled spend after, or -1 where its counter is
// missing: nothing is added there, the caller seeds it and settles again
// (dropping the reservation twice is harmless). The rates are corrected as redis_rate's
// allowAtMost does for delta > 0, and for delta < 0 as giveBack does: an
// allowN of -delta, deleting the key when that leaves the limit full
// (which a missing key means), atomically here so no WATCH is needed.
var finishScript = redis.NewScript(budgetLua + `
local nb, ns, na = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local id, period, delta = ARGV[4], tonumber(ARGV[7]), tonumber(ARGV[8])
local out = {}
for i = 1, nb do
  out[i] = settle(KEYS[2*i-1], KEYS[2*i], id, ARGV[5], ARGV[6])
end
for i = 1, ns do
  redis.call('ZREM', KEYS[2*nb + i], id)
end
if na == 0 then return out end
local t = redis.call('TIME')
local now = (t[1] - 1483228800) + (t[2] / 1000000)
for i = 1, na do
  local key = KEYS[2*nb + ns + i]
  local limit = tonumber(ARGV[8 + i])
  local emission_interval = period / limit
  local tat = math.max(tonumber(redis.call('GET', key) or now), now)
  if delta > 0 then
    local remaining = (now - (tat - emission_interval * limit)) / emission_interval
    if remaining >= 1 then
      local cost = math.min(delta, remaining)
      local new_tat = tat + emission_interval * cost
      local reset_after = new_tat - now
      if reset_after > 0 then
        redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after))
      end
    end
  else
    local new_tat = tat + emission_interval * delta
    local remaining = (now - (new_tat - emission_interval * limit)) / emission_interval
    local reset_after = new_tat - now
    if remaining < 0 then
      reset_after = tat - now
    elseif reset_after > 0 then
      redis.call('SET', key, new_tat, 'EX', math.ceil(reset_after))
    end
    if reset_after <= 0 then redis.call('DEL', key) end
  end
end
return out
`)

// Admission is everything a request asks for before it runs.
type Admission struct {
	Requests, TokenLimits []Rate
	Tokens                int64
	Slots                 []Slot
	RequestID             string
	Budgets               []Budget
	Amount                float64 // USD to reserve in every budget
}

// Admitted is the outcome of Admit.
type Admitted struct {
	Rates  Decision // as Allow returns it; Allowed is false when a rate refused
	Full   string   // the slot that was full, if one was
	Budget string   // the budget that refused, if one did, with its Spent (settled + reserved)
	Spent  float64
	// What the request now holds. While Redis is up it is all or nothing;
	// the fallback takes stage after stage, as Allow, Acquire and Reserve
	// called in turn do, and stops at the first refusal.
	Charged, Held, Reserved bool
}

// OK reports whether the request was admitted.
func (a Admitted) OK() bool { return a.Rates.Allowed && a.Full == "" && a.Budget == "" }

// Admit is Allow, Acquire and Reserve in one Redis round trip, all or
// nothing: a refusal at any stage leaves every limit, slot and budget as it
// was. The error is set, as for Reserve, only when a budget cannot be
// checked at all.
func (g *Guard) Admit(ctx context.Context, a Admission) (Admitted, error) {
	if g.up.Load() {
		if r, ok, err := g.admitRedis(ctx, a); ok {
			return r, err
		}
	}
	// Redis is down: what the fallback does, stage by stage, exactly as before.
	var r Admitted
	if r.Rates = g.Allow(ctx, a.Requests, a.TokenLimits, a.Tokens); !r.Rates.Allowed {
		return r, nil
	}
	r.Charged = len(a.Requests)+len(a.TokenLimits) > 0
	ok, full := g.Acquire(ctx, a.Slots, a.RequestID)
	if !ok {
		r.Full = full
		return r, nil
	}
	r.Held = len(a.Slots) > 0
	ok, denied, spent, err := g.Reserve(ctx, a.Budgets, a.RequestID, a.Amount)
	if err != nil || !ok {
		r.Budget, r.Spent = denied, spent
		return r, err
	}
	r.Reserved = len(a.Budgets) > 0
	return r, nil
}

// admitRedis runs admitScript, seeding missing budget counters; ok is false
// when Redis failed and the fallback must decide.
func (g *Guard) admitRedis(ctx context.Context, a Admission) (r Admitted, ok bool, err error) {
	cs := charges(a.Requests, a.TokenLimits, max(a.Tokens, 0))
	if len(cs)+len(a.Slots)+len(a.Budgets) == 0 {
		return Admitted{Rates: Decision{Allowed: true}}, true, nil // nothing to ask Redis
	}
	keys := make([]string, 0, len(cs)+len(a.Slots)+2*len(a.Budgets))
	args := make([]any, 0, 8+2*len(cs)+len(a.Slots)+len(a.Budgets))
	args = append(args, len(cs), len(a.Slots), len(a.Budgets), g.opts.Window.Seconds(), a.RequestID,
		g.opts.SlotTTL.Milliseconds(), max(nanos(a.Amount), 0), counterTTL.Milliseconds())
	for _, c := range cs {
		keys = append(keys, g.rateKey(c.Name))
		args = append(args, c.Limit, c.n)
	}
	for _, s := range a.Slots {
		keys = append(keys, g.slotKey(s.Name))
		args = append(args, s.Max)
	}
	keys = append(keys, g.budgetKeys(a.Budgets)...)
	for _, b := range a.Budgets {
		args = append(args, nanos(b.Max))
	}
	for range 3 {
		v, err := g.pipe.run(ctx, admitScript, keys, args...).Slice()
		if g.failed(ctx, err) {
			return Admitted{}, false, nil
		}
		if toInt(v[0]) == -1 {
			for _, i := range v[1:] {
				b := a.Budgets[toInt(i)-1]
				if err := g.seedCounter(ctx, b); err == errFallback {
					return Admitted{}, false, nil
				} else if err != nil {
					return Admitted{Rates: Decision{Allowed: true}, Budget: b.Name}, true, err
				}
			}
			continue
		}
		return g.admitted(v, cs, a), true, nil
	}
	return Admitted{Rates: Decision{Allowed: true}, Budget: a.Budgets[0].Name}, true,
		fmt.Errorf("reserve budgets: counters missing again after seeding")
}

// admitted reads admitScript's answer.
func (g *Guard) admitted(v []any, cs []charge, a Admission) Admitted {
	var r Admitted
	stage, i := toInt(v[0]), toInt(v[1])
	for k := 0; 3+2*k+1 < len(v); k++ {
		reset, _ := strconv.ParseFloat(v[3+2*k+1].(string), 64)
		r.Rates.note(cs[k], cs[k].Limit, toInt(v[3+2*k]), seconds(reset))
	}
	switch stage {
	case 0:
		r.Rates.Allowed = true
		r.Charged, r.Held, r.Reserved = len(cs) > 0, len(a.Slots) > 0, len(a.Budgets) > 0
	case 1:
		r.Rates.Denied, r.Rates.RetryAfter = cs[i-1].Name, g.opts.Window
		if s, _ := v[2].(string); s != "" {
			retry, _ := strconv.ParseFloat(s, 64)
			r.Rates.RetryAfter = max(seconds(retry), time.Millisecond)
		}
	case 2:
		r.Rates.Allowed, r.Full = true, a.Slots[i-1].Name
	case 3:
		r.Rates.Allowed, r.Budget, r.Spent = true, a.Budgets[i-1].Name, dollars(toInt(v[2]))
	}
	return r
}

// Settlement is everything a request gives back when it ends.
type Settlement struct {
	Budgets     []Budget // reserved by the request, settled at Cost
	RequestID   string
	Cost        float64
	Slots       []Slot // held by the request, released
	TokenLimits []Rate // charged by the request, corrected by Delta tokens
	Delta       int64
}

// Finish is Settle, Release and Adjust in one Redis round trip (more only
// when a budget counter must be seeded again).
func (g *Guard) Finish(ctx context.Context, s Settlement) {
	n := nanos(s.Cost)
	heldHere := len(s.Budgets) > 0 && g.dropLocalHolds(s.Budgets, s.RequestID)
	slots := s.Slots
	if len(slots) > 0 && g.releaseLocal(slots, s.RequestID) {
		slots = nil // held by the fallback: Redis never saw them
	}
	rates := s.TokenLimits
	if s.Delta == 0 {
		rates = nil
	}
	if len(s.Budgets)+len(slots)+len(rates) == 0 {
		return
	}
	if g.up.Load() {
		res, err := g.finishRedis(ctx, s.Budgets, s.RequestID, n, slots, rates, s.Delta)
		if !g.failed(ctx, err) {
			g.reseed(ctx, s.Budgets, s.RequestID, n, res, nil)
			return
		}
	}
	// Redis is down: what Settle, Release and Adjust do then.
	if len(s.Budgets) > 0 {
		g.settleLocal(ctx, s.Budgets, s.RequestID, n, heldHere)
	}
	if len(slots) > 0 {
		g.pendRelease(slots, s.RequestID)
	}
	if len(rates) > 0 {
		g.adjustLocal(rates, s.Delta)
	}
}

func (g *Guard) finishRedis(ctx context.Context, budgets []Budget, requestID string, actual int64, slots []Slot, rates []Rate, delta int64) ([]int64, error) {
	keys := g.budgetKeys(budgets)
	for _, s := range slots {
		keys = append(keys, g.slotKey(s.Name))
	}
	args := []any{len(budgets), len(slots), len(rates), requestID, actual, counterTTL.Milliseconds(), g.opts.Window.Seconds(), delta}
	for _, r := range rates {
		keys = append(keys, g.rateKey(r.Name))
		args = append(args, r.Limit)
	}
	return g.pipe.run(ctx, finishScript, keys, args...).Int64Slice()
}

// rateKey is the key redis_rate keeps a limit in (it puts "rate:" first).
func (g *Guard) rateKey(name string) string { return rateKeyPrefix + g.opts.Prefix + name }

// seconds converts redis_rate's float seconds as its dur does.
func seconds(f float64) time.Duration {
	if f == -1 {
		return -1
	}
	return time.Duration(f * float64(time.Second))
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	}
	return 0
}
