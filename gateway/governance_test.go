package gateway_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"tollgate/store"
)

func ptr[T any](v T) *T { return &v }

// refusal posts body and expects a 429 with code, returning its message.
func (e *env) refusal(body, key, code string) string {
	e.t.Helper()
	resp := e.post("/v1/chat/completions", body, bearer(key))
	if resp.StatusCode != http.StatusTooManyRequests {
		e.t.Fatalf("want 429 %s, got %d", code, resp.StatusCode)
	}
	got := readErr(e.t, resp)
	if got.Error.Code != code {
		e.t.Fatalf("want code %s, got %+v", code, got.Error)
	}
	if resp.Header.Get("Retry-After") == "" && code == "rate_limit_exceeded" {
		e.t.Fatalf("429 without Retry-After")
	}
	return got.Error.Message
}

func (e *env) ok(body, key string) *http.Response {
	e.t.Helper()
	resp := e.post("/v1/chat/completions", body, bearer(key))
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("want 200, got %d: %s", resp.StatusCode, readErr(e.t, resp).Error.Message)
	}
	return resp
}

const chatSmall = `{"model":"gpt-test","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`

func TestBudgetReservesTheWorstCase(t *testing.T) {
	e := newEnv(t, envOptions{})
	// gpt-test has no output cap: 4,096 answer tokens at $10/M could cost
	// $0.041, more than the whole budget; max_tokens 5 costs at most $0.00005.
	_, key := e.newKey(store.KeySpec{Alias: "tight", MaxBudget: ptr(0.01)})
	msg := e.refusal(chatBody, key, "budget_exceeded")
	if !strings.Contains(msg, `key "tight"`) || !strings.Contains(msg, "could cost up to $0.04") || !strings.Contains(msg, "max_tokens") {
		t.Fatalf("message = %q", msg)
	}
	resp := e.ok(chatSmall, key)
	if resp.Header.Get("X-Tollgate-Cost") == "" {
		t.Fatal("no cost header")
	}
	// The model's own output cap bounds the reservation too.
	models, _, _ := e.st.ListModels(context.Background(), store.ModelFilter{ModelName: "gpt-test"})
	if _, err := e.st.UpdateModel(context.Background(), "test", models[0].ID, func(m *store.ModelSpec) error {
		m.MaxOutputTokens = ptr[int64](100)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "model cap reaches the gateway", func() bool {
		return e.post("/v1/chat/completions", chatBody, bearer(key)).StatusCode == http.StatusOK
	})
}

func TestUserTeamAndGlobalBudgets(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	u, err := e.st.CreateUser(ctx, "test", store.UserInput{UserSpec: store.UserSpec{Email: "ana@example.com", MaxBudget: ptr(0.0)}})
	if err != nil {
		t.Fatal(err)
	}
	_, key := e.newKey(store.KeySpec{UserID: &u.ID})
	eventually(t, "the user reaches the gateway", func() bool {
		resp := e.post("/v1/chat/completions", chatSmall, bearer(key))
		return resp.StatusCode == http.StatusTooManyRequests && strings.Contains(readErr(t, resp).Error.Message, `user "ana@example.com"`)
	})
	e.ok(chatSmall, e.key)
	if _, err := e.st.UpdateGlobalBudget(ctx, "test", func(g *store.GlobalBudgetSpec) error { g.MaxBudget = ptr(0.0); return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the global budget reaches the gateway", func() bool {
		resp := e.post("/v1/chat/completions", chatSmall, bearer(e.key))
		return resp.StatusCode == http.StatusTooManyRequests && strings.Contains(readErr(t, resp).Error.Message, "global budget")
	})
}

func TestRateLimitHeadersAndModelLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	// No limits: no rate headers.
	if resp := e.ok(chatSmall, e.key); resp.Header.Get("X-Ratelimit-Limit-Requests") != "" {
		t.Fatal("rate headers on a key without limits")
	}
	_, key := e.newKey(store.KeySpec{Alias: "per-model", RPMLimit: ptr[int64](100), TPMLimit: ptr[int64](100000),
		ModelRPMLimit: store.ModelLimits{"gpt-test": 2}})
	for want := 1; want >= 0; want-- {
		resp := e.ok(chatSmall, key)
		h := resp.Header
		if h.Get("X-Ratelimit-Limit-Requests") != "2" || h.Get("X-Ratelimit-Remaining-Requests") != string(rune('0'+want)) ||
			h.Get("X-Ratelimit-Limit-Tokens") != "100000" || h.Get("X-Ratelimit-Reset-Requests") == "" || h.Get("X-Ratelimit-Reset-Tokens") == "" {
			t.Fatalf("headers = %v", h)
		}
	}
	if msg := e.refusal(chatSmall, key, "rate_limit_exceeded"); !strings.Contains(msg, "model_rpm_limit for gpt-test") {
		t.Fatalf("message = %q", msg)
	}
	// Other models are not limited by gpt-test's limit.
	e.ok(strings.Replace(chatSmall, "gpt-test", "gpt-other", 1), key)

	_, zero := e.newKey(store.KeySpec{RPMLimit: ptr[int64](0)})
	if msg := e.refusal(chatSmall, zero, "rate_limit_exceeded"); !strings.Contains(msg, "is 0") {
		t.Fatalf("message = %q", msg)
	}
}

func TestBudgetProfileLimits(t *testing.T) {
	e := newEnv(t, envOptions{})
	b, err := e.st.CreateBudget(context.Background(), "test", store.BudgetSpec{Name: "one-a-minute", RPMLimit: ptr[int64](1)})
	if err != nil {
		t.Fatal(err)
	}
	_, key := e.newKey(store.KeySpec{BudgetID: &b.ID})
	eventually(t, "the profile reaches the gateway", func() bool {
		e.post("/v1/chat/completions", chatSmall, bearer(key))
		return e.post("/v1/chat/completions", chatSmall, bearer(key)).StatusCode == http.StatusTooManyRequests
	})
}

func TestDeploymentLimitsSpreadLoad(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	models, _, _ := e.st.ListModels(ctx, store.ModelFilter{ModelName: "gpt-test"})
	first := models[0]
	if _, err := e.st.UpdateModel(ctx, "test", first.ID, func(m *store.ModelSpec) error { m.RPMLimit = ptr[int64](1); return nil }); err != nil {
		t.Fatal(err)
	}
	second := first.ModelSpec
	second.UpstreamModel, second.RPMLimit = "mock-second", ptr[int64](1)
	if _, err := e.st.CreateModel(ctx, "test", second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both limited deployments reach the gateway", func() bool {
		ds := e.cache.Deployments("gpt-test")
		return len(ds) == 2 && ds[0].RPMLimit != nil && ds[1].RPMLimit != nil
	})
	used := map[string]bool{}
	for range 2 {
		used[e.ok(chatSmall, e.key).Header.Get("X-Tollgate-Model")] = true
	}
	if len(used) != 2 {
		t.Fatalf("two calls used deployments %v, want one each", used)
	}
	if msg := e.refusal(chatSmall, e.key, "rate_limit_exceeded"); !strings.Contains(msg, `Every deployment of model "gpt-test"`) {
		t.Fatalf("message = %q", msg)
	}
}

func TestBlockedUsersKeysStop(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	u, err := e.st.CreateUser(ctx, "test", store.UserInput{UserSpec: store.UserSpec{Email: "bo@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	_, key := e.newKey(store.KeySpec{UserID: &u.ID})
	e.ok(chatSmall, key)
	if _, err := e.st.DB().ExecContext(ctx, `UPDATE users SET blocked = true WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the block reaches the gateway", func() bool {
		resp := e.post("/v1/chat/completions", chatSmall, bearer(key))
		return resp.StatusCode == http.StatusUnauthorized && strings.Contains(readErr(t, resp).Error.Message, "owner is blocked")
	})
	e.ok(chatSmall, e.key) // other keys are untouched
	if _, err := e.st.DB().ExecContext(ctx, `UPDATE users SET blocked = false WHERE id = $1`, u.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the unblock reaches the gateway", func() bool {
		return e.post("/v1/chat/completions", chatSmall, bearer(key)).StatusCode == http.StatusOK
	})
}
