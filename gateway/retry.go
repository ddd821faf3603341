package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// RetryOptions tune retries and cooldowns; zero values take the defaults.
type RetryOptions struct {
	Retries          int           // extra attempts on 429, 5xx and transport errors (default 3; -1 for none)
	Backoff          time.Duration // first wait between attempts, doubling, with jitter (default 100ms)
	CooldownFailures int           // failures within CooldownWindow that take a deployment out (default 3)
	CooldownWindow   time.Duration // (default 1m)
	CooldownFor      time.Duration // how long it stays out (default 30s)
}

func (o *RetryOptions) defaults() {
	if o.Retries == 0 {
		o.Retries = 3
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.CooldownFailures <= 0 {
		o.CooldownFailures = 3
	}
	if o.CooldownWindow <= 0 {
		o.CooldownWindow = time.Minute
	}
	if o.CooldownFor <= 0 {
		o.CooldownFor = 30 * time.Second
	}
}

// cooldowns takes failing deployments out of routing for a while. Each
// replica keeps its own: a deployment failing for one fails for all soon
// enough, and no Redis round trip is spent on the hot path.
type cooldowns struct {
	opts  RetryOptions
	mu    sync.Mutex
	fails map[string][]time.Time
	until map[string]time.Time
}

func newCooldowns(o RetryOptions) *cooldowns {
	return &cooldowns{opts: o, fails: map[string][]time.Time{}, until: map[string]time.Time{}}
}

// cooling reports whether deployment id is out of routing at now, and until when.
func (c *cooldowns) cooling(id string, now time.Time) (bool, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.until[id]
	if ok && now.After(u) {
		delete(c.until, id)
		return false, time.Time{}
	}
	return ok, u
}

// failed records a failure and reports whether it started a cooldown.
func (c *cooldowns) failed(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	recent := c.fails[id][:0]
	for _, t := range c.fails[id] {
		if now.Sub(t) < c.opts.CooldownWindow {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	if len(recent) >= c.opts.CooldownFailures {
		c.until[id] = now.Add(c.opts.CooldownFor)
		delete(c.fails, id)
		return true
	}
	c.fails[id] = recent
	return false
}

// succeeded forgets a deployment's failures.
func (c *cooldowns) succeeded(id string) {
	c.mu.Lock()
	delete(c.fails, id)
	c.mu.Unlock()
}

// available are the deployments not cooling down; when every one is, the
// request is refused with when to come back.
func (s *Server) available(c *call, ds []*Deployment) ([]*Deployment, *apiError) {
	now := time.Now()
	var out []*Deployment
	soonest := time.Time{}
	unhealthy := 0
	for _, d := range ds {
		if s.cache.Unhealthy(d.ID) {
			unhealthy++
			continue
		}
		if cool, until := s.cooldowns.cooling(d.ID, now); cool {
			if soonest.IsZero() || until.Before(soonest) {
				soonest = until
			}
			continue
		}
		out = append(out, d)
	}
	if len(out) == 0 && unhealthy == len(ds) {
		return nil, upstreamFailed(http.StatusServiceUnavailable, fmt.Sprintf(
			"Every deployment of model %q failed its last health check; an admin can see why on the Models page.", c.req.model))
	}
	if len(out) == 0 {
		return nil, upstreamFailed(http.StatusServiceUnavailable, fmt.Sprintf(
			"Every deployment of model %q is cooling down after repeated failures; retry in %s.", c.req.model, durationText(time.Until(soonest))))
	}
	return out, nil
}

// retryable reports whether an upstream answer is worth another attempt.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// wait sleeps before attempt n (1-based retry), unless ctx ends first.
func (s *Server) wait(ctx context.Context, n int) bool {
	d := s.opts.Retry.Backoff << (n - 1)
	d = d/2 + rand.N(d/2+1) // jitter, so retries of many callers spread out
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
