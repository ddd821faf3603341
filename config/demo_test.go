package config_test

import (
	"context"
	"strings"
	"testing"

	"tollgate/config"
	"tollgate/store"
	"tollgate/store/storetest"
)

func TestDemoAndEnsureDemoKey(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()

	// Without the demo team there is nothing to put the key in.
	if _, err := config.EnsureDemoKey(ctx, st, "sk-demo-early-0000"); err == nil || !strings.Contains(err.Error(), "demo team") {
		t.Fatalf("EnsureDemoKey before Demo: %v, want a demo team error", err)
	}

	demo := config.Demo("http://127.0.0.1:9090/v1")
	apply(t, st, demo)
	audits := auditCount(t, st)
	apply(t, st, config.Demo("http://127.0.0.1:9090/v1"))
	if n := auditCount(t, st) - audits; n != 0 {
		t.Errorf("second Demo apply wrote %d audit rows", n)
	}
	p, err := st.ProviderByName(ctx, "mock-llm")
	if err != nil {
		t.Fatal(err)
	}
	if key, err := st.ProviderAPIKey(p); err != nil || key != "demo-upstream-key" || p.APIBase != "http://127.0.0.1:9090/v1" {
		t.Errorf("mock-llm provider = %+v, key %q, %v", p, key, err)
	}
	if m := findModel(t, st, "gpt-4o-mini", "mock-llm"); m.UpstreamModel != "mock-gpt" || m.InputCostPerMillion != 0.15 || m.OutputCostPerMillion != 0.60 {
		t.Errorf("gpt-4o-mini = %+v", m.ModelSpec)
	}
	team, err := st.TeamByName(ctx, "demo-team")
	if err != nil {
		t.Fatal(err)
	}

	const secret = "sk-demo-0123456789abcdef"
	for i := range 2 {
		got, err := config.EnsureDemoKey(ctx, st, secret)
		if err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		if got != secret {
			t.Errorf("call %d returned %q, want the given secret", i+1, got)
		}
	}
	var hashes []string
	if err := st.DB().Select(&hashes, `SELECT key_hash FROM keys`); err != nil {
		t.Fatal(err)
	}
	if len(hashes) != 1 || hashes[0] != store.HashKey(secret) {
		t.Fatalf("keys after two calls: %v, want one with hash %s", hashes, store.HashKey(secret))
	}
	k, err := st.KeyByHash(ctx, store.HashKey(secret))
	if err != nil {
		t.Fatal(err)
	}
	if k.TeamID == nil || *k.TeamID != team.ID || k.Alias != "demo" || k.Blocked {
		t.Errorf("demo key = %+v, want alias demo in demo-team", k.KeySpec)
	}

	// Without a secret, each call makes a fresh key.
	a, err := config.EnsureDemoKey(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.EnsureDemoKey(ctx, st, "")
	if err != nil {
		t.Fatal(err)
	}
	if a == b || !strings.HasPrefix(a, "sk-") || !strings.HasPrefix(b, "sk-") {
		t.Errorf("generated secrets %q and %q, want two distinct sk- keys", a, b)
	}
	for _, s := range []string{a, b} {
		if _, err := st.KeyByHash(ctx, store.HashKey(s)); err != nil {
			t.Errorf("generated key %q not stored: %v", s, err)
		}
	}
	if n := len(mustKeys(t, st)); n != 3 {
		t.Errorf("%d keys, want 3", n)
	}
}

func mustKeys(t *testing.T, st *store.Store) []store.Key {
	t.Helper()
	keys, _, err := st.ListKeys(context.Background(), store.KeyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
