package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"tollgate/gateway/guardrails"
	"tollgate/store"
)

// The guard stage: guardrails (gateway/guardrails) read the prompt before
// the provider sees it (pre_call), alongside the upstream call
// (during_call) and the answer (post_call, streamed or not). This file
// decides which apply, finds the texts in the request and the answer,
// applies what the rules decide and records every hit on the call.

// guards are the guardrails that apply to one request, by mode, each list
// in name order.
type guards struct {
	pre, during, post []*guardrails.Rule

	mu   sync.Mutex // the during_call goroutine records hits too
	hits []store.GuardrailHit
}

// errGuardrailBlocked cancels an upstream call that a guardrail stopped.
var errGuardrailBlocked = errors.New("a guardrail blocked the request")

// selectGuardrails lists the enabled guardrails that apply: those on by
// default, those assigned to the key's team, and those the caller named in
// the request's "guardrails" field. An unknown name is refused.
func (s *Server) selectGuardrails(c *call) *apiError {
	for _, name := range c.req.guardrails {
		if r := s.cache.Guardrail(name); r == nil || !r.Enabled {
			return badRequest("guardrails", fmt.Sprintf("Unknown guardrail %q in guardrails: no enabled guardrail has that name. Ask an admin which guardrails you may opt into.", name))
		}
	}
	g := &c.guards
	for _, r := range s.cache.Guardrails() {
		if !r.Enabled {
			continue
		}
		if !r.DefaultOn && !slices.Contains(c.req.guardrails, r.Name) && (c.key.TeamID == nil || !slices.Contains(r.TeamIDs, *c.key.TeamID)) {
			continue
		}
		switch r.Mode {
		case store.ModePreCall:
			g.pre = append(g.pre, r)
		case store.ModeDuringCall:
			g.during = append(g.during, r)
		case store.ModePostCall:
			g.post = append(g.post, r)
		}
	}
	return nil
}

// record adds what a rule found to the call's hits (one entry per
// guardrail and type, counts summed) and to the metrics.
func (s *Server) record(c *call, r *guardrails.Rule, action string, hits []guardrails.Hit) {
	g := &c.guards
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, h := range hits {
		s.metrics.guardHits.WithLabelValues(r.Name, r.Mode, action, h.Type).Add(float64(h.Count))
		i := slices.IndexFunc(g.hits, func(x store.GuardrailHit) bool { return x.Guardrail == r.Name && x.Type == h.Type })
		if i < 0 {
			g.hits = append(g.hits, store.GuardrailHit{Guardrail: r.Name, Mode: r.Mode, Action: action, Type: h.Type, Count: h.Count})
			continue
		}
		g.hits[i].Count += h.Count
		if action == store.ActionBlock {
			g.hits[i].Action = action
		}
	}
}

// hits returns a copy of the call's hits, for its spend log.
func (c *call) guardHits() store.GuardrailHits {
	c.guards.mu.Lock()
	defer c.guards.mu.Unlock()
	return slices.Clone(c.guards.hits)
}

// contentPolicy is the caller's error when a guardrail blocks: which
// guardrail, and what it found.
func contentPolicy(r *guardrails.Rule, o *guardrails.Outcome, what string) *apiError {
	types := make([]string, len(o.Hits))
	for i, h := range o.Hits {
		types[i] = h.Type
	}
	found := "it contains " + strings.Join(types, ", ")
	if o.Reason != "" {
		found = o.Reason + " (" + strings.Join(types, ", ") + ")"
	}
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "content_policy_violation",
		Message: fmt.Sprintf("Guardrail %s %s: %s.", r.Name, what, found)}
}

const (
	blockedRequest = "blocked this request"
	withheldAnswer = "withheld the answer"
	stoppedAnswer  = "stopped the answer"
)

func (s *Server) guardInput(c *call, texts []guardrails.Text) guardrails.Input {
	in := guardrails.Input{Texts: texts, Model: c.req.model, RequestID: c.id, KeyID: c.key.ID}
	if c.key.TeamID != nil {
		in.TeamID = *c.key.TeamID
	}
	return in
}

// preCall runs the pre_call guardrails on the prompt: a block refuses the
// request before any limit is charged or provider called; a mask rewrites
// the request's texts, so the provider receives the placeholders.
func (s *Server) preCall(ctx context.Context, c *call) *apiError {
	if len(c.guards.pre) == 0 {
		return nil
	}
	p := c.req.promptTexts(c.ep)
	in := s.guardInput(c, p.guardTexts())
	for _, r := range c.guards.pre {
		o := r.Check(ctx, in)
		if o == nil {
			continue
		}
		s.record(c, r, o.Action, o.Hits)
		switch o.Action {
		case store.ActionBlock:
			return contentPolicy(r, o, blockedRequest)
		case store.ActionMask:
			if err := p.rewrite(c.req, o.Texts); err != nil {
				s.log.Error("mask the prompt", "request_id", c.id, "guardrail", r.Name, "err", err)
				return internalError()
			}
			in.Texts = p.guardTexts()
		}
	}
	return nil
}

// duringCall runs the during_call guardrails alongside the upstream call.
// A block cancels the upstream call; the verdict is awaited before any of
// the answer reaches the caller.
type duringCall struct {
	done chan struct{}
	stop context.CancelFunc
	err  *apiError
}

func (s *Server) startDuringCall(ctx context.Context, c *call, cancelUpstream context.CancelCauseFunc) *duringCall {
	if len(c.guards.during) == 0 {
		return nil
	}
	ctx, stop := context.WithCancel(ctx)
	d := &duringCall{done: make(chan struct{}), stop: stop}
	in := s.guardInput(c, c.req.promptTexts(c.ep).guardTexts())
	go func() {
		defer close(d.done)
		for _, r := range c.guards.during {
			o := r.Check(ctx, in)
			if o == nil {
				continue
			}
			s.record(c, r, o.Action, o.Hits)
			if o.Action == store.ActionBlock {
				d.err = contentPolicy(r, o, blockedRequest)
				cancelUpstream(errGuardrailBlocked)
				return
			}
		}
	}()
	return d
}

// verdict waits for the during_call guardrails; failed says the upstream
// call already failed, so they are stopped rather than waited for.
func (d *duringCall) verdict(failed bool) *apiError {
	if d == nil {
		return nil
	}
	if failed {
		d.stop()
	}
	<-d.done
	d.stop()
	return d.err
}

// prompt is where a request's texts sit in its body, so that masked
// texts go back where they came from.
type prompt struct {
	field string
	texts []promptText
}

type promptText struct {
	msg  int // index in messages; -1 for prompt and input
	part int // index in the message's content parts or in the prompt/input array; -1 for a string
	guardrails.Text
}

// promptTexts finds the texts of the prompt: chat messages' string content
// and text parts (tool results included), the completions prompt, the
// embeddings input. Token arrays and images are not text.
func (req *llmRequest) promptTexts(ep endpoint) *prompt {
	p := &prompt{field: ep.required}
	raw := req.fields[ep.required]
	if ep.required != "messages" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			p.texts = append(p.texts, promptText{msg: -1, part: -1, Text: guardrails.Text{Text: s}})
			return p
		}
		var items []json.RawMessage
		json.Unmarshal(raw, &items)
		for i, it := range items {
			if json.Unmarshal(it, &s) == nil {
				p.texts = append(p.texts, promptText{msg: -1, part: i, Text: guardrails.Text{Text: s}})
			}
		}
		return p
	}
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	json.Unmarshal(raw, &msgs)
	for i, m := range msgs {
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			p.texts = append(p.texts, promptText{msg: i, part: -1, Text: guardrails.Text{Role: m.Role, Text: s}})
			continue
		}
		var parts []struct {
			Type string  `json:"type"`
			Text *string `json:"text"`
		}
		json.Unmarshal(m.Content, &parts)
		for j, part := range parts {
			if part.Type == "text" && part.Text != nil {
				p.texts = append(p.texts, promptText{msg: i, part: j, Text: guardrails.Text{Role: m.Role, Text: *part.Text}})
			}
		}
	}
	return p
}

func (p *prompt) guardTexts() []guardrails.Text {
	out := make([]guardrails.Text, len(p.texts))
	for i, t := range p.texts {
		out[i] = t.Text
	}
	return out
}

// rewrite puts masked texts back into the request body. Only the messages
// (or array items) that changed are decoded and encoded again; everything
// else passes as the caller sent it.
func (p *prompt) rewrite(req *llmRequest, masked []string) error {
	if len(masked) != len(p.texts) {
		return fmt.Errorf("%d masked texts for %d", len(masked), len(p.texts))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(req.fields[p.field], &items); err != nil && p.field == "messages" {
		return fmt.Errorf("read messages: %w", err)
	}
	changed := false
	for i, t := range p.texts {
		if masked[i] == t.Text.Text {
			continue
		}
		changed = true
		p.texts[i].Text.Text = masked[i]
		switch {
		case t.msg < 0 && t.part < 0:
			req.fields[p.field] = jsonString(masked[i])
		case t.msg < 0:
			items[t.part] = jsonString(masked[i])
		default:
			var err error
			if items[t.msg], err = setContent(items[t.msg], t.part, masked[i]); err != nil {
				return fmt.Errorf("messages[%d]: %w", t.msg, err)
			}
		}
	}
	if changed && (p.field == "messages" || len(items) > 0) {
		b, err := marshalJSON(items)
		if err != nil {
			return err
		}
		req.fields[p.field] = b
	}
	return nil
}

// setContent replaces a message's string content (part < 0) or the text
// of one of its content parts.
func setContent(msg json.RawMessage, part int, text string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, err
	}
	if part < 0 {
		m["content"] = jsonString(text)
		return marshalJSON(m)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(m["content"], &parts); err != nil {
		return nil, err
	}
	var pm map[string]json.RawMessage
	if err := json.Unmarshal(parts[part], &pm); err != nil {
		return nil, err
	}
	pm["text"] = jsonString(text)
	var err error
	if parts[part], err = marshalJSON(pm); err != nil {
		return nil, err
	}
	if m["content"], err = marshalJSON(parts); err != nil {
		return nil, err
	}
	return marshalJSON(m)
}

func jsonString(s string) json.RawMessage {
	b, _ := marshalJSON(s)
	return b
}

// marshalJSON encodes without escaping <, > and &, so masked text reads
// as the caller wrote it.
func marshalJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// postCall runs the post_call guardrails on a whole answer (OpenAI's
// format, translated or not): the content of each choice. A block
// withholds the answer, which is still priced: the provider was paid. A
// mask rewrites the content.
func (s *Server) postCall(ctx context.Context, c *call, body []byte) ([]byte, *apiError) {
	if len(c.guards.post) == 0 || c.ep == endpointEmbeddings {
		return body, nil
	}
	var answer map[string]json.RawMessage
	if json.Unmarshal(body, &answer) != nil {
		return body, nil
	}
	var choices []map[string]json.RawMessage
	if json.Unmarshal(answer["choices"], &choices) != nil || len(choices) == 0 {
		return body, nil
	}
	// Each choice's text: message.content (chat) or text (completions).
	texts := make([]guardrails.Text, len(choices))
	messages := make([]map[string]json.RawMessage, len(choices))
	for i, ch := range choices {
		raw := ch["text"]
		if c.ep == endpointChat {
			json.Unmarshal(ch["message"], &messages[i])
			raw = messages[i]["content"]
		}
		json.Unmarshal(raw, &texts[i].Text)
	}
	in := s.guardInput(c, texts)
	masked := false
	for _, r := range c.guards.post {
		o := r.Check(ctx, in)
		if o == nil {
			continue
		}
		s.record(c, r, o.Action, o.Hits)
		switch o.Action {
		case store.ActionBlock:
			return nil, contentPolicy(r, o, withheldAnswer)
		case store.ActionMask:
			for i := range in.Texts {
				in.Texts[i].Text = o.Texts[i]
			}
			masked = true
		}
	}
	if !masked {
		return body, nil
	}
	for i, ch := range choices {
		if c.ep == endpointChat {
			if messages[i] == nil || string(messages[i]["content"]) == "null" {
				continue
			}
			messages[i]["content"] = jsonString(in.Texts[i].Text)
			ch["message"], _ = marshalJSON(messages[i])
		} else if _, ok := ch["text"]; ok {
			ch["text"] = jsonString(in.Texts[i].Text)
		}
	}
	var err error
	if answer["choices"], err = marshalJSON(choices); err != nil {
		return body, nil
	}
	out, err := marshalJSON(answer)
	if err != nil {
		return body, nil
	}
	return out, nil
}
