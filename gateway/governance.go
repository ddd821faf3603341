package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"tollgate/gateway/limits"
	"tollgate/gateway/tokens"
	"tollgate/store"
)

// governed is what one request holds against its limits while it runs:
// charged rate limits, parallel slots and a budget reservation.
type governed struct {
	requests  []limits.Rate
	tokens    []limits.Rate
	slots     []limits.Slot
	budgets   []limits.Budget
	notes     []note // whose limit each one is, told to the caller on a refusal
	estTokens int64
	counted   bool // estTokens was computed

	charged  bool          // tokens were charged against the rate limits
	depRates []limits.Rate // the chosen deployment's token limits, charged too
	held     bool          // slots taken
	reserved bool          // budget reserved
	amount   float64       // how much is reserved
	decision limits.Decision

	// Room for a typical request's limits, so that planning one is a
	// single allocation rather than a slice growing per limit.
	buf struct {
		notes    [12]note
		requests [4]limits.Rate
		tokens   [4]limits.Rate
		slots    [2]limits.Slot
		budgets  [4]limits.Budget
	}
}

// defaultMaxOutput is the answer size reserved for when neither the caller
// (max_tokens) nor the model (max_output_tokens, context_window) bounds it.
const defaultMaxOutput = 4096

// plan lists every limit and budget that applies to the request. The
// words that explain a refusal are put together only when one happens.
func (s *Server) plan(c *call) *governed {
	g := &governed{}
	g.notes, g.requests, g.tokens = g.buf.notes[:0], g.buf.requests[:0], g.buf.tokens[:0]
	g.slots, g.budgets = g.buf.slots[:0], g.buf.budgets[:0]
	k := c.key
	key := whose{subject: "key", who: keyLabel(k)}
	kl := k.Limits(s.cache.Profile(k.BudgetID))
	g.rate("key:"+k.ID+":rpm", kl.RPMLimit, key, "rpm_limit")
	g.tokenRate("key:"+k.ID+":tpm", kl.TPMLimit, key, "tpm_limit")
	if v, ok := k.ModelRPMLimit[c.req.model]; ok {
		g.rate("key:"+k.ID+":model:"+c.req.model+":rpm", &v, key, "model_rpm_limit for "+c.req.model)
	}
	if v, ok := k.ModelTPMLimit[c.req.model]; ok {
		g.tokenRate("key:"+k.ID+":model:"+c.req.model+":tpm", &v, key, "model_tpm_limit for "+c.req.model)
	}
	g.slot("key:"+k.ID, kl.MaxParallelRequests, key)
	g.budget(s, store.SubjectKey, k.ID, kl.MaxBudget, k.BudgetResetAt, key)
	if t := c.team; t != nil {
		tl := t.Limits(s.cache.Profile(t.BudgetID))
		team := whose{subject: "team", who: t.Name}
		g.rate("team:"+t.ID+":rpm", tl.RPMLimit, team, "rpm_limit")
		g.tokenRate("team:"+t.ID+":tpm", tl.TPMLimit, team, "tpm_limit")
		g.slot("team:"+t.ID, tl.MaxParallelRequests, team)
		g.budget(s, store.SubjectTeam, t.ID, tl.MaxBudget, t.BudgetResetAt, team)
	}
	if u := s.cache.User(k.UserID); u != nil {
		user := whose{subject: "user", who: u.Email}
		g.rate("user:"+u.ID+":rpm", u.RPMLimit, user, "rpm_limit")
		g.tokenRate("user:"+u.ID+":tpm", u.TPMLimit, user, "tpm_limit")
		g.budget(s, store.SubjectUser, u.ID, u.MaxBudget, u.BudgetResetAt, user)
	}
	if gb := s.cache.Global(); gb != nil {
		g.budget(s, store.SubjectGlobal, "global", gb.MaxBudget, gb.BudgetResetAt, whose{})
	}
	return g
}

func keyLabel(k *store.Key) string {
	if k.Alias != "" {
		return k.Alias
	}
	return k.Hint
}

// whose names the holder of a limit: a key, a team or a user; the zero
// value is the gateway's global budget.
type whose struct{ subject, who string }

// note ties a limit's name to its holder and setting.
type note struct {
	name    string
	whose   whose
	field   string     // "rpm_limit", ...; empty for a budget
	resetAt *time.Time // a budget's reset
}

// about is how the caller is told about a limit: `key "ci" rpm_limit`.
func (g *governed) about(name string) string {
	n := g.note(name)
	switch {
	case n == nil:
		return name
	case n.whose.subject == "":
		return "the gateway's global budget"
	}
	s := fmt.Sprintf("%s %q", n.whose.subject, n.whose.who)
	if n.field != "" {
		s += " " + n.field
	}
	return s
}

func (g *governed) note(name string) *note {
	for i := range g.notes {
		if g.notes[i].name == name {
			return &g.notes[i]
		}
	}
	return nil
}

func (g *governed) rate(name string, limit *int64, w whose, field string) {
	if limit != nil {
		g.requests = append(g.requests, limits.Rate{Name: name, Limit: *limit})
		g.notes = append(g.notes, note{name: name, whose: w, field: field})
	}
}

func (g *governed) tokenRate(name string, limit *int64, w whose, field string) {
	if limit != nil {
		g.tokens = append(g.tokens, limits.Rate{Name: name, Limit: *limit})
		g.notes = append(g.notes, note{name: name, whose: w, field: field})
	}
}

func (g *governed) slot(name string, max *int64, w whose) {
	if max != nil {
		g.slots = append(g.slots, limits.Slot{Name: name, Max: *max})
		g.notes = append(g.notes, note{name: name, whose: w, field: "max_parallel_requests"})
	}
}

// budget adds a hard budget. Its name carries the period, so a new period
// starts a new counter.
func (g *governed) budget(s *Server, subject, id string, max *float64, resetAt *time.Time, w whose) {
	if max == nil {
		return
	}
	period := int64(0)
	if resetAt != nil {
		period = resetAt.Unix()
	}
	name := subject + ":" + id + ":" + strconv.FormatInt(period, 10)
	g.budgets = append(g.budgets, limits.Budget{Name: name, Max: *max, Spend: func(ctx context.Context) (float64, error) {
		return s.st.SubjectSpend(ctx, subject, id)
	}})
	g.notes = append(g.notes, note{name: name, whose: w, resetAt: resetAt})
}

// inputTokens counts the prompt once, only for requests that need it.
func (g *governed) inputTokens(c *call) int64 {
	if !g.counted {
		field := c.ep.required
		tools := c.req.fields["tools"]
		if tools == nil {
			tools = c.req.fields["functions"]
		}
		g.estTokens, g.counted = tokens.InputWithTools(c.req.model, field, c.req.fields[field], tools), true
	}
	return g.estTokens
}

// admit charges the rate limits, takes the parallel slots and reserves the
// worst-case cost, refusing the request when any of them is exhausted.
func (s *Server) admit(ctx context.Context, w http.ResponseWriter, c *call, deployments []*Deployment) *apiError {
	g := c.gov
	for _, rates := range [][]limits.Rate{g.requests, g.tokens} {
		for _, r := range rates {
			if r.Limit == 0 {
				s.metrics.refused.WithLabelValues("rate_limit").Inc()
				return rateLimited(w, time.Minute, fmt.Sprintf("Rate limit reached: %s is 0, so no requests are allowed. Ask an admin to raise it.", g.about(r.Name)))
			}
		}
	}
	var est int64
	if len(g.tokens) > 0 {
		est = g.inputTokens(c)
	}
	var amount float64
	if len(g.budgets) > 0 {
		amount = worstCost(c, deployments, g.inputTokens(c))
	}
	// One Redis round trip for every limit, slot and budget, all or nothing.
	res, err := s.guard.Admit(ctx, limits.Admission{Requests: g.requests, TokenLimits: g.tokens, Tokens: est,
		Slots: g.slots, RequestID: c.id, Budgets: g.budgets, Amount: amount})
	g.charged = res.Charged && len(g.tokens) > 0
	g.held = res.Held
	if res.Reserved {
		g.reserved, g.amount = true, amount
	}
	if len(g.requests)+len(g.tokens) > 0 {
		g.decision = res.Rates
		setRateHeaders(w, g.decision)
		if !g.decision.Allowed {
			s.metrics.refused.WithLabelValues("rate_limit").Inc()
			return rateLimited(w, g.decision.RetryAfter, fmt.Sprintf("Rate limit reached for %s. Retry after %s.",
				g.about(g.decision.Denied), durationText(g.decision.RetryAfter)))
		}
	}
	if res.Full != "" {
		s.metrics.refused.WithLabelValues("parallel").Inc()
		return rateLimited(w, time.Second, fmt.Sprintf("Too many requests in flight: %s reached. Retry when one finishes.", g.about(res.Full)))
	}
	if err != nil {
		s.log.Error("check budget", "request_id", c.id, "err", err)
		return budgetUnavailable()
	}
	if res.Budget != "" {
		s.metrics.refused.WithLabelValues("budget").Inc()
		return budgetExceeded(g, res.Budget, res.Spent, amount)
	}
	return nil
}

// coverFallback raises the budget reservation before a fallback model
// that can cost more than what admit reserved, so falling back never
// spends past a budget. The reservation is replaced, not added to.
func (s *Server) coverFallback(ctx context.Context, c *call, ds []*Deployment) *apiError {
	g := c.gov
	if !g.reserved {
		return nil
	}
	need := worstCost(c, ds, g.inputTokens(c))
	if need <= g.amount {
		return nil
	}
	ok, denied, spent, err := s.guard.Reserve(ctx, g.budgets, c.id, need)
	if err != nil {
		s.log.Error("check budget for a fallback", "request_id", c.id, "err", err)
		return budgetUnavailable()
	}
	if !ok {
		return budgetExceeded(g, denied, spent, need)
	}
	g.amount = need
	return nil
}

func budgetUnavailable() *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Type: "service_unavailable", Code: "budget_unavailable",
		Message: "The gateway cannot check budgets right now (Redis and PostgreSQL are both unreachable); retry shortly."}
}

func budgetExceeded(g *governed, name string, spent, amount float64) *apiError {
	var max float64
	for _, b := range g.budgets {
		if b.Name == name {
			max = b.Max
		}
	}
	msg := fmt.Sprintf("Budget exceeded: %s has spent $%.4f (including requests in flight) of its max_budget of $%.4f", g.about(name), spent, max)
	if spent < max {
		msg += fmt.Sprintf(", and this request could cost up to $%.4f (set max_tokens lower to need less)", amount)
	}
	if n := g.note(name); n != nil && n.resetAt != nil {
		at := n.resetAt
		msg += ". The budget resets at " + at.UTC().Format(time.RFC3339)
	}
	return &apiError{Status: http.StatusTooManyRequests, Type: "insufficient_quota", Code: "budget_exceeded", Message: msg + "."}
}

// chargeDeployment applies a deployment's own RPM/TPM limits; false means
// it is at its limit and another deployment should be tried.
func (s *Server) chargeDeployment(ctx context.Context, c *call, d *Deployment) (bool, time.Duration) {
	if d.RPMLimit == nil && d.TPMLimit == nil {
		return true, 0
	}
	var reqs, toks []limits.Rate
	if d.RPMLimit != nil {
		reqs = append(reqs, limits.Rate{Name: "deployment:" + d.ID + ":rpm", Limit: *d.RPMLimit})
	}
	var est int64
	if d.TPMLimit != nil {
		toks = append(toks, limits.Rate{Name: "deployment:" + d.ID + ":tpm", Limit: *d.TPMLimit})
		est = c.gov.inputTokens(c)
	}
	dec := s.guard.Allow(ctx, reqs, toks, est)
	if !dec.Allowed {
		return false, dec.RetryAfter
	}
	c.gov.depRates = toks
	return true, 0
}

// settle gives back what the request held: the reservation becomes the real
// cost, token limits are corrected to the real usage, slots are freed.
func (s *Server) settle(c *call) {
	g := c.gov
	if g == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// One Redis round trip: settle the reservation, free the slots, correct the token limits.
	fin := limits.Settlement{RequestID: c.id}
	if g.reserved {
		fin.Budgets, fin.Cost = g.budgets, c.cost
	}
	if g.held {
		fin.Slots = g.slots
	}
	used := c.usage.PromptTokens + c.usage.CompletionTokens
	if used != g.estTokens {
		if g.charged {
			fin.TokenLimits = append(fin.TokenLimits, g.tokens...)
		}
		fin.TokenLimits = append(fin.TokenLimits, g.depRates...)
		fin.Delta = used - g.estTokens
	}
	s.guard.Finish(ctx, fin)
}

// worstCost is the most the request can cost on any of the deployments:
// its prompt plus the largest answer it may get.
func worstCost(c *call, deployments []*Deployment, input int64) float64 {
	asked := askedOutput(c)
	n := int64(1)
	if raw, ok := c.req.fields["n"]; ok {
		var v int64
		if json.Unmarshal(raw, &v) == nil && v > 1 {
			n = v
		}
	}
	worst := 0.0
	for _, d := range deployments {
		out := int64(0)
		if c.ep != endpointEmbeddings {
			out = maxOutput(d, input)
			if asked > 0 && asked < out {
				out = asked
			}
			out *= n
		}
		cost := (float64(input)*d.InputCostPerMillion + float64(out)*d.OutputCostPerMillion) / 1e6
		worst = math.Max(worst, cost)
	}
	return worst
}

// maxOutput is the largest answer a deployment can give to this prompt.
func maxOutput(d *Deployment, input int64) int64 {
	if d.MaxOutputTokens != nil {
		return *d.MaxOutputTokens
	}
	if d.ContextWindow != nil && *d.ContextWindow > input {
		return *d.ContextWindow - input
	}
	return defaultMaxOutput
}

// setRateHeaders reports the tightest request and token limits, as OpenAI does.
func setRateHeaders(w http.ResponseWriter, d limits.Decision) {
	h := w.Header()
	if d.LimitRequests > 0 {
		h.Set("X-Ratelimit-Limit-Requests", strconv.FormatInt(d.LimitRequests, 10))
		h.Set("X-Ratelimit-Remaining-Requests", strconv.FormatInt(max(d.RemainingRequests, 0), 10))
		h.Set("X-Ratelimit-Reset-Requests", durationText(d.ResetRequests))
	}
	if d.LimitTokens > 0 {
		h.Set("X-Ratelimit-Limit-Tokens", strconv.FormatInt(d.LimitTokens, 10))
		h.Set("X-Ratelimit-Remaining-Tokens", strconv.FormatInt(max(d.RemainingTokens, 0), 10))
		h.Set("X-Ratelimit-Reset-Tokens", durationText(d.ResetTokens))
	}
}

func durationText(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	return d.Round(time.Millisecond).String()
}

func rateLimited(w http.ResponseWriter, retry time.Duration, msg string) *apiError {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
	return &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded", Message: msg}
}
