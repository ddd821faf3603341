package admin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

// guardrailConfigs is a valid config of every type, as docs/guardrails.md
// describes them.
var guardrailConfigs = map[string]obj{
	"pii":              {"entities": []string{"email", "credit_card"}},
	"secrets":          {},
	"keywords":         {"keywords": []string{"project falcon", "internal only"}, "case_sensitive": true},
	"regex":            {"patterns": []obj{{"name": "EMPLOYEE_ID", "pattern": `E-[0-9]{6}`}}},
	"prompt_injection": {},
	"max_prompt_size":  {"max_tokens": 8000},
	"external":         {"url": "https://guard.example.com/check", "timeout_ms": 500, "fail_open": true},
}

func TestGuardrailsAPI(t *testing.T) {
	e := newEnv(t)
	team := e.newTeam("guarded")

	// One of each type; defaults fill mode, action and enabled.
	ids := map[string]string{}
	for typ, cfg := range guardrailConfigs {
		action := "log"
		if typ == "pii" {
			action = "mask"
		}
		id, g := e.create("/api/v1/guardrails", obj{"name": typ + "-rule", "type": typ, "action": action, "config": cfg})
		ids[typ] = id
		if g["mode"] != "pre_call" || g["enabled"] != true || g["default_on"] != false || g["action"] != action {
			t.Errorf("%s created as %v", typ, g)
		}
		if teams, _ := g["team_ids"].([]any); teams == nil || len(teams) != 0 {
			t.Errorf("%s team_ids = %v, want []", typ, g["team_ids"])
		}
	}
	_, g := e.create("/api/v1/guardrails", obj{"name": "blocker", "type": "secrets", "default_on": true, "team_ids": []string{team}})
	if g["action"] != "block" || g["default_on"] != true || g["team_ids"].([]any)[0] != team {
		t.Errorf("defaults: %v", g)
	}
	e.wantAudit("guardrail.create", "guardrail", ids["pii"])

	rows, _ := e.list("/api/v1/guardrails")
	if len(rows) != len(guardrailConfigs)+1 {
		t.Errorf("listed %d guardrails", len(rows))
	}
	page, r := e.list("/api/v1/guardrails?limit=3")
	if len(page) != 3 || r.json["next_cursor"] == nil {
		t.Errorf("limit 3: %d rows, next %v", len(page), r.json["next_cursor"])
	}
	got := e.must(http.StatusOK, http.MethodGet, "/api/v1/guardrails/"+ids["pii"], nil).json
	if cfg, _ := got["config"].(obj); cfg == nil || len(cfg["entities"].([]any)) != 2 {
		t.Errorf("get: %v", got)
	}

	// PATCH changes what it names.
	up := e.must(http.StatusOK, http.MethodPatch, "/api/v1/guardrails/"+ids["pii"], obj{"enabled": false, "team_ids": []string{team}}).json
	if up["enabled"] != false || up["action"] != "mask" || up["team_ids"].([]any)[0] != team {
		t.Errorf("patched: %v", up)
	}
	e.wantAudit("guardrail.update", "guardrail", ids["pii"])

	// Refusals name the field.
	for _, c := range []struct {
		name  string
		body  obj
		param string
		msg   string
	}{
		{"no name", obj{"type": "pii"}, "name", "name is required"},
		{"bad name", obj{"name": "my rule", "type": "pii"}, "name", "found ' ' at position 3"},
		{"no type", obj{"name": "x"}, "type", "type is required"},
		{"unknown type", obj{"name": "x", "type": "toxicity"}, "type", "type must be one of"},
		{"unknown mode", obj{"name": "x", "type": "pii", "mode": "before"}, "mode", "mode must be one of"},
		{"unknown action", obj{"name": "x", "type": "pii", "action": "redact"}, "action", "action must be one of"},
		{"mask during the call", obj{"name": "x", "type": "pii", "mode": "during_call", "action": "mask"}, "action", "mask is not possible during_call"},
		{"team not a UUID", obj{"name": "x", "type": "pii", "team_ids": []string{"guarded"}}, "team_ids", "must be a team's id"},
		{"no such team", obj{"name": "x", "type": "pii", "team_ids": []string{"6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e"}}, "team_ids", "names no team"},
		{"config not an object", obj{"name": "x", "type": "pii", "config": []string{"email"}}, "config", "config must be a JSON object"},
		{"unknown entity", obj{"name": "x", "type": "pii", "config": obj{"entities": []string{"passport"}}}, "config.entities", `unknown entity "passport"`},
		{"unknown config field", obj{"name": "x", "type": "secrets", "config": obj{"entities": []string{"email"}}}, "config", "unknown field"},
		{"no keywords", obj{"name": "x", "type": "keywords", "config": obj{"keywords": []string{}}}, "config.keywords", "keywords"},
		{"bad regex", obj{"name": "x", "type": "regex", "config": obj{"patterns": []obj{{"name": "BAD", "pattern": "a("}}}}, "config.patterns[0].pattern", "pattern BAD: not a valid regular expression"},
		{"catastrophic regex", obj{"name": "x", "type": "regex", "config": obj{"patterns": []obj{{"name": "SLOW", "pattern": "(a+)+$"}}}}, "config.patterns[0].pattern", "pattern SLOW: nested quantifier"},
		{"no size", obj{"name": "x", "type": "max_prompt_size", "config": obj{}}, "config", "max_"},
		{"external without url", obj{"name": "x", "type": "external", "config": obj{"timeout_ms": 100}}, "config.url", "url"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, e.at(t).do(http.MethodPost, "/api/v1/guardrails", c.body), http.StatusBadRequest, "invalid_request", c.param, c.msg)
		})
	}
	wantError(t, e.do(http.MethodPatch, "/api/v1/guardrails/"+ids["regex"], obj{"config": obj{"patterns": []obj{{"name": "SLOW", "pattern": "(a|aa)*$"}}}}),
		http.StatusBadRequest, "invalid_request", "config.patterns[0].pattern", "SLOW")
	wantError(t, e.do(http.MethodPatch, "/api/v1/guardrails/"+ids["pii"], obj{"mode": "during_call"}), http.StatusBadRequest, "invalid_request", "action")
	wantError(t, e.do(http.MethodPost, "/api/v1/guardrails", obj{"name": "x", "type": "pii", "typo": 1}), http.StatusBadRequest, "invalid_request", "", "unknown field")
	if n := e.count("guardrails"); n != len(guardrailConfigs)+1 {
		t.Fatalf("%d guardrails after refusals", n)
	}

	// Names are unique, on create and on rename.
	wantError(t, e.do(http.MethodPost, "/api/v1/guardrails", obj{"name": "blocker", "type": "pii"}), http.StatusConflict, "conflict", "", `guardrail "blocker" already exists`)
	wantError(t, e.do(http.MethodPatch, "/api/v1/guardrails/"+ids["pii"], obj{"name": "blocker"}), http.StatusConflict, "conflict", "", "already exists")

	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/guardrails/"+ids["secrets"], nil)
	e.wantAudit("guardrail.delete", "guardrail", ids["secrets"])
	wantError(t, e.do(http.MethodGet, "/api/v1/guardrails/"+ids["secrets"], nil), http.StatusNotFound, "not_found", "")
	wantError(t, e.do(http.MethodDelete, "/api/v1/guardrails/nope", nil), http.StatusNotFound, "not_found", "")

	// Deleting the team takes it off the guardrails.
	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/teams/"+team, nil)
	if teams := e.must(http.StatusOK, http.MethodGet, "/api/v1/guardrails/"+ids["pii"], nil).json["team_ids"].([]any); len(teams) != 0 {
		t.Errorf("team_ids after the team was deleted: %v", teams)
	}
}

// seedGuardrailHits writes spend logs with hits, as the gateway does.
func (e *env) seedGuardrailHits(teamID, keyID string) {
	e.t.Helper()
	at := time.Now().UTC().Add(-time.Minute)
	masked := store.SpendLog{RequestID: "req-masked", CreatedAt: at, KeyID: &keyID, TeamID: &teamID, Model: "gpt-4o", Provider: "mock",
		Endpoint: "/v1/chat/completions", Status: store.StatusSuccess, StatusCode: 200, Cost: 0.01,
		Guardrails: store.GuardrailHits{{Guardrail: "pii-mask", Mode: "pre_call", Action: "mask", Type: "EMAIL", Count: 2}}}
	blocked := store.SpendLog{RequestID: "req-blocked", CreatedAt: at.Add(time.Second), KeyID: &keyID, TeamID: &teamID, Model: "gpt-4o", Provider: "mock",
		Endpoint: "/v1/chat/completions", Status: store.StatusFailure, StatusCode: 400,
		Guardrails: store.GuardrailHits{{Guardrail: "secrets", Mode: "pre_call", Action: "block", Type: "AWS_ACCESS_KEY", Count: 1}}}
	if _, err := e.st.InsertSpendLogs(context.Background(), []store.SpendLog{masked, blocked}); err != nil {
		e.t.Fatal(err)
	}
}

func TestGuardrailHitsAPI(t *testing.T) {
	e := newEnv(t)
	team := e.newTeam("hits-team")
	key, _ := e.create("/api/v1/keys", obj{"team_id": team, "alias": "bot"})
	e.seedGuardrailHits(team, key)

	rows, _ := e.list("/api/v1/guardrails/hits")
	if len(rows) != 2 || rows[0]["request_id"] != "req-blocked" || rows[0]["matched_type"] != "AWS_ACCESS_KEY" || rows[0]["action"] != "block" ||
		rows[0]["team_name"] != "hits-team" || rows[0]["key_alias"] != "bot" || rows[0]["team_id"] != team || rows[0]["key_id"] != key {
		t.Fatalf("hits: %v", rows)
	}
	if rows[1]["count"] != float64(2) || rows[1]["guardrail"] != "pii-mask" {
		t.Errorf("masked hit: %v", rows[1])
	}
	for _, raw := range []string{rows[0]["request_id"].(string)} {
		if strings.Contains(raw, "@") {
			t.Error("a hit holds matched text")
		}
	}
	if rows, _ := e.list("/api/v1/guardrails/hits?guardrail=pii-mask"); len(rows) != 1 || rows[0]["request_id"] != "req-masked" {
		t.Errorf("by guardrail: %v", rows)
	}
	if rows, _ := e.list("/api/v1/guardrails/hits?team_id=" + team + "&guardrail=secrets"); len(rows) != 1 {
		t.Errorf("by team and guardrail: %v", rows)
	}
	page, r := e.list("/api/v1/guardrails/hits?limit=1")
	next, _ := r.json["next_cursor"].(string)
	if len(page) != 1 || next == "" {
		t.Fatalf("limit 1: %v %s", page, r.raw)
	}
	if rest, _ := e.list("/api/v1/guardrails/hits?limit=1&cursor=" + next); len(rest) != 1 || rest[0]["request_id"] != "req-masked" {
		t.Errorf("page 2: %v", rest)
	}
	wantError(t, e.do(http.MethodGet, "/api/v1/guardrails/hits?team_id=hits-team", nil), http.StatusBadRequest, "invalid_request", "team_id")
	wantError(t, e.do(http.MethodGet, "/api/v1/guardrails/hits?limit=0", nil), http.StatusBadRequest, "invalid_request", "limit")

	// The spend log carries its hits.
	logs, _ := e.list("/api/v1/spend/logs")
	for _, l := range logs {
		hits, _ := l["guardrails"].([]any)
		if len(hits) != 1 {
			t.Errorf("spend log %v: guardrails %v", l["request_id"], l["guardrails"])
			continue
		}
		if h := hits[0].(obj); l["request_id"] == "req-masked" && (h["guardrail"] != "pii-mask" || h["type"] != "EMAIL" || h["count"] != float64(2) || h["action"] != "mask") {
			t.Errorf("masked log's hit: %v", h)
		}
	}
}

func TestGuardrailsAPIRoles(t *testing.T) {
	e := newRoleEnv(t)
	id, _ := e.create("/api/v1/guardrails", obj{"name": "pii", "type": "pii"})
	for _, path := range []string{"/api/v1/guardrails", "/api/v1/guardrails/" + id, "/api/v1/guardrails/hits"} {
		if r := e.as(e.finKey, http.MethodGet, path, nil); r.status != http.StatusOK {
			t.Errorf("finance GET %s: %d %s", path, r.status, r.raw)
		}
		wantError(t, e.as(e.memKey, http.MethodGet, path, nil), http.StatusForbidden, "forbidden", "")
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/guardrails"},
		{http.MethodPatch, "/api/v1/guardrails/" + id},
		{http.MethodDelete, "/api/v1/guardrails/" + id},
	} {
		wantError(t, e.as(e.finKey, c.method, c.path, obj{"name": "x", "type": "pii"}), http.StatusForbidden, "forbidden", "", "read-only")
		wantError(t, e.as(e.memKey, c.method, c.path, obj{"name": "x", "type": "pii"}), http.StatusForbidden, "forbidden", "")
	}
	if n := e.count("guardrails"); n != 1 {
		t.Errorf("%d guardrails after refused writes", n)
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/guardrails/"+id, nil).json; g["name"] != "pii" || g["enabled"] != true {
		t.Errorf("a refused write changed the guardrail: %v", g)
	}
}
