// Package tokens counts the input tokens of an OpenAI-style request offline,
// with OpenAI's BPE vocabularies, so that limits and budgets can be checked
// before the provider is called. Counts follow OpenAI's published rule for
// chat messages; for other vendors' models they are an approximation.
//
// The vocabularies are the ones tiktoken-go-loader embeds, so nothing is
// downloaded. Text is cut into pieces and merged by this package rather than
// by tiktoken-go, which takes more than ten times as long; the tests hold
// every count to tiktoken-go's. The first count for an encoding reads its
// vocabulary, which takes a few hundred milliseconds: a server can call Text
// once at start-up to pay for it before traffic arrives.
package tokens

import (
	"bytes"
	"encoding/json"
)

// Chat formatting overhead, from OpenAI's "How to count tokens with
// tiktoken": each message is wrapped as <|start|>{role}\n{content}<|end|>\n,
// a name costs one more token, and the reply is primed with
// <|start|>assistant<|message|>.
const (
	tokensPerMessage = 3
	tokensPerName    = 1
	tokensPerReply   = 3
)

// tokensPerImage is what an image part costs at low detail. At high or auto
// detail the cost depends on the image's size in pixels, which the gateway
// cannot know without fetching and decoding the image, so this is a floor.
const tokensPerImage = 85

// Text counts the tokens of plain text for a model.
func Text(model, s string) int64 {
	enc := encodingFor(model)
	if err := enc.load(); err != nil {
		return estimate(len(s))
	}
	return enc.text(s)
}

// Input counts the input tokens of one OpenAI-style request body field for
// a model. field is "messages" (chat), "prompt" (completions) or "input"
// (embeddings), and raw is that field's JSON. JSON that is malformed, or not
// of the shape the field takes, counts as one token per four bytes.
func Input(model, field string, raw json.RawMessage) int64 {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0
	}
	enc := encodingFor(model)
	if err := enc.load(); err != nil {
		return estimate(len(raw))
	}
	var n int64
	var ok bool
	if field == "messages" {
		n, ok = enc.messages(raw)
	} else {
		n, ok = enc.prompt(raw)
	}
	if !ok {
		return estimate(len(raw))
	}
	return n
}

// InputWithTools is Input plus the tokens of the tools (or legacy functions)
// array's JSON text. The JSON is compacted first so that a client's
// indentation does not count: the provider renders tool definitions in its
// own format, which is closer to compact JSON than to pretty-printed.
func InputWithTools(model, field string, raw, tools json.RawMessage) int64 {
	n := Input(model, field, raw)
	tools = bytes.TrimSpace(tools)
	if len(tools) == 0 || string(tools) == "null" {
		return n
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, tools); err != nil {
		return n + estimate(len(tools))
	}
	return n + Text(model, compact.String())
}

// estimate is the fallback when the JSON cannot be read: about four bytes
// per token for English, rounded up so that anything non-empty counts.
func estimate(size int) int64 {
	return int64(size+3) / 4
}

func (e *encoding) text(s string) int64 {
	return int64(e.count(s))
}

type message struct {
	Role string `json:"role"`
	// Content is a string, null or an array of parts. Decoding it as any
	// reads a string once; a json.RawMessage would be copied, then
	// validated and read again, which took about a quarter of Input's time.
	Content      any           `json:"content"`
	Name         string        `json:"name"`
	ToolCalls    []toolCall    `json:"tool_calls"`
	ToolCallID   string        `json:"tool_call_id"`
	FunctionCall *functionCall `json:"function_call"` // before tool_calls
}

type toolCall struct {
	Function functionCall `json:"function"`
}

type functionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// messages counts a chat request's messages array.
func (e *encoding) messages(raw json.RawMessage) (int64, bool) {
	var msgs []message
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return 0, false
	}
	n := int64(tokensPerReply)
	for _, m := range msgs {
		n += tokensPerMessage + e.text(m.Role) + e.text(m.ToolCallID)
		if m.Name != "" {
			n += tokensPerName + e.text(m.Name)
		}
		c, ok := e.content(m.Content)
		if !ok {
			return 0, false
		}
		n += c
		for _, tc := range m.ToolCalls {
			n += e.text(tc.Function.Name) + e.text(tc.Function.Arguments)
		}
		if fc := m.FunctionCall; fc != nil {
			n += e.text(fc.Name) + e.text(fc.Arguments)
		}
	}
	return n, true
}

// content counts a message's content: a string, null, or an array of parts.
// Text and refusal parts count their text, image parts count
// tokensPerImage, and audio or file parts count nothing because their cost
// is only known once they are decoded.
func (e *encoding) content(c any) (int64, bool) {
	switch c := c.(type) {
	case nil:
		return 0, true
	case string:
		return e.text(c), true
	case []any:
		var n int64
		for _, p := range c {
			part, ok := p.(map[string]any)
			if !ok {
				return 0, false
			}
			switch part["type"] {
			case "text":
				text, _ := part["text"].(string)
				n += e.text(text)
			case "refusal":
				refusal, _ := part["refusal"].(string)
				n += e.text(refusal)
			case "image_url":
				n += tokensPerImage
			}
		}
		return n, true
	}
	return 0, false
}

// prompt counts a completions prompt or an embeddings input: a string, an
// array of strings, an array of token ids, or an array of arrays of token
// ids. Token ids count one each.
func (e *encoding) prompt(raw json.RawMessage) (int64, bool) {
	switch first, inner := raw[0], firstElement(raw); {
	case first == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false
		}
		return e.text(s), true
	case first != '[':
		return 0, false
	case inner == '"':
		var texts []string
		if err := json.Unmarshal(raw, &texts); err != nil {
			return 0, false
		}
		var n int64
		for _, s := range texts {
			n += e.text(s)
		}
		return n, true
	case inner == '[':
		var batches [][]int64
		if err := json.Unmarshal(raw, &batches); err != nil {
			return 0, false
		}
		var n int64
		for _, ids := range batches {
			n += int64(len(ids))
		}
		return n, true
	default:
		var ids []int64
		if err := json.Unmarshal(raw, &ids); err != nil {
			return 0, false
		}
		return int64(len(ids)), true
	}
}

// firstElement returns the first byte of an array's first element, or 0.
func firstElement(raw json.RawMessage) byte {
	if raw[0] != '[' {
		return 0
	}
	rest := bytes.TrimSpace(raw[1:])
	if len(rest) == 0 {
		return 0
	}
	return rest[0]
}
