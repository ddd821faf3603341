package gateway

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// depStats is what this replica saw of one deployment, for the least-busy,
// lowest-latency and usage-based strategies. Each replica routes on its own
// view: no shared state is read on the hot path.
type depStats struct {
	inFlight atomic.Int64
	mu       sync.Mutex
	latency  float64 // moving average of seconds to the answer's headers; 0 = not measured yet
	minute   int64   // the unix minute tokens counts
	tokens   int64
}

type routeStats struct{ m sync.Map } // deployment id -> *depStats

func (r *routeStats) of(id string) *depStats {
	if v, ok := r.m.Load(id); ok {
		return v.(*depStats)
	}
	v, _ := r.m.LoadOrStore(id, &depStats{})
	return v.(*depStats)
}

// observe records one answer's latency (weight 0.2 for the newest).
func (d *depStats) observe(seconds float64) {
	d.mu.Lock()
	if d.latency == 0 {
		d.latency = seconds
	} else {
		d.latency = 0.8*d.latency + 0.2*seconds
	}
	d.mu.Unlock()
}

// used adds tokens to this minute's count.
func (d *depStats) used(tokens int64, now time.Time) {
	m := now.Unix() / 60
	d.mu.Lock()
	if d.minute != m {
		d.minute, d.tokens = m, 0
	}
	d.tokens += tokens
	d.mu.Unlock()
}

func (d *depStats) read(now time.Time) (latency float64, tokens int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.minute != now.Unix()/60 {
		return d.latency, 0
	}
	return d.latency, d.tokens
}

// pick chooses a deployment by the model's strategy; ties go by weight.
func (s *Server) pick(strategy string, ds []*Deployment) *Deployment {
	if len(ds) == 1 || strategy == "" || strategy == "weighted" {
		return pickDeployment(ds)
	}
	now := time.Now()
	best, bestScore := []*Deployment(nil), math.Inf(1)
	for _, d := range ds {
		st := s.stats.of(d.ID)
		latency, tokens := st.read(now)
		var score float64
		switch strategy {
		case "least_busy":
			score = float64(st.inFlight.Load())
		case "lowest_latency":
			score = latency // unmeasured ones (0) are tried first
		case "usage_based":
			score = float64(tokens)
			if d.TPMLimit != nil && *d.TPMLimit > 0 {
				score /= float64(*d.TPMLimit) // share of its own cap
			}
		}
		switch {
		case score < bestScore:
			best, bestScore = []*Deployment{d}, score
		case score == bestScore:
			best = append(best, d)
		}
	}
	return pickDeployment(best)
}

// chain is the models a request may be served by, in order: the one asked
// for, its fallbacks, then the default fallbacks. A fallback may be an
// alias.
func (s *Server) chain(model string) []string {
	out := []string{model}
	add := func(ms []string) {
		for _, m := range ms {
			if m = s.cache.Resolve(m); !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	if g := s.cache.Group(model); g != nil {
		add(g.Fallbacks)
	}
	add(s.opts.DefaultFallbacks)
	return out
}

// fits keeps the deployments whose context window holds the prompt and
// the answer asked for; deployments without a known window are kept. A
// token is at least one byte, so a body smaller than a window fits it
// without counting tokens.
func fits(c *call, ds []*Deployment) []*Deployment {
	need := int64(-1)
	var out []*Deployment
	for _, d := range ds {
		if d.ContextWindow == nil || int64(c.req.size)+askedOutput(c) <= *d.ContextWindow {
			out = append(out, d)
			continue
		}
		if need < 0 {
			need = c.gov.inputTokens(c) + askedOutput(c)
		}
		if need <= *d.ContextWindow {
			out = append(out, d)
		}
	}
	return out
}

// askedOutput is the caller's max_tokens (or max_completion_tokens), or 0.
func askedOutput(c *call) int64 {
	for _, f := range []string{"max_completion_tokens", "max_tokens"} {
		var v int64
		if raw, ok := c.req.fields[f]; ok && json.Unmarshal(raw, &v) == nil && v > 0 {
			return v
		}
	}
	return 0
}

func contextTooLong(c *call) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "context_length_exceeded", Param: "messages",
		Message: fmt.Sprintf("The request needs about %d tokens (prompt plus max_tokens), more than the context window of %q and of every fallback model.",
			c.gov.inputTokens(c)+askedOutput(c), c.req.model)}
}

// fallbackWorthy reports whether a failure of one model should send the
// request on to the next: provider trouble, not the caller's mistakes.
func fallbackWorthy(aerr *apiError, resp *http.Response) bool {
	if aerr != nil {
		return aerr.Status == http.StatusServiceUnavailable || aerr.Status == http.StatusBadGateway ||
			aerr.Status == http.StatusGatewayTimeout || aerr.Code == "rate_limit_exceeded"
	}
	return resp != nil && retryable(resp.StatusCode)
}
