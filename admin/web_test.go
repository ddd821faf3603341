package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"tollgate/mockllm"
	"tollgate/store"
)

// browser is a cookie-keeping client for the dashboard's pages.
type browser struct {
	e      *env
	client *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// send makes a request like a same-origin page (htmx when hx is true).
func (b *browser) send(method, path string, form url.Values, hx bool, headers ...string) (*http.Response, string) {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, b.e.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if hx {
		req.Header.Set("HX-Request", "true")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, string(raw)
}

func (b *browser) signIn() {
	b.e.t.Helper()
	resp, _ := b.send("POST", "/signin", url.Values{"master_key": {masterKey}}, false)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		b.e.t.Fatalf("sign in: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestDashboardSessions(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if resp, _ := b.send("GET", "/keys", nil, false); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("no session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := b.send("GET", "/keys", nil, true); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != "/signin" {
		t.Errorf("htmx without session: %d %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
	resp, body := b.send("POST", "/signin", url.Values{"master_key": {"wrong"}}, false)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not the master key") {
		t.Errorf("wrong key: %d", resp.StatusCode)
	}
	b.signIn()
	var cookie *http.Cookie
	u, _ := url.Parse(e.srv.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == "tollgate_session" {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no session cookie")
	}
	resp, _ = b.send("POST", "/signin", url.Values{"master_key": {masterKey}}, false)
	setCookie := resp.Header.Get("Set-Cookie")
	if !strings.Contains(setCookie, "HttpOnly") || !strings.Contains(setCookie, "SameSite=Lax") {
		t.Errorf("cookie flags: %s", setCookie)
	}
	if strings.Contains(setCookie, masterKey) {
		t.Error("master key in the cookie")
	}

	for _, path := range []string{"/dashboard", "/providers", "/models", "/teams", "/users", "/keys", "/spend", "/audit"} {
		resp, body := b.send("GET", path, nil, false)
		if resp.StatusCode != 200 || !strings.Contains(body, "<main") {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, " style=") {
			t.Errorf("%s: inline script or style", path)
		}
	}

	// A post from another site is refused (CSRF), and changes nothing.
	teams := 0
	e.st.DB().Get(&teams, `SELECT count(*) FROM teams`)
	resp, _ = b.send("POST", "/teams", url.Values{"name": {"evil-team"}}, true, "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site post: %d", resp.StatusCode)
	}
	after := 0
	e.st.DB().Get(&after, `SELECT count(*) FROM teams`)
	if after != teams {
		t.Error("cross-site post created a team")
	}

	b.send("POST", "/signout", url.Values{}, false)
	if resp, _ := b.send("GET", "/dashboard", nil, false); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign out: %d", resp.StatusCode)
	}
}

func TestDashboardForms(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()

	// Inline errors name the rule; nothing is written.
	_, body := b.send("POST", "/teams", url.Values{"name": {"bad name"}}, true)
	if !strings.Contains(body, "field-error") || !strings.Contains(body, "only letters, digits") {
		t.Errorf("team form error: %s", body)
	}
	_, body = b.send("POST", "/users", url.Values{"email": {"not-an-email"}}, true)
	if !strings.Contains(body, "is not a valid address") {
		t.Errorf("user form error: %s", body)
	}
	if n := e.count("teams") + e.count("users"); n != 0 {
		t.Errorf("%d rows written by refused forms", n)
	}

	// Success answers with a toast and the refreshed list.
	resp, body := b.send("POST", "/teams", url.Values{"name": {"growth"}, "max_budget": {"10"}}, true)
	if !strings.Contains(resp.Header.Get("HX-Trigger"), "showToast") || !strings.Contains(body, `id="teams-list" hx-swap-oob="true"`) {
		t.Errorf("team created: %s %s", resp.Header.Get("HX-Trigger"), body)
	}
	teamID := ""
	e.st.DB().Get(&teamID, `SELECT id FROM teams WHERE name = 'growth'`)
	_, body = b.send("POST", "/users", url.Values{"email": {"ana@corp.example"}, "role": {"finance"}, "team_id": {teamID}}, true)
	if !strings.Contains(body, "ana@corp.example") || !strings.Contains(body, "growth") {
		t.Errorf("user created: %s", body)
	}

	// Members are added and removed from the teams list.
	anaID := ""
	e.st.DB().Get(&anaID, `SELECT id FROM users WHERE email = 'ana@corp.example'`)
	e.create("/api/v1/users", obj{"email": "bo@corp.example"})
	boID := ""
	e.st.DB().Get(&boID, `SELECT id FROM users WHERE email = 'bo@corp.example'`)
	_, body = b.send("POST", "/teams/"+teamID+"/members", url.Values{"user_id": {boID}}, true)
	if !strings.Contains(body, "bo@corp.example") || !strings.Contains(body, `/members/`+boID) {
		t.Errorf("member added: %s", body)
	}
	resp, body = b.send("DELETE", "/teams/"+teamID+"/members/"+anaID, nil, true)
	var members []string
	e.st.DB().Select(&members, `SELECT u.email FROM team_members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY 1`, teamID)
	if resp.StatusCode != 200 || strings.Join(members, ",") != "bo@corp.example" {
		t.Errorf("members after changes: %v (%d)", members, resp.StatusCode)
	}

	// A key: its markup alias is escaped, its secret is shown once only.
	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"<script>alert(1)</script>"}}, true)
	if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(body, "<script>alert") {
		t.Error("alias not escaped")
	}
	i := strings.Index(body, `id="new-secret"`)
	if i < 0 {
		t.Fatalf("no secret dialog: %s", body)
	}
	secret := body[i+strings.Index(body[i:], ">")+1:]
	secret = secret[:strings.Index(secret, "<")]
	if !strings.HasPrefix(secret, "sk-") {
		t.Fatalf("secret %q", secret)
	}
	for _, path := range []string{"/keys", "/audit", "/dashboard", "/spend"} {
		if _, body := b.send("GET", path, nil, false); strings.Contains(body, secret) {
			t.Errorf("%s shows the secret again", path)
		}
	}

	// Key limits are set from the form, and bad ones explained.
	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"limited"}, "max_parallel_requests": {"-1"}}, true)
	if !strings.Contains(body, "max_parallel_requests must not be negative") {
		t.Errorf("negative parallel limit: %s", body)
	}
	b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"limited"}, "rpm_limit": {"60"}, "tpm_limit": {"1000"}, "max_parallel_requests": {"2"}}, true)
	var rpm, tpm, parallel int
	if err := e.st.DB().QueryRow(`SELECT rpm_limit, tpm_limit, max_parallel_requests FROM keys WHERE alias = 'limited'`).Scan(&rpm, &tpm, &parallel); err != nil || rpm != 60 || tpm != 1000 || parallel != 2 {
		t.Errorf("limits %d %d %d: %v", rpm, tpm, parallel, err)
	}

	// Deleting a team that still has keys is refused with the reason.
	resp, _ = b.send("DELETE", "/teams/"+teamID, nil, true)
	if resp.Header.Get("HX-Reswap") != "none" || !strings.Contains(resp.Header.Get("HX-Trigger"), "still has 2 key") {
		t.Errorf("refused delete: %v", resp.Header)
	}
	// Finance cannot change anything from the dashboard either: the API
	// already tests roles; here the audit export works for the admin.
	resp, body = b.send("GET", "/audit/export?format=csv", nil, false)
	if resp.StatusCode != 200 || !strings.Contains(body, "team.create") {
		t.Errorf("audit export: %d %s", resp.StatusCode, body)
	}
}

func TestDashboardRoles(t *testing.T) {
	e := newEnv(t)
	secret := func(body obj) string {
		return e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", body).json["key"].(string)
	}
	fin, _ := e.create("/api/v1/users", obj{"email": "fin@corp.example", "role": "finance"})
	teamA, _ := e.create("/api/v1/teams", obj{"name": "team-a"})
	teamB, _ := e.create("/api/v1/teams", obj{"name": "team-b"})
	mem, _ := e.create("/api/v1/users", obj{"email": "mem@corp.example", "role": "member", "teams": []string{teamA}})
	other, _ := e.create("/api/v1/users", obj{"email": "other@corp.example", "role": "member", "teams": []string{teamB}})
	otherKey := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": other, "team_id": teamB, "alias": "others-key"}).json["id"].(string)
	finKey := secret(obj{"user_id": fin, "key_type": "management"})
	memKey := secret(obj{"user_id": mem, "key_type": "default"})
	llmKey := secret(obj{})

	// An llm_api key cannot sign in.
	b := e.browser()
	if resp, _ := b.send("POST", "/signin", url.Values{"master_key": {llmKey}}, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("llm_api key signed in: %d", resp.StatusCode)
	}

	// Finance reads every page without forms, and the server refuses changes.
	b = e.browser()
	if resp, _ := b.send("POST", "/signin", url.Values{"master_key": {finKey}}, false); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("finance sign in: %d", resp.StatusCode)
	}
	resp, body := b.send("GET", "/keys", nil, false)
	if resp.StatusCode != 200 || strings.Contains(body, "New key") || strings.Contains(body, "hx-delete") || !strings.Contains(body, "fin@corp.example") {
		t.Errorf("finance keys page: %d", resp.StatusCode)
	}
	for _, c := range []struct{ method, path string }{{"POST", "/teams"}, {"POST", "/keys"}, {"DELETE", "/users/" + mem}} {
		if resp, _ := b.send(c.method, c.path, url.Values{"name": {"x"}}, true); resp.StatusCode != http.StatusForbidden {
			t.Errorf("finance %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	if e.count("teams") != 2 || e.count("users") != 3 {
		t.Error("a finance request changed something")
	}

	// Members see and manage only their own keys, and nothing else.
	b = e.browser()
	b.send("POST", "/signin", url.Values{"master_key": {memKey}}, false)
	for _, path := range []string{"/dashboard", "/teams", "/spend", "/audit"} {
		if resp, _ := b.send("GET", path, nil, false); resp.StatusCode != http.StatusForbidden {
			t.Errorf("member GET %s: %d", path, resp.StatusCode)
		}
	}
	resp, body = b.send("GET", "/keys", nil, false)
	if resp.StatusCode != 200 || strings.Contains(body, "others-key") || strings.Contains(body, "team-b") || !strings.Contains(body, "New key") {
		t.Errorf("member keys page: %d", resp.StatusCode)
	}
	if strings.Contains(body, `href="/teams"`) {
		t.Error("member nav links to admin pages")
	}
	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamB}, "alias": {"sneaky"}}, true)
	if !strings.Contains(body, "You are not a member of team team-b") {
		t.Errorf("member key in another team: %s", body)
	}
	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamA}, "alias": {"laptop"}}, true)
	if !strings.Contains(body, `id="new-secret"`) {
		t.Fatalf("member key: %s", body)
	}
	owner := ""
	e.st.DB().Get(&owner, `SELECT user_id FROM keys WHERE alias = 'laptop'`)
	if owner != mem {
		t.Errorf("member's new key owned by %q", owner)
	}
	for _, c := range []struct{ method, path string }{{"POST", "/keys/" + otherKey + "/block"}, {"POST", "/keys/" + otherKey + "/regenerate"}, {"DELETE", "/keys/" + otherKey}} {
		if resp, _ := b.send(c.method, c.path, url.Values{}, true); resp.StatusCode != http.StatusNotFound {
			t.Errorf("member %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
}

func TestDashboardEditsProviders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	id, _ := e.create("/api/v1/providers", obj{"name": "azure-eu", "type": "azure", "api_base": "https://eu.example/openai", "api_key": "azure-secret-value-1234"})

	// The add form stores the per-type settings in the config.
	b.send("POST", "/providers", url.Values{"name": {"bedrock-us"}, "type": {"bedrock"}, "region": {"us-east-1"}}, true)
	var cfg string
	e.st.DB().Get(&cfg, `SELECT config::text FROM providers WHERE name = 'bedrock-us'`)
	if !strings.Contains(cfg, "us-east-1") {
		t.Errorf("bedrock config %q", cfg)
	}

	resp, body := b.send("GET", "/providers/"+id+"/edit", nil, true)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="api_version"`) || !strings.Contains(body, "1234") || strings.Contains(body, "azure-secret-value") {
		t.Fatalf("edit dialog: %d %s", resp.StatusCode, body)
	}
	_, body = b.send("POST", "/providers/"+id, url.Values{"name": {"azure-eu"}, "api_base": {"ftp://nope"}, "api_key": {""}}, true)
	if !strings.Contains(body, "api_base must be an http(s) URL") {
		t.Errorf("bad base URL: %s", body)
	}
	_, body = b.send("POST", "/providers/"+id, url.Values{"name": {"azure-europe"}, "api_base": {"https://eu.example/openai"}, "api_key": {""}, "api_version": {"2024-10-21"}}, true)
	if !strings.Contains(body, "azure-europe") || strings.Contains(body, "<dialog") {
		t.Errorf("saved: %s", body)
	}
	p, err := e.st.GetProvider(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := e.st.ProviderAPIKey(p)
	if p.Name != "azure-europe" || key != "azure-secret-value-1234" || !strings.Contains(string(p.Config), `"2024-10-21"`) {
		t.Errorf("provider after edit: %s key kept %v config %s", p.Name, key == "azure-secret-value-1234", p.Config)
	}
}

func TestDashboardAddsModelsFromTheProvidersList(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	upstream := httptest.NewServer(mockllm.NewHandler(mockllm.Options{APIKey: "prov-key"}))
	defer upstream.Close()
	mockID, _ := e.create("/api/v1/providers", obj{"name": "mock", "type": "mock", "api_base": upstream.URL + "/v1", "api_key": "prov-key"})
	bedrockID, _ := e.create("/api/v1/providers", obj{"name": "bedrock", "type": "bedrock"})

	_, body := b.send("GET", "/models/suggest?provider_id="+mockID, nil, true)
	if !strings.Contains(body, `value="mock-gpt"`) || !strings.Contains(body, "suggest-filter") {
		t.Fatalf("suggestions: %s", body)
	}
	if _, body := b.send("GET", "/models/suggest?provider_id="+bedrockID, nil, true); !strings.Contains(body, "type the ids") {
		t.Errorf("bedrock suggestions: %s", body)
	}

	form := url.Values{"provider_id": {mockID}, "upstream_pick": {"mock-gpt", "mock-small"}, "upstream_model": {"mock-gpt"}, "input_cost_per_million": {"1"}}
	_, body = b.send("POST", "/models", form, true)
	var names []string
	e.st.DB().Select(&names, `SELECT model_name FROM models ORDER BY 1`)
	if strings.Join(names, ",") != "mock-gpt,mock-small" {
		t.Errorf("deployments %v (%s)", names, body)
	}
	if !strings.Contains(body, "Usage, 30 days") || !strings.Contains(body, "no traffic") {
		t.Error("models list without usage and health columns")
	}
	// Recent failures show as health; successes as usage.
	var depID string
	e.st.DB().Get(&depID, `SELECT id FROM models WHERE model_name = 'mock-gpt'`)
	now := time.Now()
	var logs []store.SpendLog
	for i, status := range []string{"success", "failure", "failure"} {
		logs = append(logs, store.SpendLog{RequestID: fmt.Sprintf("req-h-%d", i), CreatedAt: now, Model: "mock-gpt", DeploymentID: &depID,
			Status: status, StatusCode: 200, Cost: 0.5})
	}
	if _, err := e.st.InsertSpendLogs(context.Background(), logs); err != nil {
		t.Fatal(err)
	}
	_, body = b.send("GET", "/models", nil, false)
	if !strings.Contains(body, "2 of 3 failed") || !strings.Contains(body, "$1.50 · 3 req") {
		t.Errorf("health or usage missing from the models page")
	}
	if _, body := b.send("POST", "/models", url.Values{"provider_id": {mockID}}, true); !strings.Contains(body, "give at least one upstream model id") {
		t.Errorf("no ids: %s", body)
	}
}
