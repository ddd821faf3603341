package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate/gateway"
	"tollgate/gateway/openai"
	"tollgate/store"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	_, blocked := e.newKey(store.KeySpec{Blocked: true})
	past := time.Now().Add(-time.Minute)
	_, expired := e.newKey(store.KeySpec{ExpiresAt: &past})
	_, mgmt := e.newKey(store.KeySpec{KeyType: store.KeyTypeManagement})
	blockedTeam, err := e.st.CreateTeam(ctx, "test", store.TeamSpec{Name: "frozen", Blocked: true})
	if err != nil {
		t.Fatal(err)
	}
	_, inBlockedTeam := e.newKey(store.KeySpec{TeamID: &blockedTeam.ID})

	cases := []struct {
		name    string
		headers map[string]string
		status  int
		message string
	}{
		{"bearer", bearer(e.key), 200, ""},
		{"azure api-key header", map[string]string{"api-key": e.key}, 200, ""},
		{"anthropic x-api-key header", map[string]string{"x-api-key": e.key}, 200, ""},
		{"missing", nil, 401, "Missing API key"},
		{"unknown", bearer("sk-not-a-real-key-000000000000"), 401, "Invalid API key"},
		{"blocked", bearer(blocked), 401, "blocked"},
		{"expired", bearer(expired), 401, "expired"},
		{"team blocked", bearer(inBlockedTeam), 401, "frozen is blocked"},
		{"management key", bearer(mgmt), 403, "Management keys"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.post("/v1/chat/completions", chatBody, c.headers)
			if resp.StatusCode != c.status {
				body, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no x-request-id")
			}
			if c.status == 200 {
				return
			}
			got := readErr(t, resp)
			if !strings.Contains(got.Error.Message, c.message) {
				t.Errorf("message %q does not mention %q", got.Error.Message, c.message)
			}
			wantCode := map[int]string{401: "invalid_api_key", 403: "permission_denied"}[c.status]
			if got.Error.Code != wantCode {
				t.Errorf("code %q, want %q", got.Error.Code, wantCode)
			}
		})
	}
	// Rejected callers never reach the provider or the spend log.
	if n := len(e.spendLogs()); n != 3 {
		t.Errorf("spend logs = %d, want 3 (the three accepted calls)", n)
	}
}

func TestKeyChangesApplyAtOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	for _, change := range []struct {
		name  string
		apply func(id string) error
	}{
		{"deleted", func(id string) error { return e.st.DeleteKey(ctx, "test", id) }},
		{"blocked", func(id string) error { _, err := e.st.SetKeyBlocked(ctx, "test", id, true); return err }},
		{"regenerated", func(id string) error { _, _, err := e.st.RegenerateKey(ctx, "test", id); return err }},
	} {
		t.Run(change.name, func(t *testing.T) {
			k, secret := e.newKey(store.KeySpec{})
			if resp := e.post("/v1/chat/completions", chatBody, bearer(secret)); resp.StatusCode != 200 {
				t.Fatalf("before: status %d", resp.StatusCode)
			}
			if err := change.apply(k.ID); err != nil {
				t.Fatal(err)
			}
			// The change reaches the cache by NOTIFY; the next request after
			// it lands must be refused, and it must land within a second.
			eventually(t, "key refused after change", func() bool {
				return e.post("/v1/chat/completions", chatBody, bearer(secret)).StatusCode == 401
			})
			for range 5 {
				if resp := e.post("/v1/chat/completions", chatBody, bearer(secret)); resp.StatusCode != 401 {
					t.Fatalf("key worked again after refusal: %d", resp.StatusCode)
				}
			}
		})
	}
}

func TestNewKeyWorksAtOnceAfterUnknownLookup(t *testing.T) {
	e := newEnv(t, envOptions{})
	secret := "sk-chosen-secret-for-negative-cache-test"
	if resp := e.post("/v1/chat/completions", chatBody, bearer(secret)); resp.StatusCode != 401 {
		t.Fatalf("unknown key: %d", resp.StatusCode)
	}
	if _, _, err := e.st.CreateKey(context.Background(), "test", store.KeySpec{TeamID: &e.team.ID}, secret); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new key accepted despite the earlier unknown lookup", func() bool {
		return e.post("/v1/chat/completions", chatBody, bearer(secret)).StatusCode == 200
	})
}

func TestModelAccess(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	narrowTeam, err := e.st.CreateTeam(ctx, "test", store.TeamSpec{Name: "narrow", Models: []string{"gpt-test"}})
	if err != nil {
		t.Fatal(err)
	}
	_, onlyOther := e.newKey(store.KeySpec{Models: []string{"gpt-other"}})
	_, narrow := e.newKey(store.KeySpec{TeamID: &narrowTeam.ID})

	cases := []struct {
		name, key, model string
		status           int
	}{
		{"team allows all", e.key, "gpt-other", 200},
		{"key list allows", onlyOther, "gpt-other", 200},
		{"key list forbids", onlyOther, "gpt-test", 403},
		{"team list allows", narrow, "gpt-test", 200},
		{"team list forbids", narrow, "gpt-other", 403},
		{"unknown model", e.key, "gpt-nope", 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := `{"model":"` + c.model + `","messages":[{"role":"user","content":"hi"}]}`
			resp := e.post("/v1/chat/completions", body, bearer(c.key))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if c.status == 404 && readErr(t, resp).Error.Code != "model_not_found" {
				t.Error("404 without model_not_found code")
			}
		})
	}

	listed := func(key string) []string {
		req, _ := http.NewRequest(http.MethodGet, e.gw.URL+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list struct {
			Object string `json:"object"`
			Data   []struct {
				ID     string `json:"id"`
				Object string `json:"object"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&list)
		if list.Object != "list" {
			t.Fatalf("models object %q", list.Object)
		}
		var ids []string
		for _, m := range list.Data {
			ids = append(ids, m.ID)
		}
		return ids
	}
	if got := listed(e.key); !slices.Equal(got, []string{"embed-test", "gpt-other", "gpt-test"}) {
		t.Errorf("all-models key lists %v", got)
	}
	if got := listed(onlyOther); !slices.Equal(got, []string{"gpt-other"}) {
		t.Errorf("restricted key lists %v", got)
	}
	if got := listed(narrow); !slices.Equal(got, []string{"gpt-test"}) {
		t.Errorf("narrow team key lists %v", got)
	}
}

func TestBadInputIsRefusedAndNotLogged(t *testing.T) {
	e := newEnv(t, envOptions{maxBodyBytes: 1024})
	cases := []struct {
		name, path, body string
		status           int
		param            string
	}{
		{"malformed json", "/v1/chat/completions", `{"model": "gpt-test",`, 400, ""},
		{"not an object", "/v1/chat/completions", `["gpt-test"]`, 400, ""},
		{"missing model", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "model"},
		{"model not a string", "/v1/chat/completions", `{"model":7,"messages":[{"role":"user","content":"hi"}]}`, 400, "model"},
		{"missing messages", "/v1/chat/completions", `{"model":"gpt-test"}`, 400, "messages"},
		{"empty messages", "/v1/chat/completions", `{"model":"gpt-test","messages":[]}`, 400, "messages"},
		{"missing input", "/v1/embeddings", `{"model":"embed-test"}`, 400, "input"},
		{"too large", "/v1/chat/completions", `{"model":"gpt-test","messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`, 413, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := e.post(c.path, c.body, bearer(e.key))
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			got := readErr(t, resp)
			if c.status == 400 && got.Error.Type != "invalid_request_error" {
				t.Errorf("type %q", got.Error.Type)
			}
			if c.param != "" && (got.Error.Param == nil || *got.Error.Param != c.param) {
				t.Errorf("param %v, want %q", got.Error.Param, c.param)
			}
		})
	}
	if n := len(e.spendLogs()); n != 0 {
		t.Errorf("%d spend logs written for refused requests", n)
	}
	if n := len(e.captured); n != 0 {
		t.Errorf("provider called %d times for refused requests", n)
	}
}

func TestChatCompletionPricedAndLogged(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp := e.post("/v1/chat/completions", chatBody, map[string]string{
		"Authorization": "Bearer " + e.key, "X-Private-Header": "do-not-forward"})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	body, _ := io.ReadAll(resp.Body)
	usage, ok := openai.UsageOf(body)
	if !ok || usage.PromptTokens == 0 || usage.CompletionTokens == 0 {
		t.Fatalf("no usage in answer: %s", body)
	}
	wantCost := (float64(usage.PromptTokens)*inPrice + float64(usage.CompletionTokens)*outPrice) / 1e6
	gotCost, err := strconv.ParseFloat(resp.Header.Get("X-Tollgate-Cost"), 64)
	if err != nil || math.Abs(gotCost-wantCost) > 1e-12 {
		t.Errorf("x-tollgate-cost %q, want %v", resp.Header.Get("X-Tollgate-Cost"), wantCost)
	}
	if got := resp.Header.Get("X-Tollgate-Model"); got != "mock-gpt" {
		t.Errorf("x-tollgate-model %q", got)
	}

	// The provider saw its own credential and the upstream model name,
	// never the caller's key or headers.
	up := e.captured[0]
	if got := up.Header.Get("Authorization"); got != "Bearer "+upstreamKey {
		t.Errorf("upstream Authorization %q", got)
	}
	for name, vals := range up.Header {
		for _, v := range vals {
			if strings.Contains(v, e.key) || strings.Contains(v, "do-not-forward") {
				t.Errorf("caller data leaked upstream in %s", name)
			}
		}
	}

	logs := e.spendLogs()
	if len(logs) != 1 {
		t.Fatalf("%d spend logs", len(logs))
	}
	l := logs[0]
	if l.RequestID != resp.Header.Get("X-Request-Id") || l.Model != "gpt-test" || l.Provider != "fake" ||
		l.InputTokens != usage.PromptTokens || l.OutputTokens != usage.CompletionTokens ||
		math.Abs(l.Cost-wantCost) > 1e-10 || l.Status != store.StatusSuccess || l.StatusCode != 200 ||
		*l.KeyID != e.keyRow.ID || *l.TeamID != e.team.ID || l.Endpoint != "chat" {
		t.Errorf("spend log %+v", l)
	}
	k, _ := e.st.GetKey(context.Background(), e.keyRow.ID)
	if math.Abs(k.Spend-wantCost) > 1e-10 || k.LastUsedAt == nil {
		t.Errorf("key spend %v last used %v, want %v", k.Spend, k.LastUsedAt, wantCost)
	}
}

func TestEmbeddings(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp := e.post("/embeddings", `{"model":"embed-test","input":["one","two"]}`, bearer(e.key))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out struct {
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if len(out.Data) != 2 || len(out.Data[0].Embedding) == 0 {
		t.Fatalf("embeddings %+v", out)
	}
	logs := e.spendLogs()
	if len(logs) != 1 || logs[0].Endpoint != "embeddings" || logs[0].InputTokens == 0 || logs[0].OutputTokens != 0 {
		t.Errorf("spend log %+v", logs)
	}
}

func TestCost(t *testing.T) {
	cases := []struct {
		in, out     int64
		inP, outP   float64
		want        float64
		description string
	}{
		{1000, 500, 2.5, 10, 0.0075, "gpt-4o prices"},
		{1_000_000, 1_000_000, 0.15, 0.6, 0.75, "a million each"},
		{0, 0, 3, 15, 0, "no tokens"},
		{123, 0, 0.02, 0, 0.00000246, "embeddings"},
		{7, 3, 0, 0, 0, "free model"},
	}
	for _, c := range cases {
		got := gateway.Cost(openai.Usage{PromptTokens: c.in, CompletionTokens: c.out},
			&store.ModelSpec{InputCostPerMillion: c.inP, OutputCostPerMillion: c.outP})
		if math.Abs(got-c.want) > 1e-15 {
			t.Errorf("%s: cost %v, want %v", c.description, got, c.want)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.post("/v1/chat/completions", chatBody, bearer(e.key))
	for path, want := range map[string]string{
		"/health/liveliness": `"status":"ok"`,
		"/health/readiness":  `"postgres":"ok"`,
		"/metrics":           `tollgate_requests_total{endpoint="chat",model="gpt-test",status="200",team="team-a"} 1`,
	} {
		resp, err := http.Get(e.gw.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, missing %s", path, resp.StatusCode, want)
		}
	}
}

func TestLegacyCompletions(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp := e.post("/v1/completions", `{"model":"gpt-test","prompt":"Say hello"}`, bearer(e.key))
	if resp.StatusCode != 200 || resp.Header.Get("X-Tollgate-Cost") == "" {
		t.Fatalf("status %d cost %q", resp.StatusCode, resp.Header.Get("X-Tollgate-Cost"))
	}
	if r := e.post("/v1/completions", `{"model":"gpt-test"}`, bearer(e.key)); r.StatusCode != 400 || *readErr(t, r).Error.Param != "prompt" {
		t.Errorf("missing prompt: %d", r.StatusCode)
	}
	logs := e.spendLogs()
	if len(logs) != 1 || logs[0].Endpoint != "completions" || logs[0].InputTokens == 0 || logs[0].OutputTokens == 0 {
		t.Errorf("spend logs %+v", logs)
	}
	if e.captured[0].URL.Path != "/v1/completions" {
		t.Errorf("upstream path %s", e.captured[0].URL.Path)
	}
}
