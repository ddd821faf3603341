package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/gateway"
	"tollgate/store"
)

// timedDeployment adds a deployment of model at base with its own timeouts.
func (e *env) timedDeployment(base, model string, connect, firstByte, total int64) {
	e.t.Helper()
	ctx := context.Background()
	key := upstreamKey
	p, err := e.st.CreateProvider(ctx, "test", store.ProviderInput{
		ProviderSpec: store.ProviderSpec{Name: model + "-provider", Type: "openai_compatible", APIBase: base}, APIKey: &key})
	if err != nil {
		e.t.Fatal(err)
	}
	ptr := func(v int64) *int64 {
		if v == 0 {
			return nil
		}
		return &v
	}
	if _, err := e.st.CreateModel(ctx, "test", store.ModelSpec{ModelName: model, ProviderID: p.ID, UpstreamModel: "mock-" + model,
		InputCostPerMillion: 1, OutputCostPerMillion: 1, Enabled: true,
		ConnectTimeoutMS: ptr(connect), FirstByteTimeoutMS: ptr(firstByte), TimeoutMS: ptr(total)}); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, model+" reaches the gateway", func() bool { return len(e.cache.Deployments(model)) == 1 })
}

// hanging answers the first `hangs` calls only after release is closed
// (or the caller gives up), and the rest at once.
func hanging(t *testing.T, hangs int64, calls *atomic.Int64) string {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= hangs {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"late but fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`)
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv.URL + "/v1"
}

func TestFirstByteTimeoutRetriesAHungDeployment(t *testing.T) {
	e := newEnv(t, envOptions{timeout: 30 * time.Second, retry: &gateway.RetryOptions{Retries: 2, Backoff: time.Millisecond,
		CooldownFailures: 100, CooldownWindow: time.Minute, CooldownFor: time.Minute}})
	var calls atomic.Int64
	e.timedDeployment(hanging(t, 1, &calls), "hung-once", 0, 150, 0)
	began := time.Now()
	resp := e.ok(strings.Replace(chatSmall, "gpt-test", "hung-once", 1), e.key)
	took := time.Since(began)
	if got := resp.Header.Get("X-Tollgate-Attempts"); got != "2" || calls.Load() != 2 {
		t.Fatalf("attempts header %q, provider calls %d; want the hung call dropped and retried once", got, calls.Load())
	}
	if took > 5*time.Second {
		t.Fatalf("took %s: the first-byte timeout did not cut the hung attempt", took)
	}

	// A deployment that never answers: the caller gets a 504 naming the timeout.
	var never atomic.Int64
	e.timedDeployment(hanging(t, 1000, &never), "hung", 0, 100, 0)
	resp = e.post("/v1/chat/completions", strings.Replace(chatSmall, "gpt-test", "hung", 1), bearer(e.key))
	got := readErr(t, resp)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(got.Error.Message, "first byte timeout") ||
		!strings.Contains(got.Error.Message, "100ms") {
		t.Fatalf("never-answering deployment: %d %q", resp.StatusCode, got.Error.Message)
	}
	if never.Load() != 3 {
		t.Fatalf("%d calls to the hung deployment, want 3 (one try and two retries)", never.Load())
	}
}

func TestTotalTimeoutEndsAStreamWithAnErrorEvent(t *testing.T) {
	e := newEnv(t, envOptions{timeout: 30 * time.Second})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"id":"s","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then nothing more
	}))
	t.Cleanup(upstream.Close)
	e.timedDeployment(upstream.URL+"/v1", "stalls", 0, 0, 300)
	resp := e.post("/v1/chat/completions", strings.Replace(chatSmall, `"gpt-test"`, `"stalls","stream":true`, 1), bearer(e.key))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "Hello") || !strings.Contains(string(body), "total timeout") || !strings.Contains(string(body), `"error"`) {
		t.Fatalf("stream = %s", body)
	}
	// The partial answer is still logged, as a failure with its cost.
	eventually(t, "the broken stream is logged", func() bool {
		for _, l := range e.spendLogs() {
			if l.Model == "stalls" && l.StatusCode == http.StatusBadGateway && l.OutputTokens > 0 && l.Cost > 0 {
				return true
			}
		}
		return false
	})
}
