package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"tollgate/store"
	"tollgate/views"
)

func TestBudgetFormats(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct{ got, want string }{
		{views.Compact(950), "950"}, {views.Compact(5000), "5,000"}, {views.Compact(60000), "60k"}, {views.Compact(100000), "100k"},
		{views.Compact(1500000), "1.5M"}, {views.Compact(2000000000), "2B"},
		{views.Relative(now.Add(30*time.Second), now), "in under a minute"}, {views.Relative(now.Add(-10*time.Second), now), "just now"},
		{views.Relative(now.Add(90*time.Minute), now), "in 2 hours"}, {views.Relative(now.Add(-time.Hour), now), "1 hour ago"},
		{views.Relative(now.Add(30*24*time.Hour-time.Millisecond), now), "in 30 days"}, {views.Relative(now.Add(-5*time.Minute), now), "5 minutes ago"},
		{views.Usage{Spend: "$2.00", Max: "$10.00"}.Caption(), "$2.00 of $10.00"}, {views.Usage{Spend: "$2.00"}.Caption(), "$2.00 spent · no budget"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// htmlHas fails unless body holds every one of parts.
func htmlHas(t *testing.T, what, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Errorf("%s lacks %q", what, p)
		}
	}
}

func TestDashboardBudgetFieldsOnTeams(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	ctx := context.Background()
	profile, err := e.st.CreateBudget(ctx, "test", store.BudgetSpec{Name: "standard"})
	if err != nil {
		t.Fatal(err)
	}

	// Bad values are explained next to their field, and what was typed stays.
	for _, c := range []struct {
		name        string
		form        url.Values
		error, kept string
	}{
		{"negative budget", url.Values{"max_budget": {"-5"}}, "max_budget must not be negative", `value="-5"`},
		{"unknown period", url.Values{"budget_duration": {"fortnightly"}}, "budget_duration must be daily, weekly, monthly or a count like 30d", `value="fortnightly"`},
		{"empty custom period", url.Values{"budget_duration": {"custom"}, "max_budget": {"3"}}, "type the custom budget period", `value="3"`},
		{"not a number", url.Values{"rpm_limit": {"lots"}}, "rpm_limit must be a whole number", `value="lots"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.form.Set("name", "bad-"+strings.ReplaceAll(c.name, " ", "-"))
			_, body := b.send("POST", "/teams", c.form, true)
			htmlHas(t, "team form", body, "field-error", c.error, c.kept, `aria-invalid="true"`)
		})
	}
	if n := e.count("teams"); n != 0 {
		t.Fatalf("%d teams written by refused forms", n)
	}
	// A typed period survives as the custom choice.
	_, body := b.send("POST", "/teams", url.Values{"name": {"x y"}, "budget_duration": {"custom"}, "budget_duration_custom": {"30d"}}, true)
	htmlHas(t, "team form", body, `value="custom" selected`, `name="budget_duration_custom" value="30d"`)

	// Every field is stored; empty ones are not set.
	resp, _ := b.send("POST", "/teams", url.Values{"name": {"growth"}, "max_budget": {"10"}, "soft_budget": {"8"},
		"budget_duration": {"custom"}, "budget_duration_custom": {"30d"}, "budget_id": {profile.ID},
		"rpm_limit": {"60"}, "tpm_limit": {"100000"}, "max_parallel_requests": {"4"}}, true)
	if !strings.Contains(resp.Header.Get("HX-Trigger"), "Team growth created") {
		t.Fatalf("create: %v", resp.Header)
	}
	team, err := e.st.TeamByName(ctx, "growth")
	if err != nil {
		t.Fatal(err)
	}
	if *team.MaxBudget != 10 || *team.SoftBudget != 8 || *team.BudgetDuration != "30d" || *team.BudgetID != profile.ID ||
		*team.RPMLimit != 60 || *team.TPMLimit != 100000 || *team.MaxParallelRequests != 4 || team.BudgetResetAt == nil {
		t.Errorf("team stored as %+v", team.TeamSpec)
	}

	// The list shows spend against the budget, the next reset and the limits.
	if _, err := e.st.InsertSpendLogs(ctx, []store.SpendLog{{RequestID: "req-usage", CreatedAt: time.Now(), TeamID: &team.ID,
		Model: "m", Status: store.StatusSuccess, StatusCode: 200, Cost: 2}}); err != nil {
		t.Fatal(err)
	}
	_, body = b.send("GET", "/teams", nil, false)
	htmlHas(t, "teams list", body, "$2.00 of $10.00", "resets in 30 days", "(30d)", `data-level="ok"`, "alert at $8.00",
		"60 rpm · 100k tpm · 4 parallel · profile standard")

	// The edit dialog shows the stored values; saving changes them, and an
	// empty input unsets its field.
	_, body = b.send("GET", "/teams/"+team.ID+"/edit", nil, true)
	htmlHas(t, "team edit dialog", body, "<dialog data-open", `name="max_budget" type="number" min="0" step="0.01" value="10"`,
		`value="custom" selected`, `value="30d"`, `value="`+profile.ID+`" selected`)
	_, body = b.send("POST", "/teams/"+team.ID, url.Values{"name": {"growth"}, "max_budget": {"1.5"}, "budget_duration": {"daily"}}, true)
	htmlHas(t, "saved team", body, `id="teams-list" hx-swap-oob="true"`, "$2.00 of $1.50", `data-level="over"`, "resets in")
	if strings.Contains(body, "<dialog") {
		t.Error("the dialog stays open after saving")
	}
	team, _ = e.st.GetTeam(ctx, team.ID)
	if *team.MaxBudget != 1.5 || team.SoftBudget != nil || *team.BudgetDuration != "daily" || team.BudgetID != nil || team.RPMLimit != nil {
		t.Errorf("team after edit: %+v", team.TeamSpec)
	}
	_, body = b.send("POST", "/teams/"+team.ID, url.Values{"name": {"growth"}, "soft_budget": {"-1"}}, true)
	htmlHas(t, "team edit error", body, "<dialog data-open", "soft_budget must not be negative", `value="-1"`)

	// Without a soft budget the bar turns amber at 80% of the max; without
	// a max budget the list says so.
	e.create("/api/v1/teams", obj{"name": "free"})
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/teams/"+team.ID, obj{"max_budget": 2.5})
	_, body = b.send("GET", "/teams", nil, false)
	htmlHas(t, "teams list", body, "$0 spent · no budget", "$2.00 of $2.50", `value="80" max="100" data-level="warn"`)
}

func TestDashboardBudgetFieldsOnKeysUsersAndModels(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	ctx := context.Background()
	teamID := e.newTeam("growth")

	// Per-model limits: one model=limit a line; a malformed line is named.
	_, body := b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"bad"}, "model_rpm_limit": {"gpt-4o=60\ngpt-4o sixty"}}, true)
	htmlHas(t, "key form", body, "line 2 (&#34;gpt-4o sixty&#34;) must look like model=limit", "gpt-4o=60\ngpt-4o sixty</textarea>", "<details class=\"model-limits\" open")
	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"bad"}, "model_tpm_limit": {"a=1\na=2"}}, true)
	htmlHas(t, "key form", body, "line 2: a is listed twice")
	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"bad"}, "budget_duration": {"fortnightly"}, "max_budget": {"7"}}, true)
	htmlHas(t, "key form", body, "budget_duration must be daily", `value="fortnightly"`, `value="7"`)
	if n := e.count("keys"); n != 0 {
		t.Fatalf("%d keys written by refused forms", n)
	}

	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"web"}, "max_budget": {"5"}, "soft_budget": {"4"},
		"budget_duration": {"weekly"}, "rpm_limit": {"30"}, "model_rpm_limit": {" gpt-4o = 60 \n\nmock-small=10"},
		"model_tpm_limit": {"gpt-4o=100000"}}, true)
	if !strings.Contains(body, `id="new-secret"`) {
		t.Fatalf("key not created: %s", body)
	}
	var keyID string
	e.st.DB().Get(&keyID, `SELECT id FROM keys WHERE alias = 'web'`)
	k, err := e.st.GetKey(ctx, keyID)
	if err != nil {
		t.Fatal(err)
	}
	if *k.MaxBudget != 5 || *k.SoftBudget != 4 || *k.BudgetDuration != "weekly" || *k.RPMLimit != 30 || k.TPMLimit != nil ||
		k.ModelRPMLimit["gpt-4o"] != 60 || k.ModelRPMLimit["mock-small"] != 10 || k.ModelTPMLimit["gpt-4o"] != 100000 || len(k.ModelRPMLimit) != 2 {
		t.Errorf("key stored as %+v", k.KeySpec)
	}
	_, body = b.send("GET", "/keys", nil, false)
	htmlHas(t, "keys list", body, "$0 of $5.00", "resets in", "30 rpm · 2 model limits", `hx-get="/keys/`+keyID+`/edit"`)

	// Editing keeps the secret and changes the limits.
	_, body = b.send("GET", "/keys/"+keyID+"/edit", nil, true)
	htmlHas(t, "key edit dialog", body, "gpt-4o=60\nmock-small=10</textarea>", `value="weekly" selected`)
	_, body = b.send("POST", "/keys/"+keyID, url.Values{"alias": {"web"}, "max_budget": {"5"}, "model_rpm_limit": {"gpt-4o=-3"}}, true)
	htmlHas(t, "key edit error", body, "<dialog data-open", "the limit of gpt-4o must not be negative", "gpt-4o=-3</textarea>")
	_, body = b.send("POST", "/keys/"+keyID, url.Values{"alias": {"web-2"}, "max_budget": {"6"}, "max_parallel_requests": {"2"}, "model_tpm_limit": {"gpt-4o=5000"}}, true)
	htmlHas(t, "saved key", body, `id="keys-list" hx-swap-oob="true"`, "web-2", "$0 of $6.00", "2 parallel · 1 model limit")
	k, _ = e.st.GetKey(ctx, keyID)
	if *k.MaxBudget != 6 || k.BudgetDuration != nil || len(k.ModelRPMLimit) != 0 || k.ModelTPMLimit["gpt-4o"] != 5000 || *k.MaxParallelRequests != 2 {
		t.Errorf("key after edit: %+v", k.KeySpec)
	}

	// Users: budgets and rate limits over all their keys.
	_, body = b.send("POST", "/users", url.Values{"email": {"ana@corp.example"}, "max_budget": {"-1"}}, true)
	htmlHas(t, "user form", body, "max_budget must not be negative", `value="-1"`, `value="ana@corp.example"`)
	b.send("POST", "/users", url.Values{"email": {"ana@corp.example"}, "team_id": {teamID}, "max_budget": {"20"}, "budget_duration": {"monthly"}, "tpm_limit": {"5000"}}, true)
	var userID string
	e.st.DB().Get(&userID, `SELECT id FROM users WHERE email = 'ana@corp.example'`)
	u, err := e.st.GetUser(ctx, userID)
	if err != nil {
		t.Fatal(err)
	}
	if *u.MaxBudget != 20 || *u.BudgetDuration != "monthly" || *u.TPMLimit != 5000 || u.RPMLimit != nil {
		t.Errorf("user stored as %+v", u.UserSpec)
	}
	_, body = b.send("GET", "/users", nil, false)
	htmlHas(t, "users list", body, "$0 of $20.00", "5,000 tpm")
	_, body = b.send("GET", "/users/"+userID+"/edit", nil, true)
	htmlHas(t, "user edit dialog", body, `value="monthly" selected`, `value="20"`, `value="`+teamID+`" checked`)
	_, body = b.send("POST", "/users/"+userID, url.Values{"email": {"ana@corp.example"}, "role": {"finance"}, "team_id": {teamID}, "budget_duration": {"12h"}}, true)
	htmlHas(t, "saved user", body, `id="users-list" hx-swap-oob="true"`, "$0 spent · no budget", "finance")
	u, _ = e.st.GetUser(ctx, userID)
	if u.MaxBudget != nil || *u.BudgetDuration != "12h" || u.Role != "finance" || len(u.Teams) != 1 {
		t.Errorf("user after edit: %+v teams %v", u.UserSpec, u.Teams)
	}

	// Models: max output tokens, on add and on edit.
	provID := e.newProvider("mock")
	b.send("POST", "/models", url.Values{"provider_id": {provID}, "upstream_model": {"mock-gpt"}, "max_output_tokens": {"2048"}}, true)
	var modelID string
	e.st.DB().Get(&modelID, `SELECT id FROM models WHERE model_name = 'mock-gpt'`)
	m, err := e.st.GetModel(ctx, modelID)
	if err != nil || m.MaxOutputTokens == nil || *m.MaxOutputTokens != 2048 {
		t.Fatalf("model max output tokens: %+v %v", m, err)
	}
	_, body = b.send("GET", "/models/"+modelID+"/edit", nil, true)
	htmlHas(t, "model edit dialog", body, `value="2048"`, `name="enabled" value="true" checked`)
	_, body = b.send("POST", "/models/"+modelID, url.Values{"model_name": {"mock-gpt"}, "upstream_model": {"mock-gpt"}, "max_output_tokens": {"0"}, "enabled": {"true"}}, true)
	htmlHas(t, "model edit error", body, "max_output_tokens must be positive", `value="0"`)
	_, body = b.send("POST", "/models/"+modelID, url.Values{"model_name": {"gpt-mini"}, "upstream_model": {"mock-gpt"}, "max_output_tokens": {"4096"},
		"input_cost_per_million": {"0.5"}, "rpm_limit": {"600"}, "enabled": {"true"}}, true)
	htmlHas(t, "saved model", body, `id="models-list" hx-swap-oob="true"`, "gpt-mini", "600 rpm · weight 1 · max 4,096 out")
	m, _ = e.st.GetModel(ctx, modelID)
	if m.ModelName != "gpt-mini" || *m.MaxOutputTokens != 4096 || m.InputCostPerMillion != 0.5 || !m.Enabled || m.ProviderID != provID {
		t.Errorf("model after edit: %+v", m.ModelSpec)
	}

	// Models: the deployment's own timeouts.
	_, body = b.send("POST", "/models/"+modelID, url.Values{"model_name": {"gpt-mini"}, "upstream_model": {"mock-gpt"}, "first_byte_timeout_ms": {"-5"}, "enabled": {"true"}}, true)
	htmlHas(t, "timeout error", body, "first_byte_timeout_ms must be positive", `value="-5"`)
	_, body = b.send("POST", "/models/"+modelID, url.Values{"model_name": {"gpt-mini"}, "upstream_model": {"mock-gpt"}, "connect_timeout_ms": {"2000"},
		"first_byte_timeout_ms": {"15000"}, "timeout_ms": {"120000"}, "enabled": {"true"}}, true)
	htmlHas(t, "saved timeouts", body, "connect 2s · first byte 15s · timeout 2m0s")
	m, _ = e.st.GetModel(ctx, modelID)
	if m.ConnectTimeoutMS == nil || *m.ConnectTimeoutMS != 2000 || *m.FirstByteTimeoutMS != 15000 || *m.TimeoutMS != 120000 {
		t.Errorf("timeouts after edit: %+v", m.ModelSpec)
	}
	_, body = b.send("GET", "/models/"+modelID+"/edit", nil, true)
	htmlHas(t, "edit dialog timeouts", body, `name="first_byte_timeout_ms" type="number" min="1" value="15000"`)
}

func TestDashboardBudgetsPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	ctx := context.Background()

	resp, body := b.send("GET", "/budgets", nil, false)
	if resp.StatusCode != 200 {
		t.Fatalf("budgets page: %d", resp.StatusCode)
	}
	htmlHas(t, "budgets page", body, `href="/budgets" aria-current="page"`, "Global budget", "No budget profiles yet.", "No budget alerts.", `hx-post="/budgets/global"`)
	if strings.Contains(body, " style=") || strings.Contains(body, "<script>") {
		t.Error("inline style or script")
	}

	// Profiles: create, with errors inline first; edit; delete.
	_, body = b.send("POST", "/budgets", url.Values{"name": {"starter"}, "max_budget": {"abc"}}, true)
	htmlHas(t, "profile form", body, "max_budget must be a number", `value="abc"`, `value="starter"`)
	_, body = b.send("POST", "/budgets", url.Values{"name": {""}}, true)
	htmlHas(t, "profile form", body, "name is required")
	resp, body = b.send("POST", "/budgets", url.Values{"name": {"starter"}, "max_budget": {"50"}, "budget_duration": {"monthly"}, "rpm_limit": {"100"}}, true)
	htmlHas(t, "profile created", resp.Header.Get("HX-Trigger"), "Budget profile starter created")
	htmlHas(t, "profile created", body, `id="profiles-list" hx-swap-oob="true"`, "starter", "$50.00", "monthly", "100 rpm", "nothing")
	profiles, err := e.st.AllBudgets(ctx)
	if err != nil || len(profiles) != 1 || *profiles[0].MaxBudget != 50 || *profiles[0].RPMLimit != 100 {
		t.Fatalf("profiles %+v %v", profiles, err)
	}
	id := profiles[0].ID
	_, body = b.send("GET", "/budgets/"+id+"/edit", nil, true)
	htmlHas(t, "profile dialog", body, "<dialog data-open", `value="starter"`, `value="50"`, `value="monthly" selected`)
	_, body = b.send("POST", "/budgets/"+id, url.Values{"name": {"starter"}, "budget_duration": {"fortnightly"}}, true)
	htmlHas(t, "profile edit error", body, "<dialog data-open", "budget_duration must be daily", `value="fortnightly"`)
	_, body = b.send("POST", "/budgets/"+id, url.Values{"name": {"starter-plus"}, "max_budget": {"75"}, "max_parallel_requests": {"8"}}, true)
	htmlHas(t, "profile saved", body, "starter-plus", "$75.00", "8 parallel")
	p, _ := e.st.GetBudget(ctx, id)
	if p.Name != "starter-plus" || *p.MaxBudget != 75 || p.BudgetDuration != nil || p.RPMLimit != nil {
		t.Errorf("profile after edit: %+v", p.BudgetSpec)
	}

	// A profile in use is not deleted; the toast says why.
	teamID, _ := e.create("/api/v1/teams", obj{"name": "ops", "budget_id": id})
	_, body = b.send("GET", "/budgets", nil, false)
	htmlHas(t, "budgets page", body, "1 team")
	resp, _ = b.send("DELETE", "/budgets/"+id, nil, true)
	if resp.Header.Get("HX-Reswap") != "none" || !strings.Contains(resp.Header.Get("HX-Trigger"), "budget profile is used by 1 keys and teams") {
		t.Errorf("delete of a used profile: %v", resp.Header)
	}
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/teams/"+teamID, obj{"budget_id": nil})
	resp, _ = b.send("DELETE", "/budgets/"+id, nil, true)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("HX-Trigger"), "Budget profile deleted") || e.count("budgets") != 0 {
		t.Errorf("delete: %d %v", resp.StatusCode, resp.Header)
	}

	// The global budget.
	_, body = b.send("POST", "/budgets/global", url.Values{"max_budget": {"-3"}}, true)
	htmlHas(t, "global form", body, `id="global-budget"`, "max_budget must not be negative", `value="-3"`)
	resp, body = b.send("POST", "/budgets/global", url.Values{"max_budget": {"1000"}, "soft_budget": {"800"}, "budget_duration": {"monthly"}}, true)
	htmlHas(t, "global saved", resp.Header.Get("HX-Trigger"), "Global budget saved")
	htmlHas(t, "global saved", body, "$0 of $1000.00", "alert at $800.00", "resets in")
	g, err := e.st.GetGlobalBudget(ctx)
	if err != nil || *g.MaxBudget != 1000 || *g.SoftBudget != 800 || *g.BudgetDuration != "monthly" || g.BudgetResetAt == nil {
		t.Errorf("global budget %+v %v", g, err)
	}

	// A crossed soft budget is an alert on the budgets page and the dashboard.
	crossed, _ := e.create("/api/v1/teams", obj{"name": "spender", "soft_budget": 1})
	if _, err := e.st.InsertSpendLogs(ctx, []store.SpendLog{{RequestID: "req-alert", CreatedAt: time.Now(), TeamID: &crossed,
		Model: "m", Status: store.StatusSuccess, StatusCode: 200, Cost: 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RecordBudgetAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	_, body = b.send("GET", "/budgets", nil, false)
	htmlHas(t, "budgets page", body, `id="alerts-table"`, "soft budget reached", "team spender", "$2.00 of $1.00", "not sent yet", "no period")
	_, body = b.send("GET", "/dashboard", nil, false)
	htmlHas(t, "dashboard", body, `id="dashboard-alerts"`, "team spender", `href="/budgets"`)
	var alertID int64
	e.st.DB().Get(&alertID, `SELECT id FROM budget_alerts`)
	if err := e.st.MarkAlert(ctx, alertID, "webhook https://hooks.example answered HTTP 500"); err != nil {
		t.Fatal(err)
	}
	_, body = b.send("GET", "/budgets", nil, false)
	htmlHas(t, "budgets page", body, "1 attempt: webhook https://hooks.example answered HTTP 500")
}

func TestDashboardBudgetsRoles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	teamID := e.newTeam("team-a")
	fin, _ := e.create("/api/v1/users", obj{"email": "fin@corp.example", "role": "finance"})
	mem, _ := e.create("/api/v1/users", obj{"email": "mem@corp.example", "role": "member", "teams": []string{teamID}})
	finKey := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": fin, "key_type": "management"}).json["key"].(string)
	memKey := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": mem, "team_id": teamID, "key_type": "default"}).json["key"].(string)
	profile, err := e.st.CreateBudget(ctx, "test", store.BudgetSpec{Name: "starter"})
	if err != nil {
		t.Fatal(err)
	}
	var memKeyID string
	e.st.DB().Get(&memKeyID, `SELECT id FROM keys WHERE user_id = $1`, mem)

	// Finance reads the budgets page, without forms or buttons.
	b := e.browser()
	if resp, _ := b.send("POST", "/signin", url.Values{"master_key": {finKey}}, false); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("finance sign in: %d", resp.StatusCode)
	}
	resp, body := b.send("GET", "/budgets", nil, false)
	if resp.StatusCode != 200 {
		t.Fatalf("finance budgets page: %d", resp.StatusCode)
	}
	htmlHas(t, "finance budgets page", body, "Global budget", "starter", `href="/budgets"`)
	for _, s := range []string{"hx-post", "hx-delete", "hx-get=\"/budgets/", "New profile"} {
		if strings.Contains(body, s) {
			t.Errorf("finance budgets page has %q", s)
		}
	}
	for _, path := range []string{"/teams", "/users", "/keys", "/models"} {
		if _, body := b.send("GET", path, nil, false); strings.Contains(body, "/edit\"") {
			t.Errorf("finance sees edit buttons on %s", path)
		}
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/budgets"}, {"POST", "/budgets/global"}, {"POST", "/budgets/" + profile.ID}, {"DELETE", "/budgets/" + profile.ID},
		{"POST", "/teams/" + teamID}, {"POST", "/keys/" + memKeyID},
	} {
		if resp, _ := b.send(c.method, c.path, url.Values{"name": {"x"}, "max_budget": {"1"}}, true); resp.StatusCode != http.StatusForbidden {
			t.Errorf("finance %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/budgets/" + profile.ID + "/edit", "/teams/" + teamID + "/edit", "/keys/" + memKeyID + "/edit"} {
		if resp, _ := b.send("GET", path, nil, true); resp.StatusCode != http.StatusForbidden {
			t.Errorf("finance GET %s: %d", path, resp.StatusCode)
		}
	}
	if p, _ := e.st.GetBudget(ctx, profile.ID); p.Name != "starter" {
		t.Error("finance changed a profile")
	}

	// Members do not see budgets, and do not change their keys' limits
	// after creation, nor pick a budget profile.
	b = e.browser()
	b.send("POST", "/signin", url.Values{"master_key": {memKey}}, false)
	for _, c := range []struct{ method, path string }{{"GET", "/budgets"}, {"POST", "/budgets"}, {"POST", "/budgets/global"}, {"GET", "/keys/" + memKeyID + "/edit"}, {"POST", "/keys/" + memKeyID}} {
		if resp, _ := b.send(c.method, c.path, url.Values{"max_budget": {"1000"}}, true); resp.StatusCode != http.StatusForbidden {
			t.Errorf("member %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	_, body = b.send("GET", "/keys", nil, false)
	if strings.Contains(body, `href="/budgets"`) || strings.Contains(body, `name="budget_id"`) || strings.Contains(body, "/edit\"") {
		t.Error("member sees budgets, profiles or edit buttons")
	}
	_, body = b.send("POST", "/keys", url.Values{"team_id": {teamID}, "alias": {"mine"}, "max_budget": {"3"}, "budget_id": {profile.ID}}, true)
	if !strings.Contains(body, `id="new-secret"`) {
		t.Fatalf("member key: %s", body)
	}
	var k store.Key
	e.st.DB().Get(&k, `SELECT * FROM keys WHERE alias = 'mine'`)
	if k.MaxBudget == nil || *k.MaxBudget != 3 || k.BudgetID != nil {
		t.Errorf("member's key: budget %v profile %v", k.MaxBudget, k.BudgetID)
	}
}
