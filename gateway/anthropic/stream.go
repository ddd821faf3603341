package anthropic

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"tollgate/gateway/openai"
)

// StreamError is an error event inside a Messages stream, such as
// overloaded_error during periods of high load.
type StreamError struct {
	Type    string
	Message string
}

func (e *StreamError) Error() string {
	return fmt.Sprintf("anthropic stream error %s: %s", e.Type, e.Message)
}

// ErrStreamCut is a stream that ended before its message_stop event.
var ErrStreamCut = errors.New("anthropic stream ended before message_stop")

// ChatStream translates a Messages event stream into OpenAI
// chat.completion.chunk events written to w. As openai.StreamCopier does,
// it flushes once the events already read from upstream are written, so
// each is sent the moment it arrives. Only a stream that reaches
// message_stop gets its finish chunk, usage chunk (when includeUsage) and
// [DONE]; otherwise the error is returned with the usage seen so far, and
// the caller ends the stream.
func ChatStream(w io.Writer, flush func(), upstream io.Reader, model string, includeUsage bool) (openai.Usage, error) {
	s := &streamTranslator{w: w, model: model, includeUsage: includeUsage, created: now().Unix()}
	r := bufio.NewReaderSize(upstream, 32*1024)
	var (
		long    []byte // a line longer than the read buffer, gathered
		data    []byte // the current event's data
		hasData bool
	)
	dispatch := func() (bool, error) {
		if !hasData {
			return false, nil
		}
		done, err := s.event(data)
		data, hasData = data[:0], false
		if s.unflushed && (done || err != nil || r.Buffered() == 0) {
			flush()
			s.unflushed = false
		}
		return done, err
	}
	for {
		line, readErr := r.ReadSlice('\n')
		if readErr == bufio.ErrBufferFull {
			long = append(long, line...)
			continue
		}
		if len(long) > 0 {
			line = append(long, line...)
			long = long[:0]
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if done, err := dispatch(); done || err != nil {
				return s.usage.openAIUsage(), err
			}
		case bytes.HasPrefix(line, []byte("data:")):
			payload := bytes.TrimPrefix(line[len("data:"):], []byte(" "))
			if hasData {
				data = append(data, '\n')
			}
			data, hasData = append(data, payload...), true
		}
		// Comments and the event:, id: and retry: fields need nothing: the
		// data's own type names the event.
		if readErr != nil {
			// An event cut off mid-way is dropped, as SSE clients drop an
			// event without its blank line; a whole one is still read.
			if hasData && !json.Valid(data) {
				hasData = false
			}
			if done, err := dispatch(); done || err != nil {
				return s.usage.openAIUsage(), err
			}
			if readErr == io.EOF {
				return s.usage.openAIUsage(), ErrStreamCut
			}
			return s.usage.openAIUsage(), fmt.Errorf("read anthropic stream: %w", readErr)
		}
	}
}

// streamTranslator holds what one stream has told so far.
type streamTranslator struct {
	w            io.Writer
	model        string
	includeUsage bool
	created      int64
	id           string
	started      bool
	blocks       map[int]*streamBlock
	toolCalls    int
	stopReason   string
	usage        messagesUsage
	ev           streamEvent // reused for every event
	prefix       []byte      // every chunk's start, up to its choices
	out          []byte      // the chunk being written
	unflushed    bool        // chunks written since the last flush
}

// streamBlock is a content block being streamed.
type streamBlock struct {
	kind      string // text, tool_use, or another type that is not passed on
	toolIndex int    // the tool call's index in the OpenAI message
	argsSent  bool
}

type streamEvent struct {
	Type    string `json:"type"`
	Message struct {
		ID    string        `json:"id"`
		Usage messagesUsage `json:"usage"`
	} `json:"message"`
	Index        int `json:"index"`
	ContentBlock struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Name string `json:"name"`
		Text string `json:"text"`
	} `json:"content_block"`
	Delta struct {
		Type        string `json:"type"`
		Text        string `json:"text"`
		PartialJSON string `json:"partial_json"`
		StopReason  string `json:"stop_reason"`
	} `json:"delta"`
	Usage *struct {
		InputTokens              *int64 `json:"input_tokens"`
		OutputTokens             *int64 `json:"output_tokens"`
		CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	} `json:"usage"`
	Error anthropicError `json:"error"`
}

// event handles one upstream event and says whether the stream is done.
func (s *streamTranslator) event(data []byte) (bool, error) {
	ev := &s.ev
	*ev = streamEvent{}
	if err := json.Unmarshal(data, ev); err != nil {
		return false, fmt.Errorf("read anthropic stream event: %w", err)
	}
	switch ev.Type {
	case "message_start":
		s.id = ev.Message.ID
		s.usage = ev.Message.Usage
		return false, s.start()
	case "content_block_start":
		return false, s.blockStart(ev)
	case "content_block_delta":
		return false, s.blockDelta(ev)
	case "content_block_stop":
		// A tool called without arguments still gets valid JSON arguments,
		// as in the non-streamed answer.
		if b := s.blocks[ev.Index]; b != nil && b.kind == "tool_use" && !b.argsSent {
			b.argsSent = true
			return false, s.writeArguments(b.toolIndex, "{}")
		}
	case "message_delta":
		if ev.Delta.StopReason != "" {
			s.stopReason = ev.Delta.StopReason
		}
		// message_delta counts are cumulative, so each replaces the last.
		if u := ev.Usage; u != nil {
			setIf(&s.usage.InputTokens, u.InputTokens)
			setIf(&s.usage.OutputTokens, u.OutputTokens)
			setIf(&s.usage.CacheCreationInputTokens, u.CacheCreationInputTokens)
			setIf(&s.usage.CacheReadInputTokens, u.CacheReadInputTokens)
		}
	case "message_stop":
		return true, s.finish()
	case "error":
		return false, &StreamError{Type: ev.Error.Type, Message: ev.Error.Message}
	}
	// ping and event types added later need nothing.
	return false, nil
}

func setIf(dst *int64, v *int64) {
	if v != nil {
		*dst = *v
	}
}

// start sends the first chunk, which names the role.
func (s *streamTranslator) start() error {
	if s.started {
		return nil
	}
	s.started = true
	s.prefix = append(s.prefix[:0], `data: {"id":`...)
	s.prefix = appendJSONString(s.prefix, "chatcmpl-"+s.id)
	s.prefix = append(s.prefix, `,"object":"chat.completion.chunk","created":`...)
	s.prefix = strconv.AppendInt(s.prefix, s.created, 10)
	s.prefix = append(s.prefix, `,"model":`...)
	s.prefix = appendJSONString(s.prefix, s.model)
	s.prefix = append(s.prefix, `,"choices":[`...)
	s.begin()
	s.out = append(s.out, `{"role":"assistant","content":""}`...)
	return s.end("")
}

func (s *streamTranslator) blockStart(ev *streamEvent) error {
	if err := s.start(); err != nil {
		return err
	}
	if s.blocks == nil {
		s.blocks = make(map[int]*streamBlock)
	}
	b := &streamBlock{kind: ev.ContentBlock.Type}
	s.blocks[ev.Index] = b
	switch b.kind {
	case "text":
		if ev.ContentBlock.Text != "" {
			return s.writeContent(ev.ContentBlock.Text)
		}
	case "tool_use":
		b.toolIndex = s.toolCalls
		s.toolCalls++
		// Only a tool call's first chunk carries its id, type and name:
		// SDKs concatenate every string they receive twice.
		s.begin()
		s.out = append(s.out, `{"tool_calls":[{"index":`...)
		s.out = strconv.AppendInt(s.out, int64(b.toolIndex), 10)
		s.out = append(s.out, `,"id":`...)
		s.out = appendJSONString(s.out, ev.ContentBlock.ID)
		s.out = append(s.out, `,"type":"function","function":{"name":`...)
		s.out = appendJSONString(s.out, ev.ContentBlock.Name)
		s.out = append(s.out, `,"arguments":""}}]}`...)
		return s.end("")
	}
	return nil
}

func (s *streamTranslator) blockDelta(ev *streamEvent) error {
	b := s.blocks[ev.Index]
	if b == nil {
		return nil
	}
	switch {
	case b.kind == "text" && ev.Delta.Type == "text_delta" && ev.Delta.Text != "":
		return s.writeContent(ev.Delta.Text)
	case b.kind == "tool_use" && ev.Delta.Type == "input_json_delta" && ev.Delta.PartialJSON != "":
		b.argsSent = true
		return s.writeArguments(b.toolIndex, ev.Delta.PartialJSON)
	}
	return nil
}

func (s *streamTranslator) writeContent(text string) error {
	s.begin()
	s.out = append(s.out, `{"content":`...)
	s.out = appendJSONString(s.out, text)
	s.out = append(s.out, '}')
	return s.end("")
}

func (s *streamTranslator) writeArguments(toolIndex int, fragment string) error {
	s.begin()
	s.out = append(s.out, `{"tool_calls":[{"index":`...)
	s.out = strconv.AppendInt(s.out, int64(toolIndex), 10)
	s.out = append(s.out, `,"function":{"arguments":`...)
	s.out = appendJSONString(s.out, fragment)
	s.out = append(s.out, `}}]}`...)
	return s.end("")
}

// finish sends the finish reason, the usage when asked for, and [DONE].
func (s *streamTranslator) finish() error {
	if err := s.start(); err != nil {
		return err
	}
	s.begin()
	s.out = append(s.out, `{}`...)
	if err := s.end(finishReason(s.stopReason)); err != nil {
		return err
	}
	if s.includeUsage {
		u, err := json.Marshal(s.usage.wire())
		if err != nil {
			return fmt.Errorf("encode usage: %w", err)
		}
		s.out = append(s.out[:0], s.prefix...)
		s.out = append(s.out, `],"usage":`...)
		s.out = append(s.out, u...)
		s.out = append(s.out, "}\n\n"...)
		if err := s.send(); err != nil {
			return err
		}
	}
	s.out = append(s.out[:0], "data: [DONE]\n\n"...)
	return s.send()
}

// begin starts a chunk of one choice, up to its delta.
func (s *streamTranslator) begin() {
	s.out = append(s.out[:0], s.prefix...)
	s.out = append(s.out, `{"index":0,"delta":`...)
}

// end closes the chunk begun, after its delta, and sends it. As OpenAI
// does, a stream that will end with a usage chunk says "usage": null in
// every other chunk.
func (s *streamTranslator) end(finish string) error {
	s.out = append(s.out, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		s.out = append(s.out, "null"...)
	} else {
		s.out = appendJSONString(s.out, finish)
	}
	s.out = append(s.out, "}]"...)
	if s.includeUsage {
		s.out = append(s.out, `,"usage":null`...)
	}
	s.out = append(s.out, "}\n\n"...)
	return s.send()
}

func (s *streamTranslator) send() error {
	s.unflushed = true
	_, err := s.w.Write(s.out)
	return err
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does without HTML escaping; invalid UTF-8 becomes U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript source.
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
