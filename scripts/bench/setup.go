package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"tollgate/store"
)

// upstream is one mock-llm profile, with the reverse proxy in front of it
// and the gateway model that routes to it.
type upstream struct {
	name  string   // short, for progress lines and the JSON
	title string   // for the report
	flags []string // mock-llm timing flags
	mock  *child
	proxy *child
	model string // the gateway's public model name for this mock
}

func upstreams() []*upstream {
	return []*upstream{
		{name: "zero", title: "no latency"},
		{name: "20ms", title: "20 ms", flags: []string{"-latency", "20ms"}},
		// mock-llm sends the first chunk after half the latency and spreads
		// the rest, so each answer takes 1–3 s with its first token after
		// 0.5–1.5 s.
		{name: "1-3s", title: "1–3 s streaming", flags: []string{"-latency", "1s", "-jitter", "2s"}},
	}
}

// benchSecretKey seals the mock's provider key: the bench database is
// throwaway, and a fixed key keeps a database made by -reset=false usable.
const benchSecretKey = "62656e63682d6f6e6c792d6e6f742d612d7365637265742d6b65792d30303031"

// upstreamKey is the credential the gateway sends to mock-llm; the mocks
// accept any.
const upstreamKey = "bench-upstream-key"

const actor = "bench"

// startUpstreams starts each mock-llm and a reverse proxy in front of it.
func startUpstreams(ctx context.Context, cs *children, tollgate string, ups []*upstream) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, u := range ups {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		args := append([]string{"mock-llm", "-addr", addr, "-seed", "1"}, u.flags...)
		if u.mock, err = cs.start("mock-llm "+u.name, addr, tollgate, args, childEnv("TOLLGATE_LOG_LEVEL=warn")); err != nil {
			return err
		}
		if err := u.mock.waitHTTP(ctx, "/health", 15*time.Second); err != nil {
			return err
		}
		if addr, err = freeAddr(); err != nil {
			return err
		}
		if u.proxy, err = cs.start("reverse proxy "+u.name, addr, self, []string{reverseProxyCommand, "-addr", addr, "-upstream", u.mock.url}, childEnv()); err != nil {
			return err
		}
		if err := u.proxy.waitHTTP(ctx, "/health", 15*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// governed is what the bench made in the database for the gateway.
type governed struct {
	secret                string // the virtual key
	keyID, teamID, userID string
}

// big limits and budgets: every one is checked on every request, none
// ever refuses. Limits stay below one per nanosecond of the window: the
// per-process fallback divides the window by them.
var (
	bigRate     = int64(1_000_000_000)
	bigTokens   = int64(1_000_000_000)
	bigParallel = int64(1_000_000)
	bigBudget   = 1_000_000.0
	monthly     = "monthly"
)

// prepareDatabase migrates the database (emptied first with -reset) and
// declares a provider and a model per mock, and a key in a team for a
// user, each with RPM/TPM limits and a budget.
func prepareDatabase(ctx context.Context, o options, ups []*upstream) (*store.Store, governed, error) {
	var g governed
	sealer, err := store.NewSealer(benchSecretKey)
	if err != nil {
		return nil, g, err
	}
	st, err := store.Open(ctx, o.databaseURL, sealer)
	if err != nil {
		return nil, g, err
	}
	fail := func(err error) (*store.Store, governed, error) {
		st.Close()
		return nil, g, err
	}
	if o.reset {
		name, err := databaseName(o.databaseURL)
		if err != nil || !strings.Contains(name, "bench") {
			return fail(fmt.Errorf("-reset empties the database, so it only does so to one whose name contains \"bench\" (got %q); "+
				"use scripts/services.sh up tollgate_bench, or -reset=false", name))
		}
		if _, err := st.DB().ExecContext(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
			return fail(fmt.Errorf("empty database %s: %w", name, err))
		}
	}
	if err := st.Migrate(ctx); err != nil {
		return fail(err)
	}
	run := randomHex(3) // names of their own, in case -reset=false kept earlier runs
	key := upstreamKey
	for _, u := range ups {
		p, err := st.CreateProvider(ctx, actor, store.ProviderInput{
			ProviderSpec: store.ProviderSpec{Name: "mock-" + u.name + "-" + run, Type: "mock", APIBase: u.mock.url + "/v1"}, APIKey: &key})
		if err != nil {
			return fail(fmt.Errorf("create provider: %w", err))
		}
		u.model = "bench-" + u.name + "-" + run
		ctxWindow, maxOut := int64(128_000), int64(16_384)
		if _, err := st.CreateModel(ctx, actor, store.ModelSpec{ModelName: u.model, ProviderID: p.ID, UpstreamModel: "mock-gpt",
			InputCostPerMillion: 0.15, OutputCostPerMillion: 0.60, ContextWindow: &ctxWindow, MaxOutputTokens: &maxOut, Enabled: true}); err != nil {
			return fail(fmt.Errorf("create model: %w", err))
		}
	}
	team, err := st.CreateTeam(ctx, actor, store.TeamSpec{Name: "bench-" + run, RPMLimit: &bigRate, TPMLimit: &bigTokens,
		MaxParallelRequests: &bigParallel, MaxBudget: &bigBudget, BudgetDuration: &monthly})
	if err != nil {
		return fail(fmt.Errorf("create team: %w", err))
	}
	user, err := st.CreateUser(ctx, actor, store.UserInput{UserSpec: store.UserSpec{Email: "bench-" + run + "@example.com",
		RPMLimit: &bigRate, TPMLimit: &bigTokens, MaxBudget: &bigBudget, BudgetDuration: &monthly}})
	if err != nil {
		return fail(fmt.Errorf("create user: %w", err))
	}
	k, secret, err := st.CreateKey(ctx, actor, store.KeySpec{Alias: "bench-" + run, TeamID: &team.ID, UserID: &user.ID,
		RPMLimit: &bigRate, TPMLimit: &bigTokens, MaxParallelRequests: &bigParallel, MaxBudget: &bigBudget, BudgetDuration: &monthly}, "")
	if err != nil {
		return fail(fmt.Errorf("create key: %w", err))
	}
	return st, governed{secret: secret, keyID: k.ID, teamID: team.ID, userID: user.ID}, nil
}

func databaseName(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("not a postgres:// URL")
	}
	return strings.TrimPrefix(u.Path, "/"), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// startGateway runs `tollgate gateway` against the database, with the
// webhook billing sink at sinkURL.
func startGateway(ctx context.Context, cs *children, o options, sinkURL, spoolDir string) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := childEnv(
		"DATABASE_URL="+o.databaseURL,
		"REDIS_URL="+o.redisURL,
		"TOLLGATE_SECRET_KEY="+benchSecretKey,
		"TOLLGATE_GATEWAY_ADDR="+addr,
		"TOLLGATE_AUTO_MIGRATE=false",
		"TOLLGATE_SPOOL_DIR="+spoolDir,
		"TOLLGATE_BILLING_WEBHOOK_URL="+sinkURL,
		"TOLLGATE_BILLING_WEBHOOK_SECRET=bench-sink-secret",
		// Pushed as they come rather than in 30 s bursts, so that metering
		// costs each cell its share.
		"TOLLGATE_METER_PUSH_INTERVAL=2s",
	)
	if o.pprof != "" {
		env = append(env, "TOLLGATE_PPROF_ADDR="+o.pprof)
	}
	gw, err := cs.start("gateway", addr, o.tollgate, []string{"gateway"}, env)
	if err != nil {
		return nil, err
	}
	return gw, gw.waitHTTP(ctx, "/health/liveliness", 30*time.Second)
}

// meterSink is the billing system: it takes the gateway's webhook batches
// and counts the distinct events.
type meterSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events map[string]struct{}
}

func newMeterSink() *meterSink {
	s := &meterSink{events: map[string]struct{}{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, e := range body.Events {
			s.events[e.ID] = struct{}{}
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	return s
}

func (s *meterSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// cleanRedis deletes the counters the gateway kept for the bench's key,
// team and user; budgets would otherwise stay 35 days.
func cleanRedis(ctx context.Context, redisURL string, g governed) error {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	for _, id := range []string{g.keyID, g.teamID, g.userID} {
		if id == "" {
			continue
		}
		iter := rdb.Scan(ctx, 0, "*"+id+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			return err
		}
	}
	return nil
}

// redisPID is the Redis server's process id when it runs on this machine
// and its /proc entry is readable, else 0.
func redisPID(ctx context.Context, redisURL string) int {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return 0
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			var pid int
			fmt.Sscan(v, &pid)
			local := strings.HasPrefix(opts.Addr, "127.0.0.1:") || strings.HasPrefix(opts.Addr, "localhost:")
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if local && strings.HasPrefix(string(comm), "redis") {
				return pid
			}
		}
	}
	return 0
}
