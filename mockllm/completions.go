package mockllm

import (
	"encoding/json"
	"net/http"
	"time"
)

// completionRequest is the legacy /v1/completions request. A prompt may be a
// string or an array of strings; each prompt gets its own choice.
type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
}

type textCompletion struct {
	ID                string             `json:"id"`
	Object            string             `json:"object"`
	Created           int64              `json:"created"`
	Model             string             `json:"model"`
	SystemFingerprint string             `json:"system_fingerprint"`
	Choices           []completionChoice `json:"choices"`
	// Usage is a json.RawMessage so stream chunks can omit it, send null, or
	// send the final object, mirroring chatChunk.
	Usage json.RawMessage `json:"usage,omitempty"`
}

type completionChoice struct {
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"` // always null
	FinishReason *string   `json:"finish_reason"`
}

func (s *server) completions(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	var req completionRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	gens, total, e := req.generate()
	if e != nil {
		writeError(w, e)
		return
	}
	base := textCompletion{
		ID:                newID("cmpl-mock-"),
		Object:            "text_completion",
		Created:           time.Now().Unix(),
		Model:             req.Model,
		SystemFingerprint: fingerprint,
	}
	usageJSON, _ := json.Marshal(total) // a plain struct cannot fail to marshal

	if req.Stream {
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		if includeUsage {
			base.Usage = json.RawMessage("null")
		}
		var chunks []textCompletion
		add := func(c completionChoice) {
			chunk := base
			chunk.Choices = []completionChoice{c}
			chunks = append(chunks, chunk)
		}
		for i, g := range gens {
			for j, word := range g.words {
				if j > 0 {
					word = " " + word
				}
				add(completionChoice{Text: word, Index: i})
			}
			add(completionChoice{Index: i, FinishReason: &g.finish})
		}
		if includeUsage {
			last := base
			last.Choices, last.Usage = []completionChoice{}, usageJSON
			chunks = append(chunks, last)
		}
		streamSSE(w, r, delay, chunks)
		return
	}

	if !sleep(r.Context(), delay) {
		return
	}
	base.Usage = usageJSON
	for i, g := range gens {
		base.Choices = append(base.Choices, completionChoice{Text: g.text(), Index: i, FinishReason: &g.finish})
	}
	writeJSON(w, http.StatusOK, base)
}

// generate validates the request and answers each prompt, returning the
// summed usage.
func (req *completionRequest) generate() ([]generation, usage, *apiError) {
	if req.Model == "" {
		return nil, usage{}, missingParam("model")
	}
	if req.StreamOptions != nil && !req.Stream {
		return nil, usage{}, badRequest("stream_options", "invalid_value",
			"The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}
	maxTokens, e := tokenCap("max_tokens", req.MaxTokens)
	if e != nil {
		return nil, usage{}, e
	}
	prompts, e := parsePrompts(req.Prompt)
	if e != nil {
		return nil, usage{}, e
	}
	gens := make([]generation, len(prompts))
	var total usage
	for i, p := range prompts {
		gens[i] = generate(p, hashStrings(p), EstimateTokens(p), maxTokens)
		total.PromptTokens += gens[i].usage.PromptTokens
		total.CompletionTokens += gens[i].usage.CompletionTokens
		total.TotalTokens += gens[i].usage.TotalTokens
	}
	return gens, total, nil
}

func parsePrompts(raw json.RawMessage) ([]string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, missingParam("prompt")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return []string{one}, nil
	}
	var many []string
	if json.Unmarshal(raw, &many) != nil || len(many) == 0 {
		return nil, badRequest("prompt", "invalid_type", "Invalid 'prompt': expected a string or a non-empty array of strings.")
	}
	return many, nil
}
