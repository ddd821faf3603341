package admin_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

type auditWant struct{ action, resourceType, id string }

// mutateEverything performs one of each mutation and returns the audit rows
// they must have written, oldest first.
func mutateEverything(e *env) []auditWant {
	e.t.Helper()
	var want []auditWant
	add := func(action, typ, id string) { want = append(want, auditWant{action, typ, id}) }

	prov, _ := e.create("/api/v1/providers", obj{"name": "p", "type": "mock", "api_base": "http://h/v1", "api_key": "sk-upstream-123456"})
	add("provider.create", "provider", prov)
	e.must(200, http.MethodPatch, "/api/v1/providers/"+prov, obj{"name": "p2"})
	add("provider.update", "provider", prov)
	model, _ := e.create("/api/v1/models", obj{"model_name": "m", "provider_id": prov})
	add("model.create", "model", model)
	e.must(200, http.MethodPatch, "/api/v1/models/"+model, obj{"enabled": false})
	add("model.update", "model", model)
	team, _ := e.create("/api/v1/teams", obj{"name": "audited"})
	add("team.create", "team", team)
	e.must(200, http.MethodPatch, "/api/v1/teams/"+team, obj{"max_budget": 10})
	add("team.update", "team", team)
	user, _ := e.create("/api/v1/users", obj{"email": "u@example.com"})
	add("user.create", "user", user)
	e.must(200, http.MethodPatch, "/api/v1/users/"+user, obj{"role": "admin"})
	add("user.update", "user", user)
	if r := e.do(http.MethodPost, "/api/v1/teams/"+team+"/members", obj{"user_id": user}); r.status >= 300 {
		e.t.Fatalf("add member: %d %s", r.status, r.raw)
	}
	add("team.member.add", "team", team)
	e.must(204, http.MethodDelete, "/api/v1/teams/"+team+"/members/"+user, nil)
	add("team.member.remove", "team", team)
	key, _ := e.create("/api/v1/keys", obj{"team_id": team, "user_id": user})
	add("key.create", "key", key)
	e.must(200, http.MethodPatch, "/api/v1/keys/"+key, obj{"alias": "k"})
	add("key.update", "key", key)
	e.must(200, http.MethodPost, "/api/v1/keys/"+key+"/block", nil)
	add("key.block", "key", key)
	e.must(200, http.MethodPost, "/api/v1/keys/"+key+"/unblock", nil)
	add("key.unblock", "key", key)
	e.must(200, http.MethodPost, "/api/v1/keys/"+key+"/regenerate", nil)
	add("key.regenerate", "key", key)
	e.must(204, http.MethodDelete, "/api/v1/keys/"+key, nil)
	add("key.delete", "key", key)
	e.must(204, http.MethodDelete, "/api/v1/users/"+user, nil)
	add("user.delete", "user", user)
	e.must(204, http.MethodDelete, "/api/v1/teams/"+team, nil)
	add("team.delete", "team", team)
	e.must(204, http.MethodDelete, "/api/v1/models/"+model, nil)
	add("model.delete", "model", model)
	e.must(204, http.MethodDelete, "/api/v1/providers/"+prov, nil)
	add("provider.delete", "provider", prov)

	// Reads write nothing.
	for _, p := range []string{"/api/v1/providers", "/api/v1/teams", "/api/v1/keys", "/api/v1/spend/report", "/api/v1/audit-logs"} {
		e.must(200, http.MethodGet, p, nil)
	}
	return want
}

func TestAuditRecordsEveryMutation(t *testing.T) {
	e := newEnv(t)
	want := mutateEverything(e)

	rows := e.auditRows("")
	if len(rows) != len(want) {
		t.Fatalf("%d audit rows, want %d", len(rows), len(want))
	}
	var last time.Time
	for i, w := range want {
		a := rows[len(rows)-1-i] // the list is newest first
		if a["action"] != w.action || a["resource_type"] != w.resourceType || a["resource_id"] != w.id || a["actor"] != "master-key" {
			t.Errorf("audit row %d = %v %v %v %v, want %s %s %s master-key", i, a["action"], a["resource_type"], a["resource_id"], a["actor"], w.action, w.resourceType, w.id)
		}
		at, err := time.Parse(time.RFC3339Nano, a["created_at"].(string))
		if err != nil || at.Before(last) {
			t.Errorf("audit row %d created_at %v out of order", i, a["created_at"])
		}
		last = at
		create, del := strings.HasSuffix(w.action, ".create"), strings.HasSuffix(w.action, ".delete")
		if create && (a["before"] != nil || a["after"] == nil) || del && (a["before"] == nil || a["after"] != nil) {
			t.Errorf("%s: before %v, after %v", w.action, a["before"], a["after"])
		}
		if strings.HasSuffix(w.action, ".update") && (a["before"] == nil || a["after"] == nil) {
			t.Errorf("%s: before and after must both be set", w.action)
		}
	}
	if strings.Contains(e.auditText(), "sk-upstream-123456") {
		t.Error("the provider secret reached the audit log")
	}
}

func TestAuditFiltersAndFormats(t *testing.T) {
	e := newEnv(t)
	want := mutateEverything(e)
	count := func(pred func(auditWant) bool) int {
		n := 0
		for _, w := range want {
			if pred(w) {
				n++
			}
		}
		return n
	}

	filters := []struct {
		query string
		want  int
		check func(obj) bool
	}{
		{"action=team.create", 1, func(a obj) bool { return a["action"] == "team.create" }},
		{"action=key.block", 1, func(a obj) bool { return a["action"] == "key.block" }},
		{"action=nothing.happened", 0, nil},
		{"resource=key", count(func(w auditWant) bool { return w.resourceType == "key" }), func(a obj) bool { return a["resource_type"] == "key" }},
		{"resource=team", count(func(w auditWant) bool { return w.resourceType == "team" }), func(a obj) bool { return a["resource_type"] == "team" }},
		{"resource=team&action=team.member.add", 1, func(a obj) bool { return a["action"] == "team.member.add" }},
		{"actor=master-key", len(want), func(a obj) bool { return a["actor"] == "master-key" }},
		{"actor=someone-else", 0, nil},
		{"from=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), 0, nil},
		{"to=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), 0, nil},
		{"from=" + time.Now().Add(-48*time.Hour).Format("2006-01-02") + "&to=" + time.Now().Add(48*time.Hour).Format("2006-01-02"), len(want), nil},
	}
	for _, f := range filters {
		rows := e.auditRows(f.query)
		if len(rows) != f.want {
			t.Errorf("?%s: %d rows, want %d", f.query, len(rows), f.want)
		}
		for _, a := range rows {
			if f.check != nil && !f.check(a) {
				t.Errorf("?%s returned %v", f.query, a)
			}
		}
	}

	// Pages of 4 visit every row once.
	seen := map[any]int{}
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("pagination does not end")
		}
		rows, r := e.list("/api/v1/audit-logs?limit=4&cursor=" + url.QueryEscape(cursor))
		if len(rows) > 4 {
			t.Fatalf("page of %d rows with limit=4", len(rows))
		}
		for _, a := range rows {
			seen[a["id"]]++
		}
		next, _ := r.json["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != len(want) {
		t.Errorf("pagination saw %d rows, want %d", len(seen), len(want))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("row %v seen %d times", id, n)
		}
	}

	// CSV: a header and one line per row, matching the JSON.
	jsonRows := e.auditRows("resource=key")
	r := e.must(http.StatusOK, http.MethodGet, "/api/v1/audit-logs?format=csv&resource=key&limit=1000", nil)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type %q, want text/csv", ct)
	}
	lines := strings.Split(strings.TrimRight(r.raw, "\n"), "\n")
	if len(lines) != len(jsonRows)+1 {
		t.Errorf("CSV has %d lines, want %d (header + rows):\n%s", len(lines), len(jsonRows)+1, r.raw)
	}
	recs, err := csv.NewReader(strings.NewReader(r.raw)).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v", err)
	}
	header := strings.Join(recs[0], ",")
	for _, col := range []string{"id", "created_at", "actor", "action", "resource_type", "resource_id", "before", "after"} {
		if !strings.Contains(header, col) {
			t.Errorf("CSV header %q lacks %s", header, col)
		}
	}
	if len(recs) == len(jsonRows)+1 {
		for i, rec := range recs[1:] {
			if rec[2] != "master-key" || rec[3] != jsonRows[i]["action"] || rec[4] != "key" || rec[5] != jsonRows[i]["resource_id"] {
				t.Errorf("CSV row %d = %v, JSON row %v", i, rec, jsonRows[i])
			}
		}
	}

	wantError(t, e.do(http.MethodGet, "/api/v1/audit-logs?format=xml", nil), 400, "invalid_request", "format", "csv")
	wantError(t, e.do(http.MethodGet, "/api/v1/audit-logs?from=yesterday", nil), 400, "invalid_request", "from", "yesterday")
	wantError(t, e.do(http.MethodGet, "/api/v1/audit-logs?limit=0", nil), 400, "invalid_request", "limit")
	wantError(t, e.do(http.MethodGet, "/api/v1/audit-logs?cursor=%21%21", nil), 400, "invalid_request", "cursor")
	if r := e.must(http.StatusOK, http.MethodGet, "/api/v1/audit-logs?format=json&limit=1", nil); len(r.json["data"].([]any)) != 1 {
		t.Errorf("format=json: %s", r.raw)
	}
}
