package admin_test

import (
	"net/http"
	"strings"
	"testing"
)

// roleEnv has a finance user and two members in different teams, each with
// a management-API key, plus keys the members own.
type roleEnv struct {
	*env
	teamA, teamB         string
	fin, mem, other      string // user ids
	finKey, memKey       string // secrets acting as those users
	memLLMKey            string // an llm_api key of the member
	memKeyID, otherKeyID string // keys owned by mem and other
}

func newRoleEnv(t *testing.T) *roleEnv {
	e := &roleEnv{env: newEnv(t)}
	e.teamA, _ = e.create("/api/v1/teams", obj{"name": "team-a", "models": []string{"gpt-a"}})
	e.teamB, _ = e.create("/api/v1/teams", obj{"name": "team-b"})
	e.fin, _ = e.create("/api/v1/users", obj{"email": "fin@corp.example", "role": "finance"})
	e.mem, _ = e.create("/api/v1/users", obj{"email": "mem@corp.example", "role": "member", "teams": []string{e.teamA}})
	e.other, _ = e.create("/api/v1/users", obj{"email": "other@corp.example", "role": "member", "teams": []string{e.teamB}})
	secret := func(body obj) (string, string) {
		r := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", body)
		return r.json["id"].(string), r.json["key"].(string)
	}
	_, e.finKey = secret(obj{"user_id": e.fin, "key_type": "management"})
	e.memKeyID, e.memKey = secret(obj{"user_id": e.mem, "team_id": e.teamA, "key_type": "default"})
	_, e.memLLMKey = secret(obj{"user_id": e.mem, "team_id": e.teamA})
	e.otherKeyID, _ = secret(obj{"user_id": e.other, "team_id": e.teamB})
	return e
}

func (e *roleEnv) as(key, method, path string, body any) resp {
	e.t.Helper()
	return e.doAuth(method, path, "Bearer "+key, body)
}

func TestFinanceReadsEverythingAndChangesNothing(t *testing.T) {
	e := newRoleEnv(t)
	for _, path := range []string{"/api/v1/teams", "/api/v1/keys", "/api/v1/users", "/api/v1/providers", "/api/v1/audit-logs", "/api/v1/spend/report?group_by=team"} {
		if r := e.as(e.finKey, http.MethodGet, path, nil); r.status != 200 {
			t.Errorf("finance GET %s: %d %s", path, r.status, r.raw)
		}
	}
	audits := e.count("audit_logs")
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/teams"},
		{http.MethodPatch, "/api/v1/teams/" + e.teamA},
		{http.MethodDelete, "/api/v1/keys/" + e.otherKeyID},
		{http.MethodPost, "/api/v1/keys/" + e.otherKeyID + "/block"},
		{http.MethodPost, "/api/v1/providers"},
	} {
		r := e.as(e.finKey, c.method, c.path, obj{"name": "x"})
		wantError(t, r, http.StatusForbidden, "forbidden", "", "read-only")
	}
	if e.count("audit_logs") != audits {
		t.Error("a refused finance request changed something")
	}
}

func TestMemberSeesAndManagesOnlyTheirOwn(t *testing.T) {
	e := newRoleEnv(t)
	// Admin-only areas.
	for _, path := range []string{"/api/v1/providers", "/api/v1/users", "/api/v1/audit-logs"} {
		wantError(t, e.as(e.memKey, http.MethodGet, path, nil), http.StatusForbidden, "forbidden", "")
	}
	wantError(t, e.as(e.memKey, http.MethodPost, "/api/v1/teams", obj{"name": "mine"}), http.StatusForbidden, "forbidden", "")

	// Their own user and team only; others look absent.
	if r := e.as(e.memKey, http.MethodGet, "/api/v1/users/"+e.mem, nil); r.status != 200 {
		t.Errorf("own user: %d", r.status)
	}
	wantError(t, e.as(e.memKey, http.MethodGet, "/api/v1/users/"+e.other, nil), http.StatusNotFound, "not_found", "")
	r := e.as(e.memKey, http.MethodGet, "/api/v1/teams", nil)
	if r.status != 200 || !strings.Contains(r.raw, "team-a") || strings.Contains(r.raw, "team-b") {
		t.Errorf("member's teams: %s", r.raw)
	}
	wantError(t, e.as(e.memKey, http.MethodGet, "/api/v1/teams/"+e.teamB, nil), http.StatusNotFound, "not_found", "")

	// Keys: create their own in their team; never for others, other teams or management.
	r = e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.teamA, "alias": "laptop"})
	if r.status != 201 || r.json["user_id"] != e.mem || !strings.HasPrefix(r.json["key"].(string), "sk-") {
		t.Fatalf("member creates a key: %d %s", r.status, r.raw)
	}
	newKey := r.json["id"].(string)
	wantError(t, e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.teamB}), http.StatusForbidden, "forbidden", "", "not a member of team team-b")
	wantError(t, e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.teamA, "user_id": e.other}), http.StatusForbidden, "forbidden", "")
	wantError(t, e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.teamA, "key_type": "management"}), http.StatusForbidden, "forbidden", "")

	keys, _ := e.listAs(e.memKey, "/api/v1/keys")
	for _, k := range keys {
		if k["user_id"] != e.mem {
			t.Errorf("member sees a key of %v", k["user_id"])
		}
	}
	if len(keys) != 3 {
		t.Errorf("member sees %d keys, want their 3", len(keys))
	}

	// Another member's key does not exist for them.
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, "/api/v1/keys/" + e.otherKeyID},
		{http.MethodPatch, "/api/v1/keys/" + e.otherKeyID},
		{http.MethodDelete, "/api/v1/keys/" + e.otherKeyID},
		{http.MethodPost, "/api/v1/keys/" + e.otherKeyID + "/block"},
		{http.MethodPost, "/api/v1/keys/" + e.otherKeyID + "/regenerate"},
	} {
		wantError(t, e.as(e.memKey, c.method, c.path, obj{"alias": "mine now"}), http.StatusNotFound, "not_found", "")
	}
	// Their own: block, and no moving it to another team.
	if r := e.as(e.memKey, http.MethodPost, "/api/v1/keys/"+newKey+"/block", nil); r.status != 200 || r.json["blocked"] != true {
		t.Errorf("block own key: %d %s", r.status, r.raw)
	}
	wantError(t, e.as(e.memKey, http.MethodPatch, "/api/v1/keys/"+newKey, obj{"team_id": e.teamB}), http.StatusForbidden, "forbidden", "", "not a member of team team-b")

	// The audit log names the member.
	rows, _ := e.list("/api/v1/audit-logs?action=key.block")
	if len(rows) != 1 || !strings.HasPrefix(rows[0]["actor"].(string), "user:mem@corp.example") {
		t.Errorf("audit actor: %v", rows)
	}

	// Models: only those of their team.
	prov, _ := e.create("/api/v1/providers", obj{"name": "p", "type": "mock", "api_base": "http://127.0.0.1:1/v1"})
	e.create("/api/v1/models", obj{"model_name": "gpt-a", "provider_id": prov})
	e.create("/api/v1/models", obj{"model_name": "gpt-b", "provider_id": prov})
	models, _ := e.listAs(e.memKey, "/api/v1/models")
	if len(models) != 1 || models[0]["model_name"] != "gpt-a" {
		t.Errorf("member sees models %v", models)
	}
}

func TestKeysThatCannotManage(t *testing.T) {
	e := newRoleEnv(t)
	wantError(t, e.as(e.memLLMKey, http.MethodGet, "/api/v1/keys", nil), http.StatusForbidden, "forbidden", "", "llm_api")
	e.must(http.StatusOK, http.MethodPost, "/api/v1/keys/"+e.memKeyID+"/block", nil)
	wantError(t, e.as(e.memKey, http.MethodGet, "/api/v1/keys", nil), http.StatusUnauthorized, "unauthorized", "", "blocked")

	// An ownerless management key, which only an admin can make, acts as admin.
	r := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"key_type": "management", "alias": "ci"})
	if got := e.as(r.json["key"].(string), http.MethodPost, "/api/v1/teams", obj{"name": "made-by-ci"}); got.status != 201 {
		t.Errorf("ownerless management key: %d %s", got.status, got.raw)
	}
}

func (e *roleEnv) listAs(key, path string) ([]obj, resp) {
	e.t.Helper()
	r := e.as(key, http.MethodGet, path, nil)
	if r.status != 200 {
		e.t.Fatalf("GET %s: %d %s", path, r.status, r.raw)
	}
	data, _ := r.json["data"].([]any)
	var out []obj
	for _, d := range data {
		out = append(out, d.(map[string]any))
	}
	return out, r
}
