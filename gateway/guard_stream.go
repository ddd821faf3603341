package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"

	"tollgate/gateway/guardrails"
	"tollgate/store"
)

// guardedStream sits between a streamed answer in OpenAI's chunk format
// (relayed or translated) and the caller, and runs the post_call
// guardrails on each choice's content as it passes: every rule holds back
// its window (guardrails.Stream), a mask rewrites the content of the
// chunks, a block sends what came before the match and an error event and
// stops the stream. What a rule holds back goes out with the choice's
// finish chunk. Rules that judge a whole text (external) read each
// choice's answer when it finishes; by then it has been sent, so they can
// still end the stream with an error event but no longer mask.
type guardedStream struct {
	s     *Server
	ctx   context.Context
	c     *call
	w     io.Writer
	flush func()

	buf     []byte // an event not yet whole
	choices map[int]*guardedChoice
	last    map[string]json.RawMessage // the last chunk, a template for one the stream has to add
	blocked bool
	err     *apiError
}

type guardedChoice struct {
	streams  []*guardrails.Stream // one per scanning rule, in rule order
	rules    []*guardrails.Rule
	answer   strings.Builder // what the caller got, for rules that read it whole
	finished bool
}

// guardStream puts the post-call guardrails that apply between a stream
// and the caller: the copy writes to out, and end turns the copy's error
// into the stream's (a guardrail's stop is not a broken stream). Without
// post-call guardrails out is w itself.
func (s *Server) guardStream(ctx context.Context, c *call, w io.Writer, flush func()) (out io.Writer, end func(error) error) {
	if len(c.guards.post) == 0 {
		return w, func(err error) error { return err }
	}
	g := &guardedStream{s: s, ctx: ctx, c: c, w: w, flush: flush, choices: map[int]*guardedChoice{}}
	return g, g.end
}

func (g *guardedStream) Write(p []byte) (int, error) {
	if g.blocked {
		return 0, errGuardrailBlocked
	}
	g.buf = append(g.buf, p...)
	for {
		i := bytes.Index(g.buf, []byte("\n\n"))
		if i < 0 {
			return len(p), nil
		}
		event := g.buf[:i+2]
		if err := g.event(event); err != nil {
			return 0, err
		}
		g.buf = g.buf[i+2:]
		if g.blocked {
			return 0, errGuardrailBlocked
		}
	}
}

// event passes one event on, rewritten when a guardrail changed its content.
func (g *guardedStream) event(event []byte) error {
	data, ok := eventData(event)
	if !ok {
		_, err := g.w.Write(event)
		return err
	}
	if string(data) == "[DONE]" {
		if err := g.finishAll(); err != nil || g.blocked {
			return err
		}
		_, err := g.w.Write(event)
		return err
	}
	var chunk map[string]json.RawMessage
	var choices []map[string]json.RawMessage
	if json.Unmarshal(data, &chunk) != nil || json.Unmarshal(chunk["choices"], &choices) != nil || len(choices) == 0 {
		_, err := g.w.Write(event) // usage chunk, error event, anything else
		return err
	}
	g.last = chunk
	changed := false
	for _, ch := range choices {
		var index int
		json.Unmarshal(ch["index"], &index)
		gc := g.choice(index)
		field, fields := g.contentField(ch)
		var content string
		hasContent := fields != nil && json.Unmarshal(fields[field], &content) == nil
		if !hasContent && !finishing(ch) {
			continue
		}
		out, stop := g.push(gc, content)
		if !stop && finishing(ch) {
			var rest string
			rest, stop = g.finish(gc, "")
			out += rest
		}
		if hasContent || out != "" {
			if fields == nil {
				fields = map[string]json.RawMessage{}
			}
			fields[field] = jsonString(out)
			if g.c.ep == endpointChat { // completions carry the text in the choice itself
				ch["delta"], _ = marshalJSON(fields)
			}
			changed = true
		}
		if stop {
			// Send what came before the match, without the finish reason,
			// then the error event.
			ch["finish_reason"] = json.RawMessage("null")
			if out != "" {
				if err := g.writeChunk(chunk, []map[string]json.RawMessage{ch}, false); err != nil {
					return err
				}
			}
			return g.stop()
		}
	}
	if !changed {
		_, err := g.w.Write(event)
		return err
	}
	return g.writeChunk(chunk, choices, false)
}

// contentField is where a choice's text is: delta.content in chat chunks,
// text in completions chunks. fields is the delta (or the choice itself).
func (g *guardedStream) contentField(ch map[string]json.RawMessage) (string, map[string]json.RawMessage) {
	if g.c.ep != endpointChat {
		return "text", ch
	}
	var delta map[string]json.RawMessage
	if json.Unmarshal(ch["delta"], &delta) != nil {
		return "content", nil
	}
	return "content", delta
}

func finishing(ch map[string]json.RawMessage) bool {
	r, ok := ch["finish_reason"]
	return ok && string(r) != "null"
}

func (g *guardedStream) choice(index int) *guardedChoice {
	gc := g.choices[index]
	if gc == nil {
		gc = &guardedChoice{}
		for _, r := range g.c.guards.post {
			if st := r.NewStream(); st != nil {
				gc.streams = append(gc.streams, st)
				gc.rules = append(gc.rules, r)
			}
		}
		g.choices[index] = gc
	}
	return gc
}

// push sends text through the choice's rules, each one's release feeding
// the next; stop says a block rule found something.
func (g *guardedStream) push(gc *guardedChoice, text string) (string, bool) {
	for i, st := range gc.streams {
		out, hits := st.Push(text)
		if g.hits(gc.rules[i], hits) {
			gc.answer.WriteString(out)
			return out, true
		}
		text = out
	}
	gc.answer.WriteString(text)
	return text, false
}

// finish releases what the choice's rules hold back and runs the rules
// that read the whole answer.
func (g *guardedStream) finish(gc *guardedChoice, text string) (string, bool) {
	if gc.finished {
		return text, false
	}
	gc.finished = true
	for i, st := range gc.streams {
		out, hits := st.Push(text)
		if g.hits(gc.rules[i], hits) {
			gc.answer.WriteString(out)
			return out, true
		}
		rest, hits := st.Flush()
		out += rest
		if g.hits(gc.rules[i], hits) {
			gc.answer.WriteString(out)
			return out, true
		}
		text = out
	}
	gc.answer.WriteString(text)
	for _, r := range g.c.guards.post {
		if r.NewStream() != nil {
			continue
		}
		o := r.Check(g.ctx, g.s.guardInput(g.c, []guardrails.Text{{Text: gc.answer.String()}}))
		if o == nil {
			continue
		}
		action := o.Action
		if action == store.ActionMask {
			action = store.ActionLog // already sent
		}
		g.s.record(g.c, r, action, o.Hits)
		if action == store.ActionBlock {
			g.err = contentPolicy(r, o, stoppedAnswer)
			return text, true
		}
	}
	return text, false
}

// hits records a scanning rule's findings; true means the stream must stop.
func (g *guardedStream) hits(r *guardrails.Rule, fs []guardrails.Finding) bool {
	if len(fs) == 0 {
		return false
	}
	var hits []guardrails.Hit
	for _, f := range fs {
		i := slices.IndexFunc(hits, func(h guardrails.Hit) bool { return h.Type == f.Type })
		if i < 0 {
			hits = append(hits, guardrails.Hit{Type: f.Type, Count: 1})
		} else {
			hits[i].Count++
		}
	}
	g.s.record(g.c, r, r.Action, hits)
	if r.Action == store.ActionBlock {
		g.err = contentPolicy(r, &guardrails.Outcome{Hits: hits}, stoppedAnswer)
		return true
	}
	return false
}

// finishAll releases what every unfinished choice holds, in a chunk of
// its own, before [DONE]: for streams that never sent a finish reason.
func (g *guardedStream) finishAll() error {
	indexes := make([]int, 0, len(g.choices))
	for i, gc := range g.choices {
		if !gc.finished {
			indexes = append(indexes, i)
		}
	}
	slices.Sort(indexes)
	for _, i := range indexes {
		out, stop := g.finish(g.choices[i], "")
		if out != "" && g.last != nil {
			ch := map[string]json.RawMessage{"index": json.RawMessage(jsonInt(i)), "finish_reason": json.RawMessage("null")}
			if g.c.ep == endpointChat {
				ch["delta"], _ = marshalJSON(map[string]string{"content": out})
			} else {
				ch["text"] = jsonString(out)
			}
			if err := g.writeChunk(g.last, []map[string]json.RawMessage{ch}, true); err != nil {
				return err
			}
		}
		if stop {
			return g.stop()
		}
	}
	return nil
}

func jsonInt(i int) []byte { b, _ := json.Marshal(i); return b }

// writeChunk sends chunk with these choices; added says the chunk is one
// the stream adds, on the last one's model: it carries no usage.
func (g *guardedStream) writeChunk(chunk map[string]json.RawMessage, choices []map[string]json.RawMessage, added bool) error {
	out := make(map[string]json.RawMessage, len(chunk))
	for k, v := range chunk {
		out[k] = v
	}
	out["choices"], _ = marshalJSON(choices)
	if _, ok := out["usage"]; ok && added {
		out["usage"] = json.RawMessage("null")
	}
	b, err := marshalJSON(out)
	if err != nil {
		return err
	}
	_, err = g.w.Write(append(append([]byte("data: "), b...), '\n', '\n'))
	return err
}

// stop ends the stream with the guardrail's error event.
func (g *guardedStream) stop() error {
	g.blocked = true
	if err := writeStreamEvent(g.w, g.err); err != nil {
		return err
	}
	g.flush()
	return nil
}

// end is called when the stream is over. A stream stopped by a guardrail
// is not a broken stream: err is dropped and the call's status is the
// guardrail's. A stream that ended without [DONE] still gets what the
// rules hold back.
func (g *guardedStream) end(err error) error {
	if g.blocked {
		g.c.status, g.c.errorMsg = g.err.Status, g.err.Message
		return nil
	}
	if err != nil {
		return err
	}
	if len(g.buf) > 0 {
		if _, err := g.w.Write(g.buf); err != nil {
			return err
		}
		g.buf = nil
	}
	if ferr := g.finishAll(); ferr != nil {
		return ferr
	}
	if g.blocked {
		g.c.status, g.c.errorMsg = g.err.Status, g.err.Message
	}
	g.flush()
	return nil
}

// eventData is an event's data, when it is one data line.
func eventData(event []byte) ([]byte, bool) {
	for line := range bytes.SplitSeq(event, []byte("\n")) {
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			return bytes.TrimSpace(data), true
		}
	}
	return nil, false
}
