package admin_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate/admin"
	"tollgate/store"
	"tollgate/store/storetest"
)

// routingModels adds deployments: gpt-4o twice (weights 3 and 1), claude,
// gemini and openai/gpt-4o, whose slash must survive URLs.
func (e *env) routingModels() {
	e.t.Helper()
	prov := e.newProvider("mock")
	for _, m := range []obj{
		{"model_name": "gpt-4o", "upstream_model": "mock-gpt", "weight": 3},
		{"model_name": "gpt-4o", "upstream_model": "mock-gpt-2", "weight": 1},
		{"model_name": "claude", "upstream_model": "mock-claude"},
		{"model_name": "gemini", "upstream_model": "mock-gemini", "enabled": false},
		{"model_name": "openai/gpt-4o", "upstream_model": "mock-gpt"},
	} {
		m["provider_id"] = prov
		e.create("/api/v1/models", m)
	}
}

func (e *env) modelGroups() map[string]store.ModelGroup {
	e.t.Helper()
	groups, err := e.st.AllModelGroups(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]store.ModelGroup{}
	for _, g := range groups {
		out[g.ModelName] = g
	}
	return out
}

func TestDashboardRoutingGroups(t *testing.T) {
	e := newEnv(t)
	e.routingModels()
	b := e.browser()
	b.signIn()

	resp, body := b.send("GET", "/routing", nil, false)
	wantPage(t, resp, body, "/routing")
	htmlHas(t, "routing page", body, `href="/routing" aria-current="page"`, "No model groups yet.", "No aliases yet.",
		`hx-post="/routing/groups"`, `hx-post="/routing/aliases"`, `<option value="openai/gpt-4o">openai/gpt-4o</option>`)
	// Every strategy the store accepts is offered with what it does.
	for _, s := range store.Strategies {
		if !regexp.MustCompile(`<option value="` + s + `"[^>]*>` + s + `: [a-z]`).MatchString(body) {
			t.Errorf("strategy %s is not offered with an explanation", s)
		}
	}

	// Errors are explained next to their field, what was typed stays, and
	// nothing is written.
	for _, c := range []struct {
		name, model, strategy, fallbacks string
		field, error                     string
	}{
		{"no model", "", "weighted", "", "model_name", "model_name is required"},
		{"unknown model", "gpt-5", "weighted", "", "model_name", "no deployment serves &#34;gpt-5&#34;; add it on the Models page first"},
		{"unknown strategy", "gpt-4o", "round_robin", "claude", "strategy", "strategy must be one of weighted, least_busy"},
		{"unknown fallback", "gpt-4o", "least_busy", "claude, gpt-5", "fallbacks", "fallbacks: no deployment serves &#34;gpt-5&#34;"},
		{"itself", "gpt-4o", "least_busy", "claude, gpt-4o", "fallbacks", "model gpt-4o cannot fall back to itself"},
		{"twice", "gpt-4o", "least_busy", "claude,claude", "fallbacks", "fallbacks: claude is listed twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, body := b.send("POST", "/routing/groups", url.Values{"model_name": {c.model}, "strategy": {c.strategy}, "fallbacks": {c.fallbacks}}, true)
			htmlHas(t, "group form", body, `class="field-error"`, c.error, `name="`+c.field+`"`, `aria-invalid="true"`, `value="`+c.fallbacks+`"`)
			if strings.Contains(body, "groups-list") {
				t.Error("a refused form swapped the list")
			}
		})
	}
	if n := e.count("model_groups"); n != 0 {
		t.Fatalf("%d model groups written by refused forms", n)
	}

	// Saved: the list shows the strategy, the chain and the deployments.
	resp, body = b.send("POST", "/routing/groups", url.Values{"model_name": {"gpt-4o"}, "strategy": {"least_busy"}, "fallbacks": {" claude , gemini, "}}, true)
	htmlHas(t, "group saved", resp.Header.Get("HX-Trigger"), "Routing of gpt-4o saved")
	htmlHas(t, "group saved", body, `id="groups-list" hx-swap-oob="true"`, "<code title=\"the deployment with the fewest requests in flight\">least_busy</code>",
		"2: mock (mock-gpt), weight 3; mock (mock-gpt-2), weight 1")
	if !regexp.MustCompile(`<span>claude</span>\s*→\s*<span>gemini</span>`).MatchString(body) {
		t.Error("the fallback chain is not shown as claude → gemini")
	}
	if g := e.modelGroups()["gpt-4o"]; g.Strategy != "least_busy" || !slices.Equal(g.Fallbacks, []string{"claude", "gemini"}) {
		t.Fatalf("group stored as %+v", g)
	}
	if form := body[:strings.Index(body, "<datalist")]; strings.Contains(form, `<option value="gpt-4o"`) {
		t.Error("the fresh form still offers gpt-4o, which has settings now")
	}
	_, body = b.send("POST", "/routing/groups", url.Values{"model_name": {"gpt-4o"}, "strategy": {"weighted"}}, true)
	htmlHas(t, "group form", body, "gpt-4o already has routing settings; edit them in the list")

	// A model name with a slash travels in the query.
	b.send("POST", "/routing/groups", url.Values{"model_name": {"openai/gpt-4o"}, "strategy": {"usage_based"}, "fallbacks": {"gpt-4o"}}, true)
	_, body = b.send("GET", "/routing", nil, false)
	htmlHas(t, "routing page", body, `hx-get="/routing/groups/edit?model=openai%2Fgpt-4o"`, `hx-delete="/routing/groups?model=openai%2Fgpt-4o"`,
		"1: mock (mock-gpt), weight 1")
	if strings.Contains(body, "no deployments") {
		t.Error("a model with deployments is shown without any")
	}

	// The edit dialog: stored values, an error inline, then saved.
	_, body = b.send("GET", "/routing/groups/edit?model=gpt-4o", nil, true)
	htmlHas(t, "group dialog", body, "<dialog data-open", "Routing of gpt-4o", `value="least_busy" selected`, `value="claude, gemini"`,
		`<input type="hidden" name="model_name" value="gpt-4o">`)
	_, body = b.send("POST", "/routing/groups/edit", url.Values{"model_name": {"gpt-4o"}, "strategy": {"weighted"}, "fallbacks": {"gpt-4o"}}, true)
	htmlHas(t, "group dialog", body, "<dialog data-open", "model gpt-4o cannot fall back to itself", `value="gpt-4o"`)
	resp, body = b.send("POST", "/routing/groups/edit", url.Values{"model_name": {"gpt-4o"}, "strategy": {"lowest_latency"}, "fallbacks": {"gemini"}}, true)
	htmlHas(t, "group edited", resp.Header.Get("HX-Trigger"), "Routing of gpt-4o saved")
	htmlHas(t, "group edited", body, `id="groups-list" hx-swap-oob="true"`, ">lowest_latency</code>")
	if strings.Contains(body, "<dialog") {
		t.Error("the dialog stays open after saving")
	}
	if g := e.modelGroups()["gpt-4o"]; g.Strategy != "lowest_latency" || !slices.Equal(g.Fallbacks, []string{"gemini"}) {
		t.Fatalf("group after edit %+v", g)
	}
	if resp, _ := b.send("GET", "/routing/groups/edit?model=claude", nil, true); resp.StatusCode != http.StatusNotFound {
		t.Errorf("edit dialog of a model without settings: %d", resp.StatusCode)
	}

	// Names whose deployments were removed are marked, as fallbacks and as
	// groups.
	e.must(http.StatusOK, http.MethodPut, "/api/v1/model-groups/claude", obj{"fallbacks": []string{"retired-model"}})
	e.must(http.StatusOK, http.MethodPut, "/api/v1/model-groups/retired-model", obj{})
	_, body = b.send("GET", "/routing", nil, false)
	htmlHas(t, "routing page", body, `<span class="badge warn" title="No deployment serves this model: it is skipped.">retired-model</span>`,
		`<span class="badge warn" title="Calls for this model go straight to its fallbacks.">no deployments</span>`)

	// Delete, by the name in the query.
	resp, _ = b.send("DELETE", "/routing/groups?model=openai%2Fgpt-4o", nil, true)
	htmlHas(t, "group deleted", resp.Header.Get("HX-Trigger"), "Routing settings of openai/gpt-4o removed")
	if _, left := e.modelGroups()["openai/gpt-4o"]; left || len(e.modelGroups()) != 3 {
		t.Errorf("groups after delete: %v", e.modelGroups())
	}

	// The store audits every change, with the dashboard as the actor.
	for _, action := range []string{"model_group.create", "model_group.update", "model_group.delete"} {
		rows := e.auditFor(action, map[string]string{"model_group.create": "gpt-4o", "model_group.update": "gpt-4o", "model_group.delete": "openai/gpt-4o"}[action])
		if len(rows) == 0 || rows[0]["actor"] != "master-key (dashboard)" {
			t.Errorf("audit of %s: %v", action, rows)
		}
	}
}

func TestDashboardRoutingAliases(t *testing.T) {
	e := newEnv(t)
	e.routingModels()
	b := e.browser()
	b.signIn()

	for _, c := range []struct{ alias, model, field, error string }{
		{"", "claude", "alias", "alias is required"},
		{"gpt-4o", "claude", "alias", "&#34;gpt-4o&#34; is already a model name; an alias must be a new name"},
		{"smart", "", "model_name", "model_name is required"},
		{"smart", "gpt-5", "model_name", "no deployment serves &#34;gpt-5&#34;"},
	} {
		_, body := b.send("POST", "/routing/aliases", url.Values{"alias": {c.alias}, "model_name": {c.model}}, true)
		htmlHas(t, "alias form "+c.error, body, `class="field-error"`, c.error, `name="alias" value="`+c.alias+`"`)
	}
	if n := e.count("model_aliases"); n != 0 {
		t.Fatalf("%d aliases written by refused forms", n)
	}

	resp, body := b.send("POST", "/routing/aliases", url.Values{"alias": {" smart "}, "model_name": {"claude"}}, true)
	htmlHas(t, "alias saved", resp.Header.Get("HX-Trigger"), "Alias smart now names claude")
	htmlHas(t, "alias saved", body, `id="aliases-list" hx-swap-oob="true"`, "<strong>smart</strong></td><td>claude</td>", `name="alias" value=""`)
	// Repointing an alias; an alias cannot name an alias; it can be a fallback.
	b.send("POST", "/routing/aliases", url.Values{"alias": {"smart"}, "model_name": {"gpt-4o"}}, true)
	aliases, err := e.st.AllModelAliases(context.Background())
	if err != nil || len(aliases) != 1 || aliases[0].ModelName != "gpt-4o" {
		t.Fatalf("aliases %+v %v", aliases, err)
	}
	_, body = b.send("POST", "/routing/aliases", url.Values{"alias": {"smarter"}, "model_name": {"smart"}}, true)
	htmlHas(t, "alias form", body, "smart is itself an alias of gpt-4o; choose the model name")
	resp, body = b.send("POST", "/routing/groups", url.Values{"model_name": {"claude"}, "strategy": {"weighted"}, "fallbacks": {"smart"}}, true)
	htmlHas(t, "group with an alias fallback saved", resp.Header.Get("HX-Trigger"), "Routing of claude saved")
	// The alias's model has deployments: the fallback is not flagged as skipped.
	htmlHas(t, "group with an alias fallback saved", body, `id="groups-list" hx-swap-oob="true"`, "<span>smart</span>")
	if strings.Contains(body, `title="No deployment serves this model: it is skipped.">smart`) {
		t.Error("a fallback naming an alias of a served model is flagged as unserved")
	}
	groups, err := e.st.AllModelGroups(context.Background())
	if err != nil || len(groups) != 1 || groups[0].ModelName != "claude" || len(groups[0].Fallbacks) != 1 || groups[0].Fallbacks[0] != "smart" {
		t.Fatalf("a fallback naming an alias: groups %+v %v", groups, err)
	}
	if err := e.st.DeleteModelGroup(context.Background(), "test", "claude"); err != nil {
		t.Fatal(err)
	}

	_, body = b.send("GET", "/routing", nil, false)
	htmlHas(t, "routing page", body, `hx-delete="/routing/aliases?alias=smart"`, `hx-confirm="Delete alias smart? Calls for it will fail."`)
	resp, _ = b.send("DELETE", "/routing/aliases?alias=smart", nil, true)
	htmlHas(t, "alias deleted", resp.Header.Get("HX-Trigger"), "Alias smart deleted")
	if n := e.count("model_aliases"); n != 0 {
		t.Errorf("%d aliases after delete", n)
	}
	for _, action := range []string{"model_alias.put", "model_alias.delete"} {
		if rows := e.auditFor(action, "smart"); len(rows) == 0 || rows[0]["actor"] != "master-key (dashboard)" {
			t.Errorf("audit of %s: %v", action, rows)
		}
	}
}

func TestDashboardRoutingRoles(t *testing.T) {
	e := newEnv(t)
	e.routingModels()
	fin, mem := e.roleKeys()
	e.must(http.StatusOK, http.MethodPut, "/api/v1/model-groups/gpt-4o", obj{"strategy": "least_busy", "fallbacks": []string{"claude"}})
	e.must(http.StatusOK, http.MethodPut, "/api/v1/model-aliases/smart", obj{"model_name": "claude"})

	b := e.browser()
	b.signInAs(fin)
	resp, body := b.send("GET", "/routing", nil, false)
	wantPage(t, resp, body, "/routing")
	htmlHas(t, "finance routing page", body, `href="/routing" aria-current="page"`, ">least_busy</code>", "<span>claude</span>", "<strong>smart</strong>")
	for _, control := range []string{"hx-post", "hx-delete", "hx-get=\"/routing", "Set routing for a model", "Add an alias"} {
		if strings.Contains(body, control) {
			t.Errorf("finance sees %q on the routing page", control)
		}
	}
	form := url.Values{"model_name": {"gpt-4o"}, "strategy": {"weighted"}, "alias": {"x"}}
	for _, c := range []struct{ method, path string }{{"POST", "/routing/groups"}, {"POST", "/routing/groups/edit"}, {"GET", "/routing/groups/edit?model=gpt-4o"},
		{"DELETE", "/routing/groups?model=gpt-4o"}, {"POST", "/routing/aliases"}, {"DELETE", "/routing/aliases?alias=smart"}} {
		if resp, _ := b.send(c.method, c.path, form, true); resp.StatusCode != http.StatusForbidden {
			t.Errorf("finance %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	if g := e.modelGroups()["gpt-4o"]; g.Strategy != "least_busy" || e.count("model_aliases") != 1 {
		t.Error("a finance request changed routing")
	}

	b = e.browser()
	b.signInAs(mem)
	if resp, _ := b.send("GET", "/routing", nil, false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member GET /routing: %d", resp.StatusCode)
	}
	if _, body := b.send("GET", "/keys", nil, false); strings.Contains(body, `href="/routing"`) {
		t.Error("member nav links to routing")
	}

	// Writes from another origin are refused, even an admin's.
	b = e.browser()
	b.signIn()
	resp, _ = b.send("DELETE", "/routing/groups?model=gpt-4o", nil, true, "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusForbidden || len(e.modelGroups()) != 1 {
		t.Errorf("cross-site delete: %d", resp.StatusCode)
	}
}

func TestDashboardModelsProbeHealth(t *testing.T) {
	e := newEnv(t)
	e.routingModels()
	ctx := context.Background()
	ids := map[string]string{}
	for _, m := range []string{"mock-gpt-2", "mock-claude", "mock-gemini"} {
		var id string
		e.st.DB().Get(&id, `SELECT id FROM models WHERE upstream_model = $1`, m)
		ids[m] = id
	}
	now := time.Now()
	for _, h := range []store.ProbeResult{
		{ModelID: ids["mock-gpt-2"], Healthy: true, LatencyMS: 312, CheckedAt: now.Add(-40 * time.Second)},
		{ModelID: ids["mock-claude"], Healthy: false, LatencyMS: 1250, Error: "upstream answered 401: invalid api key sk-…REDACTED", CheckedAt: now.Add(-3 * time.Minute)},
	} {
		if err := e.st.RecordHealth(ctx, h); err != nil {
			t.Fatal(err)
		}
	}

	b := e.browser()
	b.signIn()
	resp, body := b.send("GET", "/models", nil, false)
	wantPage(t, resp, body, "/models")
	htmlHas(t, "models page", body, "<th>Probe</th><th>Traffic, 15 min</th>", "no traffic",
		`<span class="badge ok">healthy</span>`, `<span class="badge blocked">unhealthy</span>`,
		"1,250 ms · checked 3 minutes ago", `<small class="probe-error">upstream answered 401: invalid api key sk-…REDACTED</small>`,
		`<span class="badge ">not checked yet</span>`, `<span class="badge ">not checked: disabled</span>`)
	if !regexp.MustCompile(`312 ms · checked 4\ds ago`).MatchString(body) {
		t.Error("the healthy probe's latency and age are missing")
	}
	row := func(id string) string {
		start := strings.Index(body, `id="model-`+id+`"`)
		return body[start : start+strings.Index(body[start:], "</tr>")]
	}
	for upstream, want := range map[string]string{"mock-gpt-2": "healthy", "mock-claude": "unhealthy", "mock-gemini": "not checked: disabled"} {
		if !strings.Contains(row(ids[upstream]), ">"+want+"</span>") {
			t.Errorf("%s's row does not say %s", upstream, want)
		}
	}
}

func TestDashboardRoutingShowsTheEnvironmentsSettings(t *testing.T) {
	st := storetest.New(t)
	adm := admin.New(st, storetest.Redis(t), masterKey, slog.New(slog.DiscardHandler))
	adm.SetRoutingDefaults(admin.RoutingDefaults{Retries: 2, CooldownFailures: 4, CooldownWindow: time.Minute, CooldownPeriod: 45 * time.Second,
		DefaultFallbacks: []string{"gpt-4o-mini", "claude-haiku"}, HealthInterval: 30 * time.Second})
	srv := httptest.NewServer(adm.Handler())
	t.Cleanup(srv.Close)
	e := &env{t: t, st: st, srv: srv}
	b := e.browser()
	b.signIn()
	_, body := b.send("GET", "/routing", nil, false)
	htmlHas(t, "routing defaults", body, "Gateway-wide settings", "<code>TOLLGATE_RETRIES</code>", "<td>2</td>",
		"4 within 1m0s", "<td>45s</td>", "gpt-4o-mini → claude-haiku", "every 30s")
}
