package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/gateway"
	"tollgate/store"
)

// addDeployment puts a deployment of model on a new provider at base.
func (e *env) addDeployment(provider, base, model, upstream string, weight int) {
	e.t.Helper()
	ctx := context.Background()
	key := upstreamKey
	p, err := e.st.CreateProvider(ctx, "test", store.ProviderInput{
		ProviderSpec: store.ProviderSpec{Name: provider, Type: "openai_compatible", APIBase: base}, APIKey: &key})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.CreateModel(ctx, "test", store.ModelSpec{ModelName: model, ProviderID: p.ID, UpstreamModel: upstream,
		InputCostPerMillion: 1, OutputCostPerMillion: 1, Weight: weight, Enabled: true}); err != nil {
		e.t.Fatal(err)
	}
}

// failing is a provider that answers every call with status.
func failing(t *testing.T, status int, calls *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write([]byte(`{"error":{"message":"the model is overloaded","type":"server_error"}}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

func TestWeightsSplitTraffic(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addDeployment("a", e.upstream.URL+"/v1", "split", "mock-a", 9)
	e.addDeployment("b", e.upstream.URL+"/v1", "split", "mock-b", 1)
	eventually(t, "both deployments", func() bool { return len(e.cache.Deployments("split")) == 2 })
	const n = 2000
	toA := 0
	body := strings.Replace(chatSmall, "gpt-test", "split", 1)
	for range n {
		if e.ok(body, e.key).Header.Get("X-Tollgate-Model") == "mock-a" {
			toA++
		}
	}
	share := float64(toA) / n
	if share < 0.87 || share > 0.93 {
		t.Fatalf("weights 9:1 sent %.1f%% to the first deployment, want 90%% ± 3", 100*share)
	}
	t.Logf("weights 90/10: %.1f%% / %.1f%% over %d calls", 100*share, 100*(1-share), n)
}

func TestRetriesSkipAFailingDeploymentThenCoolItDown(t *testing.T) {
	e := newEnv(t, envOptions{retry: &gateway.RetryOptions{Retries: 3, Backoff: time.Millisecond,
		CooldownFailures: 2, CooldownWindow: time.Minute, CooldownFor: time.Minute}})
	var bad atomic.Int64
	e.addDeployment("broken", failing(t, http.StatusInternalServerError, &bad), "flaky", "mock-broken", 1)
	e.addDeployment("healthy", e.upstream.URL+"/v1", "flaky", "mock-healthy", 1)
	eventually(t, "both deployments", func() bool { return len(e.cache.Deployments("flaky")) == 2 })
	body := strings.Replace(chatSmall, "gpt-test", "flaky", 1)
	retried := 0
	for range 40 {
		resp := e.ok(body, e.key)
		if resp.Header.Get("X-Tollgate-Model") != "mock-healthy" {
			t.Fatalf("answered by %s", resp.Header.Get("X-Tollgate-Model"))
		}
		if resp.Header.Get("X-Tollgate-Attempts") == "2" {
			retried++
		}
	}
	// The broken deployment was tried until it cooled down, then never again.
	if bad.Load() != 2 || retried != 2 {
		t.Fatalf("broken deployment called %d times, %d answers retried; want 2 and 2", bad.Load(), retried)
	}
}

func TestAWholeModelDownIsRetriedThenRefused(t *testing.T) {
	e := newEnv(t, envOptions{retry: &gateway.RetryOptions{Retries: 2, Backoff: time.Millisecond,
		CooldownFailures: 3, CooldownWindow: time.Minute, CooldownFor: time.Minute}})
	var calls atomic.Int64
	e.addDeployment("down", failing(t, http.StatusServiceUnavailable, &calls), "down", "mock-down", 1)
	eventually(t, "the deployment", func() bool { return len(e.cache.Deployments("down")) == 1 })
	body := strings.Replace(chatSmall, "gpt-test", "down", 1)
	resp := e.post("/v1/chat/completions", body, bearer(e.key))
	if resp.StatusCode != http.StatusBadGateway || calls.Load() != 3 {
		t.Fatalf("status %d after %d upstream calls; want 502 after 3 (1 + 2 retries)", resp.StatusCode, calls.Load())
	}
	// Three failures cooled it down: the next call is refused at once.
	resp = e.post("/v1/chat/completions", body, bearer(e.key))
	got := readErr(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || got.Error.Code != "no_healthy_deployment" || !strings.Contains(got.Error.Message, "cooling down") {
		t.Fatalf("while cooling down: %d %+v", resp.StatusCode, got.Error)
	}
	if calls.Load() != 3 {
		t.Fatalf("a cooling deployment was called: %d calls", calls.Load())
	}
}
