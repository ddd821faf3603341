package guardrails

import (
	"unicode/utf8"

	"tollgate/store"
)

// Stream checks an answer as it is streamed, without holding the whole of
// it. It holds back the rule's window (the longest match its detectors can
// be in the middle of: 256 bytes for pii and secrets, the longest keyword
// plus one character for keywords, the longest possible match for regex
// patterns) and releases everything before it, so that a match split
// across chunks is still found whole. A match that reaches the end of what
// has arrived may still be growing (a long JWT, a private key block) and
// is held back whole, up to maxHold bytes. The last tailSize bytes
// released are kept as context, so that word boundaries and names before
// a value are seen.
//
// With action mask the released text is masked; with block, a hit means
// the answer must stop: the text released is what came before the match;
// with log the text is released as it is. Not safe for concurrent use.
type Stream struct {
	rule    *Rule
	pending string // arrived, not yet released
	tail    string // the end of what was released, for context
	offset  int    // bytes of the answer released so far
	stopped bool   // a block hit was found: nothing more is released
}

const (
	tailSize = 64
	maxHold  = 32 << 10
)

// NewStream starts checking a streamed answer; nil for rules that judge a
// whole text at once (max_prompt_size, external).
func (r *Rule) NewStream() *Stream {
	if r.size != nil || r.external != nil {
		return nil
	}
	return &Stream{rule: r}
}

// Push adds a piece of the answer and returns what may be released, and
// the findings in it (their offsets are in the whole answer).
func (st *Stream) Push(delta string) (string, []Finding) {
	if st.stopped {
		return "", nil
	}
	st.pending += delta
	return st.release(false)
}

// Flush releases the rest at the end of the answer.
func (st *Stream) Flush() (string, []Finding) {
	if st.stopped {
		return "", nil
	}
	return st.release(true)
}

func (st *Stream) release(final bool) (string, []Finding) {
	buf := st.tail + st.pending
	base := len(st.tail)
	var found []Finding
	for _, f := range st.rule.Scan(buf) {
		if f.End <= base {
			continue // in text already released
		}
		f.Start, f.End = max(f.Start, base)-base, f.End-base
		found = append(found, f)
	}
	n := len(st.pending)
	cut := n
	if !final {
		cut = max(0, n-st.rule.window)
		for cut > 0 && !utf8.RuneStart(st.pending[cut]) {
			cut--
		}
		if n <= maxHold {
			// Hold back a match that straddles the cut or may still grow.
			for moved := true; moved; {
				moved = false
				for _, f := range found {
					if f.Start < cut && (f.End > cut || f.End == n) {
						cut, moved = f.Start, true
					}
				}
			}
		}
	}
	var hits []Finding
	for _, f := range found {
		if f.Start < cut {
			f.End = min(f.End, cut)
			hits = append(hits, f)
		}
	}
	out := st.pending[:cut]
	switch st.rule.Action {
	case store.ActionBlock:
		if len(hits) > 0 {
			out = out[:hits[0].Start]
			st.stopped = true
		}
	case store.ActionMask:
		out = Mask(out, hits)
	}
	for i := range hits {
		hits[i].Start += st.offset
		hits[i].End += st.offset
	}
	released := st.tail + st.pending[:cut]
	k := max(0, len(released)-tailSize)
	// Start the context at a word's start: detectors read a token cut in
	// two as a token of its own.
	for k > 0 && k < len(released) && (word(released, k-1) || !utf8.RuneStart(released[k])) {
		k++
	}
	st.tail = released[k:]
	st.pending = st.pending[cut:]
	st.offset += cut
	return out, hits
}
