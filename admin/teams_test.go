package admin_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestTeamNames(t *testing.T) {
	e := newEnv(t)

	valid := []string{
		"a", "Z", "7", "cost-center_1", "ops+ml@corp.example", "A.B-C_D+E@F", "1-2", "x..y",
		strings.Repeat("b", 200),
		"c" + strings.Repeat("-", 198) + "d",
	}
	for _, name := range valid {
		t.Run("valid/"+abbrev(name), func(t *testing.T) {
			e := e.at(t)
			id, body := e.create("/api/v1/teams", obj{"name": name})
			if body["name"] != name {
				t.Errorf("name %q came back as %v", name, body["name"])
			}
			if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/teams/"+id, nil); g.json["name"] != name {
				t.Errorf("GET: name %v", g.json["name"])
			}
			e.wantAudit("team.create", "team", id)
		})
	}

	invalid := []struct {
		name string
		rule string // words of the message naming the rule broken
	}{
		{"", "required"},
		{"-lead", "start and end with a letter or digit"},
		{"trail.", "start and end with a letter or digit"},
		{"_x", "start and end"},
		{"x@", "start and end"},
		{"has space", "only letters, digits and _ - . + @"},
		{"semi;colon", `';' at position 5`},
		{"tab\tname", "only letters, digits"},
		{"slash/name", `'/'`},
		{strings.Repeat("a", 201), "at most 200 characters (got 201)"},
		{"ünïcode", `'ü' at position 1`},
		{"caf\u00e9", "only letters, digits"},
		{"emoji🙂x", "only letters, digits"},
	}
	for _, c := range invalid {
		t.Run("invalid/"+abbrev(c.name), func(t *testing.T) {
			e := e.at(t)
			teams, audits := e.count("teams"), e.count("audit_logs")
			r := e.do(http.MethodPost, "/api/v1/teams", obj{"name": c.name})
			wantError(t, r, http.StatusBadRequest, "invalid_request", "name", c.rule)
			if e.count("teams") != teams || e.count("audit_logs") != audits {
				t.Error("a refused create wrote rows")
			}
		})
	}

	// A rename is held to the same rules.
	t.Run("rename", func(t *testing.T) {
		e := e.at(t)
		id := e.newTeam("renamed-ok")
		audits := e.count("audit_logs")
		for _, c := range invalid {
			r := e.do(http.MethodPatch, "/api/v1/teams/"+id, obj{"name": c.name})
			wantError(t, r, http.StatusBadRequest, "invalid_request", "name", c.rule)
		}
		if e.count("audit_logs") != audits {
			t.Error("refused renames wrote audit rows")
		}
		r := e.must(http.StatusOK, http.MethodPatch, "/api/v1/teams/"+id, obj{"name": "bu.renamed@corp"})
		if r.json["name"] != "bu.renamed@corp" {
			t.Errorf("rename: %s", r.raw)
		}
	})
}

func abbrev(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > 20 {
		return s[:10] + "…" + s[len(s)-5:]
	}
	return s
}

func TestTeamFieldsAndConflicts(t *testing.T) {
	e := newEnv(t)
	existing := e.newTeam("finance")
	cases := []struct {
		name   string
		body   obj
		status int
		param  string
		msg    string
	}{
		{"duplicate", obj{"name": "finance"}, 409, "", `"finance"`},
		{"fortnightly", obj{"name": "t1", "budget_duration": "fortnightly"}, 400, "budget_duration", "fortnightly"},
		{"zero days", obj{"name": "t1", "budget_duration": "0d"}, 400, "budget_duration", "budget_duration"},
		{"negative max_budget", obj{"name": "t1", "max_budget": -1}, 400, "max_budget", "max_budget"},
		{"negative soft_budget", obj{"name": "t1", "soft_budget": -0.01}, 400, "soft_budget", "soft_budget"},
		{"negative tpm", obj{"name": "t1", "tpm_limit": -5}, 400, "tpm_limit", "tpm_limit"},
		{"empty model", obj{"name": "t1", "models": []string{"gpt", " "}}, 400, "models", "models[1]"},
		{"budget as string", obj{"name": "t1", "max_budget": "100"}, 400, "max_budget", "max_budget"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.at(t)
			teams, audits := e.count("teams"), e.count("audit_logs")
			r := e.do(http.MethodPost, "/api/v1/teams", c.body)
			code := "invalid_request"
			if c.status == 409 {
				code = "conflict"
			}
			wantError(t, r, c.status, code, c.param, c.msg)
			if e.count("teams") != teams || e.count("audit_logs") != audits {
				t.Error("a refused create wrote rows")
			}
		})
	}

	for _, d := range []string{"daily", "weekly", "monthly", "30d", "12h"} {
		_, body := e.create("/api/v1/teams", obj{"name": "dur-" + d, "budget_duration": d, "max_budget": 100.5, "soft_budget": 80, "models": []string{"gpt-4o"}})
		if body["budget_duration"] != d || body["max_budget"] != 100.5 || body["soft_budget"] != 80.0 {
			t.Errorf("budget_duration %s: %v", d, body)
		}
		if m, _ := body["models"].([]any); len(m) != 1 || m[0] != "gpt-4o" {
			t.Errorf("models: %v", body["models"])
		}
	}

	// PATCH changes the fields given, keeps the rest.
	other := e.newTeam("legal")
	r := e.must(http.StatusOK, http.MethodPatch, "/api/v1/teams/"+other, obj{"max_budget": 50, "budget_duration": "weekly"})
	if r.json["name"] != "legal" || r.json["max_budget"] != 50.0 || r.json["budget_duration"] != "weekly" {
		t.Errorf("PATCH: %s", r.raw)
	}
	e.wantAudit("team.update", "team", other)
	teams, audits := e.count("teams"), e.count("audit_logs")
	wantError(t, e.do(http.MethodPatch, "/api/v1/teams/"+other, obj{"name": "finance"}), 409, "conflict", "", "finance")
	wantError(t, e.do(http.MethodPatch, "/api/v1/teams/"+other, obj{"budget_duration": "fortnightly"}), 400, "invalid_request", "budget_duration")
	wantError(t, e.do(http.MethodPatch, "/api/v1/teams/"+other, obj{"max_budget": -2}), 400, "invalid_request", "max_budget")
	if e.count("teams") != teams || e.count("audit_logs") != audits {
		t.Error("refused PATCHes wrote rows")
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/teams/"+other, nil); g.json["name"] != "legal" || g.json["max_budget"] != 50.0 {
		t.Errorf("refused PATCHes changed the team: %s", g.raw)
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/teams/"+existing, nil); g.json["name"] != "finance" {
		t.Errorf("existing team changed: %s", g.raw)
	}
}

func TestTeamMembers(t *testing.T) {
	e := newEnv(t)
	team := e.newTeam("platform")
	alice, _ := e.create("/api/v1/users", obj{"email": "alice@example.com"})
	bob, _ := e.create("/api/v1/users", obj{"email": "bob@example.com"})
	members := "/api/v1/teams/" + team + "/members"

	if rows, _ := e.list(members); len(rows) != 0 {
		t.Fatalf("new team has %d members", len(rows))
	}
	for _, u := range []string{bob, alice} {
		r := e.do(http.MethodPost, members, obj{"user_id": u})
		if r.status != http.StatusCreated {
			t.Fatalf("add member: %d %s", r.status, r.raw)
		}
	}
	rows, _ := e.list(members)
	if len(rows) != 2 || rows[0]["id"] != alice || rows[1]["id"] != bob {
		t.Fatalf("members: %v", rows)
	}
	if rows[0]["email"] != "alice@example.com" {
		t.Errorf("member row: %v", rows[0])
	}
	adds := e.auditFor("team.member.add", team)
	if len(adds) != 2 {
		t.Fatalf("%d team.member.add rows, want 2", len(adds))
	}
	for i, u := range []string{alice, bob} { // newest first
		if adds[i]["actor"] != "master-key" || adds[i]["after"].(obj)["user_id"] != u {
			t.Errorf("team.member.add row %d: %v", i, adds[i])
		}
	}

	// Adding again is harmless and writes no audit row.
	audits := e.count("audit_logs")
	if r := e.do(http.MethodPost, members, obj{"user_id": alice}); r.status != http.StatusCreated {
		t.Errorf("adding twice: %d %s", r.status, r.raw)
	}
	if rows, _ := e.list(members); len(rows) != 2 {
		t.Errorf("adding twice made %d members", len(rows))
	}
	if e.count("audit_logs") != audits {
		t.Error("adding twice wrote an audit row")
	}

	// The user sees the team.
	if u := e.must(http.StatusOK, http.MethodGet, "/api/v1/users/"+alice, nil); !hasString(u.json["teams"], team) {
		t.Errorf("user teams after add: %v", u.json["teams"])
	}

	const ghost = "0b9e4c1e-0000-4000-8000-000000000002"
	wantError(t, e.do(http.MethodPost, members, obj{"user_id": ghost}), 400, "invalid_request", "user_id", ghost)
	wantError(t, e.do(http.MethodPost, members, obj{"user_id": "alice"}), 400, "invalid_request", "user_id")
	wantError(t, e.do(http.MethodPost, "/api/v1/teams/"+ghost+"/members", obj{"user_id": alice}), 404, "not_found", "")
	wantError(t, e.do(http.MethodGet, "/api/v1/teams/"+ghost+"/members", nil), 404, "not_found", "")
	if e.count("team_members") != 2 {
		t.Errorf("team_members has %d rows, want 2", e.count("team_members"))
	}

	// Remove.
	r := e.do(http.MethodDelete, members+"/"+bob, nil)
	if r.status != http.StatusNoContent {
		t.Fatalf("remove member: %d %s", r.status, r.raw)
	}
	if rows, _ := e.list(members); len(rows) != 1 || rows[0]["id"] != alice {
		t.Errorf("members after remove: %v", rows)
	}
	e.wantAudit("team.member.remove", "team", team)
	wantError(t, e.do(http.MethodDelete, members+"/"+bob, nil), 404, "not_found", "")
	if u := e.must(http.StatusOK, http.MethodGet, "/api/v1/users/"+bob, nil); hasString(u.json["teams"], team) {
		t.Errorf("removed user still lists the team: %v", u.json["teams"])
	}
}

func TestTeamDelete(t *testing.T) {
	e := newEnv(t)
	withKey := e.newTeam("has-keys")
	empty := e.newTeam("empty")
	keyID, _ := e.create("/api/v1/keys", obj{"team_id": withKey})
	e.create("/api/v1/keys", obj{"team_id": withKey})
	user, _ := e.create("/api/v1/users", obj{"email": "m@example.com", "teams": []string{empty}})

	r := e.do(http.MethodDelete, "/api/v1/teams/"+withKey, nil)
	wantError(t, r, http.StatusConflict, "conflict", "", "has-keys", "2 key")
	e.must(http.StatusOK, http.MethodGet, "/api/v1/teams/"+withKey, nil)

	// A team with members but no keys goes, and so do its memberships.
	if r := e.do(http.MethodDelete, "/api/v1/teams/"+empty, nil); r.status != http.StatusNoContent {
		t.Fatalf("DELETE empty team: %d %s", r.status, r.raw)
	}
	wantError(t, e.do(http.MethodGet, "/api/v1/teams/"+empty, nil), 404, "not_found", "")
	e.wantAudit("team.delete", "team", empty)
	if u := e.must(http.StatusOK, http.MethodGet, "/api/v1/users/"+user, nil); hasString(u.json["teams"], empty) {
		t.Errorf("user still in deleted team: %v", u.json["teams"])
	}

	// Once its keys are gone the other team can go too.
	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/keys/"+keyID, nil)
	wantError(t, e.do(http.MethodDelete, "/api/v1/teams/"+withKey, nil), 409, "conflict", "", "1 key")
	keys, _ := e.list("/api/v1/keys?team_id=" + withKey)
	for _, k := range keys {
		e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/keys/"+k["id"].(string), nil)
	}
	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/teams/"+withKey, nil)
	if rows, _ := e.list("/api/v1/teams"); len(rows) != 0 {
		t.Errorf("%d teams left", len(rows))
	}
}

// hasString reports whether v, a decoded JSON array, holds s.
func hasString(v any, s string) bool {
	arr, _ := v.([]any)
	for _, x := range arr {
		if x == s {
			return true
		}
	}
	return false
}
