package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate/gateway/openai"
)

// now is the clock answers are stamped with; tests fix it.
var now = time.Now

// messageAnswer is a whole Messages answer.
type messageAnswer struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Content    []answerBlock   `json:"content"`
	StopReason string          `json:"stop_reason"`
	Usage      messagesUsage   `json:"usage"`
	Error      *anthropicError `json:"error"`
}

type answerBlock struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

type messagesUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

type anthropicError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// completion is an OpenAI chat.completion.
type completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   usage              `json:"usage"`
}

type completionChoice struct {
	Index        int           `json:"index"`
	Message      answerMessage `json:"message"`
	Logprobs     *struct{}     `json:"logprobs"` // always null
	FinishReason string        `json:"finish_reason"`
}

type answerMessage struct {
	Role      string     `json:"role"`
	Content   *string    `json:"content"`
	Refusal   *string    `json:"refusal"` // always null
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// usage is OpenAI's usage object; cached_tokens tells callers how much of
// the prompt was read from Anthropic's cache.
type usage struct {
	PromptTokens        int64          `json:"prompt_tokens"`
	CompletionTokens    int64          `json:"completion_tokens"`
	TotalTokens         int64          `json:"total_tokens"`
	PromptTokensDetails *promptDetails `json:"prompt_tokens_details,omitempty"`
}

type promptDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// openAIUsage counts cache reads and writes as prompt tokens: Anthropic
// reports them apart from input_tokens, and they are part of the prompt.
func (u messagesUsage) openAIUsage() openai.Usage {
	prompt := u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	return openai.Usage{PromptTokens: prompt, CompletionTokens: u.OutputTokens, TotalTokens: prompt + u.OutputTokens}
}

func (u messagesUsage) wire() usage {
	o := u.openAIUsage()
	out := usage{PromptTokens: o.PromptTokens, CompletionTokens: o.CompletionTokens, TotalTokens: o.TotalTokens}
	if u.CacheReadInputTokens > 0 {
		out.PromptTokensDetails = &promptDetails{CachedTokens: u.CacheReadInputTokens}
	}
	return out
}

// finishReason maps a stop_reason. pause_turn (a server tool paused the
// turn) ends the answer as far as the caller can tell.
func finishReason(stopReason string) string {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// ChatAnswer translates a whole Messages answer into an OpenAI
// chat.completion body for model, and returns its usage.
func ChatAnswer(body []byte, model string) ([]byte, openai.Usage, error) {
	var in messageAnswer
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, openai.Usage{}, fmt.Errorf("read messages answer: %w", err)
	}
	if in.Type == "error" && in.Error != nil {
		return nil, openai.Usage{}, fmt.Errorf("messages answer is an error: %s: %s", in.Error.Type, in.Error.Message)
	}
	if in.Type != "message" {
		return nil, openai.Usage{}, fmt.Errorf("read messages answer: type %q is not a message", in.Type)
	}
	msg := answerMessage{Role: "assistant"}
	var text strings.Builder
	for _, b := range in.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			call, err := toolCallOf(b)
			if err != nil {
				return nil, openai.Usage{}, err
			}
			msg.ToolCalls = append(msg.ToolCalls, call)
		}
	}
	if content := text.String(); content != "" || len(msg.ToolCalls) == 0 {
		msg.Content = &content
	}
	out := completion{
		ID:      "chatcmpl-" + in.ID,
		Object:  "chat.completion",
		Created: now().Unix(),
		Model:   model,
		Choices: []completionChoice{{Message: msg, FinishReason: finishReason(in.StopReason)}},
		Usage:   in.Usage.wire(),
	}
	payload, err := marshal(out)
	if err != nil {
		return nil, openai.Usage{}, fmt.Errorf("encode chat completion: %w", err)
	}
	return payload, in.Usage.openAIUsage(), nil
}

func toolCallOf(b answerBlock) (toolCall, error) {
	call := toolCall{ID: b.ID, Type: "function"}
	call.Function.Name = b.Name
	call.Function.Arguments = "{}"
	if len(b.Input) > 0 && string(b.Input) != "null" {
		var args bytes.Buffer
		if err := json.Compact(&args, b.Input); err != nil {
			return toolCall{}, fmt.Errorf("read tool_use %s input: %w", b.ID, err)
		}
		call.Function.Arguments = args.String()
	}
	return call, nil
}

// ErrorMessage pulls the message out of an Anthropic error body, or returns
// the start of the body when it is not one.
func ErrorMessage(body []byte) string {
	var v struct {
		Error anthropicError `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err == nil && v.Error.Message != "" {
		return v.Error.Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}
