package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/gateway"
	"tollgate/gateway/limits"
	"tollgate/mockllm"
	"tollgate/store"
	"tollgate/store/storetest"
)

// upstreamKey is the provider credential the gateway must inject.
const upstreamKey = "prov-upstream-credential-0123456789"

// prices of the test model, per million tokens.
const (
	inPrice  = 2.5
	outPrice = 10.0
)

// env is a gateway on loopback in front of a fake provider, on a real
// PostgreSQL database and Redis.
type env struct {
	t        testing.TB
	st       *store.Store
	gw       *httptest.Server
	upstream *httptest.Server
	cache    *gateway.Cache
	spend    *gateway.SpendWriter
	team     *store.Team
	key      string // secret of a key in team with access to all team models
	keyRow   *store.Key

	mu       sync.Mutex
	captured []*http.Request   // requests the provider received
	bodies   [][]byte          // their bodies
	hooks    map[string]string // mock-llm test hooks added to upstream requests

	// Handlers still running. A whole answer reaches the caller before its
	// handler settles and logs it, so reading spend logs waits for them.
	active atomic.Int64
}

type envOptions struct {
	upstream     http.Handler // defaults to mock-llm requiring upstreamKey
	maxBodyBytes int64
	timeout      time.Duration
	limits       limits.Options
	retry        *gateway.RetryOptions // nil: no retries and no cooldowns, so each test sees one upstream call per request
	fallbacks    []string              // default fallbacks
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, st: storetest.New(t)}
	if o.upstream == nil {
		o.upstream = mockllm.NewHandler(mockllm.Options{APIKey: upstreamKey})
	}
	e.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		e.mu.Lock()
		e.captured = append(e.captured, r.Clone(context.Background()))
		e.bodies = append(e.bodies, body)
		for k, v := range e.hooks {
			r.Header.Set(k, v)
		}
		e.mu.Unlock()
		o.upstream.ServeHTTP(w, r)
	}))
	t.Cleanup(e.upstream.Close)

	ctx := context.Background()
	key := upstreamKey
	prov, err := e.st.CreateProvider(ctx, "test", store.ProviderInput{
		ProviderSpec: store.ProviderSpec{Name: "fake", Type: "mock", APIBase: e.upstream.URL + "/v1"}, APIKey: &key})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []store.ModelSpec{
		{ModelName: "gpt-test", UpstreamModel: "mock-gpt", InputCostPerMillion: inPrice, OutputCostPerMillion: outPrice},
		{ModelName: "gpt-other", UpstreamModel: "mock-other", InputCostPerMillion: 1, OutputCostPerMillion: 1},
		{ModelName: "embed-test", UpstreamModel: "mock-embed", InputCostPerMillion: 0.02},
	} {
		m.ProviderID, m.Enabled = prov.ID, true
		if _, err := e.st.CreateModel(ctx, "test", m); err != nil {
			t.Fatal(err)
		}
	}
	if e.team, err = e.st.CreateTeam(ctx, "test", store.TeamSpec{Name: "team-a"}); err != nil {
		t.Fatal(err)
	}
	e.keyRow, e.key = e.newKey(store.KeySpec{Alias: "main"})

	log := slog.New(slog.DiscardHandler)
	e.cache = gateway.NewCache(e.st, log)
	if err := e.cache.Load(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	go e.cache.Run(runCtx)
	e.spend = gateway.NewSpendWriter(e.st, gateway.SpendOptions{Interval: 20 * time.Millisecond, SpoolDir: t.TempDir()}, log)
	e.spend.Start()
	if o.maxBodyBytes == 0 {
		o.maxBodyBytes = 10 << 20
	}
	if o.timeout == 0 {
		o.timeout = 30 * time.Second
	}
	retry := gateway.RetryOptions{Retries: -1, CooldownFailures: 1 << 30}
	if o.retry != nil {
		retry = *o.retry
	}
	srv := gateway.New(e.st, storetest.Redis(t), e.cache, e.spend, gateway.Options{MaxBodyBytes: o.maxBodyBytes, UpstreamTimeout: o.timeout,
		Limits: o.limits, Retry: retry, DefaultFallbacks: o.fallbacks}, log)
	go srv.Run(runCtx)
	h := srv.Handler()
	e.gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.active.Add(1)
		defer e.active.Add(-1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		e.gw.Close()
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		e.spend.Stop(sctx)
	})
	return e
}

// newKey creates a key in the env's team unless spec names another team.
func (e *env) newKey(spec store.KeySpec) (*store.Key, string) {
	e.t.Helper()
	if spec.TeamID == nil {
		spec.TeamID = &e.team.ID
	}
	k, secret, err := e.st.CreateKey(context.Background(), "test", spec, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return k, secret
}

// post sends a JSON body to the gateway with the given headers.
func (e *env) post(path, body string, headers map[string]string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.gw.URL+path, bytes.NewBufferString(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func bearer(key string) map[string]string { return map[string]string{"Authorization": "Bearer " + key} }

const chatBody = `{"model":"gpt-test","messages":[{"role":"user","content":"Say hello to the gateway tests"}]}`

// apiErr is the OpenAI error envelope.
type apiErr struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func readErr(t testing.TB, resp *http.Response) apiErr {
	t.Helper()
	var e apiErr
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" {
		t.Fatalf("status %d: body is not an error envelope: %s", resp.StatusCode, body)
	}
	return e
}

// spendLogs flushes the writer and returns every spend log, newest first.
func (e *env) spendLogs() []store.SpendLog {
	e.t.Helper()
	// Requests the test holds open (a stream it reads slowly) would wait
	// forever: after a while, read what there is.
	for deadline := time.Now().Add(3 * time.Second); e.active.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := e.spend.Flush(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	logs, _, err := e.st.ListSpendLogs(context.Background(), store.SpendFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		e.t.Fatal(err)
	}
	return logs
}

// eventually polls cond for up to 10 s: changes arrive by NOTIFY within
// milliseconds, but a loaded CI machine running -race can be slow.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
