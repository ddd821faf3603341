package gateway_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/gateway"
	"tollgate/jobs"
	"tollgate/mockllm"
	"tollgate/store"
)

func TestHealthChecksExcludeAndReadmitADeployment(t *testing.T) {
	e := newEnv(t, envOptions{})
	var broken atomic.Bool
	var calls atomic.Int64
	mock := mockllm.NewHandler(mockllm.Options{APIKey: upstreamKey})
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if broken.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":{"message":"down for maintenance"}}`))
			return
		}
		mock.ServeHTTP(w, r)
	}))
	t.Cleanup(sick.Close)
	e.addDeployment("sometimes", sick.URL+"/v1", "h", "mock-sometimes", 1)
	e.addDeployment("always", e.upstream.URL+"/v1", "h", "mock-always", 1)
	eventually(t, "deployments", func() bool { return len(e.cache.Deployments("h")) == 2 })
	client := &http.Client{Timeout: 5 * time.Second}
	probe := func(ctx context.Context, m store.Model, p *store.Provider, key string) (time.Duration, error) {
		return gateway.Probe(ctx, client, m, p, key)
	}
	check := func() {
		t.Helper()
		if err := jobs.CheckHealth(context.Background(), e.st, probe, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
	body := strings.Replace(chatSmall, "gpt-test", "h", 1)

	broken.Store(true)
	check()
	health, _ := e.st.AllHealth(context.Background())
	sickID := ""
	for _, d := range e.cache.Deployments("h") {
		if d.UpstreamModel == "mock-sometimes" {
			sickID = d.ID
		}
	}
	if h := health[sickID]; h.Healthy || !strings.Contains(h.Error, "HTTP 503") {
		t.Fatalf("probe of the broken deployment = %+v", h)
	}
	eventually(t, "the gateway leaves it out", func() bool { return e.cache.Unhealthy(sickID) })
	before := calls.Load()
	for range 30 {
		if got := e.ok(body, e.key).Header.Get("X-Tollgate-Model"); got != "mock-always" {
			t.Fatalf("routed to %s while it is unhealthy", got)
		}
	}
	if calls.Load() != before {
		t.Fatal("an unhealthy deployment got traffic")
	}

	broken.Store(false)
	check()
	eventually(t, "the gateway takes it back", func() bool { return !e.cache.Unhealthy(sickID) })
	back := 0
	for range 30 {
		if e.ok(body, e.key).Header.Get("X-Tollgate-Model") == "mock-sometimes" {
			back++
		}
	}
	if back == 0 {
		t.Fatal("a healthy-again deployment got no traffic")
	}
	// All unhealthy: refused with the reason, or sent to a fallback.
	broken.Store(true)
	check()
	e.addDeployment("other-sick", sick.URL+"/v1", "solo", "mock-solo", 1)
	eventually(t, "solo", func() bool { return len(e.cache.Deployments("solo")) == 1 })
	check()
	soloID := e.cache.Deployments("solo")[0].ID
	eventually(t, "solo unhealthy", func() bool { return e.cache.Unhealthy(soloID) })
	resp := e.post("/v1/chat/completions", strings.Replace(chatSmall, "gpt-test", "solo", 1), bearer(e.key))
	if got := readErr(t, resp); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(got.Error.Message, "health check") {
		t.Fatalf("all unhealthy: %d %+v", resp.StatusCode, got.Error)
	}
}
