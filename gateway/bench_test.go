package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"tollgate/gateway"
	"tollgate/store"
	"tollgate/store/storetest"
)

// The gateway's added latency is BenchmarkGateway minus BenchmarkDirect:
// the same request to mock-llm (no added latency) straight and through the
// gateway, one at a time, over loopback HTTP with warm connections.
func BenchmarkDirect(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.upstream.URL+"/v1/chat/completions", strings.Replace(chatBody, "gpt-test", "mock-gpt", 1), upstreamKey)
}

func BenchmarkGateway(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.gw.URL+"/v1/chat/completions", chatBody, e.key)
}

// BenchmarkGatewayGoverned is BenchmarkGateway with every governance check
// on: key, team and user RPM/TPM limits, parallel slots and budgets on the
// key, team and user, so each request reserves and settles in Redis.
func BenchmarkGatewayGoverned(b *testing.B) {
	e := newEnv(b, envOptions{})
	ctx := context.Background()
	big := func(v int64) *int64 { return &v }
	money := func(v float64) *float64 { return &v }
	if _, err := e.st.UpdateTeam(ctx, "bench", e.team.ID, func(t *store.TeamSpec) error {
		t.RPMLimit, t.TPMLimit, t.MaxParallelRequests, t.MaxBudget = big(1e9), big(1e12), big(1000), money(1e6)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	u, err := e.st.CreateUser(ctx, "bench", store.UserInput{UserSpec: store.UserSpec{Email: "bench@example.com",
		RPMLimit: big(1e9), TPMLimit: big(1e12), MaxBudget: money(1e6)}})
	if err != nil {
		b.Fatal(err)
	}
	_, key := e.newKey(store.KeySpec{UserID: &u.ID, RPMLimit: big(1e9), TPMLimit: big(1e12), MaxParallelRequests: big(1000),
		MaxBudget: money(1e6), ModelRPMLimit: store.ModelLimits{"gpt-test": 1e9}})
	eventually(b, "the team's limits reach the gateway", func() bool {
		return e.post("/v1/chat/completions", chatBody, bearer(key)).Header.Get("X-Ratelimit-Limit-Requests") != ""
	})
	benchPost(b, e.gw.URL+"/v1/chat/completions", chatBody, key)
}

func BenchmarkDirectStream(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.upstream.URL+"/v1/chat/completions", strings.Replace(streamBody, "gpt-test", "mock-gpt", 1), upstreamKey)
}

func BenchmarkGatewayStream(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.gw.URL+"/v1/chat/completions", streamBody, e.key)
}

// BenchmarkKeyLookup is authentication's lookup of a known key: hash the
// secret and find it in the key cache, without PostgreSQL.
func BenchmarkKeyLookup(b *testing.B) {
	ctx := context.Background()
	st := storetest.New(b)
	team, err := st.CreateTeam(ctx, "bench", store.TeamSpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	_, secret, err := st.CreateKey(ctx, "bench", store.KeySpec{Alias: "bench", TeamID: &team.ID}, "")
	if err != nil {
		b.Fatal(err)
	}
	cache := gateway.NewCache(st, slog.New(slog.DiscardHandler))
	if err := cache.Load(ctx); err != nil {
		b.Fatal(err)
	}
	if _, err := cache.Key(ctx, store.HashKey(secret)); err != nil { // the miss that fills the cache
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cache.Key(ctx, store.HashKey(secret)); err != nil {
			b.Fatal(err)
		}
	}
}

const streamBody = `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"Say hello to the gateway tests"}]}`

func benchPost(b *testing.B, url, body, key string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	do := func() {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	do() // warm the connections and the key cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		do()
	}
}
