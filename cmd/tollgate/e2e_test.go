package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tollgate/config"
	"tollgate/mockllm"
	"tollgate/store"
	"tollgate/store/storetest"
)

const masterKey = "sk-master-e2e-test"

// stack is the whole product in this process, as `tollgate all` runs it:
// the admin app and the gateway, with a fake provider behind them.
type stack struct {
	t        *testing.T
	dsn      string
	gateway  string
	admin    string
	provider *httptest.Server
	calls    atomic.Int64 // requests the provider has received
	cancel   context.CancelFunc
	done     chan error
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startStack(t *testing.T) *stack { return startStackWith(t, nil) }

// startStackWith starts the stack with extra settings.
func startStackWith(t *testing.T, extra map[string]string) *stack {
	s := &stack{t: t, dsn: storetest.NewDatabase(t), done: make(chan error, 1)}
	mock := mockllm.NewHandler(mockllm.Options{APIKey: "upstream-key", Latency: 300 * time.Millisecond})
	s.provider = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(s.provider.Close)
	env := map[string]string{
		"DATABASE_URL":                  s.dsn,
		"REDIS_URL":                     storetest.RedisURL(),
		"TOLLGATE_MASTER_KEY":           masterKey,
		"TOLLGATE_SECRET_KEY":           storetest.SecretKey,
		"TOLLGATE_GATEWAY_ADDR":         freeAddr(t),
		"TOLLGATE_ADMIN_ADDR":           freeAddr(t),
		"TOLLGATE_SPEND_FLUSH_INTERVAL": "10s", // long: shutdown must flush, not the ticker
		"TOLLGATE_LOG_LEVEL":            "error",
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s.gateway, s.admin = "http://"+cfg.GatewayAddr, "http://"+cfg.AdminAddr
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- serveApps(ctx, cfg, slog.New(slog.DiscardHandler), true, true, false) }()
	t.Cleanup(func() { s.stop() })
	deadline := time.Now().Add(10 * time.Second)
	for _, u := range []string{s.gateway, s.admin} {
		for {
			resp, err := http.Get(u + "/health/readiness")
			if err == nil && resp.StatusCode == 200 {
				resp.Body.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready", u)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s
}

// stop is what SIGTERM does: cancel the run context and wait.
func (s *stack) stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		return err
	case <-time.After(30 * time.Second):
		s.t.Fatal("shutdown took over 30s")
	}
	return nil
}

// api calls the management API with the master key.
func (s *stack) api(method, path string, body any) map[string]any {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.admin+"/api/v1"+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+masterKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	var out map[string]any
	json.Unmarshal(raw, &out)
	return out
}

// setup creates a provider, a model, a team and a key through the API, as
// an admin would, and returns the key's secret.
func (s *stack) setup() string {
	prov := s.api("POST", "/providers", map[string]any{"name": "mock", "type": "mock", "api_base": s.provider.URL + "/v1", "api_key": "upstream-key"})
	s.api("POST", "/models", map[string]any{"model_name": "gpt-4o-mini", "provider_id": prov["id"], "upstream_model": "mock-gpt",
		"input_cost_per_million": 0.15, "output_cost_per_million": 0.6})
	s.api("POST", "/models", map[string]any{"model_name": "text-embedding-3-small", "provider_id": prov["id"], "upstream_model": "mock-embed",
		"input_cost_per_million": 0.02})
	team := s.api("POST", "/teams", map[string]any{"name": "growth-team"})
	key := s.api("POST", "/keys", map[string]any{"team_id": team["id"], "alias": "e2e"})["key"].(string)
	// The gateway learns of the new models by NOTIFY: wait until it lists both.
	waitFor(s.t, func() (int, error) {
		req, _ := http.NewRequest(http.MethodGet, s.gateway+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var list struct{ Data []struct{ ID string } }
		json.NewDecoder(resp.Body).Decode(&list)
		if len(list.Data) < 2 {
			return 0, fmt.Errorf("the gateway lists %d of 2 models", len(list.Data))
		}
		return len(list.Data), nil
	})
	return key
}

func TestOpenAISDKAgainstTheGateway(t *testing.T) {
	s := startStack(t)
	key := s.setup()
	client := openai.NewClient(option.WithBaseURL(s.gateway+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	ctx := context.Background()

	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	for _, m := range page.Data {
		models = append(models, m.ID)
	}
	if strings.Join(models, ",") != "gpt-4o-mini,text-embedding-3-small" {
		t.Errorf("models %v", models)
	}

	var raw *http.Response
	completion, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello from the SDK")},
	}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(completion.Choices[0].Message.Content, "Hello from the SDK") || completion.Usage.TotalTokens == 0 {
		t.Errorf("completion %+v", completion)
	}
	if raw.Header.Get("X-Tollgate-Cost") == "" || raw.Header.Get("X-Request-Id") == "" {
		t.Error("cost or request id header missing")
	}

	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "gpt-4o-mini",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream to the SDK")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 3 || !strings.Contains(acc.Choices[0].Message.Content, "Stream to the SDK") || acc.Usage.CompletionTokens == 0 {
		t.Errorf("stream: %d chunks, content %q, usage %+v", chunks, acc.Choices[0].Message.Content, acc.Usage)
	}

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("embed me")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 1 || len(emb.Data[0].Embedding) == 0 {
		t.Errorf("embeddings %+v", emb)
	}

	wrong := openai.NewClient(option.WithBaseURL(s.gateway+"/v1/"), option.WithAPIKey("sk-wrong"), option.WithMaxRetries(0))
	_, err = wrong.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var apiErr *openai.Error
	if !asError(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Errorf("wrong key error: %v", err)
	}
}

func asError(err error, target **openai.Error) bool {
	e, ok := err.(*openai.Error)
	if ok {
		*target = e
	}
	return ok
}

func waitFor[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // a loaded machine running -race is slow
	for {
		v, err := f()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGTERM while requests are in flight: every request finishes, and every
// spend log reaches PostgreSQL although the flush interval never elapsed.
func TestGracefulShutdownLosesNoSpendLogs(t *testing.T) {
	s := startStack(t)
	key := s.setup()

	const n = 40
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%v,"messages":[{"role":"user","content":"request %d"}]}`, i%2 == 0, i)
			req, _ := http.NewRequest("POST", s.gateway+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Logf("request %d: %v", i, err)
				statuses <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	// Stop once every request has reached the provider (which takes 300 ms
	// to answer), so all of them are in flight.
	waitFor(t, func() (int64, error) {
		if c := s.calls.Load(); c < n {
			return c, fmt.Errorf("%d of %d requests at the provider", c, n)
		}
		return 0, nil
	})
	if err := s.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 200 {
			t.Fatalf("an in-flight request got %d during shutdown", st)
		}
	}
	st, err := store.Open(context.Background(), s.dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	logs, _, err := st.ListSpendLogs(context.Background(), store.SpendFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != n {
		t.Fatalf("%d spend logs after shutdown, want %d", len(logs), n)
	}
}
