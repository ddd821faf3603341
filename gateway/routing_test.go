package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/mockllm"
	"tollgate/store"
)

func (e *env) group(model, strategy string, fallbacks ...string) {
	e.t.Helper()
	if _, err := e.st.PutModelGroup(context.Background(), "test", store.ModelGroup{ModelName: model, Strategy: strategy, Fallbacks: fallbacks}); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, "the model group reaches the gateway", func() bool {
		g := e.cache.Group(model)
		return g != nil && g.Strategy == strategy && len(g.Fallbacks) == len(fallbacks)
	})
}

func TestFallbackChainAnswersWhenAModelFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	var calls atomic.Int64
	e.addDeployment("primary", failing(t, http.StatusInternalServerError, &calls), "primary", "mock-primary", 1)
	e.addDeployment("backup", e.upstream.URL+"/v1", "backup", "mock-backup", 1)
	eventually(t, "deployments", func() bool {
		return len(e.cache.Deployments("primary")) == 1 && len(e.cache.Deployments("backup")) == 1
	})
	e.group("primary", "weighted", "backup")
	resp := e.ok(strings.Replace(chatSmall, "gpt-test", "primary", 1), e.key)
	if resp.Header.Get("X-Tollgate-Model") != "mock-backup" || calls.Load() != 1 {
		t.Fatalf("answered by %s after %d calls to the primary", resp.Header.Get("X-Tollgate-Model"), calls.Load())
	}
	// The spend log bills the model that answered.
	logs := e.spendLogs()
	if logs[0].Model != "backup" {
		t.Fatalf("spend log model = %s", logs[0].Model)
	}
	// A caller mistake is not sent on to the fallback.
	resp = e.post("/v1/chat/completions", `{"model":"primary","messages":[{"role":"user","content":"hi"}],"stream":"yes"}`, bearer(e.key))
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad request: %d", resp.StatusCode)
	}
}

func TestDefaultFallbackAndAliases(t *testing.T) {
	e := newEnv(t, envOptions{fallbacks: []string{"gpt-other"}})
	var calls atomic.Int64
	e.addDeployment("down", failing(t, http.StatusServiceUnavailable, &calls), "down", "mock-down", 1)
	eventually(t, "deployment", func() bool { return len(e.cache.Deployments("down")) == 1 })
	if resp := e.ok(strings.Replace(chatSmall, "gpt-test", "down", 1), e.key); resp.Header.Get("X-Tollgate-Model") != "mock-other" {
		t.Fatalf("default fallback answered by %s", resp.Header.Get("X-Tollgate-Model"))
	}
	if _, err := e.st.PutModelAlias(context.Background(), "test", store.ModelAlias{Alias: "fast", ModelName: "gpt-test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutModelAlias(context.Background(), "test", store.ModelAlias{Alias: "gpt-other", ModelName: "gpt-test"}); err == nil {
		t.Fatal("an alias shadowing a model name was accepted")
	}
	eventually(t, "the alias reaches the gateway", func() bool { return e.cache.Resolve("fast") == "gpt-test" })
	if resp := e.ok(strings.Replace(chatSmall, "gpt-test", "fast", 1), e.key); resp.Header.Get("X-Tollgate-Model") != "mock-gpt" {
		t.Fatalf("alias answered by %s", resp.Header.Get("X-Tollgate-Model"))
	}
	// A fallback named by its alias goes to the model behind it.
	e.group("down", "weighted", "fast")
	eventually(t, "the group reaches the gateway", func() bool {
		return e.ok(strings.Replace(chatSmall, "gpt-test", "down", 1), e.key).Header.Get("X-Tollgate-Model") == "mock-gpt"
	})
}

func TestContextWindowFallback(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	small, big := int64(40), int64(100000)
	key := upstreamKey
	p, _ := e.st.CreateProvider(ctx, "test", store.ProviderInput{ProviderSpec: store.ProviderSpec{Name: "ctx", Type: "mock", APIBase: e.upstream.URL + "/v1"}, APIKey: &key})
	for _, m := range []store.ModelSpec{
		{ModelName: "small", UpstreamModel: "mock-small", ContextWindow: &small},
		{ModelName: "big", UpstreamModel: "mock-big", ContextWindow: &big},
	} {
		m.ProviderID, m.Enabled, m.OutputCostPerMillion = p.ID, true, 1
		if _, err := e.st.CreateModel(ctx, "test", m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "deployments", func() bool { return len(e.cache.Deployments("big")) == 1 && len(e.cache.Deployments("small")) == 1 })
	e.group("small", "weighted", "big")
	short := `{"model":"small","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	if got := e.ok(short, e.key).Header.Get("X-Tollgate-Model"); got != "mock-small" {
		t.Fatalf("a short prompt went to %s", got)
	}
	long := `{"model":"small","max_tokens":5,"messages":[{"role":"user","content":"` + strings.Repeat("tell me more about this ", 30) + `"}]}`
	if got := e.ok(long, e.key).Header.Get("X-Tollgate-Model"); got != "mock-big" {
		t.Fatalf("a long prompt went to %s", got)
	}
	// Without a fallback that fits, the caller is told.
	e.group("small", "weighted")
	resp := e.post("/v1/chat/completions", long, bearer(e.key))
	if got := readErr(t, resp); resp.StatusCode != http.StatusBadRequest || got.Error.Code != "context_length_exceeded" {
		t.Fatalf("too long: %d %+v", resp.StatusCode, got.Error)
	}
}

func TestLowestLatencyPrefersTheFastDeployment(t *testing.T) {
	e := newEnv(t, envOptions{})
	slowSrv := httptest.NewServer(mockllm.NewHandler(mockllm.Options{APIKey: upstreamKey, Latency: 30 * time.Millisecond}))
	t.Cleanup(slowSrv.Close)
	e.addDeployment("fast", e.upstream.URL+"/v1", "lat", "mock-fast", 1)
	e.addDeployment("slow", slowSrv.URL+"/v1", "lat", "mock-slow", 1)
	eventually(t, "deployments", func() bool { return len(e.cache.Deployments("lat")) == 2 })
	e.group("lat", "lowest_latency")
	slow := 0
	body := strings.Replace(chatSmall, "gpt-test", "lat", 1)
	for range 40 {
		if e.ok(body, e.key).Header.Get("X-Tollgate-Model") == "mock-slow" {
			slow++
		}
	}
	// Each is measured once (an unmeasured deployment goes first), then
	// the fast one takes everything.
	if slow != 1 {
		t.Fatalf("lowest latency sent %d of 40 calls to the slow deployment, want 1", slow)
	}
}

// TestFallbackToAPricierModelStaysInBudget: the reservation made for the
// model asked for is raised before falling back to a pricier one, and a
// budget that cannot take it keeps the fallback from running.
func TestFallbackToAPricierModelStaysInBudget(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	var calls atomic.Int64
	e.addDeployment("cheap", failing(t, http.StatusInternalServerError, &calls), "cheap", "mock-cheap", 1)
	key := upstreamKey
	p, err := e.st.CreateProvider(ctx, "test", store.ProviderInput{
		ProviderSpec: store.ProviderSpec{Name: "pricey", Type: "openai_compatible", APIBase: e.upstream.URL + "/v1"}, APIKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	// $1,000 per million output tokens: the default 4,096-token answer could cost about $4.10.
	if _, err := e.st.CreateModel(ctx, "test", store.ModelSpec{ModelName: "pricey", ProviderID: p.ID, UpstreamModel: "mock-pricey",
		InputCostPerMillion: 1, OutputCostPerMillion: 1000, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deployments", func() bool {
		return len(e.cache.Deployments("cheap")) == 1 && len(e.cache.Deployments("pricey")) == 1
	})
	e.group("cheap", "weighted", "pricey")
	body := `{"model":"cheap","messages":[{"role":"user","content":"hi"}]}` // no max_tokens: the worst case is 4,096 tokens

	k, secret := e.newKey(store.KeySpec{Alias: "small budget", MaxBudget: ptr(1.0)})
	resp := e.post("/v1/chat/completions", body, bearer(secret))
	got := readErr(t, resp)
	if resp.StatusCode != http.StatusBadGateway || calls.Load() != 1 {
		t.Fatalf("with $1 left: %d %q after %d calls to cheap; want cheap's failure, no fallback", resp.StatusCode, got.Error.Message, calls.Load())
	}
	for _, l := range e.spendLogs() {
		if l.KeyID != nil && *l.KeyID == k.ID && l.Model == "pricey" {
			t.Fatal("the pricier fallback ran past the budget")
		}
	}

	_, secret = e.newKey(store.KeySpec{Alias: "big budget", MaxBudget: ptr(10.0)})
	if resp := e.ok(body, secret); resp.Header.Get("X-Tollgate-Model") != "mock-pricey" {
		t.Fatalf("with $10: answered by %s", resp.Header.Get("X-Tollgate-Model"))
	}

}
