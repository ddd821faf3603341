package admin_test

import (
	"net/http"
	"sort"
	"testing"
)

func TestUsers(t *testing.T) {
	e := newEnv(t)
	t1, t2 := e.newTeam("team-one"), e.newTeam("team-two")

	id, u := e.create("/api/v1/users", obj{"email": "Dana@Example.com", "name": "Dana", "role": "finance", "teams": []string{t1, t2}})
	if u["email"] != "Dana@Example.com" || u["role"] != "finance" || u["name"] != "Dana" {
		t.Errorf("create: %v", u)
	}
	want := []string{t1, t2}
	sort.Strings(want)
	if got := strs(u["teams"]); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("teams = %v, want %v", got, want)
	}
	e.wantAudit("user.create", "user", id)
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/users/"+id, nil); len(strs(g.json["teams"])) != 2 {
		t.Errorf("GET teams: %v", g.json["teams"])
	}

	_, plain := e.create("/api/v1/users", obj{"email": "eve@example.com"})
	if plain["role"] != "member" {
		t.Errorf("default role %v, want member", plain["role"])
	}
	if got, ok := plain["teams"].([]any); !ok || len(got) != 0 {
		t.Errorf("teams of a user without teams: %#v, want []", plain["teams"])
	}

	cases := []struct {
		name   string
		body   obj
		status int
		param  string
		msg    string
	}{
		{"invalid email", obj{"email": "not-an-email"}, 400, "email", "not-an-email"},
		{"display-name email", obj{"email": "Eve <eve2@example.com>"}, 400, "email", "email"},
		{"no email", obj{"name": "x"}, 400, "email", "email"},
		{"owner role", obj{"email": "o@example.com", "role": "owner"}, 400, "role", "owner"},
		{"duplicate email", obj{"email": "eve@example.com"}, 409, "", "eve@example.com"},
		{"duplicate email other case", obj{"email": "DANA@example.COM"}, 409, "", ""},
		{"unknown team", obj{"email": "t@example.com", "teams": []string{"0b9e4c1e-0000-4000-8000-000000000003"}}, 400, "teams", "0b9e4c1e-0000-4000-8000-000000000003"},
		{"team not a uuid", obj{"email": "t@example.com", "teams": []string{"team-one"}}, 400, "teams", "team-one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.at(t)
			users, audits, members := e.count("users"), e.count("audit_logs"), e.count("team_members")
			r := e.do(http.MethodPost, "/api/v1/users", c.body)
			code := "invalid_request"
			if c.status == 409 {
				code = "conflict"
			}
			var msg []string
			if c.msg != "" {
				msg = append(msg, c.msg)
			}
			wantError(t, r, c.status, code, c.param, msg...)
			if e.count("users") != users || e.count("audit_logs") != audits || e.count("team_members") != members {
				t.Error("a refused create wrote rows")
			}
		})
	}

	// PATCH: teams replaced, role changed, email kept.
	r := e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+id, obj{"teams": []string{t2}, "role": "admin"})
	if got := strs(r.json["teams"]); len(got) != 1 || got[0] != t2 || r.json["role"] != "admin" || r.json["email"] != "Dana@Example.com" {
		t.Errorf("PATCH: %s", r.raw)
	}
	e.wantAudit("user.update", "user", id)
	wantError(t, e.do(http.MethodPatch, "/api/v1/users/"+id, obj{"role": "owner"}), 400, "invalid_request", "role")
	wantError(t, e.do(http.MethodPatch, "/api/v1/users/"+id, obj{"email": "EVE@example.com"}), 409, "conflict", "")
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/users/"+id, nil); g.json["role"] != "admin" || g.json["email"] != "Dana@Example.com" {
		t.Errorf("refused PATCHes changed the user: %s", g.raw)
	}
	r = e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+id, obj{"teams": []string{}})
	if got := strs(r.json["teams"]); len(got) != 0 {
		t.Errorf("teams after clearing: %v", got)
	}

	rows, _ := e.list("/api/v1/users")
	if len(rows) != 2 {
		t.Errorf("%d users listed, want 2", len(rows))
	}

	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/users/"+id, nil)
	wantError(t, e.do(http.MethodGet, "/api/v1/users/"+id, nil), 404, "not_found", "")
	e.wantAudit("user.delete", "user", id)
}

// strs turns a decoded JSON array of strings into a slice.
func strs(v any) []string {
	var out []string
	arr, _ := v.([]any)
	for _, x := range arr {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
