package bedrock

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream/eventstreamapi"

	"tollgate/gateway/openai"
)

// StreamError is an exception or error message in a ConverseStream, such
// as throttlingException or modelStreamErrorException.
type StreamError struct {
	Type    string // the :exception-type or :error-code header
	Message string
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("bedrock %s: %s", e.Type, e.Message)
}

// streamEvent holds the payload of any ConverseStream event; which fields
// are set depends on its :event-type.
type streamEvent struct {
	ContentBlockIndex int `json:"contentBlockIndex"`
	Start             *struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse"`
	} `json:"start"`
	Delta *struct {
		Text    *string `json:"text"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse"`
	} `json:"delta"`
	StopReason string      `json:"stopReason"`
	Usage      *tokenUsage `json:"usage"`
}

// ChatStream reads a ConverseStream body (application/vnd.amazon.eventstream)
// and writes it to w as OpenAI chat.completion.chunk server-sent events,
// ending with data: [DONE]. Events that arrived together are flushed
// together; otherwise each is flushed as soon as it is written. With
// includeUsage a usage chunk with no choices comes before [DONE].
//
// An exception event (a *StreamError) or a stream that ends before
// messageStop (io.ErrUnexpectedEOF) gives an error; the usage returned is
// what the stream reported, zero when it ended before its metadata event.
func ChatStream(w io.Writer, flush func(), upstream io.Reader, model string, includeUsage bool) (openai.Usage, error) {
	s := newChunkStream(w, model)
	r := &countingReader{br: bufio.NewReaderSize(upstream, 16<<10)}
	dec := eventstream.NewDecoder()
	var payload []byte
	for {
		start := r.n
		msg, err := dec.Decode(r, payload[:0])
		if err != nil {
			if err == io.EOF && r.n == start {
				break
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.ErrUnexpectedEOF
			}
			s.flush(flush)
			return s.usage, fmt.Errorf("bedrock: read event stream: %w", err)
		}
		payload = msg.Payload // reuse its buffer: nothing keeps the payload
		if err := s.handle(&msg); err != nil {
			s.flush(flush)
			return s.usage, err
		}
		if r.br.Buffered() == 0 {
			s.flush(flush)
		}
	}
	if !s.stopped {
		s.flush(flush)
		return s.usage, fmt.Errorf("bedrock: event stream ended before messageStop: %w", io.ErrUnexpectedEOF)
	}
	if includeUsage && s.hasUsage {
		if err := s.usageChunk(); err != nil {
			return s.usage, err
		}
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		return s.usage, err
	}
	flush()
	return s.usage, nil
}

// countingReader tells a stream that ended between messages from one cut
// off inside a message's prelude, which the decoder reports alike as EOF.
type countingReader struct {
	br *bufio.Reader
	n  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

// chunkStream writes chunk events for one streamed answer.
type chunkStream struct {
	w         io.Writer
	head      []byte // data: {"id":…,"object":…,"created":…,"model":…,"choices":[
	buf       []byte
	pending   bool // written since the last flush
	started   bool // the role chunk went out
	stopped   bool // messageStop was seen
	tools     map[int]*streamTool
	nextTool  int
	usage     openai.Usage
	usageJSON usageJSON
	hasUsage  bool
}

// streamTool is a toolUse content block, numbered among the tool calls.
type streamTool struct {
	index   int
	hasArgs bool
}

func newChunkStream(w io.Writer, model string) *chunkStream {
	id, _ := json.Marshal(newID())
	name, _ := json.Marshal(model)
	head := make([]byte, 0, 128)
	head = append(head, `data: {"id":`...)
	head = append(head, id...)
	head = append(head, `,"object":"chat.completion.chunk","created":`...)
	head = strconv.AppendInt(head, now().Unix(), 10)
	head = append(head, `,"model":`...)
	head = append(head, name...)
	head = append(head, `,"choices":[`...)
	return &chunkStream{w: w, head: head, buf: make([]byte, 0, 512)}
}

func header(msg *eventstream.Message, name string) string {
	if v := msg.Headers.Get(name); v != nil {
		return v.String()
	}
	return ""
}

// handle translates one event stream message.
func (s *chunkStream) handle(msg *eventstream.Message) error {
	switch t := header(msg, eventstreamapi.MessageTypeHeader); t {
	case eventstreamapi.EventMessageType:
	case eventstreamapi.ExceptionMessageType:
		var p struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(msg.Payload, &p) != nil || p.Message == "" {
			p.Message = ErrorMessage(msg.Payload)
		}
		return &StreamError{Type: header(msg, eventstreamapi.ExceptionTypeHeader), Message: p.Message}
	case eventstreamapi.ErrorMessageType:
		return &StreamError{Type: header(msg, eventstreamapi.ErrorCodeHeader), Message: header(msg, eventstreamapi.ErrorMessageHeader)}
	default:
		return fmt.Errorf("bedrock: event stream message of unknown type %q", t)
	}
	eventType := header(msg, eventstreamapi.EventTypeHeader)
	var ev streamEvent
	if err := json.Unmarshal(msg.Payload, &ev); err != nil {
		return fmt.Errorf("bedrock: %s event: %w", eventType, err)
	}
	switch eventType {
	case "messageStart":
		return s.start()
	case "contentBlockStart":
		if err := s.start(); err != nil {
			return err
		}
		if ev.Start == nil || ev.Start.ToolUse == nil {
			return nil // text and reasoning blocks start with their first delta
		}
		if s.tools == nil {
			s.tools = make(map[int]*streamTool)
		}
		tool := &streamTool{index: s.nextTool}
		s.tools[ev.ContentBlockIndex] = tool
		s.nextTool++
		call := toolCallJSON{Index: &tool.index, ID: ev.Start.ToolUse.ToolUseID, Type: "function"}
		call.Function.Name = ev.Start.ToolUse.Name
		return s.toolDelta(call)
	case "contentBlockDelta":
		if err := s.start(); err != nil {
			return err
		}
		if ev.Delta == nil {
			return nil
		}
		if ev.Delta.Text != nil && *ev.Delta.Text != "" {
			text, _ := json.Marshal(*ev.Delta.Text)
			delta := append(append([]byte(`{"content":`), text...), '}')
			return s.choice(delta, "")
		}
		if ev.Delta.ToolUse != nil && ev.Delta.ToolUse.Input != "" {
			tool := s.tools[ev.ContentBlockIndex]
			if tool == nil {
				return fmt.Errorf("bedrock: tool input for content block %d, which did not start as a toolUse", ev.ContentBlockIndex)
			}
			tool.hasArgs = true
			return s.arguments(tool, ev.Delta.ToolUse.Input)
		}
		return nil // reasoning and citation deltas have no OpenAI form
	case "contentBlockStop":
		// A tool called without input still needs parseable arguments.
		if tool := s.tools[ev.ContentBlockIndex]; tool != nil && !tool.hasArgs {
			tool.hasArgs = true
			return s.arguments(tool, "{}")
		}
		return nil
	case "messageStop":
		if err := s.start(); err != nil {
			return err
		}
		s.stopped = true
		return s.choice([]byte(`{}`), finishReason(ev.StopReason))
	case "metadata":
		s.usage, s.usageJSON, s.hasUsage = ev.Usage.usage(), ev.Usage.openAIJSON(), true
	}
	return nil
}

// start sends the role chunk before anything else.
func (s *chunkStream) start() error {
	if s.started {
		return nil
	}
	s.started = true
	return s.choice([]byte(`{"role":"assistant","content":""}`), "")
}

func (s *chunkStream) arguments(tool *streamTool, fragment string) error {
	call := toolCallJSON{Index: &tool.index}
	call.Function.Arguments = fragment
	return s.toolDelta(call)
}

func (s *chunkStream) toolDelta(call toolCallJSON) error {
	delta, err := json.Marshal(struct {
		ToolCalls []toolCallJSON `json:"tool_calls"`
	}{[]toolCallJSON{call}})
	if err != nil {
		return err
	}
	return s.choice(delta, "")
}

// choice writes a chunk with one choice; finish is "" until the last.
func (s *chunkStream) choice(delta []byte, finish string) error {
	b := append(s.buf[:0], s.head...)
	b = append(b, `{"index":0,"delta":`...)
	b = append(b, delta...)
	b = append(b, `,"finish_reason":`...)
	if finish == "" {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendQuote(b, finish) // one of a few plain words
	}
	b = append(b, "}]}\n\n"...)
	return s.write(b)
}

// usageChunk writes the usage-only chunk OpenAI sends for include_usage.
func (s *chunkStream) usageChunk() error {
	u, err := json.Marshal(s.usageJSON)
	if err != nil {
		return err
	}
	b := append(s.buf[:0], s.head...)
	b = append(b, `],"usage":`...)
	b = append(b, u...)
	b = append(b, "}\n\n"...)
	return s.write(b)
}

func (s *chunkStream) write(b []byte) error {
	s.buf = b
	s.pending = true
	_, err := s.w.Write(b)
	return err
}

func (s *chunkStream) flush(flush func()) {
	if s.pending {
		s.pending = false
		flush()
	}
}
