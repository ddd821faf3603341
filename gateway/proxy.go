package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"tollgate/gateway/openai"
	"tollgate/store"
)

// call is what one LLM request went through, for pricing and the spend log.
type call struct {
	id       string
	start    time.Time
	ep       endpoint
	key      *store.Key
	team     *store.Team
	req      *llmRequest
	dep      *Deployment
	usage    openai.Usage
	status   int
	errorMsg string
	cost     float64
	gov      *governed
	attempts int       // upstream calls made, retries and fallbacks included
	strategy string    // how the current model's deployments are chosen
	busy     *depStats // the deployment this request counts as in flight on
	attempt  *attemptCtx
	guards   guards // the guardrails that apply, and what they found
}

// statusClientClosed marks requests whose caller went away (nginx's 499).
const statusClientClosed = 499

const maxAnswerBytes = 64 << 20

func (s *Server) llmHandler(ep endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		c := &call{id: requestID(r.Context()), start: time.Now(), ep: ep, status: http.StatusOK}
		if err := s.serve(w, r, c); err != nil {
			c.status, c.errorMsg = err.Status, err.Message
			if err.Status != statusClientClosed {
				writeError(w, err)
			}
		}
		if c.busy != nil {
			c.busy.inFlight.Add(-1)
		}
		s.settle(c)
		s.account(c)
	})
}

// serve runs the stages of one request, top to bottom.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, c *call) *apiError {
	var aerr *apiError
	if c.key, c.team, aerr = s.authenticate(r); aerr != nil {
		return aerr
	}
	if c.req, aerr = readRequest(w, r, c.ep, s.opts.MaxBodyBytes); aerr != nil {
		return aerr
	}
	c.req.model = s.cache.Resolve(c.req.model)
	deployments := s.cache.Deployments(c.req.model)
	if len(deployments) == 0 {
		return modelNotFound(fmt.Sprintf("The model %q does not exist or has no enabled deployment. GET /v1/models lists the models your key may use.", c.req.model))
	}
	if !CanUseModel(c.key, c.team, c.req.model) {
		return forbidden(fmt.Sprintf("This key may not use model %q. GET /v1/models lists the models it may use.", c.req.model))
	}
	if aerr := s.selectGuardrails(c); aerr != nil {
		return aerr
	}
	if aerr := s.preCall(r.Context(), c); aerr != nil {
		return aerr
	}
	c.gov = s.plan(c)
	if aerr := s.admit(r.Context(), w, c, deployments); aerr != nil {
		return aerr
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.UpstreamTimeout)
	defer cancel()
	ctx, cancelUpstream := context.WithCancelCause(ctx)
	defer cancelUpstream(nil)
	during := s.startDuringCall(r.Context(), c, cancelUpstream)
	defer func() { c.attempt.stop() }()
	resp, aerr := s.route(ctx, w, r, c)
	if resp != nil {
		defer resp.Body.Close()
	}
	if blocked := during.verdict(aerr != nil); blocked != nil {
		if c.dep != nil {
			// The provider was called: price the prompt it read.
			c.usage = estimateUsage(c.req.size, 0)
			c.cost = Cost(c.usage, &c.dep.ModelSpec)
		}
		return blocked
	}
	if aerr != nil {
		return aerr
	}
	if resp.StatusCode >= 300 {
		return s.upstreamError(w, c, resp)
	}
	if f, translated := formatOf(c.dep); translated {
		if c.req.stream {
			return s.streamTranslated(w, r, c, resp, f)
		}
		return s.relayTranslated(w, r, c, resp, f)
	}
	if c.req.stream && isEventStream(resp) {
		return s.relayStream(w, r, c, resp)
	}
	return s.relayBody(w, r, c, resp)
}

// route tries the model asked for and then its fallbacks, each with its
// own retries, keeping to deployments whose context window fits. The
// answer names the deployment that gave it.
func (s *Server) route(ctx context.Context, w http.ResponseWriter, r *http.Request, c *call) (*http.Response, *apiError) {
	var (
		lastResp *http.Response
		lastErr  *apiError
		refused  *apiError // a fallback the budgets could not cover
		tooLong  bool
	)
	for i, model := range s.chain(c.req.model) {
		ds := s.cache.Deployments(model)
		if len(ds) == 0 || (i > 0 && !CanUseModel(c.key, c.team, model)) {
			continue
		}
		if ds = fits(c, ds); len(ds) == 0 {
			tooLong = true
			continue
		}
		if i > 0 {
			if aerr := s.coverFallback(ctx, c, ds); aerr != nil {
				refused = aerr
				continue
			}
		}
		if lastResp != nil {
			discard(lastResp)
			lastResp = nil
		}
		if i > 0 {
			s.metrics.fallbacks.WithLabelValues(c.req.model).Inc()
		}
		c.strategy = ""
		if g := s.cache.Group(model); g != nil {
			c.strategy = g.Strategy
		}
		resp, aerr := s.attempt(ctx, w, r, c, ds)
		if !fallbackWorthy(aerr, resp) || ctx.Err() != nil {
			return resp, aerr
		}
		lastResp, lastErr = resp, aerr
	}
	if lastResp != nil || lastErr != nil {
		return lastResp, lastErr
	}
	if refused != nil {
		return nil, refused
	}
	if tooLong {
		return nil, contextTooLong(c)
	}
	return nil, modelNotFound(fmt.Sprintf("The model %q has no deployment the gateway can use.", c.req.model))
}

// attempt calls a deployment, and on 429, 5xx or a transport failure waits
// and tries again, preferring deployments not tried yet and leaving out
// those cooling down. Nothing has been sent to the caller yet, so retrying
// is safe for streams too. The last answer is returned whatever it is.
func (s *Server) attempt(ctx context.Context, w http.ResponseWriter, r *http.Request, c *call, deployments []*Deployment) (*http.Response, *apiError) {
	var tried []*Deployment
	for n := 0; ; n++ {
		pool, aerr := s.available(c, deployments)
		if aerr != nil {
			return nil, aerr
		}
		if fresh := slices.DeleteFunc(slices.Clone(pool), func(d *Deployment) bool { return slices.Contains(tried, d) }); len(fresh) > 0 {
			pool = fresh
		}
		if aerr := s.choose(ctx, w, c, pool); aerr != nil {
			return nil, aerr
		}
		c.attempts++
		if c.busy != nil {
			c.busy.inFlight.Add(-1)
		}
		c.busy = s.stats.of(c.dep.ID)
		c.busy.inFlight.Add(1)
		began := time.Now()
		body, err := c.req.upstreamBody(c.dep)
		if err != nil {
			return nil, badRequest("", "Could not re-encode the request: "+err.Error())
		}
		c.attempt.stop()
		c.attempt = startAttempt(ctx, c.dep)
		upReq, aerr := s.upstreamRequest(c.attempt.ctx, c, body)
		if aerr != nil {
			return nil, aerr
		}
		resp, err := s.client.Do(upReq)
		if err == nil && !c.attempt.gotHeaders() {
			resp.Body.Close()
			resp, err = nil, context.Cause(c.attempt.ctx)
		}
		if err == nil && !retryable(resp.StatusCode) {
			s.cooldowns.succeeded(c.dep.ID)
			c.busy.observe(time.Since(began).Seconds())
			return resp, nil
		}
		if err != nil && r.Context().Err() != nil {
			return nil, s.transportError(r, c, err)
		}
		if err != nil && errors.Is(context.Cause(ctx), errGuardrailBlocked) {
			return nil, &apiError{Status: http.StatusBadRequest, Message: errGuardrailBlocked.Error()} // serve answers with the guardrail's error
		}
		if s.cooldowns.failed(c.dep.ID, time.Now()) {
			s.metrics.cooldowns.WithLabelValues(c.req.model).Inc()
			s.log.Warn("deployment cooling down after repeated failures", "model", c.req.model, "deployment", c.dep.ID,
				"provider", c.dep.Provider.Name, "for", s.opts.Retry.CooldownFor)
		}
		if n >= s.opts.Retry.Retries || !s.wait(ctx, n+1) {
			if err != nil {
				return nil, s.transportError(r, c, err)
			}
			return resp, nil
		}
		if resp != nil {
			discard(resp)
		}
		s.metrics.retries.WithLabelValues(c.req.model).Inc()
		tried = append(tried, c.dep)
	}
}

// discard drops an answer that will not be used, reading a little of it
// first so that its connection can be reused.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// choose picks a deployment by weight among those under their own RPM/TPM
// limits.
func (s *Server) choose(ctx context.Context, w http.ResponseWriter, c *call, deployments []*Deployment) *apiError {
	rest := deployments
	wait := time.Duration(0)
	for len(rest) > 0 {
		d := s.pick(c.strategy, rest)
		ok, retry := s.chargeDeployment(ctx, c, d)
		if ok {
			c.dep = d
			return nil
		}
		if wait == 0 || retry < wait {
			wait = retry
		}
		rest = slices.DeleteFunc(slices.Clone(rest), func(x *Deployment) bool { return x == d })
	}
	s.metrics.refused.WithLabelValues("deployment_limit").Inc()
	return rateLimited(w, wait, fmt.Sprintf("Every deployment of model %q is at its rpm_limit or tpm_limit. Retry after %s.", c.req.model, durationText(wait)))
}

// pickDeployment chooses among a model's deployments by weight.
func pickDeployment(ds []*Deployment) *Deployment {
	if len(ds) == 1 {
		return ds[0]
	}
	total := 0
	for _, d := range ds {
		total += d.Weight
	}
	n := rand.IntN(total)
	for _, d := range ds {
		if n -= d.Weight; n < 0 {
			return d
		}
	}
	return ds[len(ds)-1]
}

func isEventStream(resp *http.Response) bool {
	ct := resp.Header.Get("Content-Type")
	return len(ct) >= 17 && ct[:17] == "text/event-stream"
}

// transportError maps a failed upstream round trip: 504 on timeout, 499
// when the caller left, 502 otherwise.
func (s *Server) transportError(r *http.Request, c *call, err error) *apiError {
	if r.Context().Err() != nil {
		return &apiError{Status: statusClientClosed, Message: "caller closed the connection"}
	}
	if te := c.attempt.timedOut(err); te != nil {
		return upstreamFailed(http.StatusGatewayTimeout, fmt.Sprintf("Provider %s sent %s, the %s timeout of model %q.", c.dep.Provider.Name, te, te.what, c.dep.ModelName))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return upstreamFailed(http.StatusGatewayTimeout, fmt.Sprintf("Provider %s did not answer within %s.", c.dep.Provider.Name, s.opts.UpstreamTimeout))
	}
	s.log.Warn("upstream request failed", "request_id", c.id, "provider", c.dep.Provider.Name, "err", err)
	return upstreamFailed(http.StatusBadGateway, fmt.Sprintf("Could not reach provider %s: %s", c.dep.Provider.Name, redact(errors.Unwrap(err))))
}

// secretish matches strings that look like credentials, so that a
// provider's error message never echoes one (OpenAI's 401 quotes the key).
var secretish = regexp.MustCompile(`(sk|pk|rk|key|AKIA)[-_A-Za-z0-9*]{8,}`)

func redact(err error) string {
	if err == nil {
		return "connection failed"
	}
	return secretish.ReplaceAllString(err.Error(), "[redacted]")
}

// upstreamError turns a provider's error answer into the caller's.
func (s *Server) upstreamError(w http.ResponseWriter, c *call, resp *http.Response) *apiError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	message := openai.ErrorMessage
	if f, translated := formatOf(c.dep); translated {
		message = f.errorMsg
	}
	msg := secretish.ReplaceAllString(message(body), "[redacted]")
	name := c.dep.Provider.Name
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return upstreamFailed(http.StatusBadGateway, fmt.Sprintf("Provider %s rejected the gateway's credential (HTTP %d); an admin should check that provider's API key.", name, resp.StatusCode))
	case resp.StatusCode == http.StatusTooManyRequests:
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		return &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded",
			Message: fmt.Sprintf("Provider %s is rate limiting: %s", name, msg)}
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return &apiError{Status: resp.StatusCode, Type: "invalid_request_error", Code: "upstream_invalid_request",
			Message: fmt.Sprintf("Provider %s refused the request: %s", name, msg)}
	}
	return upstreamFailed(http.StatusBadGateway, fmt.Sprintf("Provider %s answered HTTP %d: %s", name, resp.StatusCode, msg))
}

func (s *Server) setAnswerHeaders(w http.ResponseWriter, c *call) {
	h := w.Header()
	h.Set("X-Tollgate-Model", c.dep.UpstreamModel)
	h.Set("X-Tollgate-Provider", c.dep.Provider.Name)
	h.Set("X-Tollgate-Attempts", strconv.Itoa(c.attempts))
}

// relayBody passes a whole answer through, with its cost in a header.
func (s *Server) relayBody(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response) *apiError {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return s.transportError(r, c, err)
	}
	usage, ok := openai.UsageOf(body)
	if !ok {
		usage = estimateUsage(c.req.size, 0)
	}
	c.usage, c.cost = usage, Cost(usage, &c.dep.ModelSpec)
	body, aerr := s.postCall(r.Context(), c, body)
	if aerr != nil {
		w.Header().Set("X-Tollgate-Cost", formatCost(c.cost))
		return aerr
	}
	s.answer(w, c, resp.Header.Get("Content-Type"), resp.StatusCode, body)
	return nil
}

// answer sends a whole answer, with its cost in a header. It goes out at
// once, whole: the caller has it while the gateway settles and logs. A
// caller's next request on the same connection is still read only after
// that, so it finds this one's slots and reservations settled.
func (s *Server) answer(w http.ResponseWriter, c *call, contentType string, status int, body []byte) {
	h := w.Header()
	s.setAnswerHeaders(w, c)
	h.Set("Content-Type", contentType)
	h.Set("X-Tollgate-Cost", formatCost(c.cost))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
	http.NewResponseController(w).Flush()
}

// relayStream passes server-sent events through as they arrive. The cost
// is known only at the end, so it goes in a trailer.
func (s *Server) relayStream(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response) *apiError {
	rc := startStream(w, s, c)
	copier := openai.StreamCopier{DropUsageChunk: !c.req.includeUsage}
	out, end := s.guardStream(r.Context(), c, w, func() { rc.Flush() })
	err := end(copier.Copy(out, func() { rc.Flush() }, resp.Body))
	if copier.HasUsage {
		c.usage = copier.Usage
	} else {
		c.usage = estimateUsage(c.req.size, copier.Chunks)
	}
	s.endStream(w, r, c, rc, err)
	return nil
}

// endStream prices what the stream used, in the cost trailer, and ends a
// stream that broke off with an error event.
func (s *Server) endStream(w http.ResponseWriter, r *http.Request, c *call, rc *http.ResponseController, err error) {
	c.cost = Cost(c.usage, &c.dep.ModelSpec)
	w.Header().Set("X-Tollgate-Cost", formatCost(c.cost))
	switch {
	case err != nil && r.Context().Err() != nil:
		c.status, c.errorMsg = statusClientClosed, "caller closed the connection mid-stream"
	case err != nil:
		why := redact(err)
		if te := c.attempt.timedOut(err); te != nil {
			why = fmt.Sprintf("%s (the %s timeout of model %q)", te, te.what, c.dep.ModelName)
		}
		c.status, c.errorMsg = http.StatusBadGateway, "stream from provider broke off: "+why
		writeStreamError(w, "The provider's stream broke off: "+why)
		rc.Flush()
	}
}

// startStream sends the headers of a streamed answer; its cost follows in
// a trailer.
func startStream(w http.ResponseWriter, s *Server, c *call) *http.ResponseController {
	h := w.Header()
	s.setAnswerHeaders(w, c)
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Trailer", "X-Tollgate-Cost")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	return rc
}

// account records the request in metrics and, once a deployment was
// chosen (the provider was or would have been called), in the spend log.
func (s *Server) account(c *call) {
	// Only configured model names become label values, so callers cannot
	// grow the series without bound.
	model, team := "", ""
	if c.req != nil && len(s.cache.Deployments(c.req.model)) > 0 {
		model = c.req.model
	}
	if c.team != nil {
		team = c.team.Name
	}
	status := fmt.Sprint(c.status)
	s.metrics.requests.WithLabelValues(model, team, c.ep.name, status).Inc()
	outcome := store.StatusSuccess
	if c.status >= 400 {
		outcome = store.StatusFailure
	}
	if c.dep == nil {
		// No provider was called; a request a guardrail looked at is
		// still logged, so that its hits are kept.
		if hits := c.guardHits(); len(hits) > 0 {
			s.spend.Add(store.SpendLog{RequestID: c.id, CreatedAt: c.start, KeyID: &c.key.ID, TeamID: c.key.TeamID, UserID: c.key.UserID,
				Model: c.req.model, Endpoint: c.ep.name, LatencyMS: time.Since(c.start).Milliseconds(),
				Status: outcome, StatusCode: c.status, Error: c.errorMsg, Guardrails: hits})
		}
		return
	}
	latency := time.Since(c.start)
	s.metrics.latency.WithLabelValues(model, c.ep.name).Observe(latency.Seconds())
	s.metrics.tokens.WithLabelValues(model, team, "input").Add(float64(c.usage.PromptTokens))
	s.metrics.tokens.WithLabelValues(model, team, "output").Add(float64(c.usage.CompletionTokens))
	s.metrics.cost.WithLabelValues(model, team).Add(c.cost)
	depID := c.dep.ID
	s.stats.of(depID).used(c.usage.PromptTokens+c.usage.CompletionTokens, time.Now())
	s.spend.Add(store.SpendLog{
		RequestID:    c.id,
		CreatedAt:    c.start,
		KeyID:        &c.key.ID,
		TeamID:       c.key.TeamID,
		UserID:       c.key.UserID,
		Model:        c.dep.ModelName, // the model that answered, after any fallback
		Provider:     c.dep.Provider.Name,
		DeploymentID: &depID,
		Endpoint:     c.ep.name,
		InputTokens:  c.usage.PromptTokens,
		OutputTokens: c.usage.CompletionTokens,
		Cost:         c.cost,
		LatencyMS:    latency.Milliseconds(),
		Status:       outcome,
		StatusCode:   c.status,
		Error:        c.errorMsg,
		Guardrails:   c.guardHits(),
	})
}
