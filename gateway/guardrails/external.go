package guardrails

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"tollgate/store"
)

// external asks an admin's own service. The contract (docs/guardrails.md):
//
//	POST <url>  {"guardrail", "mode", "request_id", "team_id", "key_id", "model", "texts": [...]}
//	200         {"action": "allow"|"block"|"mask", "reason": "...", "texts": [...], "types": [...]}
//
// texts are the prompt's texts (pre_call, during_call) or the answer's
// (post_call) in order; a mask answer returns them all, masked, in the
// same order. types optionally name what was found (for the hit records);
// EXTERNAL otherwise.
type external struct {
	url      string
	timeout  time.Duration
	failOpen bool
}

const (
	defaultExternalTimeout = time.Second
	maxExternalTimeout     = 30 * time.Second
	maxExternalAnswer      = 8 << 20
)

func (r *Rule) compileExternal(config []byte) error {
	var c struct {
		URL       string `json:"url"`
		TimeoutMS *int64 `json:"timeout_ms"`
		FailOpen  bool   `json:"fail_open"`
	}
	if err := decodeConfig(config, &c, `"url" (http or https), "timeout_ms" (1 to 30000, default 1000) and "fail_open" (true or false)`); err != nil {
		return err
	}
	u, err := url.Parse(c.URL)
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config.url: must be an http:// or https:// URL of the guardrail service (got %q)", c.URL)
	}
	e := &external{url: c.URL, timeout: defaultExternalTimeout, failOpen: c.FailOpen}
	if c.TimeoutMS != nil {
		if *c.TimeoutMS < 1 || *c.TimeoutMS > maxExternalTimeout.Milliseconds() {
			return fmt.Errorf("config.timeout_ms: must be 1 to %d (got %d)", maxExternalTimeout.Milliseconds(), *c.TimeoutMS)
		}
		e.timeout = time.Duration(*c.TimeoutMS) * time.Millisecond
	}
	r.external = e
	return nil
}

type externalRequest struct {
	Guardrail string   `json:"guardrail"`
	Mode      string   `json:"mode"`
	RequestID string   `json:"request_id"`
	TeamID    string   `json:"team_id"`
	KeyID     string   `json:"key_id"`
	Model     string   `json:"model"`
	Texts     []string `json:"texts"`
}

type externalAnswer struct {
	Action string   `json:"action"`
	Reason string   `json:"reason"`
	Texts  []string `json:"texts"`
	Types  []string `json:"types"`
}

// check calls the service. A service that does not answer in time, fails
// or answers nonsense lets the request through when fail_open (recorded
// as EXTERNAL_TIMEOUT or EXTERNAL_ERROR with action log) and blocks it
// otherwise. A nil outcome means allowed.
func (e *external) check(ctx context.Context, r *Rule, in Input) *Outcome {
	texts := make([]string, len(in.Texts))
	for i, t := range in.Texts {
		texts[i] = t.Text
	}
	body, _ := json.Marshal(externalRequest{Guardrail: r.Name, Mode: r.Mode, RequestID: in.RequestID, TeamID: in.TeamID,
		KeyID: in.KeyID, Model: in.Model, Texts: texts})
	cctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return e.failed(r, "EXTERNAL_ERROR", "the guardrail service's URL is unusable: "+err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil // the request itself is over
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return e.failed(r, "EXTERNAL_TIMEOUT", fmt.Sprintf("the guardrail service did not answer within %s", e.timeout))
		}
		return e.failed(r, "EXTERNAL_ERROR", "the guardrail service could not be reached")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxExternalAnswer))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return e.failed(r, "EXTERNAL_TIMEOUT", fmt.Sprintf("the guardrail service did not answer within %s", e.timeout))
		}
		return e.failed(r, "EXTERNAL_ERROR", "the guardrail service's answer broke off")
	}
	if resp.StatusCode != http.StatusOK {
		return e.failed(r, "EXTERNAL_ERROR", fmt.Sprintf("the guardrail service answered HTTP %d", resp.StatusCode))
	}
	var a externalAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return e.failed(r, "EXTERNAL_ERROR", "the guardrail service's answer is not the expected JSON")
	}
	hits := make([]Hit, 0, 1)
	for _, t := range a.Types {
		if !patternName.MatchString(t) {
			t = "EXTERNAL"
		}
		hits = addHit(hits, t, 1)
	}
	if len(hits) == 0 {
		hits = append(hits, Hit{"EXTERNAL", 1})
	}
	out := &Outcome{Hits: hits, Reason: a.Reason}
	switch a.Action {
	case "allow", "":
		return nil
	case "block":
		out.Action = store.ActionBlock
	case "mask":
		if len(a.Texts) != len(texts) {
			return e.failed(r, "EXTERNAL_ERROR", fmt.Sprintf("the guardrail service masked %d texts of %d", len(a.Texts), len(texts)))
		}
		out.Action, out.Texts = store.ActionMask, a.Texts
		if r.Mode == store.ModeDuringCall {
			out.Action, out.Texts = store.ActionLog, nil // the prompt is already on its way
		}
	default:
		return e.failed(r, "EXTERNAL_ERROR", fmt.Sprintf("the guardrail service answered action %q (allow, block or mask expected)", a.Action))
	}
	if r.Action == store.ActionLog {
		out.Action, out.Texts = store.ActionLog, nil // a dry run: record what the service would do
	}
	return out
}

func (e *external) failed(r *Rule, typ, why string) *Outcome {
	action := store.ActionBlock
	if e.failOpen || r.Action == store.ActionLog {
		action = store.ActionLog
	}
	return &Outcome{Action: action, Hits: []Hit{{typ, 1}}, Reason: why}
}
