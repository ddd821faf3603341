package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tollgate/mockllm"
	"tollgate/store"
	"tollgate/store/storetest"
)

// These tests run real `tollgate gateway` processes side by side on one
// PostgreSQL and one Redis, each reached through a proxy the test can cut.

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// tollgateBinary builds the command once per test run.
func tollgateBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "tollgate-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "tollgate")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type replica struct {
	url string
	cmd *exec.Cmd
	out *syncBuffer
}

type cluster struct {
	t        *testing.T
	st       *store.Store // direct, not through the proxy
	pg, rdb  *storetest.Proxy
	replicas []*replica
	team     *store.Team
	client   *http.Client
}

// Prices that make cost easy to reason about: input is free and each
// output token costs $0.02, so a call with max_tokens 5 costs exactly $0.10
// (the mock always answers with at least 11 words, one token each).
const outputPricePerMillion = 20000

func startCluster(t *testing.T, n int, extra map[string]string) *cluster {
	t.Helper()
	ctx := context.Background()
	dsn := storetest.NewDatabase(t)
	sealer, _ := store.NewSealer(storetest.SecretKey)
	st, err := store.Open(ctx, dsn, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &cluster{t: t, st: st,
		pg:     storetest.NewProxy(t, hostOf(t, dsn)),
		rdb:    storetest.NewProxy(t, hostOf(t, storetest.RedisURL())),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second},
	}
	fast := httptest.NewServer(mockllm.NewHandler(mockllm.Options{APIKey: "upstream-key"}))
	slow := httptest.NewServer(mockllm.NewHandler(mockllm.Options{APIKey: "upstream-key", Latency: 500 * time.Millisecond}))
	t.Cleanup(fast.Close)
	t.Cleanup(slow.Close)
	apiKey := "upstream-key"
	for name, srv := range map[string]*httptest.Server{"gpt-4o-mini": fast, "slow-model": slow} {
		p, err := st.CreateProvider(ctx, "test", store.ProviderInput{
			ProviderSpec: store.ProviderSpec{Name: "mock-" + name, Type: "mock", APIBase: srv.URL + "/v1"}, APIKey: &apiKey})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateModel(ctx, "test", store.ModelSpec{ModelName: name, ProviderID: p.ID, UpstreamModel: "mock-gpt",
			OutputCostPerMillion: outputPricePerMillion, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	if c.team, err = st.CreateTeam(ctx, "test", store.TeamSpec{Name: "platform"}); err != nil {
		t.Fatal(err)
	}
	for range n {
		c.replicas = append(c.replicas, c.startReplica(n, extra))
	}
	for _, r := range c.replicas {
		c.waitReady(r, "ok", 15*time.Second)
	}
	return c
}

func hostOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func (c *cluster) startReplica(n int, extra map[string]string) *replica {
	t := c.t
	addr := freeAddr(t)
	env := map[string]string{
		"DATABASE_URL":                  storetest.ProxyURL(mustDSN(t, c), c.pg),
		"REDIS_URL":                     storetest.ProxyURL(storetest.RedisURL(), c.rdb),
		"TOLLGATE_SECRET_KEY":           storetest.SecretKey,
		"TOLLGATE_GATEWAY_ADDR":         addr,
		"TOLLGATE_REPLICAS":             fmt.Sprint(n),
		"TOLLGATE_RATE_LIMIT_WINDOW":    rateWindow.String(),
		"TOLLGATE_SPOOL_DIR":            t.TempDir(),
		"TOLLGATE_SPEND_FLUSH_INTERVAL": "100ms",
		"TOLLGATE_AUTO_MIGRATE":         "false",
		"TOLLGATE_LOG_LEVEL":            "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	cmd := exec.Command(tollgateBinary(t), "gateway")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, flatten(env)...)
	r := &replica{url: "http://" + addr, cmd: cmd, out: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if out := r.out.String(); t.Failed() || strings.Contains(out, "panic") {
			t.Logf("replica %s output:\n%s", r.url, out)
		}
		if strings.Contains(r.out.String(), "panic:") {
			t.Errorf("replica %s panicked", r.url)
		}
	})
	return r
}

func mustDSN(t *testing.T, c *cluster) string {
	var name string
	if err := c.st.DB().Get(&name, `SELECT current_database()`); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(storetest.AdminURL())
	u.Path = "/" + name
	return u.String()
}

func flatten(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// readiness returns a replica's readiness answer.
func (c *cluster) readiness(r *replica) map[string]any {
	resp, err := c.client.Get(r.url + "/health/readiness")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return body
}

func (c *cluster) waitReady(r *replica, status string, within time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if body := c.readiness(r); body != nil && body["status"] == status {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("replica %s did not report %q within %s: %v\n%s", r.url, status, within, c.readiness(r), r.out.String())
	return 0
}

func (c *cluster) key(spec store.KeySpec) (*store.Key, string) {
	c.t.Helper()
	if spec.TeamID == nil {
		spec.TeamID = &c.team.ID
	}
	k, secret, err := c.st.CreateKey(context.Background(), "test", spec, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return k, secret
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (a answer) message() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// chat sends one chat completion with max_tokens 5 to replica i.
func (c *cluster) chat(i int, secret, model string) answer {
	body := fmt.Sprintf(`{"model":%q,"max_tokens":5,"messages":[{"role":"user","content":"Say something short about budgets."}]}`, model)
	req, _ := http.NewRequest(http.MethodPost, c.replicas[i%len(c.replicas)].url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return answer{status: -1, body: map[string]any{"error": map[string]any{"message": err.Error()}}}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header}
	json.Unmarshal(raw, &a.body)
	return a
}

// burst sends n requests from workers goroutines, alternating replicas.
func (c *cluster) burst(n, workers int, secret, model string) []answer {
	out := make([]answer, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = c.chat(i, secret, model)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func countStatus(as []answer, status int) int {
	n := 0
	for _, a := range as {
		if a.status == status {
			n++
		}
	}
	return n
}

// waitSpend waits until the key's written spend-log rows reach want.
func (c *cluster) waitSpendLogs(keyID string, want int, within time.Duration) (int, time.Duration) {
	start := time.Now()
	var n int
	for time.Since(start) < within {
		c.st.DB().Get(&n, `SELECT count(*) FROM spend_logs WHERE key_id = $1`, keyID)
		if n >= want {
			return n, time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n, time.Since(start)
}

func TestBudgetHoldsUnderConcurrencyAcrossReplicas(t *testing.T) {
	c := startCluster(t, 2, nil)
	// Each call reserves and costs exactly $0.10: the budget fits 10.
	k, secret := c.key(store.KeySpec{Alias: "race", MaxBudget: ptr(1.0), BudgetDuration: ptr("monthly")})
	answers := c.burst(50, 50, secret, "gpt-4o-mini")
	ok := countStatus(answers, http.StatusOK)
	if ok != 10 {
		t.Fatalf("%d of 50 concurrent requests succeeded against a budget that fits 10", ok)
	}
	for _, a := range answers {
		if a.status == http.StatusOK {
			if a.header.Get("X-Tollgate-Cost") != "0.1" {
				t.Fatalf("a call cost %s, want 0.1", a.header.Get("X-Tollgate-Cost"))
			}
			continue
		}
		e, _ := a.body["error"].(map[string]any)
		if a.status != http.StatusTooManyRequests || a.code() != "budget_exceeded" || e["type"] != "insufficient_quota" ||
			!strings.Contains(a.message(), `key "race"`) || !strings.Contains(a.message(), "resets at") {
			t.Fatalf("refusal = %d %v", a.status, a.body)
		}
	}
	if n, _ := c.waitSpendLogs(k.ID, 10, 10*time.Second); n != 10 {
		t.Fatalf("spend logs = %d, want 10", n)
	}
	var spend float64
	c.st.DB().Get(&spend, `SELECT spend FROM keys WHERE id = $1`, k.ID)
	if spend > 1.0+1e-9 {
		t.Fatalf("final spend %.4f exceeds the budget of 1.00", spend)
	}
	t.Logf("budget race: 50 concurrent on 2 replicas, %d admitted, final spend $%.4f of $1.00", ok, spend)

	// A second budget on the team holds the same way: its spend counts all keys.
	if _, err := c.st.UpdateTeam(context.Background(), "test", c.team.ID, func(s *store.TeamSpec) error {
		s.MaxBudget = ptr(1.5)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the change reaches both replicas by NOTIFY
	_, other := c.key(store.KeySpec{Alias: "other"})
	answers = c.burst(20, 20, other, "gpt-4o-mini")
	if ok := countStatus(answers, http.StatusOK); ok != 5 {
		t.Fatalf("team budget 1.50 with 1.00 spent admitted %d calls of $0.10, want 5", ok)
	}
}

// rateWindow is the replicas' shortened rate-limit minute.
const rateWindow = 30 * time.Second

func TestRateLimitsAcrossReplicas(t *testing.T) {
	c := startCluster(t, 2, nil)

	// RPM: 60 per (shortened) minute, shared by both replicas.
	_, secret := c.key(store.KeySpec{Alias: "rpm", RPMLimit: ptr[int64](60)})
	began := time.Now()
	answers := c.burst(120, 16, secret, "gpt-4o-mini")
	// GCRA refills one request per window/60 (0.5 s here): a burst slowed
	// by a loaded machine earns that many more.
	refill := int(time.Since(began) / (rateWindow / 60))
	ok := countStatus(answers, http.StatusOK)
	if ok < 60 || ok > 61+refill {
		t.Fatalf("RPM 60 across two replicas admitted %d of 120 (burst took %s, allowing %d refilled)", ok, time.Since(began), refill)
	}
	for _, a := range answers {
		if a.status == http.StatusOK {
			if a.header.Get("X-Ratelimit-Limit-Requests") != "60" || a.header.Get("X-Ratelimit-Remaining-Requests") == "" {
				t.Fatalf("success without rate headers: %v", a.header)
			}
			continue
		}
		if a.status != http.StatusTooManyRequests || a.code() != "rate_limit_exceeded" || a.header.Get("Retry-After") == "" ||
			!strings.Contains(a.message(), "rpm_limit") {
			t.Fatalf("refusal = %d %v %v", a.status, a.header, a.body)
		}
	}
	t.Logf("RPM 60 on 2 replicas: %d of 120 admitted", ok)

	// TPM: tokens are charged up front and corrected after the answer.
	_, tsecret := c.key(store.KeySpec{Alias: "tpm", TPMLimit: ptr[int64](300)})
	used, perCall, admitted := int64(0), int64(0), 0
	var refusal answer
	began = time.Now()
	for i := range 40 {
		a := c.chat(i, tsecret, "gpt-4o-mini")
		if a.status != http.StatusOK {
			refusal = a
			break
		}
		u := a.body["usage"].(map[string]any)
		perCall = int64(u["total_tokens"].(float64))
		used += perCall
		admitted++
	}
	if refusal.status != http.StatusTooManyRequests || refusal.header.Get("X-Ratelimit-Limit-Tokens") != "300" || !strings.Contains(refusal.message(), "tpm_limit") {
		t.Fatalf("TPM 300: no proper refusal after %d calls (%d tokens): %d %v", admitted, used, refusal.status, refusal.body)
	}
	// As above: 300 tokens per window refill 10 a second.
	if refilled := int64(time.Since(began) * 300 / rateWindow); used > 300+perCall+refilled {
		t.Fatalf("TPM 300 let %d tokens through (%d per call, %d refilled in %s)", used, perCall, refilled, time.Since(began))
	}
	t.Logf("TPM 300: %d calls, %d tokens admitted", admitted, used)

	// Parallel: at most 3 in flight across both replicas.
	_, psecret := c.key(store.KeySpec{Alias: "parallel", MaxParallelRequests: ptr[int64](3)})
	answers = c.burst(10, 10, psecret, "slow-model")
	if ok := countStatus(answers, http.StatusOK); ok != 3 {
		t.Fatalf("max_parallel_requests 3 admitted %d of 10 concurrent", ok)
	}
	for _, a := range answers {
		if a.status != http.StatusOK && !strings.Contains(a.message(), "max_parallel_requests") {
			t.Fatalf("parallel refusal = %d %v", a.status, a.body)
		}
	}
	// Slots are given back: the next call passes.
	if a := c.chat(0, psecret, "slow-model"); a.status != http.StatusOK {
		t.Fatalf("after the burst: %d %v", a.status, a.body)
	}
}

func TestRedisOutageKeepsServing(t *testing.T) {
	c := startCluster(t, 2, nil)
	_, secret := c.key(store.KeySpec{Alias: "steady"})
	if a := c.chat(0, secret, "gpt-4o-mini"); a.status != http.StatusOK {
		t.Fatalf("before the outage: %d %v", a.status, a.body)
	}

	c.rdb.Cut()
	for _, r := range c.replicas {
		c.waitReady(r, "degraded", 3*time.Second)
		if body := c.readiness(r); body["redis"] != "unreachable" {
			t.Fatalf("readiness while Redis is down = %v", body)
		}
		if m := c.metrics(r); !strings.Contains(m, "tollgate_redis_up 0") {
			t.Fatalf("metrics while Redis is down lack tollgate_redis_up 0")
		}
	}
	start := time.Now()
	answers := c.burst(100, 8, secret, "gpt-4o-mini")
	if ok := countStatus(answers, http.StatusOK); ok != 100 {
		t.Fatalf("with Redis down, %d of 100 calls succeeded", ok)
	}
	t.Logf("Redis down: 100 of 100 calls served in %s", time.Since(start).Round(time.Millisecond))
	// Limits fall back to each replica's share: 20 / 2 replicas = 10 on replica 0.
	_, limited := c.key(store.KeySpec{Alias: "fallback", RPMLimit: ptr[int64](20)})
	got := 0
	for range 30 {
		if a := c.chat(0, limited, "gpt-4o-mini"); a.status == http.StatusOK {
			got++
		}
	}
	if got != 10 {
		t.Fatalf("fallback RPM on one of two replicas admitted %d of 30, want 10", got)
	}

	c.rdb.Restore()
	for _, r := range c.replicas {
		took := c.waitReady(r, "ok", 5*time.Second)
		t.Logf("replica back on Redis after %s", took.Round(time.Millisecond))
	}
	_, shared := c.key(store.KeySpec{Alias: "shared-again", RPMLimit: ptr[int64](10)})
	if ok := countStatus(c.burst(20, 4, shared, "gpt-4o-mini"), http.StatusOK); ok < 10 || ok > 11 {
		t.Fatalf("after Redis returned, RPM 10 across replicas admitted %d of 20", ok)
	}
}

func (c *cluster) metrics(r *replica) string {
	resp, err := c.client.Get(r.url + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestPostgresOutageLosesNoSpendLogs(t *testing.T) {
	// A small memory queue, so the outage also spills to disk.
	c := startCluster(t, 2, map[string]string{"TOLLGATE_SPEND_MAX_QUEUED": "100"})
	k, secret := c.key(store.KeySpec{Alias: "load"})
	// Warm both replicas' key caches.
	for i := range 2 {
		if a := c.chat(i, secret, "gpt-4o-mini"); a.status != http.StatusOK {
			t.Fatalf("warm-up: %d %v", a.status, a.body)
		}
	}
	var mu sync.Mutex
	served, failed := 2, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				a := c.chat(i, secret, "gpt-4o-mini")
				mu.Lock()
				if a.status == http.StatusOK {
					served++
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	c.pg.Cut()
	time.Sleep(10 * time.Second)
	queued := 0.0
	for _, r := range c.replicas {
		body := c.readiness(r)
		if body["status"] != "degraded" || body["postgres"] != "unreachable" {
			t.Errorf("readiness with PostgreSQL down = %v", body)
		}
		q, _ := body["spend_logs_queued"].(float64)
		queued += q
	}
	c.pg.Restore()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d calls failed while PostgreSQL was down", failed)
	}
	if !strings.Contains(c.metrics(c.replicas[0]), "tollgate_spend_logs_spooled") {
		t.Error("metrics lack tollgate_spend_logs_spooled")
	}
	if queued <= 200 {
		t.Errorf("only %.0f spend logs were queued at the end of the outage; the test wants more than memory holds", queued)
	}
	n, took := c.waitSpendLogs(k.ID, served, 60*time.Second)
	if n != served {
		t.Fatalf("%d calls served, %d spend logs written", served, n)
	}
	t.Logf("PostgreSQL down 10s under load: %d calls served, %.0f spend logs queued at the end, all %d written %s after it returned",
		served, queued, n, took.Round(time.Millisecond))
}

func TestKeyChangesReachEveryReplicaWithinASecond(t *testing.T) {
	c := startCluster(t, 2, nil)
	ctx := context.Background()
	k, secret := c.key(store.KeySpec{Alias: "lifecycle"})
	for i := range 2 {
		if a := c.chat(i, secret, "gpt-4o-mini"); a.status != http.StatusOK {
			t.Fatalf("replica %d: %d %v", i, a.status, a.body)
		}
	}
	// until polls both replicas until each answers want, and returns how long the slower took.
	until := func(what, s string, want int) {
		t.Helper()
		start := time.Now()
		for i := range 2 {
			for c.chat(i, s, "gpt-4o-mini").status != want {
				if time.Since(start) > time.Second {
					t.Fatalf("%s: replica %d still not answering %d after 1s", what, i, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		t.Logf("%s: both replicas answer %d after %s", what, want, time.Since(start).Round(time.Millisecond))
	}
	if _, err := c.st.SetKeyBlocked(ctx, "test", k.ID, true); err != nil {
		t.Fatal(err)
	}
	until("block", secret, http.StatusUnauthorized)
	if _, err := c.st.SetKeyBlocked(ctx, "test", k.ID, false); err != nil {
		t.Fatal(err)
	}
	until("unblock", secret, http.StatusOK)
	_, fresh, err := c.st.RegenerateKey(ctx, "test", k.ID)
	if err != nil {
		t.Fatal(err)
	}
	until("regenerate (old secret)", secret, http.StatusUnauthorized)
	until("regenerate (new secret)", fresh, http.StatusOK)
	if _, err := c.st.UpdateKey(ctx, "test", k.ID, func(s *store.KeySpec) error {
		at := time.Now().Add(300 * time.Millisecond)
		s.ExpiresAt = &at
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	until("expiry", fresh, http.StatusUnauthorized)
	if err := c.st.DeleteKey(ctx, "test", k.ID); err != nil {
		t.Fatal(err)
	}
	until("delete", fresh, http.StatusUnauthorized)
}

func ptr[T any](v T) *T { return &v }
