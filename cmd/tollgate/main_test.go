package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"tollgate/config"
	"tollgate/store"
	"tollgate/store/storetest"
)

func TestCommands(t *testing.T) {
	ctx := context.Background()
	if err := run(ctx, "version", nil); err != nil {
		t.Errorf("version: %v", err)
	}
	if err := run(ctx, "frobnicate", nil); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v", err)
	}
	if err := run(ctx, "mock-llm", []string{"-error-rate", "2"}); err == nil || !strings.Contains(err.Error(), "-error-rate") {
		t.Errorf("bad mock-llm flag: %v", err)
	}
	t.Setenv("TOLLGATE_UPSTREAM_TIMEOUT", "soon")
	if err := run(ctx, "gateway", nil); err == nil || !strings.Contains(err.Error(), "TOLLGATE_UPSTREAM_TIMEOUT") {
		t.Errorf("bad setting: %v", err)
	}
}

func TestMigrateCommand(t *testing.T) {
	dsn := storetest.NewDatabase(t) // already migrated: migrate must be a no-op
	t.Setenv("DATABASE_URL", dsn)
	t.Setenv("TOLLGATE_LOG_LEVEL", "error")
	if err := run(context.Background(), "migrate", nil); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var version int
	if err := st.DB().Get(&version, `SELECT max(version_id) FROM goose_db_version`); err != nil || version < 2 {
		t.Errorf("schema version %d: %v", version, err)
	}
}

// `tollgate all -demo`, as `make run` starts it: mock-llm, demo data, and
// the demo key answering a chat completion with a cost.
func TestDemoMode(t *testing.T) {
	const demoKey = "sk-demo-e2e-test-key"
	t.Setenv("TOLLGATE_DEMO_KEY", demoKey)
	env := map[string]string{
		"DATABASE_URL":          storetest.NewDatabase(t),
		"REDIS_URL":             storetest.RedisURL(),
		"TOLLGATE_MASTER_KEY":   masterKey,
		"TOLLGATE_SECRET_KEY":   storetest.SecretKey,
		"TOLLGATE_GATEWAY_ADDR": freeAddr(t),
		"TOLLGATE_ADMIN_ADDR":   freeAddr(t),
		"TOLLGATE_MOCK_ADDR":    freeAddr(t),
		"TOLLGATE_LOG_LEVEL":    "error",
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveApps(ctx, cfg, slog.New(slog.DiscardHandler), true, true, true) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	body := waitFor(t, func() (string, error) {
		req, _ := http.NewRequest("POST", "http://"+cfg.GatewayAddr+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, Tollgate!"}]}`))
		req.Header.Set("Authorization", "Bearer "+demoKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("X-Tollgate-Cost") == "" {
			return "", &statusError{resp.StatusCode, string(b)}
		}
		return string(b), nil
	})
	if !strings.Contains(body, "Hello, Tollgate!") {
		t.Errorf("demo answer %s", body)
	}
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return http.StatusText(e.status) + ": " + e.body }
