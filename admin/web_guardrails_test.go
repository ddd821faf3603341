package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"tollgate/store"
)

func (e *env) guardrailByName(name string) *store.Guardrail {
	e.t.Helper()
	all, err := e.st.AllGuardrails(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range all {
		if g.Name == name {
			return &g
		}
	}
	return nil
}

func configOf(t *testing.T, g *store.Guardrail) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(g.Config, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDashboardGuardrailsCreate(t *testing.T) {
	e := newEnv(t)
	finance, eng := e.newTeam("finance"), e.newTeam("eng")
	b := e.browser()
	b.signIn()

	resp, body := b.send("GET", "/guardrails", nil, false)
	wantPage(t, resp, body, "/guardrails")
	htmlHas(t, "guardrails page", body, `href="/guardrails" aria-current="page"`, "No guardrails yet.", "No hits yet.", `hx-post="/guardrails"`,
		`<select name="type" data-guardrail-type`, `data-guardrail-fields="pii"`, `data-guardrail-fields="keywords" hidden disabled`,
		`value="credit_card"`, `name="team_id" value="`+finance+`"`, "pre_call: the prompt, before the provider sees it", "mask: replace matches")
	// Every entity offered is one the engine knows.
	var entities []string
	for _, m := range regexp.MustCompile(`name="entity" value="([a-z_]+)"`).FindAllStringSubmatch(body, -1) {
		entities = append(entities, m[1])
	}
	if len(entities) < 6 {
		t.Errorf("entities offered: %v", entities)
	}
	e.create("/api/v1/guardrails", obj{"name": "every-entity", "type": "pii", "config": obj{"entities": entities}})
	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/guardrails/"+e.guardrailByName("every-entity").ID, nil)
	// The nav puts Guardrails after Routing.
	if r, g := strings.Index(body, `href="/routing"`), strings.Index(body, `href="/guardrails"`); r < 0 || g < r || g > strings.Index(body, `href="/teams"`) {
		t.Error("Guardrails is not between Routing and Teams in the nav")
	}

	// Every type from the form, with its own inputs.
	for _, c := range []struct {
		typ    string
		form   url.Values
		config string
	}{
		{"pii", url.Values{"entity": {"email", "credit_card"}, "action": {"mask"}}, `{"entities":["email","credit_card"]}`},
		{"secrets", url.Values{"action": {"block"}}, `{}`},
		{"keywords", url.Values{"keywords": {"project falcon\n\n internal only \n"}, "case_sensitive": {"true"}}, `{"case_sensitive":true,"keywords":["project falcon","internal only"]}`},
		{"regex", url.Values{"patterns": {"EMPLOYEE_ID=E-[0-9]{6}\nTICKET = JIRA-[0-9]+"}}, `{"patterns":[{"name":"EMPLOYEE_ID","pattern":"E-[0-9]{6}"},{"name":"TICKET","pattern":"JIRA-[0-9]+"}]}`},
		{"prompt_injection", url.Values{"action": {"block"}}, `{}`},
		{"max_prompt_size", url.Values{"max_tokens": {"8000"}, "max_chars": {""}}, `{"max_tokens":8000}`},
		{"external", url.Values{"url": {"https://guard.example.com/check"}, "timeout_ms": {"750"}, "fail_open": {"true"}}, `{"fail_open":true,"timeout_ms":750,"url":"https://guard.example.com/check"}`},
	} {
		form := url.Values{"name": {c.typ + "-rule"}, "type": {c.typ}, "mode": {"pre_call"}, "action": {"log"}, "enabled": {"true"}}
		for k, v := range c.form {
			form[k] = v
		}
		if c.typ == "pii" {
			form["team_id"] = []string{finance, eng}
			form.Set("default_on", "true")
		}
		resp, body := b.send("POST", "/guardrails", form, true)
		htmlHas(t, c.typ+" saved", resp.Header.Get("HX-Trigger"), "Guardrail "+c.typ+"-rule added")
		htmlHas(t, c.typ+" saved", body, `id="guardrails-list" hx-swap-oob="true"`, "<strong>"+c.typ+"-rule</strong>", `name="name" value=""`)
		g := e.guardrailByName(c.typ + "-rule")
		if g == nil {
			t.Fatalf("%s not stored", c.typ)
		}
		if want := configOf(t, &store.Guardrail{GuardrailSpec: store.GuardrailSpec{Config: store.JSON(c.config)}}); !equalJSON(configOf(t, g), want) {
			t.Errorf("%s config %s, want %s", c.typ, g.Config, c.config)
		}
	}
	pii := e.guardrailByName("pii-rule")
	if pii.Action != "mask" || !pii.DefaultOn || !pii.Enabled || !slices.Equal(pii.TeamIDs, []string{finance, eng}) {
		t.Errorf("pii stored as %+v", pii)
	}

	// The list: type, mode, action, applies to, teams, status and hits.
	_, body = b.send("GET", "/guardrails", nil, false)
	row := rowOf(body, "guardrail-"+pii.ID)
	htmlHas(t, "pii row", row, "<strong>pii-rule</strong>", "email, credit_card", ">pii</code>", ">pre_call</code>", ">mask</code>",
		"default on", "finance, eng", `<span class="badge ok">enabled</span>`)
	htmlHas(t, "keywords row", rowOf(body, "guardrail-"+e.guardrailByName("keywords-rule").ID), "2 keyword(s), case sensitive", "opt-in", "none")
	htmlHas(t, "regex row", rowOf(body, "guardrail-"+e.guardrailByName("regex-rule").ID), "EMPLOYEE_ID, TICKET")
	htmlHas(t, "size row", rowOf(body, "guardrail-"+e.guardrailByName("max_prompt_size-rule").ID), "at most 8,000 tokens")
	htmlHas(t, "external row", rowOf(body, "guardrail-"+e.guardrailByName("external-rule").ID), "https://guard.example.com/check · 750 ms · fails open")

	// Refusals come back next to their field, with what was typed.
	for _, c := range []struct {
		name  string
		form  url.Values
		parts []string
	}{
		{"taken name", url.Values{"name": {"pii-rule"}, "type": {"secrets"}}, []string{`guardrail &#34;pii-rule&#34; already exists`}},
		{"bad name", url.Values{"name": {"my rule"}, "type": {"secrets"}}, []string{"found &#39; &#39; at position 3", `name="name" value="my rule" required`, `aria-invalid="true"`}},
		{"mask during the call", url.Values{"name": {"x"}, "type": {"pii"}, "mode": {"during_call"}, "action": {"mask"}}, []string{"mask is not possible during_call"}},
		{"catastrophic regex", url.Values{"name": {"x"}, "type": {"regex"}, "patterns": {"SLOW=(a+)+$"}}, []string{"SLOW", "SLOW=(a+)+$</textarea>"}},
		{"pattern without a name", url.Values{"name": {"x"}, "type": {"regex"}, "patterns": {"E-[0-9]+"}}, []string{"patterns: line 1 must be NAME=pattern"}},
		{"size not a number", url.Values{"name": {"x"}, "type": {"max_prompt_size"}, "max_tokens": {"lots"}}, []string{"max tokens must be a positive whole number"}},
		{"external without url", url.Values{"name": {"x"}, "type": {"external"}, "timeout_ms": {"100"}}, []string{"url"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			form := url.Values{"mode": {"pre_call"}, "action": {"log"}}
			for k, v := range c.form {
				form[k] = v
			}
			_, body := b.send("POST", "/guardrails", form, true)
			htmlHas(t, "refused form", body, append([]string{`class="field-error"`}, c.parts...)...)
			if strings.Contains(body, "guardrails-list") {
				t.Error("a refused form swapped the list")
			}
		})
	}
	if n := e.count("guardrails"); n != 7 {
		t.Fatalf("%d guardrails after refused forms", n)
	}
}

// rowOf is the table row with id in body.
func rowOf(body, id string) string {
	start := strings.Index(body, `id="`+id+`"`)
	if start < 0 {
		return ""
	}
	return body[start : start+strings.Index(body[start:], "</tr>")]
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestDashboardGuardrailsEditToggleDelete(t *testing.T) {
	e := newEnv(t)
	team := e.newTeam("finance")
	id, _ := e.create("/api/v1/guardrails", obj{"name": "words", "type": "keywords", "action": "block", "team_ids": []string{team},
		"config": obj{"keywords": []string{"falcon", "osprey"}}})
	b := e.browser()
	b.signIn()

	// The edit dialog shows what is stored.
	_, body := b.send("GET", "/guardrails/"+id+"/edit", nil, true)
	htmlHas(t, "edit dialog", body, "<dialog data-open", "Edit guardrail words", `hx-post="/guardrails/`+id+`"`, `value="keywords" selected`,
		`value="block" selected`, ">falcon\nosprey</textarea>", `value="`+team+`" checked`, `data-guardrail-fields="keywords">`)
	if resp, _ := b.send("GET", "/guardrails/6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e/edit", nil, true); resp.StatusCode != http.StatusNotFound {
		t.Errorf("edit dialog of no guardrail: %d", resp.StatusCode)
	}

	// An error stays in the dialog; then saved, the dialog closes.
	form := url.Values{"name": {"words"}, "type": {"keywords"}, "mode": {"during_call"}, "action": {"mask"}, "keywords": {"falcon"}, "enabled": {"true"}}
	_, body = b.send("POST", "/guardrails/"+id, form, true)
	htmlHas(t, "edit refused", body, "<dialog data-open", "mask is not possible during_call", ">falcon</textarea>")
	form.Set("mode", "post_call")
	form.Set("keywords", "falcon\nkestrel")
	resp, body := b.send("POST", "/guardrails/"+id, form, true)
	htmlHas(t, "edited", resp.Header.Get("HX-Trigger"), "Guardrail words saved")
	htmlHas(t, "edited", body, `id="guardrails-list" hx-swap-oob="true"`, ">post_call</code>")
	if strings.Contains(body, "<dialog") {
		t.Error("the dialog stays open after saving")
	}
	g := e.guardrailByName("words")
	if g.Mode != "post_call" || g.Action != "mask" || len(g.TeamIDs) != 0 || !slices.Equal(anyStrings(configOf(t, g)["keywords"]), []string{"falcon", "kestrel"}) {
		t.Errorf("after edit: %+v %s", g, g.Config)
	}

	// Disable and enable answer the row.
	resp, body = b.send("POST", "/guardrails/"+id+"/disable", nil, true)
	htmlHas(t, "disabled", resp.Header.Get("HX-Trigger"), "Guardrail words disabled")
	htmlHas(t, "disabled", body, `<tr id="guardrail-`+id+`"`, `<span class="badge blocked">disabled</span>`, `hx-post="/guardrails/`+id+`/enable"`)
	if e.guardrailByName("words").Enabled {
		t.Error("still enabled")
	}
	resp, body = b.send("POST", "/guardrails/"+id+"/enable", nil, true)
	htmlHas(t, "enabled", body, `<span class="badge ok">enabled</span>`)
	if !e.guardrailByName("words").Enabled {
		t.Error("still disabled")
	}

	// Delete asks first, then removes the row.
	_, body = b.send("GET", "/guardrails", nil, false)
	htmlHas(t, "page", body, `hx-delete="/guardrails/`+id+`"`, `hx-confirm="Delete guardrail words?`)
	resp, _ = b.send("DELETE", "/guardrails/"+id, nil, true)
	htmlHas(t, "deleted", resp.Header.Get("HX-Trigger"), "Guardrail words deleted")
	if e.count("guardrails") != 0 {
		t.Error("not deleted")
	}
	for _, action := range []string{"guardrail.create", "guardrail.update", "guardrail.delete"} {
		if rows := e.auditFor(action, id); len(rows) == 0 {
			t.Errorf("no audit of %s", action)
		}
	}
	if rows := e.auditFor("guardrail.update", id); len(rows) != 3 || rows[0]["actor"] != "master-key (dashboard)" {
		t.Errorf("update audits: %v", rows)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestDashboardGuardrailHits(t *testing.T) {
	e := newEnv(t)
	team := e.newTeam("hits-team")
	key, _ := e.create("/api/v1/keys", obj{"team_id": team, "alias": "bot"})
	e.create("/api/v1/guardrails", obj{"name": "pii-mask", "type": "pii", "action": "mask"})
	e.create("/api/v1/guardrails", obj{"name": "secrets", "type": "secrets"})
	e.seedGuardrailHits(team, key)
	b := e.browser()
	b.signIn()

	_, body := b.send("GET", "/guardrails", nil, false)
	htmlHas(t, "hits table", body, `id="hits-table"`, "<td>pii-mask</td><td>hits-team</td><td>bot</td><td><code>req-masked</code></td>",
		`<span class="badge warn">mask</span>`, `<span class="badge blocked">block</span>`, "<code>AWS_ACCESS_KEY</code>",
		`<option value="pii-mask">pii-mask</option>`)
	if !regexp.MustCompile(`<code>EMAIL</code>\s*×2`).MatchString(body) || regexp.MustCompile(`AWS_ACCESS_KEY</code>\s*×`).MatchString(body) {
		t.Error("hit counts are not shown as ×2 (and only above 1)")
	}
	// Hits in the last 24 h, per guardrail, in the list.
	all, _ := e.st.AllGuardrails(context.Background())
	for _, g := range all {
		if !regexp.MustCompile(`<td>1</td>\s*<td class="actions">`).MatchString(rowOf(body, "guardrail-"+g.ID)) {
			t.Errorf("%s's row does not count 1 hit: %s", g.Name, rowOf(body, "guardrail-"+g.ID))
		}
	}

	_, body = b.send("GET", "/guardrails?hits_guardrail=secrets", nil, true)
	hits := body[strings.Index(body, `id="hits-results"`):]
	if !strings.Contains(hits, "req-blocked") || strings.Contains(hits, "req-masked") {
		t.Errorf("hits filtered by secrets: %s", hits)
	}

	// The spend logs page says what guardrails did.
	_, body = b.send("GET", "/spend", nil, false)
	htmlHas(t, "spend logs", body, `<small class="guardrail-hits">guardrails: pii-mask mask EMAIL×2</small>`,
		`<small class="guardrail-hits">guardrails: secrets block AWS_ACCESS_KEY</small>`)
}

func TestDashboardGuardrailsRoles(t *testing.T) {
	e := newEnv(t)
	fin, mem := e.roleKeys()
	id, _ := e.create("/api/v1/guardrails", obj{"name": "pii", "type": "pii"})

	b := e.browser()
	b.signInAs(fin)
	resp, body := b.send("GET", "/guardrails", nil, false)
	wantPage(t, resp, body, "/guardrails")
	htmlHas(t, "finance guardrails page", body, "<strong>pii</strong>", "Recent hits")
	for _, control := range []string{"hx-post", "hx-delete", `hx-get="/guardrails/`, "Add a guardrail"} {
		if strings.Contains(body, control) {
			t.Errorf("finance sees %q on the guardrails page", control)
		}
	}
	form := url.Values{"name": {"x"}, "type": {"secrets"}, "mode": {"pre_call"}, "action": {"log"}}
	for _, c := range []struct{ method, path string }{{"POST", "/guardrails"}, {"GET", "/guardrails/" + id + "/edit"}, {"POST", "/guardrails/" + id},
		{"POST", "/guardrails/" + id + "/disable"}, {"DELETE", "/guardrails/" + id}} {
		if resp, _ := b.send(c.method, c.path, form, true); resp.StatusCode != http.StatusForbidden {
			t.Errorf("finance %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	if g := e.guardrailByName("pii"); g == nil || !g.Enabled || e.count("guardrails") != 1 {
		t.Error("a finance request changed guardrails")
	}

	b = e.browser()
	b.signInAs(mem)
	if resp, _ := b.send("GET", "/guardrails", nil, false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member GET /guardrails: %d", resp.StatusCode)
	}
	if _, body := b.send("GET", "/keys", nil, false); strings.Contains(body, `href="/guardrails"`) {
		t.Error("member nav links to guardrails")
	}
}
