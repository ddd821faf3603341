package admin_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"tollgate/store"
)

// secretIn is the new secret a dialog shows once.
func secretIn(t *testing.T, body string) string {
	t.Helper()
	i := strings.Index(body, `id="new-secret"`)
	if i < 0 {
		t.Fatalf("no secret dialog: %s", body)
	}
	secret := body[i+strings.Index(body[i:], ">")+1:]
	return secret[:strings.Index(secret, "<")]
}

func TestDashboardMyKeys(t *testing.T) {
	e := newCapsEnv(t)
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+e.mem, obj{"max_budget": 50, "budget_duration": "monthly"})
	e.st.DB().MustExec(`UPDATE users SET spend = 12.5 WHERE id = $1`, e.mem)
	e.st.DB().MustExec(`UPDATE keys SET alias = 'mine', spend = 3 WHERE id = $1`, e.memKeyID)
	b := e.browser()
	b.signInAs(e.memKey)

	resp, body := b.send("GET", "/keys", nil, false)
	if resp.StatusCode != 200 {
		t.Fatalf("My keys: %d", resp.StatusCode)
	}
	htmlHas(t, "My keys", body, "<title>My keys", `aria-current="page">My keys</a>`, "Your spend", "$12.50 of $50.00", "this month, across your keys",
		"mine", "$3.00 spent", // the member's key with its spend
		"eng", "gpt-a, gpt-b", "max $20.00 / monthly · 60 rpm · 10k tpm · 4 parallel", // their team's rules
		"Your team&#39;s cap: max $20.00 / monthly", "Your team&#39;s cap: max 60", "Allowed: gpt-a, gpt-b") // next to the fields
	for _, s := range []string{"others", ">ops<", e.ops, `value="management"`, `name="budget_id"`} {
		if strings.Contains(body, s) {
			t.Errorf("My keys shows %q", s)
		}
	}

	// A key within the caps takes them where left empty; its secret shows once.
	_, body = b.send("POST", "/keys", url.Values{"team_id": {e.eng}, "alias": {"laptop"}, "models": {"gpt-a"}, "rpm_limit": {"30"}}, true)
	secret := secretIn(t, body)
	if !strings.HasPrefix(secret, "sk-") || !strings.Contains(body, "laptop") {
		t.Fatalf("created: %s", body)
	}
	var k store.Key
	if err := e.st.DB().Get(&k, `SELECT * FROM keys WHERE alias = 'laptop'`); err != nil {
		t.Fatal(err)
	}
	if k.UserID == nil || *k.UserID != e.mem || *k.MaxBudget != 20 || *k.BudgetDuration != "monthly" || *k.RPMLimit != 30 || *k.TPMLimit != 10000 {
		t.Errorf("member's key: %+v", k.KeySpec)
	}
	if _, body := b.send("GET", "/keys", nil, false); strings.Contains(body, secret) {
		t.Error("the secret shows again")
	}

	// Refusals come back inline, next to the field, with the reason.
	keys := e.count("keys")
	refused := []struct {
		form url.Values
		msg  string
	}{
		{url.Values{"team_id": {e.eng}, "max_budget": {"50"}}, "max_budget 50 is above team eng&#39;s cap for member keys (20)"},
		{url.Values{"team_id": {e.eng}, "rpm_limit": {"100"}}, "rpm_limit 100 is above team eng&#39;s cap"},
		{url.Values{"team_id": {e.eng}, "budget_duration": {"weekly"}}, "budget_duration weekly is not team eng&#39;s period"},
		{url.Values{"team_id": {e.eng}, "models": {"gpt-c"}}, "Model gpt-c is not allowed for team eng"},
		{url.Values{"team_id": {e.ops}}, "You are not a member of team ops"},
		{url.Values{"team_id": {e.eng}, "key_type": {"management"}}, "may not create management keys"},
	}
	for _, c := range refused {
		resp, body := b.send("POST", "/keys", c.form, true)
		if resp.StatusCode != 200 || !strings.Contains(body, c.msg) || !strings.Contains(body, "field-error") || !strings.Contains(body, "<form") {
			t.Errorf("refused %v: %d, want the form with %q: %s", c.form, resp.StatusCode, c.msg, body)
		}
	}
	if e.count("keys") != keys {
		t.Error("a refused form created a key")
	}

	// Rotate: a new secret, once; the old one is gone.
	resp, body = b.send("POST", "/keys/"+k.ID+"/regenerate", url.Values{}, true)
	rotated := secretIn(t, body)
	if resp.StatusCode != 200 || rotated == secret {
		t.Errorf("rotate: %d %s", resp.StatusCode, body)
	}
	var hash string
	e.st.DB().Get(&hash, `SELECT key_hash FROM keys WHERE id = $1`, k.ID)
	if hash != store.HashKey(rotated) {
		t.Error("the rotated secret is not the key's")
	}

	// Block, unblock, revoke.
	if _, body := b.send("POST", "/keys/"+k.ID+"/block", url.Values{}, true); !strings.Contains(body, "blocked") {
		t.Errorf("block: %s", body)
	}
	if _, body := b.send("POST", "/keys/"+k.ID+"/unblock", url.Values{}, true); !strings.Contains(body, "active") {
		t.Errorf("unblock: %s", body)
	}
	_, body = b.send("GET", "/keys", nil, false)
	htmlHas(t, "delete button", body, `hx-delete="/keys/`+k.ID+`"`, "hx-confirm=\"Delete key")
	if resp, _ := b.send("DELETE", "/keys/"+k.ID, nil, true); resp.StatusCode != 200 {
		t.Errorf("revoke: %d", resp.StatusCode)
	}
	if n := 0; e.st.DB().Get(&n, `SELECT count(*) FROM keys WHERE id = $1`, k.ID) == nil && n != 0 {
		t.Error("revoked key still stored")
	}
	// Others' keys stay out of reach.
	for _, c := range []struct{ method, path string }{{"POST", "/keys/" + e.otherKeyID + "/regenerate"}, {"DELETE", "/keys/" + e.otherKeyID}, {"POST", "/keys/" + e.otherKeyID + "/unblock"}} {
		if resp, _ := b.send(c.method, c.path, url.Values{}, true); resp.StatusCode != http.StatusNotFound {
			t.Errorf("member %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
}

func TestDashboardTeamMemberKeyCaps(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()

	_, body := b.send("POST", "/teams", url.Values{"name": {"eng"}, "member_key_caps.max_budget": {"-1"}}, true)
	if !strings.Contains(body, "member_key_caps.max_budget must not be negative") {
		t.Errorf("negative cap: %s", body)
	}
	_, body = b.send("POST", "/teams", url.Values{"name": {"eng"}, "member_key_caps.rpm_limit": {"many"}}, true)
	if !strings.Contains(body, "member_key_caps.rpm_limit must be a whole number") {
		t.Errorf("bad rpm cap: %s", body)
	}
	if e.count("teams") != 0 {
		t.Fatal("a refused team form wrote a team")
	}
	_, body = b.send("POST", "/teams", url.Values{"name": {"eng"}, "member_key_caps.max_budget": {"20"}, "member_key_caps.budget_duration": {"monthly"},
		"member_key_caps.rpm_limit": {"60"}, "member_key_caps.tpm_limit": {""}, "member_key_caps.max_parallel_requests": {"2"}}, true)
	htmlHas(t, "teams list", body, "member keys: max $20.00 / monthly · 60 rpm · 2 parallel")
	team, err := e.st.TeamByName(t.Context(), "eng")
	if err != nil {
		t.Fatal(err)
	}
	c := team.MemberKeyCaps
	if c.MaxBudget == nil || *c.MaxBudget != 20 || *c.BudgetDuration != "monthly" || *c.RPMLimit != 60 || c.TPMLimit != nil || *c.MaxParallelRequests != 2 {
		t.Errorf("stored caps: %+v", c)
	}

	// The edit dialog shows them; saving without them clears them.
	_, body = b.send("GET", "/teams/"+team.ID+"/edit", nil, true)
	htmlHas(t, "edit dialog", body, `name="member_key_caps.max_budget"`, `value="20"`, `<option value="monthly" selected>`, "Member keys: parallel")
	b.send("POST", "/teams/"+team.ID, url.Values{"name": {"eng"}, "member_key_caps.rpm_limit": {"30"}}, true)
	team, _ = e.st.GetTeam(t.Context(), team.ID)
	if c := team.MemberKeyCaps; c.MaxBudget != nil || c.RPMLimit == nil || *c.RPMLimit != 30 {
		t.Errorf("caps after edit: %+v", c)
	}
}
