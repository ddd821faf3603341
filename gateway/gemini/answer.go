package gemini

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"tollgate/gateway/openai"
)

// The OpenAI chat completion, as the gateway writes it.

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []choiceOut  `json:"choices"`
	Usage   *usageOutput `json:"usage,omitempty"`
}

type choiceOut struct {
	Index        int        `json:"index"`
	Message      messageOut `json:"message"`
	Logprobs     any        `json:"logprobs"`
	FinishReason string     `json:"finish_reason"`
}

type messageOut struct {
	Role      string        `json:"role"`
	Content   *string       `json:"content"`
	Refusal   *string       `json:"refusal"`
	ToolCalls []toolCallOut `json:"tool_calls,omitempty"`
}

type toolCallOut struct {
	Index        *int          `json:"index,omitempty"` // in stream deltas only
	ID           string        `json:"id"`
	Type         string        `json:"type"`
	Function     functionText  `json:"function"`
	ExtraContent *extraContent `json:"extra_content,omitempty"`
}

type usageOutput struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// ChatAnswer translates a generateContent answer into an OpenAI chat
// completion, with one choice per candidate.
func ChatAnswer(body []byte, model string) ([]byte, openai.Usage, error) {
	var gr generateResponse
	if err := json.Unmarshal(body, &gr); err != nil {
		return nil, openai.Usage{}, fmt.Errorf("read the Gemini answer: %w", err)
	}
	if gr.Error != nil {
		return nil, openai.Usage{}, fmt.Errorf("gemini answered with an error: %s", gr.Error.Message)
	}
	if model == "" {
		model = gr.ModelVersion
	}
	out := chatCompletion{
		ID:      completionID(gr.ResponseID),
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   model,
		Choices: []choiceOut{},
	}
	indexes := candidateIndexes(gr.Candidates)
	for i, c := range gr.Candidates {
		msg := messageOut{Role: "assistant"}
		var text strings.Builder
		hasText := false
		if c.Content != nil {
			for _, p := range c.Content.Parts {
				switch {
				case p.FunctionCall != nil:
					msg.ToolCalls = append(msg.ToolCalls, toolCallOf(p, len(msg.ToolCalls)))
				case p.Text != "" && !p.Thought:
					text.WriteString(p.Text)
					hasText = true
				}
			}
		}
		if hasText {
			s := text.String()
			msg.Content = &s
		}
		out.Choices = append(out.Choices, choiceOut{
			Index:        indexes[i],
			Message:      msg,
			FinishReason: finishReason(c.FinishReason, len(msg.ToolCalls) > 0),
		})
	}
	sort.SliceStable(out.Choices, func(a, b int) bool { return out.Choices[a].Index < out.Choices[b].Index })
	if len(out.Choices) == 0 {
		// No candidate: the prompt itself was blocked (promptFeedback), or
		// Gemini had nothing to say.
		reason := "stop"
		if gr.PromptFeedback != nil && gr.PromptFeedback.BlockReason != "" {
			reason = "content_filter"
		}
		out.Choices = append(out.Choices, choiceOut{Message: messageOut{Role: "assistant"}, FinishReason: reason})
	}
	usage, uo := usageOf(gr.UsageMetadata)
	out.Usage = &uo
	b, err := json.Marshal(out)
	return b, usage, err
}

// candidateIndexes gives each candidate its choice index. Gemini omits the
// index when it is 0; an answer in which no candidate has one is taken in
// order.
func candidateIndexes(cs []candidate) []int {
	idx := make([]int, len(cs))
	explicit := false
	for _, c := range cs {
		explicit = explicit || c.Index != nil
	}
	for i, c := range cs {
		switch {
		case c.Index != nil:
			idx[i] = *c.Index
		case !explicit:
			idx[i] = i
		}
	}
	return idx
}

// toolCallOf turns the n-th functionCall part of a candidate into an
// OpenAI tool call. Gemini rarely gives call ids, so the id is made from
// the position unless the part has its own; a tool result finds its call
// by id in the history the client sends back.
func toolCallOf(p part, n int) toolCallOut {
	fc := p.FunctionCall
	id := fc.ID
	if id == "" {
		id = "call_" + strconv.Itoa(n)
	}
	args := "{}"
	if len(fc.Args) > 0 && string(fc.Args) != "null" {
		var b bytes.Buffer
		if json.Compact(&b, fc.Args) == nil {
			args = b.String()
		}
	}
	tc := toolCallOut{ID: id, Type: "function", Function: functionText{Name: fc.Name, Arguments: args}}
	if p.ThoughtSignature != "" {
		tc.ExtraContent = &extraContent{}
		tc.ExtraContent.Google.ThoughtSignature = p.ThoughtSignature
	}
	return tc
}

// finishReason maps Gemini's finishReason to OpenAI's. A candidate with
// function calls finished to have them run, unless a filter stopped it.
func finishReason(reason string, toolCalls bool) string {
	switch reason {
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
		"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR":
		return "content_filter"
	}
	if toolCalls {
		return "tool_calls"
	}
	if reason == "MAX_TOKENS" {
		return "length"
	}
	// STOP, and the reasons OpenAI has no word for (OTHER, LANGUAGE,
	// MALFORMED_FUNCTION_CALL …).
	return "stop"
}

// usageOf counts thinking as completion tokens, as Google bills them and as
// OpenAI counts reasoning tokens; cached tokens are part of the prompt.
func usageOf(m *usageMetadata) (openai.Usage, usageOutput) {
	var uo usageOutput
	if m == nil {
		return openai.Usage{}, uo
	}
	uo.PromptTokens = m.PromptTokenCount + m.ToolUsePromptTokenCount
	uo.CompletionTokens = m.CandidatesTokenCount + m.ThoughtsTokenCount
	uo.TotalTokens = m.TotalTokenCount
	if uo.TotalTokens == 0 {
		uo.TotalTokens = uo.PromptTokens + uo.CompletionTokens
	}
	uo.PromptTokensDetails.CachedTokens = m.CachedContentTokenCount
	uo.CompletionTokensDetails.ReasoningTokens = m.ThoughtsTokenCount
	return openai.Usage{PromptTokens: uo.PromptTokens, CompletionTokens: uo.CompletionTokens, TotalTokens: uo.TotalTokens}, uo
}

func completionID(responseID string) string {
	if responseID != "" {
		return "chatcmpl-" + responseID
	}
	var b [12]byte
	rand.Read(b[:])
	return "chatcmpl-" + hex.EncodeToString(b[:])
}

// ErrorMessage pulls the message out of a Google error body, which is
// {"error": {"code", "message", "status"}} (an array of them from a
// streaming endpoint), or returns the start of the body.
func ErrorMessage(body []byte) string {
	type envelope struct {
		Error *googleError `json:"error"`
	}
	var one envelope
	var many []envelope
	e := (*googleError)(nil)
	if json.Unmarshal(body, &one) == nil {
		e = one.Error
	} else if json.Unmarshal(body, &many) == nil && len(many) > 0 {
		e = many[0].Error
	}
	if e != nil && e.Message != "" {
		if e.Status != "" {
			return e.Message + " (" + e.Status + ")"
		}
		return e.Message
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
