package bedrock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// The OpenAI chat request, as far as Converse can express it. Fields not
// listed here (user, seed, logprobs, penalties …) have no Converse
// equivalent and are dropped.
type chatRequest struct {
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Stop                json.RawMessage `json:"stop"`
	N                   *int            `json:"n"`
	Tools               []chatTool      `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []chatToolCall  `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type chatPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// The Converse request. Field order is the order of the JSON sent.
type converseRequest struct {
	Messages        []converseMessage `json:"messages"`
	System          []systemBlock     `json:"system,omitempty"`
	InferenceConfig *inferenceConfig  `json:"inferenceConfig,omitempty"`
	ToolConfig      *toolConfig       `json:"toolConfig,omitempty"`
}

type converseMessage struct {
	Role    string         `json:"role"`
	Content []contentBlock `json:"content"`
}

type systemBlock struct {
	Text string `json:"text"`
}

// contentBlock is a Converse union: exactly one member is set.
type contentBlock struct {
	Text       *string     `json:"text,omitempty"`
	Image      *imageBlock `json:"image,omitempty"`
	ToolUse    *toolUse    `json:"toolUse,omitempty"`
	ToolResult *toolResult `json:"toolResult,omitempty"`
}

type imageBlock struct {
	Format string `json:"format"`
	Source struct {
		Bytes string `json:"bytes"` // base64, as REST-JSON sends blobs
	} `json:"source"`
}

type toolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type toolResult struct {
	ToolUseID string         `json:"toolUseId"`
	Content   []contentBlock `json:"content"`
}

type inferenceConfig struct {
	MaxTokens     *int     `json:"maxTokens,omitempty"`
	Temperature   *float64 `json:"temperature,omitempty"`
	TopP          *float64 `json:"topP,omitempty"`
	StopSequences []string `json:"stopSequences,omitempty"`
}

type toolConfig struct {
	Tools      []toolEntry     `json:"tools"`
	ToolChoice json.RawMessage `json:"toolChoice,omitempty"`
}

type toolEntry struct {
	ToolSpec struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		InputSchema struct {
			JSON json.RawMessage `json:"json"`
		} `json:"inputSchema"`
	} `json:"toolSpec"`
}

// emptySchema stands in for a function declared without parameters:
// Converse requires an input schema.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// converseBody translates an OpenAI chat request body into a Converse one.
func converseBody(body []byte) ([]byte, error) {
	var in chatRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, badRequest("", "the request body is not a valid chat request: %v", err)
	}
	if in.N != nil && *in.N > 1 {
		return nil, badRequest("n", "Bedrock returns one choice per request: n must be 1 or left out")
	}
	out := converseRequest{Messages: []converseMessage{}}
	for i, m := range in.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			texts, err := textParts(param+".content", m.Content)
			if err != nil {
				return nil, err
			}
			for _, t := range texts {
				if t != "" {
					out.System = append(out.System, systemBlock{Text: t})
				}
			}
		case "user":
			blocks, err := userContent(param+".content", m.Content)
			if err != nil {
				return nil, err
			}
			out.add("user", blocks)
		case "assistant":
			blocks, err := assistantContent(param, m)
			if err != nil {
				return nil, err
			}
			out.add("assistant", blocks)
		case "tool":
			if m.ToolCallID == "" {
				return nil, badRequest(param+".tool_call_id", "a tool message needs the tool_call_id of the call it answers")
			}
			texts, err := textParts(param+".content", m.Content)
			if err != nil {
				return nil, err
			}
			result := &toolResult{ToolUseID: m.ToolCallID, Content: []contentBlock{}}
			for _, t := range texts {
				result.Content = append(result.Content, textBlock(t))
			}
			if len(result.Content) == 0 {
				result.Content = append(result.Content, textBlock(""))
			}
			// Converse carries tool results in the user's turn.
			out.add("user", []contentBlock{{ToolResult: result}})
		default:
			return nil, badRequest(param+".role", "role %q is not supported: use system, developer, user, assistant or tool", m.Role)
		}
	}
	cfg, err := in.inferenceConfig()
	if err != nil {
		return nil, err
	}
	out.InferenceConfig = cfg
	if out.ToolConfig, err = in.toolConfig(hasToolBlocks(out.Messages)); err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

// add appends a turn, merging it into the previous one when the role is
// the same: Converse wants user and assistant turns to alternate.
func (r *converseRequest) add(role string, blocks []contentBlock) {
	if len(blocks) == 0 {
		return // Converse refuses empty turns
	}
	if n := len(r.Messages); n > 0 && r.Messages[n-1].Role == role {
		r.Messages[n-1].Content = append(r.Messages[n-1].Content, blocks...)
		return
	}
	r.Messages = append(r.Messages, converseMessage{Role: role, Content: blocks})
}

func textBlock(s string) contentBlock { return contentBlock{Text: &s} }

// parts reads message content: a string, an array of parts, or null.
func parts(param string, raw json.RawMessage) ([]chatPart, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest(param, "content must be a string or an array of content parts")
		}
		return []chatPart{{Type: "text", Text: s}}, nil
	}
	var ps []chatPart
	if err := json.Unmarshal(raw, &ps); err != nil {
		return nil, badRequest(param, "content must be a string or an array of content parts")
	}
	return ps, nil
}

// textParts reads content that may only hold text.
func textParts(param string, raw json.RawMessage) ([]string, error) {
	ps, err := parts(param, raw)
	if err != nil {
		return nil, err
	}
	texts := make([]string, 0, len(ps))
	for j, p := range ps {
		if p.Type != "text" {
			return nil, badRequest(fmt.Sprintf("%s[%d].type", param, j), "only text parts are allowed here, not %q", p.Type)
		}
		texts = append(texts, p.Text)
	}
	return texts, nil
}

func userContent(param string, raw json.RawMessage) ([]contentBlock, error) {
	ps, err := parts(param, raw)
	if err != nil {
		return nil, err
	}
	var blocks []contentBlock
	for j, p := range ps {
		switch p.Type {
		case "text":
			if p.Text != "" {
				blocks = append(blocks, textBlock(p.Text))
			}
		case "image_url":
			pparam := fmt.Sprintf("%s[%d].image_url", param, j)
			if p.ImageURL == nil {
				return nil, badRequest(pparam, "an image_url part needs an image_url object with a url")
			}
			img, err := inlineImage(pparam+".url", p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, contentBlock{Image: img})
		default:
			return nil, badRequest(fmt.Sprintf("%s[%d].type", param, j), "content part type %q is not supported by Bedrock Converse: use text or image_url", p.Type)
		}
	}
	return blocks, nil
}

// inlineImage turns a data: URL into a Converse image block. Converse takes
// image bytes (or S3 locations), never a web URL.
func inlineImage(param, u string) (*imageBlock, error) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return nil, badRequest(param, "Bedrock Converse cannot fetch images from a URL: send the image inline as a data URL (data:image/png;base64,…)")
	}
	mediaType, data, ok := strings.Cut(rest, ";base64,")
	if !ok {
		return nil, badRequest(param, "the data URL must be base64-encoded (data:image/png;base64,…)")
	}
	formats := map[string]string{"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
	format, ok := formats[strings.ToLower(mediaType)]
	if !ok {
		return nil, badRequest(param, "image type %q is not supported by Bedrock: use PNG, JPEG, GIF or WebP", mediaType)
	}
	img := &imageBlock{Format: format}
	img.Source.Bytes = data
	return img, nil
}

func assistantContent(param string, m chatMessage) ([]contentBlock, error) {
	texts, err := textParts(param+".content", m.Content)
	if err != nil {
		return nil, err
	}
	var blocks []contentBlock
	for _, t := range texts {
		if t != "" {
			blocks = append(blocks, textBlock(t))
		}
	}
	for k, call := range m.ToolCalls {
		cparam := fmt.Sprintf("%s.tool_calls[%d]", param, k)
		if call.Type != "" && call.Type != "function" {
			return nil, badRequest(cparam+".type", "only function tool calls are supported, not %q", call.Type)
		}
		if call.ID == "" || call.Function.Name == "" {
			return nil, badRequest(cparam, "a tool call needs an id and a function name")
		}
		input := json.RawMessage(`{}`)
		if args := strings.TrimSpace(call.Function.Arguments); args != "" {
			if !json.Valid([]byte(args)) {
				return nil, badRequest(cparam+".function.arguments", "arguments must be a JSON object")
			}
			input = json.RawMessage(args)
		}
		blocks = append(blocks, contentBlock{ToolUse: &toolUse{ToolUseID: call.ID, Name: call.Function.Name, Input: input}})
	}
	return blocks, nil
}

func (in *chatRequest) inferenceConfig() (*inferenceConfig, error) {
	cfg := inferenceConfig{MaxTokens: in.MaxTokens, Temperature: in.Temperature, TopP: in.TopP}
	if in.MaxCompletionTokens != nil {
		cfg.MaxTokens = in.MaxCompletionTokens
	}
	stop := bytes.TrimSpace(in.Stop)
	switch {
	case len(stop) == 0 || string(stop) == "null":
	case stop[0] == '"':
		var s string
		if err := json.Unmarshal(stop, &s); err != nil {
			return nil, badRequest("stop", "stop must be a string or an array of strings")
		}
		cfg.StopSequences = []string{s}
	default:
		if err := json.Unmarshal(stop, &cfg.StopSequences); err != nil {
			return nil, badRequest("stop", "stop must be a string or an array of strings")
		}
	}
	if cfg.MaxTokens == nil && cfg.Temperature == nil && cfg.TopP == nil && len(cfg.StopSequences) == 0 {
		return nil, nil
	}
	return &cfg, nil
}

// hasToolBlocks reports whether the conversation holds tool calls or
// results: Converse then refuses a request without toolConfig.
func hasToolBlocks(ms []converseMessage) bool {
	for _, m := range ms {
		for _, b := range m.Content {
			if b.ToolUse != nil || b.ToolResult != nil {
				return true
			}
		}
	}
	return false
}

// toolConfig maps tools and tool_choice. Converse has no "none": the tools
// are left out, unless the conversation already holds tool blocks, which
// Converse accepts only with the tools defined; then they are sent with
// no toolChoice.
func (in *chatRequest) toolConfig(toolBlocks bool) (*toolConfig, error) {
	if len(in.Tools) == 0 {
		return nil, nil
	}
	var choice json.RawMessage
	raw := bytes.TrimSpace(in.ToolChoice)
	switch {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, badRequest("tool_choice", "tool_choice is not a valid JSON string")
		}
		switch s {
		case "none":
			if !toolBlocks {
				return nil, nil
			}
		case "auto":
			choice = json.RawMessage(`{"auto":{}}`)
		case "required":
			choice = json.RawMessage(`{"any":{}}`)
		default:
			return nil, badRequest("tool_choice", "tool_choice must be none, auto, required or a function, not %q", s)
		}
	default:
		var named struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if err := json.Unmarshal(raw, &named); err != nil || named.Function.Name == "" {
			return nil, badRequest("tool_choice", `tool_choice must be none, auto, required or {"type": "function", "function": {"name": …}}`)
		}
		choice, _ = json.Marshal(map[string]any{"tool": map[string]string{"name": named.Function.Name}})
	}
	cfg := &toolConfig{ToolChoice: choice}
	for i, t := range in.Tools {
		if t.Type != "" && t.Type != "function" {
			return nil, badRequest(fmt.Sprintf("tools[%d].type", i), "only function tools are supported by Bedrock Converse, not %q", t.Type)
		}
		if t.Function.Name == "" {
			return nil, badRequest(fmt.Sprintf("tools[%d].function.name", i), "a tool needs a function name")
		}
		var e toolEntry
		e.ToolSpec.Name = t.Function.Name
		e.ToolSpec.Description = t.Function.Description
		e.ToolSpec.InputSchema.JSON = t.Function.Parameters
		if p := bytes.TrimSpace(t.Function.Parameters); len(p) == 0 || string(p) == "null" {
			e.ToolSpec.InputSchema.JSON = emptySchema
		}
		cfg.Tools = append(cfg.Tools, e)
	}
	return cfg, nil
}
