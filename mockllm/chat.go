package mockllm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const fingerprint = "fp_mockllm"

// chatRequest holds the fields of an OpenAI chat completion request that the
// mock reads; everything else (tools, temperature, ...) is accepted and ignored.
type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"` // string, array of parts, or null
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

var chatRoles = map[string]bool{
	"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true,
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []chatChoice `json:"choices"`
	Usage             usage        `json:"usage"`
}

type chatChoice struct {
	Index        int       `json:"index"`
	Message      chatReply `json:"message"`
	Logprobs     *struct{} `json:"logprobs"` // always null
	FinishReason string    `json:"finish_reason"`
}

type chatReply struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"` // always null
}

type chatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint"`
	Choices           []chunkChoice `json:"choices"`
	// Usage is omitted unless include_usage was requested; then it is null on
	// every chunk but the last, exactly as OpenAI does.
	Usage json.RawMessage `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int        `json:"index"`
	Delta        chunkDelta `json:"delta"`
	Logprobs     *struct{}  `json:"logprobs"`
	FinishReason *string    `json:"finish_reason"`
}

type chunkDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

func (s *server) chat(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	var req chatRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	g, e := req.generate()
	if e != nil {
		writeError(w, e)
		return
	}
	id, created := newID("chatcmpl-mock-"), time.Now().Unix()
	if req.Stream {
		streamSSE(w, r, delay, chatChunks(id, created, req.Model, g, req.StreamOptions != nil && req.StreamOptions.IncludeUsage))
		return
	}
	if !sleep(r.Context(), delay) {
		return
	}
	writeJSON(w, http.StatusOK, chatCompletion{
		ID:                id,
		Object:            "chat.completion",
		Created:           created,
		Model:             req.Model,
		SystemFingerprint: fingerprint,
		Choices: []chatChoice{{
			Message:      chatReply{Role: "assistant", Content: g.text()},
			FinishReason: g.finish,
		}},
		Usage: g.usage,
	})
}

// generate validates the request and produces its deterministic answer.
func (req *chatRequest) generate() (generation, *apiError) {
	if req.Model == "" {
		return generation{}, missingParam("model")
	}
	if req.Messages == nil {
		return generation{}, missingParam("messages")
	}
	if len(req.Messages) == 0 {
		return generation{}, badRequest("messages", "empty_array",
			"Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	if req.StreamOptions != nil && !req.Stream {
		return generation{}, badRequest("stream_options", "invalid_value",
			"The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}
	maxTokens, e := tokenCap("max_tokens", req.MaxTokens)
	if e != nil {
		return generation{}, e
	}
	if req.MaxCompletionTokens != nil {
		if maxTokens, e = tokenCap("max_completion_tokens", req.MaxCompletionTokens); e != nil {
			return generation{}, e
		}
	}

	turns := make([]turn, len(req.Messages))
	for i, m := range req.Messages {
		if m.Role == "" {
			return generation{}, missingParam(fmt.Sprintf("messages[%d].role", i))
		}
		if !chatRoles[m.Role] {
			param := fmt.Sprintf("messages[%d].role", i)
			return generation{}, badRequest(param, "invalid_value", fmt.Sprintf("Invalid value for '%s': '%s'.", param, m.Role))
		}
		text, e := messageText(m.Content, i)
		if e != nil {
			return generation{}, e
		}
		turns[i] = turn{role: m.Role, text: text}
	}
	return newConversation(turns).answer(maxTokens), nil
}

// messageText extracts the text of a message's content: a string, null, or
// an array of content parts whose text parts are joined by newlines.
func messageText(raw json.RawMessage, i int) (string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		param := fmt.Sprintf("messages[%d].content", i)
		return "", badRequest(param, "invalid_type",
			fmt.Sprintf("Invalid type for '%s': expected a string or an array of content parts.", param))
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n"), nil
}

// tokenCap validates an optional max-tokens field; 0 means uncapped.
func tokenCap(name string, v *int) (int, *apiError) {
	if v == nil {
		return 0, nil
	}
	if *v < 1 {
		return 0, badRequest(name, "integer_below_min_value", fmt.Sprintf(
			"Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", name, *v))
	}
	return *v, nil
}

// chatChunks lays out a streamed answer the way OpenAI does: a role chunk,
// one chunk per token, a finish chunk, and optionally a usage-only chunk.
func chatChunks(id string, created int64, model string, g generation, includeUsage bool) []chatChunk {
	var usageField json.RawMessage
	if includeUsage {
		usageField = json.RawMessage("null")
	}
	chunk := func(d chunkDelta, finish *string) chatChunk {
		return chatChunk{
			ID:                id,
			Object:            "chat.completion.chunk",
			Created:           created,
			Model:             model,
			SystemFingerprint: fingerprint,
			Choices:           []chunkChoice{{Delta: d, FinishReason: finish}},
			Usage:             usageField,
		}
	}
	empty := ""
	chunks := []chatChunk{chunk(chunkDelta{Role: "assistant", Content: &empty}, nil)}
	for i, word := range g.words {
		if i > 0 {
			word = " " + word
		}
		chunks = append(chunks, chunk(chunkDelta{Content: &word}, nil))
	}
	chunks = append(chunks, chunk(chunkDelta{}, &g.finish))
	if includeUsage {
		last := chunk(chunkDelta{}, nil)
		last.Choices = []chunkChoice{}
		last.Usage, _ = json.Marshal(g.usage) // a plain struct cannot fail to marshal
		chunks = append(chunks, last)
	}
	return chunks
}
