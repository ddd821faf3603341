package limits

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Slot is a cap on requests in flight (max_parallel_requests).
type Slot struct {
	Name string
	Max  int64
}

// Acquire takes one slot in each, all or nothing, for request id; it returns the Name of the
// slot that is full ("" and true when all were taken). Held slots expire after SlotTTL so a
// crashed request cannot leak them.
func (g *Guard) Acquire(ctx context.Context, slots []Slot, requestID string) (ok bool, full string) {
	if len(slots) == 0 {
		return true, ""
	}
	if g.up.Load() {
		// admitScript with slots only; a request already holding a place
		// keeps it, so a retried Acquire does not count twice.
		if r, ok, _ := g.admitRedis(ctx, Admission{Slots: slots, RequestID: requestID}); ok {
			return r.Full == "", r.Full
		}
	}
	return g.acquireLocal(slots, requestID)
}

// Release gives back the slots taken by requestID.
func (g *Guard) Release(ctx context.Context, slots []Slot, requestID string) {
	if len(slots) == 0 || g.releaseLocal(slots, requestID) {
		return
	}
	if g.up.Load() {
		_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, s := range slots {
				p.ZRem(ctx, g.slotKey(s.Name), requestID)
			}
			return nil
		})
		if !g.failed(ctx, err) {
			return
		}
	}
	g.pendRelease(slots, requestID)
}

// pendRelease remembers slots taken in Redis before it went away, to
// release them there once it is back.
func (g *Guard) pendRelease(slots []Slot, requestID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range slots {
		g.pending.slots[s.Name] = append(g.pending.slots[s.Name], requestID)
	}
}

func (g *Guard) slotKey(name string) string { return g.opts.Prefix + "slot:" + name }

func (g *Guard) acquireLocal(slots []Slot, requestID string) (bool, string) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range slots {
		held := g.slots[s.Name]
		dropExpired(held, now)
		if _, ok := held[requestID]; !ok && int64(len(held)) >= g.share(s.Max) {
			return false, s.Name
		}
	}
	for _, s := range slots {
		if g.slots[s.Name] == nil {
			g.slots[s.Name] = map[string]hold{}
		}
		g.slots[s.Name][requestID] = hold{expires: now.Add(g.opts.SlotTTL)}
	}
	return true, ""
}

// releaseLocal drops requestID from the fallback's slots and reports
// whether it held them there, in which case Redis never saw them.
func (g *Guard) releaseLocal(slots []Slot, requestID string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	found := false
	for _, s := range slots {
		held := g.slots[s.Name]
		if _, ok := held[requestID]; ok {
			found = true
			delete(held, requestID)
			if len(held) == 0 {
				delete(g.slots, s.Name)
			}
		}
	}
	return found
}
