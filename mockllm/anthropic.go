package mockllm

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// anthropicVersions are the anthropic-version header values Anthropic
// accepts.
var anthropicVersions = map[string]bool{"2023-01-01": true, "2023-06-01": true}

// messagesRequest holds the fields of an Anthropic Messages request that the
// mock reads; the rest (temperature, tool_choice, metadata …) is accepted and
// ignored.
type messagesRequest struct {
	Model     string             `json:"model"`
	MaxTokens *int               `json:"max_tokens"`
	System    json.RawMessage    `json:"system"` // a string or text blocks
	Messages  []anthropicMessage `json:"messages"`
	Tools     []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Stream bool `json:"stream"`
}

type anthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"` // a string or content blocks
}

// anthropicBlock is a request content block; only text and tool_result
// blocks carry text the mock reads.
type anthropicBlock struct {
	Type    string          `json:"type"`
	Text    string          `json:"text"`
	Content json.RawMessage `json:"content"` // a tool_result's: a string or blocks
}

type anthropicAnswer struct {
	ID           string              `json:"id"`
	Type         string              `json:"type"`
	Role         string              `json:"role"`
	Model        string              `json:"model"`
	Content      []anthropicBlockOut `json:"content"`
	StopReason   *string             `json:"stop_reason"`
	StopSequence *string             `json:"stop_sequence"` // always null
	Usage        anthropicUsage      `json:"usage"`
}

type anthropicBlockOut struct {
	Type  string          `json:"type"`
	Text  *string         `json:"text,omitempty"`
	ID    string          `json:"id,omitempty"`
	Name  string          `json:"name,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`
}

type anthropicUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// anthropicReply is a generated answer with the tool call the rule adds.
type anthropicReply struct {
	gen  generation
	tool string // the tool called, or ""
}

func (a anthropicReply) stopReason() string {
	switch {
	case a.tool != "":
		return "tool_use"
	case a.gen.finish == "length":
		return "max_tokens"
	}
	return "end_turn"
}

// toolInput is the input of every mock tool call: the mock cannot know the
// tool's schema, and an empty object is what a tool without parameters gets.
var toolInput = json.RawMessage(`{}`)

// anthropicAuthed enforces Options.APIKey the way Anthropic does: the key in
// x-api-key.
func (s *server) anthropicAuthed(next http.Handler) http.Handler {
	if s.opts.APIKey == "" {
		return next
	}
	want := []byte(s.opts.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("x-api-key")), want) != 1 {
			writeAnthropicError(w, &apiError{Status: http.StatusUnauthorized, Message: "invalid x-api-key"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *server) messages(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	switch v := r.Header.Get("anthropic-version"); {
	case v == "":
		writeAnthropicError(w, invalid("anthropic-version: header is required"))
		return
	case !anthropicVersions[v]:
		writeAnthropicError(w, invalid("anthropic-version: %q is not a valid version", v))
		return
	}
	var req messagesRequest
	if e := decodeBody(w, r, &req); e != nil {
		if e.Status == http.StatusBadRequest && e.Param == "" {
			e.Message = "There was an error parsing the body of your request: it must be a JSON object."
		}
		writeAnthropicError(w, e)
		return
	}
	reply, e := req.generate()
	if e != nil {
		writeAnthropicError(w, e)
		return
	}
	id := newID("msg_mock")
	if req.Stream {
		streamFrames(w, r, "text/event-stream; charset=utf-8", delay, anthropicEvents(id, req.Model, reply), nil)
		return
	}
	if !sleep(r.Context(), delay) {
		return
	}
	text := reply.gen.text()
	content := []anthropicBlockOut{{Type: "text", Text: &text}}
	if reply.tool != "" {
		content = append(content, anthropicBlockOut{Type: "tool_use", ID: newID("toolu_mock"), Name: reply.tool, Input: toolInput})
	}
	stop := reply.stopReason()
	writeJSON(w, http.StatusOK, anthropicAnswer{
		ID:         id,
		Type:       "message",
		Role:       "assistant",
		Model:      req.Model,
		Content:    content,
		StopReason: &stop,
		Usage:      anthropicUsage{InputTokens: reply.gen.usage.PromptTokens, OutputTokens: reply.gen.usage.CompletionTokens},
	})
}

// generate validates the request and produces its deterministic answer. The
// system prompt counts as a leading system turn, so a chat request with one
// system message gets the same answer and usage as its Messages translation.
func (req *messagesRequest) generate() (anthropicReply, *apiError) {
	if req.Model == "" {
		return anthropicReply{}, invalid("model: Field required")
	}
	if req.MaxTokens == nil {
		return anthropicReply{}, invalid("max_tokens: Field required")
	}
	if *req.MaxTokens < 1 {
		return anthropicReply{}, invalid("max_tokens: Input should be greater than or equal to 1")
	}
	if req.Messages == nil {
		return anthropicReply{}, invalid("messages: Field required")
	}
	if len(req.Messages) == 0 {
		return anthropicReply{}, invalid("messages: at least one message is required")
	}
	var turns []turn
	system, ok := anthropicText(req.System)
	if !ok {
		return anthropicReply{}, invalid("system: Input should be a valid string or a list of text blocks")
	}
	if system.text != "" {
		turns = append(turns, turn{role: "system", text: system.text})
	}
	var lastUser anthropicContent
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return anthropicReply{}, invalid("messages.%d.role: Input should be 'user' or 'assistant'", i)
		}
		c, ok := anthropicText(m.Content)
		if !ok || len(m.Content) == 0 || string(m.Content) == "null" {
			return anthropicReply{}, invalid("messages.%d.content: Input should be a valid string or a list of content blocks", i)
		}
		turns = append(turns, turn{role: m.Role, text: c.text})
		if m.Role == "user" {
			lastUser = c
		}
	}
	g := newConversation(turns).answer(*req.MaxTokens)
	reply := anthropicReply{gen: g}
	if callsTool(len(req.Tools) > 0, lastUser.text, lastUser.toolResult, g) {
		reply.tool = req.Tools[0].Name
	}
	return reply, nil
}

// anthropicContent is the text of a message's content: its text blocks and
// tool results joined by newlines (images and other blocks are ignored).
type anthropicContent struct {
	text       string
	toolResult bool
}

// anthropicText reads content that is a string, null or a list of blocks;
// ok is false for anything else.
func anthropicText(raw json.RawMessage) (c anthropicContent, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return c, true
	}
	if json.Unmarshal(raw, &c.text) == nil {
		return c, true
	}
	var blocks []anthropicBlock
	if json.Unmarshal(raw, &blocks) != nil {
		return c, false
	}
	var texts []string
	for _, b := range blocks {
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "tool_result":
			c.toolResult = true
			if inner, ok := anthropicText(b.Content); ok && inner.text != "" {
				texts = append(texts, inner.text)
			}
		}
	}
	c.text = strings.Join(texts, "\n")
	return c, true
}

// anthropicEvent is one event of a Messages stream; its fields are in the
// order Anthropic sends them, type first.
type anthropicEvent struct {
	Type         string             `json:"type"`
	Message      *anthropicAnswer   `json:"message,omitempty"`
	Index        *int               `json:"index,omitempty"`
	ContentBlock *anthropicBlockOut `json:"content_block,omitempty"`
	Delta        any                `json:"delta,omitempty"`
	Usage        *struct {
		OutputTokens int `json:"output_tokens"`
	} `json:"usage,omitempty"`
}

type textDelta struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type inputJSONDelta struct {
	Type        string `json:"type"`
	PartialJSON string `json:"partial_json"`
}

type messageDelta struct {
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"` // always null
}

// anthropicEvents lays out a streamed answer as Anthropic does: message_start,
// the text block (opened, a ping, one text_delta per word, closed), the tool
// call's block when the rule fires (input_json_delta fragments), then
// message_delta with the stop reason and cumulative output tokens, and
// message_stop.
func anthropicEvents(id, model string, reply anthropicReply) [][]byte {
	var frames [][]byte
	add := func(ev anthropicEvent) {
		data, _ := json.Marshal(ev) // plain structs cannot fail to marshal
		frames = append(frames, fmt.Appendf(nil, "event: %s\ndata: %s\n\n", ev.Type, data))
	}
	block := func(i int) *int { return &i }
	empty := ""
	add(anthropicEvent{Type: "message_start", Message: &anthropicAnswer{
		ID:      id,
		Type:    "message",
		Role:    "assistant",
		Model:   model,
		Content: []anthropicBlockOut{},
		// Anthropic counts the first output token at once.
		Usage: anthropicUsage{InputTokens: reply.gen.usage.PromptTokens, OutputTokens: 1},
	}})
	add(anthropicEvent{Type: "content_block_start", Index: block(0), ContentBlock: &anthropicBlockOut{Type: "text", Text: &empty}})
	add(anthropicEvent{Type: "ping"})
	for i, word := range reply.gen.words {
		if i > 0 {
			word = " " + word
		}
		add(anthropicEvent{Type: "content_block_delta", Index: block(0), Delta: textDelta{Type: "text_delta", Text: word}})
	}
	add(anthropicEvent{Type: "content_block_stop", Index: block(0)})
	if reply.tool != "" {
		add(anthropicEvent{Type: "content_block_start", Index: block(1), ContentBlock: &anthropicBlockOut{
			Type: "tool_use", ID: newID("toolu_mock"), Name: reply.tool, Input: toolInput,
		}})
		// Anthropic opens a tool's input with an empty fragment.
		for _, fragment := range []string{"", string(toolInput)} {
			add(anthropicEvent{Type: "content_block_delta", Index: block(1), Delta: inputJSONDelta{Type: "input_json_delta", PartialJSON: fragment}})
		}
		add(anthropicEvent{Type: "content_block_stop", Index: block(1)})
	}
	final := anthropicEvent{Type: "message_delta", Delta: messageDelta{StopReason: reply.stopReason()}}
	final.Usage = &struct {
		OutputTokens int `json:"output_tokens"`
	}{reply.gen.usage.CompletionTokens}
	add(final)
	add(anthropicEvent{Type: "message_stop"})
	return frames
}

// writeAnthropicError answers in Anthropic's error envelope, the error type
// following the status as Anthropic documents it.
func writeAnthropicError(w http.ResponseWriter, e *apiError) {
	type detail struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
	writeJSON(w, e.Status, struct {
		Type  string `json:"type"`
		Error detail `json:"error"`
	}{"error", detail{anthropicErrorType(e.Status), e.Message}})
}

func anthropicErrorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}
