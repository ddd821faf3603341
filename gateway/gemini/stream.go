package gemini

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"tollgate/gateway/openai"
)

// The OpenAI chat.completion.chunk, as the gateway writes it.

type chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []chunkChoice `json:"choices"`
	Usage   any           `json:"usage,omitempty"` // null on every chunk but the last when the caller asked for usage
}

type chunkChoice struct {
	Index        int     `json:"index"`
	Delta        delta   `json:"delta"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

type delta struct {
	Role      string        `json:"role,omitempty"`
	Content   *string       `json:"content,omitempty"`
	ToolCalls []toolCallOut `json:"tool_calls,omitempty"`
}

// ErrIncomplete is returned when Gemini's stream ends before every
// candidate has a finishReason: the connection broke off mid-answer.
var ErrIncomplete = errors.New("gemini: the stream ended before the answer was finished")

// ChatStream translates Gemini's alt=sse stream, whose every data: line is
// a GenerateContentResponse, into OpenAI chat.completion.chunk events,
// calling flush after the chunks of each upstream event. With includeUsage
// the last usage Gemini reported goes out as a usage chunk with no choices
// before data: [DONE].
//
// An error event from Gemini, a broken read or a stream that ends before
// it finishes returns an error and the usage seen so far, without writing
// [DONE]: the caller ends the stream with its error event and prices the
// partial usage.
func ChatStream(w io.Writer, flush func(), upstream io.Reader, model string, includeUsage bool) (openai.Usage, error) {
	s := &streamWriter{w: w, model: model, includeUsage: includeUsage}
	err := readEvents(upstream, func(data []byte) error {
		wrote, err := s.event(data)
		if wrote {
			flush()
		}
		return err
	})
	usage, uo := usageOf(s.usage)
	if err != nil {
		return usage, err
	}
	if len(s.choices) == 0 {
		return usage, ErrIncomplete
	}
	for _, c := range s.choices {
		if !c.finished {
			return usage, ErrIncomplete
		}
	}
	if includeUsage && s.usage != nil {
		if err := s.write(chunk{Choices: []chunkChoice{}, Usage: &uo}); err != nil {
			return usage, err
		}
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		return usage, err
	}
	flush()
	return usage, nil
}

type streamWriter struct {
	w            io.Writer
	model        string
	includeUsage bool

	id      string
	created int64
	choices []choiceState // by candidate index
	usage   *usageMetadata
	buf     []byte
}

type choiceState struct {
	started   bool
	finished  bool
	toolCalls int
}

var (
	nullJSON   = json.RawMessage("null")
	emptyText  = ""
	roleDelta  = delta{Role: "assistant", Content: &emptyText}
	dataPrefix = []byte("data:")
)

// event handles one upstream event and says whether it wrote anything.
func (s *streamWriter) event(data []byte) (bool, error) {
	var ev generateResponse
	if err := json.Unmarshal(data, &ev); err != nil {
		return false, fmt.Errorf("gemini: unreadable stream event: %w", err)
	}
	if ev.Error != nil {
		return false, fmt.Errorf("gemini: error in the stream: %s (%s, %d)", ev.Error.Message, ev.Error.Status, ev.Error.Code)
	}
	if s.id == "" {
		s.id = completionID(ev.ResponseID)
		s.created = time.Now().Unix()
		if s.model == "" {
			s.model = ev.ModelVersion
		}
	}
	if ev.UsageMetadata != nil {
		s.usage = ev.UsageMetadata
	}
	wrote := false
	if len(ev.Candidates) == 0 && ev.PromptFeedback != nil && ev.PromptFeedback.BlockReason != "" {
		// The prompt was blocked: no candidate will come.
		return true, s.finish(0, "content_filter")
	}
	indexes := candidateIndexes(ev.Candidates)
	for i, c := range ev.Candidates {
		idx := indexes[i]
		st := s.choice(idx)
		if st.finished {
			continue
		}
		if !st.started {
			st.started = true
			if err := s.delta(idx, roleDelta); err != nil {
				return true, err
			}
			wrote = true
		}
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					tc := toolCallOf(p, st.toolCalls)
					n := st.toolCalls
					tc.Index = &n
					st.toolCalls++
					if err := s.delta(idx, delta{ToolCalls: []toolCallOut{tc}}); err != nil {
						return true, err
					}
					wrote = true
				case p.Text != "" && !p.Thought:
					text := p.Text
					if err := s.delta(idx, delta{Content: &text}); err != nil {
						return true, err
					}
					wrote = true
				}
			}
		}
		if c.FinishReason != "" {
			if err := s.finish(idx, finishReason(c.FinishReason, st.toolCalls > 0)); err != nil {
				return true, err
			}
			wrote = true
		}
	}
	return wrote, nil
}

func (s *streamWriter) choice(idx int) *choiceState {
	for len(s.choices) <= idx {
		s.choices = append(s.choices, choiceState{})
	}
	return &s.choices[idx]
}

func (s *streamWriter) delta(idx int, d delta) error {
	return s.write(chunk{Choices: []chunkChoice{{Index: idx, Delta: d}}})
}

func (s *streamWriter) finish(idx int, reason string) error {
	st := s.choice(idx)
	if !st.started {
		st.started = true
		if err := s.delta(idx, roleDelta); err != nil {
			return err
		}
	}
	st.finished = true
	return s.write(chunk{Choices: []chunkChoice{{Index: idx, FinishReason: &reason}}})
}

func (s *streamWriter) write(c chunk) error {
	c.ID, c.Object, c.Created, c.Model = s.id, "chat.completion.chunk", s.created, s.model
	if c.Usage == nil && s.includeUsage {
		c.Usage = nullJSON
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	s.buf = append(append(append(s.buf[:0], "data: "...), b...), "\n\n"...)
	_, err = s.w.Write(s.buf)
	return err
}

// readEvents calls fn with the data of each server-sent event (data: lines
// joined by newlines); an event still open when the stream ends counts too.
func readEvents(r io.Reader, fn func(data []byte) error) error {
	br := bufio.NewReaderSize(r, 32*1024)
	var data, long []byte
	pending := false
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, line...) // a line longer than the buffer
			continue
		}
		if len(long) > 0 {
			line = append(long, line...)
			long = long[:0]
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if pending {
				if ferr := fn(data); ferr != nil {
					return ferr
				}
				data, pending = data[:0], false
			}
		case bytes.HasPrefix(line, dataPrefix):
			v := line[len(dataPrefix):]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
			if pending {
				data = append(data, '\n')
			}
			data = append(data, v...)
			pending = true
		}
		if err == io.EOF {
			if pending {
				return fn(data)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("gemini: read the stream: %w", err)
		}
	}
}
