package mockllm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"tollgate/gateway/anthropic"
	"tollgate/gateway/bedrock"
	"tollgate/gateway/gemini"
	"tollgate/gateway/openai"
)

// These tests drive the mock with the gateway's own adapters as the client:
// an OpenAI chat request is translated into each format, sent over HTTP,
// and the answer or stream translated back. What comes back must be the
// answer the mock gives the same chat request on its OpenAI endpoint.

// adapter is one gateway wire-format package.
type adapter struct {
	name    string
	target  func(t *testing.T, base string) openai.Target
	request func(ctx context.Context, t openai.Target, body []byte, stream bool) (*http.Request, error)
	answer  func(body []byte, model string) ([]byte, openai.Usage, error)
	stream  func(w io.Writer, flush func(), upstream io.Reader, model string, includeUsage bool) (openai.Usage, error)
}

const mockKey = "k"

func adapters() []adapter {
	return []adapter{
		{
			name: "anthropic",
			target: func(_ *testing.T, base string) openai.Target {
				return openai.Target{BaseURL: base, APIKey: mockKey, Model: "mock-claude"}
			},
			request: anthropic.NewChatRequest, answer: anthropic.ChatAnswer, stream: anthropic.ChatStream,
		},
		{
			name: "gemini",
			target: func(_ *testing.T, base string) openai.Target {
				return openai.Target{BaseURL: base, APIKey: mockKey, Model: "mock-gemini", Config: map[string]string{"platform": "gemini"}}
			},
			request: gemini.NewChatRequest, answer: gemini.ChatAnswer, stream: gemini.ChatStream,
		},
		{
			name: "vertex",
			target: func(t *testing.T, base string) openai.Target {
				return openai.Target{BaseURL: base, APIKey: serviceAccount(t), Model: "mock-gemini",
					Config: map[string]string{"platform": "vertex", "project": "proj", "location": "us-central1"}}
			},
			request: gemini.NewChatRequest, answer: gemini.ChatAnswer, stream: gemini.ChatStream,
		},
		{
			name: "bedrock",
			target: func(_ *testing.T, base string) openai.Target {
				// An inference profile ARN: its slash must arrive escaped in one path segment.
				return openai.Target{BaseURL: base, APIKey: mockKey + ":mock-secret", Model: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.mock-v1:0",
					Config: map[string]string{"region": "us-east-1"}}
			},
			request: bedrock.NewChatRequest, answer: bedrock.ChatAnswer, stream: bedrock.ChatStream,
		},
	}
}

// serviceAccount returns a service-account JSON key whose token_uri is a
// fake Google token endpoint handing out a fixed access token.
func serviceAccount(t *testing.T) string {
	t.Helper()
	var hits atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"ya29.mock","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	t.Cleanup(func() {
		if hits.Load() == 0 {
			t.Error("the token endpoint was never asked for a token")
		}
	})
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "proj",
		"private_key_id": "mock-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "mock@proj.iam.gserviceaccount.com",
		"token_uri":      tokens.URL + "/token",
	})
	return string(sa)
}

// translated is an OpenAI answer, whole or assembled from its chunks.
type translated struct {
	content   string
	toolCalls []wireToolCall
	finish    string
	usage     wireUsage
}

type wireToolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// translatedAnswer and translatedChunk are the OpenAI shapes the adapters
// give back.
type translatedAnswer struct {
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Role      string         `json:"role"`
			Content   *string        `json:"content"`
			ToolCalls []wireToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage wireUsage `json:"usage"`
}

type translatedChunk struct {
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content   *string        `json:"content"`
			ToolCalls []wireToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *wireUsage `json:"usage"`
}

// viaAdapter sends chatBody through a's translation to srv and returns the
// translated answer and the usage the adapter reports for billing.
func viaAdapter(t *testing.T, a adapter, tg openai.Target, chatBody string, stream bool) (translated, openai.Usage) {
	t.Helper()
	req, err := a.request(t.Context(), tg, []byte(chatBody), stream)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: status %d: %s", req.Method, req.URL.Path, resp.StatusCode, data)
	}
	var out translated
	if !stream {
		data, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, usage, err := a.answer(data, "public-model")
		if err != nil {
			t.Fatalf("translate %s: %v", data, err)
		}
		c := decode[translatedAnswer](t, body)
		if c.Object != "chat.completion" || c.Model != "public-model" || len(c.Choices) != 1 || c.Choices[0].Message.Role != "assistant" {
			t.Fatalf("translated answer = %s", body)
		}
		m := c.Choices[0].Message
		if m.Content != nil {
			out.content = *m.Content
		}
		out.toolCalls, out.finish, out.usage = m.ToolCalls, c.Choices[0].FinishReason, c.Usage
		return out, usage
	}

	var buf bytes.Buffer
	usage, err := a.stream(&buf, func() {}, resp.Body, "public-model", true)
	if err != nil {
		t.Fatalf("translate stream: %v\n%s", err, buf.Bytes())
	}
	var content strings.Builder
	for i, raw := range parseSSE(t, buf.Bytes()) {
		ch := decode[translatedChunk](t, raw)
		if ch.Object != "chat.completion.chunk" || ch.Model != "public-model" {
			t.Errorf("chunk %d = %s", i, raw)
		}
		if ch.Usage != nil {
			out.usage = *ch.Usage
		}
		for _, c := range ch.Choices {
			if c.Delta.Content != nil {
				content.WriteString(*c.Delta.Content)
			}
			for _, tc := range c.Delta.ToolCalls {
				if tc.Index == nil {
					t.Fatalf("chunk %d: tool call without an index: %s", i, raw)
				}
				for len(out.toolCalls) <= *tc.Index {
					out.toolCalls = append(out.toolCalls, wireToolCall{})
				}
				call := &out.toolCalls[*tc.Index]
				if tc.ID != "" {
					call.ID, call.Type = tc.ID, tc.Type
				}
				call.Function.Name += tc.Function.Name
				call.Function.Arguments += tc.Function.Arguments
			}
			if c.FinishReason != nil {
				out.finish = *c.FinishReason
			}
		}
	}
	out.content = content.String()
	for i := range out.toolCalls {
		out.toolCalls[i].Index = nil
	}
	return out, usage
}

func TestAdaptersEndToEnd(t *testing.T) {
	srv := newServer(t, Options{APIKey: mockKey})
	const (
		plain = `{"model":"mock-model","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Hello there, mock!"}]}`
		tools = `{"model":"mock-model","messages":[{"role":"user","content":"What's the weather in Paris?"}],
			"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
			         {"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{}}}}]}`
		toolResult = `{"model":"mock-model","messages":[{"role":"user","content":"What's the weather in Paris?"},
			{"role":"assistant","content":null,"tool_calls":[{"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"call_0","content":"Sunny, 21C"}],
			"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{}}}}]}`
		capped = `{"model":"mock-model","max_tokens":4,"messages":[{"role":"user","content":"Tell me about the weather at length"}],
			"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{}}}}]}`
	)
	// The mock's own OpenAI answer is what every translation must give back.
	openAIAnswer := func(body string) wireChat {
		_, data := call(t, http.MethodPost, srv.URL+"/v1/chat/completions", body, map[string]string{"Authorization": "Bearer " + mockKey})
		return decode[wireChat](t, data)
	}

	for _, a := range adapters() {
		tg := a.target(t, srv.URL)
		for _, stream := range []bool{false, true} {
			mode := "answer"
			if stream {
				mode = "stream"
			}
			t.Run(a.name+"/"+mode, func(t *testing.T) {
				for _, body := range []string{plain, tools, capped} {
					want := openAIAnswer(body)
					got, billed := viaAdapter(t, a, tg, body, stream)
					if got.content != want.Choices[0].Message.Content {
						t.Errorf("content %q, want the mock's %q", got.content, want.Choices[0].Message.Content)
					}
					if got.usage != want.Usage {
						t.Errorf("usage %+v, want the mock's %+v", got.usage, want.Usage)
					}
					if billed.PromptTokens != int64(want.Usage.PromptTokens) || billed.CompletionTokens != int64(want.Usage.CompletionTokens) ||
						billed.TotalTokens != int64(want.Usage.TotalTokens) {
						t.Errorf("billed usage %+v, want %+v", billed, want.Usage)
					}
					switch body {
					case tools:
						if got.finish != "tool_calls" || len(got.toolCalls) != 1 || got.toolCalls[0].ID == "" || got.toolCalls[0].Type != "function" ||
							got.toolCalls[0].Function.Name != "get_weather" || got.toolCalls[0].Function.Arguments != "{}" {
							t.Errorf("tool answer: finish %q, tool calls %+v", got.finish, got.toolCalls)
						}
					case capped:
						if got.finish != "length" || len(got.toolCalls) != 0 {
							t.Errorf("capped answer: finish %q, tool calls %+v", got.finish, got.toolCalls)
						}
					default:
						if got.finish != "stop" || len(got.toolCalls) != 0 {
							t.Errorf("finish %q, tool calls %+v", got.finish, got.toolCalls)
						}
					}
				}

				// Once the tool's result is in, the model answers it in text (Gemini's
				// function response is echoed as JSON).
				got, _ := viaAdapter(t, a, tg, toolResult, stream)
				if got.finish != "stop" || len(got.toolCalls) != 0 || !strings.HasPrefix(got.content, "Mock answer to: ") || !strings.Contains(got.content, "Sunny, 21C") {
					t.Errorf("after the tool result: finish %q, content %q, tool calls %+v", got.finish, got.content, got.toolCalls)
				}
			})
		}
	}
}

// TestAdaptersSeeErrors checks the adapters read the mock's error envelopes.
func TestAdaptersSeeErrors(t *testing.T) {
	srv := newServer(t, Options{APIKey: mockKey})
	const body = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name    string
		tg      openai.Target
		request func(ctx context.Context, t openai.Target, body []byte, stream bool) (*http.Request, error)
		message func([]byte) string
		want    string
	}{
		{"anthropic wrong key", openai.Target{BaseURL: srv.URL, APIKey: "wrong", Model: "c"}, anthropic.NewChatRequest, anthropic.ErrorMessage, "invalid x-api-key"},
		{"gemini wrong key", openai.Target{BaseURL: srv.URL, APIKey: "wrong", Model: "g"}, gemini.NewChatRequest, gemini.ErrorMessage, "API key not valid. Please pass a valid API key. (INVALID_ARGUMENT)"},
		{"bedrock wrong access key", openai.Target{BaseURL: srv.URL, APIKey: "wrong:secret", Model: "b", Config: map[string]string{"region": "us-east-1"}},
			bedrock.NewChatRequest, bedrock.ErrorMessage, "The security token included in the request is invalid."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := tc.request(t.Context(), tc.tg, []byte(body), false)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, _ := io.ReadAll(resp.Body)
			if got := tc.message(data); got != tc.want {
				t.Errorf("error message %q, want %q (status %d)", got, tc.want, resp.StatusCode)
			}
		})
	}
}
