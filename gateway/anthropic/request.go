// Package anthropic speaks Anthropic's Messages API for callers that speak
// OpenAI chat completions: it translates the request on the way out, and the
// whole answer or its event stream on the way back.
//
// What the Messages API cannot express is either refused with a
// *RequestError (n > 1, content parts other than text and images) or
// approximated:
//   - JSON mode (response_format json_object or json_schema) becomes an
//     instruction appended to the system prompt. Claude follows it well, but
//     unlike OpenAI's JSON mode nothing guarantees the answer parses.
//   - temperature is passed as is: Anthropic's range is 0–1, not OpenAI's
//     0–2, and Anthropic refuses values above 1 with its own message.
//   - Fields without an equivalent (logprobs, seed, penalties, logit_bias,
//     message names …) are dropped, and so are thinking blocks in answers.
package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"tollgate/gateway/openai"
)

const (
	defaultBaseURL = "https://api.anthropic.com"
	defaultVersion = "2023-06-01"
	// Anthropic requires max_tokens and OpenAI callers rarely send it.
	defaultMaxTokens = 4096
)

// RequestError is a chat request that cannot be sent to Anthropic as it
// is; the caller answers 400 and names Param.
type RequestError struct {
	Param   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// NewChatRequest translates an OpenAI chat completions request body (a JSON
// object whose model is already the upstream model) into a POST to
// {base}/v1/messages. A translation problem is a *RequestError.
func NewChatRequest(ctx context.Context, t openai.Target, body []byte, stream bool) (*http.Request, error) {
	var in chatRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, bodyError(err)
	}
	if in.Model == "" {
		in.Model = t.Model
	}
	out, err := translateRequest(&in, stream)
	if err != nil {
		return nil, err
	}
	payload, err := marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode messages request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, messagesURL(t.BaseURL), bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("build messages request: %w", err)
	}
	version := t.Config["api_version"]
	if version == "" {
		version = defaultVersion
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Anthropic-Version", version)
	if t.APIKey != "" {
		req.Header.Set("X-Api-Key", t.APIKey)
	}
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "tollgate")
	return req, nil
}

// messagesURL accepts an api_base with or without /v1, since admins copy
// either form from Anthropic's docs and SDKs.
func messagesURL(base string) string {
	if base == "" {
		base = defaultBaseURL
	}
	base = strings.TrimSuffix(strings.TrimRight(base, "/"), "/v1")
	return base + "/v1/messages"
}

func bodyError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return &RequestError{Param: typeErr.Field,
			Message: fmt.Sprintf("%s has the wrong type: a JSON %s is not allowed there.", typeErr.Field, typeErr.Value)}
	}
	return &RequestError{Message: "The request body is not a valid chat completions request: " + err.Error()}
}

// chatRequest is the part of an OpenAI chat completions request that has a
// Messages equivalent.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Stop                json.RawMessage `json:"stop"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	ResponseFormat      *struct {
		Type       string `json:"type"`
		JSONSchema struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	N    *int   `json:"n"`
	User string `json:"user"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []toolCall      `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// messagesRequest is the body of POST /v1/messages.
type messagesRequest struct {
	Model         string      `json:"model"`
	MaxTokens     int64       `json:"max_tokens"`
	System        string      `json:"system,omitempty"`
	Messages      []message   `json:"messages"`
	Temperature   *float64    `json:"temperature,omitempty"`
	TopP          *float64    `json:"top_p,omitempty"`
	StopSequences []string    `json:"stop_sequences,omitempty"`
	Tools         []tool      `json:"tools,omitempty"`
	ToolChoice    *toolChoice `json:"tool_choice,omitempty"`
	Metadata      *metadata   `json:"metadata,omitempty"`
	Stream        bool        `json:"stream,omitempty"`
}

type message struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// block is any content block of a request message; each type uses its own
// few fields.
type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *imageSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   any             `json:"content,omitempty"` // a tool result: string or []block
}

type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type metadata struct {
	UserID string `json:"user_id"`
}

// jsonInstruction stands in for OpenAI's JSON mode, which Messages lacks.
const jsonInstruction = "Answer with a single JSON object and nothing else: no prose before or after it, no code fences."

// emptySchema is the input_schema of a function declared without parameters.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

func translateRequest(in *chatRequest, stream bool) (*messagesRequest, error) {
	if in.N != nil && *in.N > 1 {
		return nil, &RequestError{Param: "n", Message: "n must be 1 for Anthropic models, which give one choice per request; send separate requests instead."}
	}
	out := &messagesRequest{Model: in.Model, MaxTokens: defaultMaxTokens, Temperature: in.Temperature, TopP: in.TopP, Stream: stream}
	switch {
	case in.MaxCompletionTokens != nil:
		out.MaxTokens = *in.MaxCompletionTokens
	case in.MaxTokens != nil:
		out.MaxTokens = *in.MaxTokens
	}

	var system []string
	toolHistory := false
	for i, m := range in.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		var blocks []block
		role := m.Role
		switch m.Role {
		case "system", "developer":
			parts, err := contentParts(m.Content, param)
			if err != nil {
				return nil, err
			}
			for _, p := range parts {
				if p.Type != "text" {
					return nil, &RequestError{Param: param + ".content", Message: fmt.Sprintf("%s.content: a %s message may hold only text parts, not %q.", param, m.Role, p.Type)}
				}
				if p.Text != "" {
					system = append(system, p.Text)
				}
			}
			continue
		case "user":
			parts, err := contentParts(m.Content, param)
			if err != nil {
				return nil, err
			}
			if blocks, err = partBlocks(parts, param); err != nil {
				return nil, err
			}
		case "assistant":
			parts, err := contentParts(m.Content, param)
			if err != nil {
				return nil, err
			}
			for _, p := range parts {
				// An assistant's refusal parts are not sent back: Messages has no place for them.
				if p.Type == "text" && p.Text != "" {
					blocks = append(blocks, block{Type: "text", Text: p.Text})
				}
			}
			for j, call := range m.ToolCalls {
				input, err := toolInput(call.Function.Arguments, fmt.Sprintf("%s.tool_calls[%d].function.arguments", param, j))
				if err != nil {
					return nil, err
				}
				blocks = append(blocks, block{Type: "tool_use", ID: call.ID, Name: call.Function.Name, Input: input})
				toolHistory = true
			}
		case "tool":
			result, err := toolResult(m, param)
			if err != nil {
				return nil, err
			}
			role, blocks = "user", []block{result}
			toolHistory = true
		default:
			return nil, &RequestError{Param: param + ".role", Message: fmt.Sprintf("%s.role %q is not supported for Anthropic models: use system, developer, user, assistant or tool.", param, m.Role)}
		}
		out.Messages = appendMessage(out.Messages, role, blocks)
	}
	for i := range out.Messages {
		if out.Messages[i].Role == "user" {
			toolResultsFirst(out.Messages[i].Content)
		}
	}

	if rf := in.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_object":
			system = append(system, jsonInstruction)
		case "json_schema":
			schema := rf.JSONSchema.Schema
			if len(schema) == 0 || string(schema) == "null" {
				system = append(system, jsonInstruction)
			} else {
				var compact bytes.Buffer
				if err := json.Compact(&compact, schema); err != nil {
					return nil, &RequestError{Param: "response_format.json_schema.schema", Message: "response_format.json_schema.schema must be a JSON schema object."}
				}
				system = append(system, jsonInstruction+" The object must match this JSON schema: "+compact.String())
			}
		}
	}
	out.System = strings.Join(system, "\n\n")

	stops, err := stopSequences(in.Stop)
	if err != nil {
		return nil, err
	}
	out.StopSequences = stops

	if err := translateTools(in, out, toolHistory); err != nil {
		return nil, err
	}
	if in.User != "" {
		out.Metadata = &metadata{UserID: in.User}
	}
	return out, nil
}

// contentParts reads a message's content: a string, an array of parts, or
// nothing.
func contentParts(raw json.RawMessage, param string) ([]contentPart, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &RequestError{Param: param + ".content", Message: param + ".content is not a valid JSON string."}
		}
		return []contentPart{{Type: "text", Text: s}}, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, &RequestError{Param: param + ".content", Message: param + ".content must be a string or an array of content parts."}
	}
	return parts, nil
}

// partBlocks turns a user message's parts into text and image blocks.
func partBlocks(parts []contentPart, param string) ([]block, error) {
	var blocks []block
	for j, p := range parts {
		switch p.Type {
		case "text":
			// Anthropic refuses empty text blocks.
			if p.Text != "" {
				blocks = append(blocks, block{Type: "text", Text: p.Text})
			}
		case "image_url":
			src, err := imageSourceOf(p.ImageURL.URL, fmt.Sprintf("%s.content[%d].image_url.url", param, j))
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, block{Type: "image", Source: src})
		default:
			return nil, &RequestError{Param: fmt.Sprintf("%s.content[%d].type", param, j),
				Message: fmt.Sprintf("%s.content[%d]: content parts of type %q are not supported for Anthropic models; send text or image_url parts.", param, j, p.Type)}
		}
	}
	return blocks, nil
}

// imageSourceOf maps an image URL: a base64 data URL is sent inline, an
// http(s) URL is fetched by Anthropic.
func imageSourceOf(url, param string) (*imageSource, error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, found := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !found || !isBase64 || mediaType == "" || data == "" {
			return nil, &RequestError{Param: param, Message: param + " must be a base64 data URL such as data:image/png;base64,… or an https URL."}
		}
		return &imageSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return &imageSource{Type: "url", URL: url}, nil
	}
	return nil, &RequestError{Param: param, Message: param + " must be a base64 data URL such as data:image/png;base64,… or an https URL."}
}

// toolInput parses a tool call's arguments: Anthropic wants the object, not
// its JSON text.
func toolInput(arguments, param string) (json.RawMessage, error) {
	if strings.TrimSpace(arguments) == "" {
		return json.RawMessage("{}"), nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(arguments)); err != nil || compact.Bytes()[0] != '{' {
		return nil, &RequestError{Param: param, Message: param + " must be a JSON object in a string, as the model produced it."}
	}
	return compact.Bytes(), nil
}

func toolResult(m chatMessage, param string) (block, error) {
	if m.ToolCallID == "" {
		return block{}, &RequestError{Param: param + ".tool_call_id", Message: param + ".tool_call_id is required: the id of the tool call this message answers."}
	}
	result := block{Type: "tool_result", ToolUseID: m.ToolCallID}
	raw := bytes.TrimSpace(m.Content)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return block{}, &RequestError{Param: param + ".content", Message: param + ".content is not a valid JSON string."}
		}
		if s != "" {
			result.Content = s
		}
		return result, nil
	}
	parts, err := contentParts(raw, param)
	if err != nil {
		return block{}, err
	}
	blocks, err := partBlocks(parts, param)
	if err != nil {
		return block{}, err
	}
	if len(blocks) > 0 {
		result.Content = blocks
	}
	return result, nil
}

// appendMessage adds blocks as a turn of role, merged into the previous
// turn when it has the same role: Messages requires user and assistant to
// alternate.
func appendMessage(msgs []message, role string, blocks []block) []message {
	if len(blocks) == 0 {
		return msgs
	}
	if n := len(msgs); n > 0 && msgs[n-1].Role == role {
		msgs[n-1].Content = append(msgs[n-1].Content, blocks...)
		return msgs
	}
	return append(msgs, message{Role: role, Content: blocks})
}

// toolResultsFirst moves tool results to the front of a user turn, keeping
// their order: Anthropic wants them right after the assistant's tool uses.
func toolResultsFirst(blocks []block) {
	n := 0
	for i := range blocks {
		if blocks[i].Type == "tool_result" {
			b := blocks[i]
			copy(blocks[n+1:i+1], blocks[n:i])
			blocks[n] = b
			n++
		}
	}
}

func stopSequences(raw json.RawMessage) ([]string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &RequestError{Param: "stop", Message: "stop must be a string or an array of strings."}
		}
		list = []string{s}
	} else if err := json.Unmarshal(raw, &list); err != nil {
		return nil, &RequestError{Param: "stop", Message: "stop must be a string or an array of strings."}
	}
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// translateTools maps tools, tool_choice and parallel_tool_calls.
// tool_choice "none" drops the tools, except when the conversation already
// holds tool calls: Anthropic refuses those without tool definitions, so
// the tools stay and the choice becomes {"type":"none"}.
func translateTools(in *chatRequest, out *messagesRequest, toolHistory bool) error {
	for i, t := range in.Tools {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Type != "" && t.Type != "function" {
			return &RequestError{Param: param + ".type", Message: fmt.Sprintf("%s.type %q is not supported for Anthropic models; declare tools of type function.", param, t.Type)}
		}
		if t.Function.Name == "" {
			return &RequestError{Param: param + ".function.name", Message: param + ".function.name is required."}
		}
		schema := t.Function.Parameters
		if len(bytes.TrimSpace(schema)) == 0 || string(schema) == "null" {
			schema = emptySchema
		}
		out.Tools = append(out.Tools, tool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema})
	}
	choice, err := toolChoiceOf(in.ToolChoice)
	if err != nil {
		return err
	}
	if len(out.Tools) == 0 {
		return nil
	}
	if choice != nil && choice.Type == "none" {
		if !toolHistory {
			out.Tools = nil
			return nil
		}
		out.ToolChoice = choice
		return nil
	}
	if in.ParallelToolCalls != nil && !*in.ParallelToolCalls {
		if choice == nil {
			choice = &toolChoice{Type: "auto"}
		}
		choice.DisableParallelToolUse = true
	}
	out.ToolChoice = choice
	return nil
}

func toolChoiceOf(raw json.RawMessage) (*toolChoice, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	bad := &RequestError{Param: "tool_choice", Message: `tool_choice must be "auto", "none", "required" or {"type":"function","function":{"name":…}}.`}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, bad
		}
		switch s {
		case "auto":
			return &toolChoice{Type: "auto"}, nil
		case "none":
			return &toolChoice{Type: "none"}, nil
		case "required":
			return &toolChoice{Type: "any"}, nil
		}
		return nil, bad
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &named) != nil || named.Type != "function" || named.Function.Name == "" {
		return nil, bad
	}
	return &toolChoice{Type: "tool", Name: named.Function.Name}, nil
}

// marshal encodes without HTML escaping, as OpenAI and Anthropic do.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
