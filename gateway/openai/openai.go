// Package openai speaks the OpenAI wire format to upstream providers of type
// openai, openai_compatible and mock: the request body passes through with
// the model swapped, and usage is read back from the answer.
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
)

// Usage is the token count an answer reports.
type Usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

// NewRequest builds the upstream POST to baseURL+path (baseURL ends in /v1,
// as the OpenAI SDK's base_url). The caller's own headers are never copied:
// only the provider's credential goes upstream.
func NewRequest(ctx context.Context, baseURL, path, apiKey string, body []byte, stream bool) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "tollgate")
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	return req, nil
}

// UsageOf reads the usage object of a non-streamed answer.
func UsageOf(body []byte) (Usage, bool) {
	var v struct {
		Usage *Usage `json:"usage"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Usage == nil {
		return Usage{}, false
	}
	return *v.Usage, true
}

// ErrorMessage pulls the message out of an OpenAI error envelope, or
// returns the start of the body when it is not one.
func ErrorMessage(body []byte) string {
	var v struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err == nil && v.Error.Message != "" {
		return v.Error.Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Target is where and how one deployment is called, whatever its wire
// format: each format package builds its upstream request from it.
type Target struct {
	BaseURL string            // the provider's api_base; "" means the format's default
	APIKey  string            // the decrypted provider credential (format-specific: an API key, AWS keys, a service-account JSON)
	Model   string            // the upstream model name
	Config  map[string]string // the provider's config: region, api_version, project, location …
}
