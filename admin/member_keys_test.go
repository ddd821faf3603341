package admin_test

import (
	"net/http"
	"testing"
)

// capsEnv has team eng, whose member keys are capped, with member mem in
// it; team ops with member other; each member with a management-API key
// an admin made.
type capsEnv struct {
	*roleEnv
	eng, ops string
}

func newCapsEnv(t *testing.T) *capsEnv {
	e := &capsEnv{roleEnv: &roleEnv{env: newEnv(t)}}
	e.eng, _ = e.create("/api/v1/teams", obj{"name": "eng", "models": []string{"gpt-a", "gpt-b"}, "member_key_caps": obj{
		"max_budget": 20, "budget_duration": "monthly", "rpm_limit": 60, "tpm_limit": 10000, "max_parallel_requests": 4}})
	e.ops, _ = e.create("/api/v1/teams", obj{"name": "ops"})
	e.mem, _ = e.create("/api/v1/users", obj{"email": "mem@corp.example", "role": "member", "teams": []string{e.eng}})
	e.other, _ = e.create("/api/v1/users", obj{"email": "other@corp.example", "role": "member", "teams": []string{e.ops}})
	r := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": e.mem, "team_id": e.eng, "key_type": "default"})
	e.memKeyID, e.memKey = r.json["id"].(string), r.json["key"].(string)
	e.otherKeyID, _ = e.create("/api/v1/keys", obj{"user_id": e.other, "team_id": e.ops, "alias": "others"})
	return e
}

func TestMemberKeysTakeTheTeamCaps(t *testing.T) {
	e := newCapsEnv(t)
	r := e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.eng, "alias": "laptop"})
	if r.status != http.StatusCreated {
		t.Fatalf("member creates a key: %d %s", r.status, r.raw)
	}
	want := obj{"user_id": e.mem, "team_id": e.eng, "max_budget": 20.0, "budget_duration": "monthly", "rpm_limit": 60.0,
		"tpm_limit": 10000.0, "max_parallel_requests": 4.0}
	for field, v := range want {
		if r.json[field] != v {
			t.Errorf("%s = %v, want %v (the cap)", field, r.json[field], v)
		}
	}

	// Within the caps, the member's own values stand; models within the team's.
	r = e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.eng, "models": []string{"gpt-b"}, "max_budget": 5, "rpm_limit": 10, "budget_duration": "monthly"})
	if r.status != http.StatusCreated || r.json["max_budget"] != 5.0 || r.json["rpm_limit"] != 10.0 || r.json["tpm_limit"] != 10000.0 {
		t.Errorf("key within the caps: %d %s", r.status, r.raw)
	}

	// A team without caps leaves a member's key as asked.
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+e.mem, obj{"teams": []string{e.eng, e.ops}})
	r = e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.ops, "models": []string{"anything"}})
	if r.status != http.StatusCreated || r.json["max_budget"] != nil || r.json["rpm_limit"] != nil {
		t.Errorf("key in a team without caps: %d %s", r.status, r.raw)
	}
}

func TestMemberKeysOutsideTheTeamRules(t *testing.T) {
	e := newCapsEnv(t)
	const ghost = "0b9e4c1e-0000-4000-8000-000000000004"
	cases := []struct {
		name string
		body obj
		msg  []string
	}{
		{"another team", obj{"team_id": e.ops}, []string{"You are not a member of team ops; members create keys only for their own teams."}},
		{"no such team", obj{"team_id": ghost}, []string{"not a member of team " + ghost}},
		{"model outside the team", obj{"team_id": e.eng, "models": []string{"gpt-a", "gpt-c"}}, []string{"gpt-c", "team eng", "gpt-a, gpt-b"}},
		{"budget above the cap", obj{"team_id": e.eng, "max_budget": 50}, []string{"max_budget 50 is above team eng's cap for member keys (20)"}},
		{"rpm above the cap", obj{"team_id": e.eng, "rpm_limit": 61}, []string{"rpm_limit 61 is above team eng's cap for member keys (60)"}},
		{"tpm above the cap", obj{"team_id": e.eng, "tpm_limit": 10001}, []string{"tpm_limit 10001 is above"}},
		{"parallel above the cap", obj{"team_id": e.eng, "max_parallel_requests": 5}, []string{"max_parallel_requests 5 is above"}},
		{"another budget period", obj{"team_id": e.eng, "budget_duration": "weekly"}, []string{"budget_duration weekly", "monthly"}},
		{"management key", obj{"team_id": e.eng, "key_type": "management"}, []string{"management"}},
		{"someone else's key", obj{"team_id": e.eng, "user_id": e.other}, []string{"user_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &capsEnv{roleEnv: &roleEnv{env: e.at(t), memKey: e.memKey}, eng: e.eng, ops: e.ops}
			keys, audits := e.count("keys"), e.count("audit_logs")
			wantError(t, e.as(e.memKey, http.MethodPost, "/api/v1/keys", c.body), http.StatusForbidden, "forbidden", "", c.msg...)
			if e.count("keys") != keys || e.count("audit_logs") != audits {
				t.Error("a refused create wrote rows")
			}
		})
	}
	// A member's key names its team.
	wantError(t, e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"alias": "teamless"}), http.StatusBadRequest, "invalid_request", "team_id")
}

func TestMemberKeyChangesStayWithinTheCaps(t *testing.T) {
	e := newCapsEnv(t)
	id := e.as(e.memKey, http.MethodPost, "/api/v1/keys", obj{"team_id": e.eng, "alias": "laptop", "max_budget": 10}).json["id"].(string)
	path := "/api/v1/keys/" + id
	refused := []struct {
		body obj
		msg  string
	}{
		{obj{"max_budget": 25}, "max_budget 25 is above team eng's cap for member keys (20)"},
		{obj{"rpm_limit": 100}, "rpm_limit 100 is above"},
		{obj{"budget_duration": "daily"}, "budget_duration daily"},
		{obj{"models": []string{"gpt-c"}}, "gpt-c"},
		{obj{"team_id": e.ops}, "not a member of team ops"},
		{obj{"key_type": "management"}, "management"},
	}
	for _, c := range refused {
		wantError(t, e.as(e.memKey, http.MethodPatch, path, c.body), http.StatusForbidden, "forbidden", "", c.msg)
	}
	if g := e.must(http.StatusOK, http.MethodGet, path, nil); g.json["max_budget"] != 10.0 || g.json["team_id"] != e.eng || g.json["rpm_limit"] != 60.0 {
		t.Errorf("refused changes changed the key: %s", g.raw)
	}
	if r := e.as(e.memKey, http.MethodPatch, path, obj{"max_budget": 20, "alias": "laptop-2"}); r.status != 200 || r.json["max_budget"] != 20.0 {
		t.Errorf("raise up to the cap: %d %s", r.status, r.raw)
	}
	// Clearing a capped field takes the cap, never no bound.
	if r := e.as(e.memKey, http.MethodPatch, path, obj{"rpm_limit": nil, "max_budget": nil}); r.status != 200 || r.json["rpm_limit"] != 60.0 || r.json["max_budget"] != 20.0 {
		t.Errorf("cleared capped fields: %d %s", r.status, r.raw)
	}
	// Rotating and blocking change no limit.
	r := e.as(e.memKey, http.MethodPost, path+"/regenerate", nil)
	if r.status != 200 || r.json["key"] == nil || r.json["max_budget"] != 20.0 {
		t.Errorf("rotate own key: %d %s", r.status, r.raw)
	}
	a := e.auditFor("key.update", id)
	if len(a) == 0 || a[0]["before"].(obj)["rpm_limit"] != 60.0 || a[0]["after"].(obj)["rpm_limit"] != 60.0 {
		t.Errorf("key.update audit: %v", a)
	}
	b := e.auditFor("key.update", id)[1]
	if b["before"].(obj)["max_budget"] != 10.0 || b["after"].(obj)["max_budget"] != 20.0 {
		t.Errorf("the audit log's before shows the new value: %v", b)
	}

	// A key an admin made for the member beyond the caps stays editable;
	// it may come down, not go further up.
	big := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": e.mem, "team_id": e.eng, "max_budget": 100, "rpm_limit": 1000}).json["id"].(string)
	if r := e.as(e.memKey, http.MethodPatch, "/api/v1/keys/"+big, obj{"alias": "from-admin"}); r.status != 200 || r.json["max_budget"] != 100.0 {
		t.Errorf("rename an admin-made key: %d %s", r.status, r.raw)
	}
	if r := e.as(e.memKey, http.MethodPatch, "/api/v1/keys/"+big, obj{"max_budget": 90}); r.status != 200 || r.json["max_budget"] != 90.0 {
		t.Errorf("lower an admin-made budget: %d %s", r.status, r.raw)
	}
	wantError(t, e.as(e.memKey, http.MethodPatch, "/api/v1/keys/"+big, obj{"rpm_limit": 2000}), http.StatusForbidden, "forbidden", "", "rpm_limit 2000 is above")
}

func TestAdminsAreNotBoundByMemberKeyCaps(t *testing.T) {
	e := newCapsEnv(t)
	r := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": e.mem, "team_id": e.eng, "max_budget": 500, "budget_duration": "daily",
		"rpm_limit": 1000})
	if r.json["max_budget"] != 500.0 || r.json["budget_duration"] != "daily" || r.json["rpm_limit"] != 1000.0 || r.json["tpm_limit"] != nil {
		t.Errorf("admin's key: %s", r.raw)
	}
	if p := e.must(http.StatusOK, http.MethodPatch, "/api/v1/keys/"+r.json["id"].(string), obj{"max_budget": 900}); p.json["max_budget"] != 900.0 {
		t.Errorf("admin's change: %s", p.raw)
	}
	// An admin's key in a team they are not in, without team: both fine.
	e.create("/api/v1/keys", obj{"team_id": e.ops, "max_budget": 1e6})
	e.create("/api/v1/keys", obj{})
}

func TestMembersNeverReachOthersKeys(t *testing.T) {
	e := newCapsEnv(t)
	keys, _ := e.listAs(e.memKey, "/api/v1/keys")
	for _, k := range keys {
		if k["user_id"] != e.mem {
			t.Errorf("member lists a key of %v", k["user_id"])
		}
	}
	// Filtering by someone else's user or team shows nothing of theirs.
	for _, q := range []string{"?user_id=" + e.other, "?team_id=" + e.ops} {
		keys, r := e.listAs(e.memKey, "/api/v1/keys"+q)
		for _, k := range keys {
			if k["user_id"] != e.mem {
				t.Errorf("GET /api/v1/keys%s: %s", q, r.raw)
			}
		}
	}
	before := e.must(http.StatusOK, http.MethodGet, "/api/v1/keys/"+e.otherKeyID, nil).raw
	for _, c := range []struct{ method, path string }{
		{http.MethodGet, ""}, {http.MethodPatch, ""}, {http.MethodDelete, ""},
		{http.MethodPost, "/block"}, {http.MethodPost, "/unblock"}, {http.MethodPost, "/regenerate"},
	} {
		r := e.as(e.memKey, c.method, "/api/v1/keys/"+e.otherKeyID+c.path, obj{"blocked": true})
		wantError(t, r, http.StatusNotFound, "not_found", "")
	}
	if after := e.must(http.StatusOK, http.MethodGet, "/api/v1/keys/"+e.otherKeyID, nil).raw; after != before {
		t.Errorf("another member's key changed:\n%s\n%s", before, after)
	}
}

func TestTeamMemberKeyCaps(t *testing.T) {
	e := newEnv(t)
	id, body := e.create("/api/v1/teams", obj{"name": "eng", "member_key_caps": obj{"max_budget": 20, "budget_duration": "monthly"}})
	caps, _ := body["member_key_caps"].(obj)
	if caps["max_budget"] != 20.0 || caps["budget_duration"] != "monthly" || len(caps) != 2 {
		t.Errorf("created caps: %s", body)
	}
	if _, body := e.create("/api/v1/teams", obj{"name": "open"}); body["member_key_caps"] == nil || len(body["member_key_caps"].(obj)) != 0 {
		t.Errorf("a team without caps shows member_key_caps %v, want {}", body["member_key_caps"])
	}

	// PATCH sets the caps given and keeps the others; null clears one.
	r := e.must(http.StatusOK, http.MethodPatch, "/api/v1/teams/"+id, obj{"member_key_caps": obj{"rpm_limit": 60, "tpm_limit": 1000, "max_parallel_requests": 2}})
	caps = r.json["member_key_caps"].(obj)
	if caps["max_budget"] != 20.0 || caps["rpm_limit"] != 60.0 || caps["tpm_limit"] != 1000.0 || caps["max_parallel_requests"] != 2.0 {
		t.Errorf("patched caps: %s", r.raw)
	}
	r = e.must(http.StatusOK, http.MethodPatch, "/api/v1/teams/"+id, obj{"member_key_caps": obj{"max_budget": nil}})
	if caps = r.json["member_key_caps"].(obj); caps["max_budget"] != nil || caps["rpm_limit"] != 60.0 {
		t.Errorf("cleared max_budget: %s", r.raw)
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/teams/"+id, nil); g.json["member_key_caps"].(obj)["rpm_limit"] != 60.0 {
		t.Errorf("GET: %s", g.raw)
	}
	a := e.auditFor("team.update", id)
	if len(a) != 2 || a[0]["before"].(obj)["member_key_caps"].(obj)["max_budget"] != 20.0 {
		t.Errorf("team.update audit: %v", a)
	}

	bad := []struct {
		caps  obj
		param string
		msg   string
	}{
		{obj{"max_budget": -1}, "member_key_caps.max_budget", "must not be negative"},
		{obj{"rpm_limit": -5}, "member_key_caps.rpm_limit", "must not be negative"},
		{obj{"tpm_limit": -5}, "member_key_caps.tpm_limit", "must not be negative"},
		{obj{"max_parallel_requests": -1}, "member_key_caps.max_parallel_requests", "must not be negative"},
		{obj{"budget_duration": "fortnightly"}, "member_key_caps.budget_duration", "fortnightly"},
		{obj{"rpm_limit": "lots"}, "member_key_caps.rpm_limit", "number"},
	}
	for _, c := range bad {
		wantError(t, e.do(http.MethodPost, "/api/v1/teams", obj{"name": "bad", "member_key_caps": c.caps}), http.StatusBadRequest, "invalid_request", c.param, c.msg)
		wantError(t, e.do(http.MethodPatch, "/api/v1/teams/"+id, obj{"member_key_caps": c.caps}), http.StatusBadRequest, "invalid_request", c.param, c.msg)
	}
	wantError(t, e.do(http.MethodPatch, "/api/v1/teams/"+id, obj{"member_key_caps": obj{"budget": 1}}), http.StatusBadRequest, "invalid_request", "", "budget")
}
