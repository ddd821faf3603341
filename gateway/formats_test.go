package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"tollgate/mockllm"
	"tollgate/store"
)

// provider is a fake of a non-OpenAI provider: it checks each request with
// check and answers with the recorded whole answer or stream.
type provider struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []*http.Request
	body [][]byte
}

func newProvider(t *testing.T, answer, stream string) *provider {
	t.Helper()
	answerBody, err := os.ReadFile(answer)
	if err != nil {
		t.Fatal(err)
	}
	streamBody, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.seen, p.body = append(p.seen, r.Clone(context.Background())), append(p.body, b)
		p.mu.Unlock()
		if strings.Contains(r.URL.Path, "stream") || strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write(streamBody)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answerBody)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *provider) last() (*http.Request, map[string]any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var body map[string]any
	json.Unmarshal(p.body[len(p.body)-1], &body)
	return p.seen[len(p.seen)-1], body
}

// deploy adds a provider of type typ at base and a model on it, and waits
// until the gateway routes to it.
func (e *env) deploy(typ, base, apiKey, model, upstream string, config string) {
	e.t.Helper()
	ctx := context.Background()
	prov, err := e.st.CreateProvider(ctx, "test", store.ProviderInput{
		ProviderSpec: store.ProviderSpec{Name: typ + "-test", Type: typ, APIBase: base, Config: store.JSON(config)}, APIKey: &apiKey})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.CreateModel(ctx, "test", store.ModelSpec{ModelName: model, ProviderID: prov.ID, UpstreamModel: upstream,
		InputCostPerMillion: 1, OutputCostPerMillion: 2, Enabled: true}); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, model+" reaches the gateway", func() bool { return len(e.cache.Deployments(model)) == 1 })
}

// sseChunks reads an OpenAI stream: its chunks and whether it ended with [DONE].
func sseChunks(t *testing.T, r io.Reader) ([]map[string]any, bool) {
	t.Helper()
	var chunks []map[string]any
	done := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			continue
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("chunk %q: %v", line, err)
		}
		if c["object"] != "chat.completion.chunk" {
			t.Fatalf("not a chat.completion.chunk: %s", line)
		}
		chunks = append(chunks, c)
	}
	return chunks, done
}

func streamText(chunks []map[string]any) string {
	var b strings.Builder
	for _, c := range chunks {
		for _, ch := range c["choices"].([]any) {
			if d, ok := ch.(map[string]any)["delta"].(map[string]any); ok {
				if s, ok := d["content"].(string); ok {
					b.WriteString(s)
				}
			}
		}
	}
	return b.String()
}

func TestTranslatedProvidersThroughTheGateway(t *testing.T) {
	e := newEnv(t, envOptions{})
	anthropic := newProvider(t, "anthropic/testdata/text.json", "anthropic/testdata/text.sse")
	gemini := newProvider(t, "gemini/testdata/text.json", "gemini/testdata/text.sse")
	e.deploy("anthropic", anthropic.srv.URL, "sk-ant-test", "claude", "claude-sonnet-4-5", `{}`)
	e.deploy("gemini", gemini.srv.URL, "gemini-test-key", "gemini", "gemini-2.5-flash", `{}`)

	for _, tc := range []struct {
		model, want string
		p           *provider
		check       func(r *http.Request, body map[string]any) string
	}{
		{"claude", "Hello!", anthropic, func(r *http.Request, body map[string]any) string {
			if r.URL.Path != "/v1/messages" || r.Header.Get("X-Api-Key") != "sk-ant-test" || r.Header.Get("Anthropic-Version") == "" ||
				body["model"] != "claude-sonnet-4-5" || body["system"] != "Be brief." || body["max_tokens"] == nil {
				return "anthropic request: " + r.URL.Path
			}
			return ""
		}},
		{"gemini", "The capital of France is Paris.", gemini, func(r *http.Request, body map[string]any) string {
			if !strings.HasPrefix(r.URL.Path, "/v1beta/models/gemini-2.5-flash:") || r.Header.Get("X-Goog-Api-Key") != "gemini-test-key" ||
				body["systemInstruction"] == nil || body["contents"] == nil {
				return "gemini request: " + r.URL.Path
			}
			return ""
		}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			req := `{"model":"` + tc.model + `","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}]}`
			resp := e.post("/v1/chat/completions", req, bearer(e.key))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, readErr(t, resp).Error.Message)
			}
			var answer struct {
				Object  string `json:"object"`
				Choices []struct {
					Message struct{ Content string }
				}
				Usage struct {
					PromptTokens int64 `json:"prompt_tokens"`
				} `json:"usage"`
			}
			json.NewDecoder(resp.Body).Decode(&answer)
			if answer.Object != "chat.completion" || answer.Choices[0].Message.Content != tc.want || answer.Usage.PromptTokens == 0 {
				t.Fatalf("answer = %+v", answer)
			}
			if msg := tc.check(tc.p.last()); msg != "" {
				t.Fatal(msg)
			}
			// No caller header and no gateway key goes upstream.
			if r, _ := tc.p.last(); strings.Contains(r.Header.Get("Authorization"), e.key) {
				t.Fatal("the virtual key reached the provider")
			}
			if resp.Header.Get("X-Tollgate-Cost") == "" || resp.Header.Get("X-Tollgate-Provider") != tc.model+"-test" && resp.Header.Get("X-Tollgate-Provider") == "" {
				t.Fatalf("headers = %v", resp.Header)
			}

			stream := e.post("/v1/chat/completions", strings.Replace(req, `"messages"`, `"stream":true,"stream_options":{"include_usage":true},"messages"`, 1), bearer(e.key))
			if stream.StatusCode != http.StatusOK || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("stream status %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
			}
			chunks, done := sseChunks(t, stream.Body)
			if !done || !strings.Contains(streamText(chunks), strings.Fields(tc.want)[0]) {
				t.Fatalf("stream: done %v, text %q", done, streamText(chunks))
			}
			last := chunks[len(chunks)-1]
			if u, ok := last["usage"].(map[string]any); !ok || u["total_tokens"].(float64) == 0 {
				t.Fatalf("last chunk has no usage: %v", last)
			}
			if stream.Trailer.Get("X-Tollgate-Cost") == "" {
				t.Fatal("no cost trailer")
			}
		})
	}
	// Both calls of each model are priced in the spend log.
	priced := 0
	for _, l := range e.spendLogs() {
		if (l.Model == "claude" || l.Model == "gemini") && l.Cost > 0 && l.Status == store.StatusSuccess {
			priced++
		}
	}
	if priced != 4 {
		t.Fatalf("%d translated calls priced, want 4", priced)
	}
	// Other endpoints are refused clearly.
	resp := e.post("/v1/embeddings", `{"model":"claude","input":"x"}`, bearer(e.key))
	if got := readErr(t, resp); resp.StatusCode != http.StatusBadRequest || !strings.Contains(got.Error.Message, "only chat completions") {
		t.Fatalf("embeddings on anthropic: %d %+v", resp.StatusCode, got.Error)
	}
	// A request the format cannot carry is a 400 naming the field.
	resp = e.post("/v1/chat/completions", `{"model":"claude","n":2,"messages":[{"role":"user","content":"Hi"}]}`, bearer(e.key))
	if got := readErr(t, resp); resp.StatusCode != http.StatusBadRequest || got.Error.Param == nil {
		t.Fatalf("n=2 on anthropic: %d %+v", resp.StatusCode, got.Error)
	}
}

// TestToolCallsThroughTranslatedProviders drives the gateway against
// mock-llm speaking Anthropic's, Gemini's and Bedrock's own formats: a tool
// call comes back in OpenAI's shape, streamed and not, with its usage.
func TestToolCallsThroughTranslatedProviders(t *testing.T) {
	e := newEnv(t, envOptions{})
	mock := httptest.NewServer(mockllm.NewHandler(mockllm.Options{APIKey: "provider-key"}))
	t.Cleanup(mock.Close)
	e.deploy("anthropic", mock.URL, "provider-key", "claude", "mock-claude", `{}`)
	e.deploy("gemini", mock.URL, "provider-key", "gemini", "mock-gemini", `{}`)
	// mock-llm takes a SigV4 signature whose access key id is its key.
	e.deploy("bedrock", mock.URL, "provider-key:mock-secret", "bedrock", "us.anthropic.mock-claude-v1:0", `{"region":"us-east-1"}`)
	for _, model := range []string{"claude", "gemini", "bedrock"} {
		req := `{"model":"` + model + `","messages":[{"role":"user","content":"What is the weather in Paris?"}],
			"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}`
		resp := e.post("/v1/chat/completions", req, bearer(e.key))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", model, resp.StatusCode, readErr(t, resp).Error.Message)
		}
		var answer struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
				Message      struct {
					ToolCalls []struct {
						Function struct{ Name, Arguments string }
					} `json:"tool_calls"`
				}
			}
			Usage struct {
				TotalTokens int64 `json:"total_tokens"`
			} `json:"usage"`
		}
		json.NewDecoder(resp.Body).Decode(&answer)
		if len(answer.Choices) != 1 || answer.Choices[0].FinishReason != "tool_calls" || len(answer.Choices[0].Message.ToolCalls) != 1 ||
			answer.Choices[0].Message.ToolCalls[0].Function.Name != "get_weather" || answer.Choices[0].Message.ToolCalls[0].Function.Arguments != "{}" ||
			answer.Usage.TotalTokens == 0 {
			t.Fatalf("%s answer = %+v", model, answer)
		}
		stream := e.post("/v1/chat/completions", strings.Replace(req, `"messages"`, `"stream":true,"stream_options":{"include_usage":true},"messages"`, 1), bearer(e.key))
		chunks, done := sseChunks(t, stream.Body)
		var name, args, finish string
		for _, c := range chunks {
			for _, ch := range c["choices"].([]any) {
				choice := ch.(map[string]any)
				if f, ok := choice["finish_reason"].(string); ok {
					finish = f
				}
				d, _ := choice["delta"].(map[string]any)
				if calls, ok := d["tool_calls"].([]any); ok {
					f := calls[0].(map[string]any)["function"].(map[string]any)
					n, _ := f["name"].(string)
					a, _ := f["arguments"].(string)
					name, args = name+n, args+a
				}
			}
		}
		if !done || name != "get_weather" || args != "{}" || finish != "tool_calls" {
			t.Fatalf("%s stream: done %v, tool %q with arguments %q, finish_reason %q", model, done, name, args, finish)
		}
		if u, ok := chunks[len(chunks)-1]["usage"].(map[string]any); !ok || u["total_tokens"].(float64) == 0 {
			t.Fatalf("%s stream: the last chunk has no usage: %v", model, chunks[len(chunks)-1])
		}
	}
}

// TestBedrockThroughTheGateway calls mock-llm speaking Bedrock Converse:
// the request goes out SigV4-signed to the model's Converse URL, and the
// answer and the event stream come back as the answer mock-llm gives the
// same chat request in the OpenAI format, priced.
func TestBedrockThroughTheGateway(t *testing.T) {
	e := newEnv(t, envOptions{})
	mock := mockllm.NewHandler(mockllm.Options{APIKey: "AKIDMOCK"})
	var seen atomic.Pointer[http.Request]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Clone(context.Background()))
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	const upstream = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.mock-v1:0"
	e.deploy("bedrock", srv.URL, "AKIDMOCK:mock-secret:mock-session", "claude-bedrock", upstream, `{"region":"us-east-1"}`)

	const req = `{"model":"claude-bedrock","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello from the gateway"}]}`
	// What mock-llm answers the same chat in the OpenAI format.
	var want struct {
		Choices []struct {
			Message struct{ Content string }
		}
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
			TotalTokens      int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	direct, chat := httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(req))
	chat.Header.Set("Authorization", "Bearer AKIDMOCK")
	mock.ServeHTTP(direct, chat)
	if err := json.Unmarshal(direct.Body.Bytes(), &want); err != nil || len(want.Choices) != 1 {
		t.Fatalf("mock-llm chat: %v %s", err, direct.Body.Bytes())
	}

	resp := e.post("/v1/chat/completions", req, bearer(e.key))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, readErr(t, resp).Error.Message)
	}
	var answer struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Message      struct{ Role, Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
			TotalTokens      int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	json.NewDecoder(resp.Body).Decode(&answer)
	if answer.Object != "chat.completion" || len(answer.Choices) != 1 || answer.Choices[0].Message.Role != "assistant" ||
		answer.Choices[0].Message.Content != want.Choices[0].Message.Content || answer.Choices[0].FinishReason != "stop" || answer.Usage != want.Usage {
		t.Fatalf("answer = %+v\nwant content %q, usage %+v", answer, want.Choices[0].Message.Content, want.Usage)
	}
	if resp.Header.Get("X-Tollgate-Cost") == "" {
		t.Fatalf("headers = %v", resp.Header)
	}
	r := seen.Load()
	auth := r.Header.Get("Authorization")
	if r.URL.EscapedPath() != "/model/"+url.PathEscape(upstream)+"/converse" ||
		!strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDMOCK/") || !strings.Contains(auth, "/us-east-1/bedrock/aws4_request") ||
		r.Header.Get("X-Amz-Security-Token") != "mock-session" || strings.Contains(auth, e.key) {
		t.Fatalf("upstream request %s, Authorization %q", r.URL.EscapedPath(), auth)
	}

	stream := e.post("/v1/chat/completions", strings.Replace(req, `"messages"`, `"stream":true,"stream_options":{"include_usage":true},"messages"`, 1), bearer(e.key))
	if stream.StatusCode != http.StatusOK || !strings.HasPrefix(stream.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream status %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	chunks, done := sseChunks(t, stream.Body)
	if !done || streamText(chunks) != want.Choices[0].Message.Content {
		t.Fatalf("stream: done %v, text %q, want %q", done, streamText(chunks), want.Choices[0].Message.Content)
	}
	if got := seen.Load(); got.URL.EscapedPath() != "/model/"+url.PathEscape(upstream)+"/converse-stream" || got.Header.Get("Accept") != "application/vnd.amazon.eventstream" {
		t.Fatalf("upstream stream request %s, Accept %q", got.URL.EscapedPath(), got.Header.Get("Accept"))
	}
	last := chunks[len(chunks)-1]
	if u, ok := last["usage"].(map[string]any); !ok || int64(u["total_tokens"].(float64)) != want.Usage.TotalTokens {
		t.Fatalf("last chunk usage = %v, want %+v", last["usage"], want.Usage)
	}
	if stream.Trailer.Get("X-Tollgate-Cost") == "" {
		t.Fatal("no cost trailer")
	}

	// Both calls are priced on the usage Bedrock reported.
	priced := 0
	for _, l := range e.spendLogs() {
		if l.Model == "claude-bedrock" && l.Status == store.StatusSuccess && l.Cost > 0 &&
			l.InputTokens == want.Usage.PromptTokens && l.OutputTokens == want.Usage.CompletionTokens {
			priced++
		}
	}
	if priced != 2 {
		t.Fatalf("%d Bedrock calls priced on their usage, want 2", priced)
	}
}

// TestAzureDeployments calls an Azure OpenAI resource: deployment in the
// path, api-version in the query, the key in api-key.
func TestAzureDeployments(t *testing.T) {
	e := newEnv(t, envOptions{})
	mock := mockllm.NewHandler(mockllm.Options{})
	var bad atomic.Value
	azure := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/my-gpt4o/")
		if !ok || r.URL.Query().Get("api-version") != "2025-01-01-preview" || r.Header.Get("Api-Key") != "azure-key" || r.Header.Get("Authorization") != "" {
			bad.Store(r.URL.String())
			http.Error(w, `{"error":{"code":"404","message":"Resource not found"}}`, http.StatusNotFound)
			return
		}
		r.URL.Path = "/v1/" + rest
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(azure.Close)
	e.deploy("azure", azure.URL, "azure-key", "gpt-4o", "my-gpt4o", `{"api_version":"2025-01-01-preview"}`)
	resp := e.post("/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"hello azure"}]}`, bearer(e.key))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d (bad request line %v)", resp.StatusCode, bad.Load())
	}
	stream := e.post("/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hello azure"}]}`, bearer(e.key))
	if chunks, done := sseChunks(t, stream.Body); !done || !strings.Contains(streamText(chunks), "hello azure") {
		t.Fatalf("stream: done %v text %q", done, streamText(chunks))
	}
}
