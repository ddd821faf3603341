package guardrails

import (
	"context"

	"tollgate/store"
)

// Text is one text of a prompt or an answer.
type Text struct {
	Role string // the chat role of the message it comes from; empty for prompts, inputs and answers
	Text string
}

// Input is what a rule checks: every text of a prompt, or of an answer,
// with what an external service is told about the request.
type Input struct {
	Texts     []Text
	Model     string // the model asked for, to count tokens
	RequestID string
	TeamID    string
	KeyID     string
}

// Hit counts the findings of one type.
type Hit struct {
	Type  string
	Count int
}

// Outcome is what a rule found and what the gateway must do about it.
type Outcome struct {
	Action string   // block, mask or log
	Hits   []Hit    // by type, in the order first found
	Texts  []string // with Action mask: every text, masked
	Reason string   // why, in words, when there is more to say than the types (size, external service)
}

func addHit(hits []Hit, typ string, n int) []Hit {
	for i := range hits {
		if hits[i].Type == typ {
			hits[i].Count += n
			return hits
		}
	}
	return append(hits, Hit{typ, n})
}

// Check runs the rule on every text of a prompt or answer; nil means
// nothing found (or, for an external rule, allowed). Only external rules
// wait on the network, bounded by their timeout.
func (r *Rule) Check(ctx context.Context, in Input) *Outcome {
	switch {
	case r.external != nil:
		return r.external.check(ctx, r, in)
	case r.size != nil:
		why, over := r.size.check(in)
		if !over {
			return nil
		}
		return &Outcome{Action: r.Action, Hits: []Hit{{"PROMPT_TOO_LARGE", 1}}, Reason: why}
	}
	found := make([][]Finding, len(in.Texts))
	score := 0.0
	hit := false
	for i, t := range in.Texts {
		tx := &text{s: t.Text}
		var fs []Finding
		for _, d := range r.detectors {
			fs = d(tx, fs)
		}
		if r.injection != nil {
			s, f := r.injection.score(tx, t.Role)
			score += s
			fs = append(fs, f...)
		}
		found[i] = dedupe(fs)
		hit = hit || len(found[i]) > 0
	}
	if !hit || r.injection != nil && score < r.injection.threshold {
		return nil
	}
	out := &Outcome{Action: r.Action}
	for _, fs := range found {
		for _, f := range fs {
			out.Hits = addHit(out.Hits, f.Type, 1)
		}
	}
	if r.Action == store.ActionMask {
		out.Texts = make([]string, len(in.Texts))
		for i, t := range in.Texts {
			out.Texts[i] = Mask(t.Text, found[i])
		}
	}
	return out
}
