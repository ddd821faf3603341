package bedrock

import (
	"bytes"
	"encoding/json"
	"fmt"

	"tollgate/gateway/openai"
)

// The Converse answer, as far as OpenAI's format can carry it: reasoning,
// citations and guardrail traces have no place there and are dropped.
type converseResponse struct {
	Output struct {
		Message *struct {
			Content []struct {
				Text    *string `json:"text"`
				ToolUse *struct {
					ToolUseID string          `json:"toolUseId"`
					Name      string          `json:"name"`
					Input     json.RawMessage `json:"input"`
				} `json:"toolUse"`
			} `json:"content"`
		} `json:"message"`
	} `json:"output"`
	StopReason string      `json:"stopReason"`
	Usage      *tokenUsage `json:"usage"`
}

type tokenUsage struct {
	InputTokens           int64 `json:"inputTokens"`
	OutputTokens          int64 `json:"outputTokens"`
	CacheReadInputTokens  int64 `json:"cacheReadInputTokens"`
	CacheWriteInputTokens int64 `json:"cacheWriteInputTokens"`
}

// usage counts cache reads and writes as prompt tokens: Bedrock reports
// them apart from inputTokens, OpenAI inside prompt_tokens.
func (u *tokenUsage) usage() openai.Usage {
	if u == nil {
		return openai.Usage{}
	}
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheWriteInputTokens
	return openai.Usage{PromptTokens: prompt, CompletionTokens: u.OutputTokens, TotalTokens: prompt + u.OutputTokens}
}

// usageJSON is OpenAI's usage object, with the cached share of the prompt.
type usageJSON struct {
	openai.Usage
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
}

func (u *tokenUsage) openAIJSON() usageJSON {
	out := usageJSON{Usage: u.usage()}
	if u != nil && u.CacheReadInputTokens > 0 {
		out.PromptTokensDetails = &struct {
			CachedTokens int64 `json:"cached_tokens"`
		}{u.CacheReadInputTokens}
	}
	return out
}

// finishReason maps Converse's stopReason onto OpenAI's finish_reason.
func finishReason(stopReason string) string {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "content_filtered", "guardrail_intervened":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, and anything newer
}

type chatCompletion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   usageJSON          `json:"usage"`
}

type completionChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	FinishReason string           `json:"finish_reason"`
}

type assistantMessage struct {
	Role      string         `json:"role"`
	Content   *string        `json:"content"`
	ToolCalls []toolCallJSON `json:"tool_calls,omitempty"`
}

type toolCallJSON struct {
	Index    *int   `json:"index,omitempty"` // in stream deltas only
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// ChatAnswer translates a Converse answer into an OpenAI chat.completion,
// and returns the usage it reports.
func ChatAnswer(body []byte, model string) ([]byte, openai.Usage, error) {
	var in converseResponse
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, openai.Usage{}, fmt.Errorf("bedrock: read Converse answer: %w", err)
	}
	if in.Output.Message == nil {
		return nil, openai.Usage{}, fmt.Errorf("bedrock: Converse answer has no output message: %s", ErrorMessage(body))
	}
	msg := assistantMessage{Role: "assistant"}
	var text bytes.Buffer
	hasText := false
	for _, b := range in.Output.Message.Content {
		switch {
		case b.Text != nil:
			text.WriteString(*b.Text)
			hasText = true
		case b.ToolUse != nil:
			var call toolCallJSON
			call.ID, call.Type = b.ToolUse.ToolUseID, "function"
			call.Function.Name = b.ToolUse.Name
			call.Function.Arguments = "{}"
			if input := bytes.TrimSpace(b.ToolUse.Input); len(input) > 0 && string(input) != "null" {
				var args bytes.Buffer
				if err := json.Compact(&args, input); err != nil {
					return nil, openai.Usage{}, fmt.Errorf("bedrock: tool input of %s: %w", call.ID, err)
				}
				call.Function.Arguments = args.String()
			}
			msg.ToolCalls = append(msg.ToolCalls, call)
		}
	}
	if hasText {
		s := text.String()
		msg.Content = &s
	}
	out := chatCompletion{
		ID:      newID(),
		Object:  "chat.completion",
		Created: now().Unix(),
		Model:   model,
		Choices: []completionChoice{{Index: 0, Message: msg, FinishReason: finishReason(in.StopReason)}},
		Usage:   in.Usage.openAIJSON(),
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, openai.Usage{}, fmt.Errorf("bedrock: encode chat completion: %w", err)
	}
	return b, in.Usage.usage(), nil
}
