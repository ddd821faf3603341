package admin_test

import (
	"net/http"
	"strings"
	"testing"
)

// paths every auth case is tried on: one of each kind of endpoint.
var authPaths = []struct{ method, path string }{
	{http.MethodGet, "/api/v1/providers"},
	{http.MethodGet, "/api/v1/models"},
	{http.MethodGet, "/api/v1/teams"},
	{http.MethodGet, "/api/v1/users"},
	{http.MethodGet, "/api/v1/keys"},
	{http.MethodGet, "/api/v1/spend/logs"},
	{http.MethodGet, "/api/v1/spend/report"},
	{http.MethodGet, "/api/v1/audit-logs"},
	{http.MethodPost, "/api/v1/teams"},
	{http.MethodDelete, "/api/v1/keys/00000000-0000-0000-0000-000000000000"},
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		auth string
		want int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong key", "Bearer sk-not-the-master-key", http.StatusUnauthorized},
		{"key prefix only", "Bearer " + masterKey[:len(masterKey)-1], http.StatusUnauthorized},
		{"key with suffix", "Bearer " + masterKey + "x", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"scheme only", "Bearer", http.StatusUnauthorized},
		{"basic scheme", "Basic " + masterKey, http.StatusUnauthorized},
		{"bare key", masterKey, http.StatusUnauthorized},
		{"right key", "Bearer " + masterKey, 0},
		{"lower-case scheme", "bearer " + masterKey, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.at(t)
			before := e.count("teams")
			for _, p := range authPaths {
				var body any
				if p.method == http.MethodPost {
					body = obj{"name": "auth-probe"}
				}
				r := e.doAuth(p.method, p.path, c.auth, body)
				if c.want == http.StatusUnauthorized {
					wantError(t, r, http.StatusUnauthorized, "unauthorized", "")
					continue
				}
				if r.status == http.StatusUnauthorized || r.status == http.StatusForbidden {
					t.Errorf("%s %s with the master key: %d %s", p.method, p.path, r.status, r.raw)
				}
			}
			if c.want == http.StatusUnauthorized && e.count("teams") != before {
				t.Errorf("an unauthorized POST /teams wrote a team")
			}
		})
	}

	// The right key gets exactly 200 on a read.
	if r := e.do(http.MethodGet, "/api/v1/teams", nil); r.status != http.StatusOK {
		t.Errorf("GET /teams with the master key: %d %s", r.status, r.raw)
	}
}

func TestAuthEmptyMasterKeyRefusesAll(t *testing.T) {
	e := newEnvWithKey(t, "")
	for _, auth := range []string{"", "Bearer ", "Bearer x", "Bearer " + masterKey} {
		for _, p := range authPaths {
			r := e.doAuth(p.method, p.path, auth, nil)
			if r.status != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: status %d, want 401; %s", p.method, p.path, auth, r.status, r.raw)
				continue
			}
			wantError(t, r, http.StatusUnauthorized, "unauthorized", "")
		}
	}
	// Health stays open: it is for probes.
	if r := e.doAuth(http.MethodGet, "/health/liveliness", "", nil); r.status != http.StatusOK {
		t.Errorf("liveliness without a master key: %d", r.status)
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	r := e.doAuth(http.MethodGet, "/health/liveliness", "", nil)
	if r.status != http.StatusOK || r.json["status"] != "ok" {
		t.Errorf("liveliness: %d %s", r.status, r.raw)
	}
	r = e.doAuth(http.MethodGet, "/health/readiness", "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("readiness: %d %s", r.status, r.raw)
	}
	for _, k := range []string{"status", "postgres", "redis"} {
		if r.json[k] != "ok" {
			t.Errorf("readiness %s = %v, want ok (%s)", k, r.json[k], r.raw)
		}
	}
}

func TestUnknownPathAndBadBodies(t *testing.T) {
	e := newEnv(t)

	t.Run("unknown path", func(t *testing.T) {
		e := e.at(t)
		for _, p := range []string{"/api/v1/nope", "/api/v1/teams/x/y/z", "/api/v1/"} {
			r := e.do(http.MethodGet, p, nil)
			wantError(t, r, http.StatusNotFound, "not_found", "")
			// Strangers learn nothing about which paths exist.
			wantError(t, e.doAuth(http.MethodGet, p, "", nil), http.StatusUnauthorized, "unauthorized", "")
			wantError(t, e.doAuth(http.MethodPut, "/api/v1/teams", "", nil), http.StatusUnauthorized, "unauthorized", "")
		}
	})

	t.Run("unknown id", func(t *testing.T) {
		e := e.at(t)
		for _, res := range []string{"providers", "models", "teams", "users", "keys"} {
			for _, id := range []string{"00000000-0000-0000-0000-000000000000", "not-a-uuid"} {
				r := e.do(http.MethodGet, "/api/v1/"+res+"/"+id, nil)
				wantError(t, r, http.StatusNotFound, "not_found", "")
				r = e.do(http.MethodDelete, "/api/v1/"+res+"/"+id, nil)
				wantError(t, r, http.StatusNotFound, "not_found", "")
				r = e.do(http.MethodPatch, "/api/v1/"+res+"/"+id, obj{})
				wantError(t, r, http.StatusNotFound, "not_found", "")
			}
		}
	})

	big := `{"name":"` + strings.Repeat("a", 1<<20) + `"}`
	cases := []struct {
		name, body string
		param      string
		msg        string
	}{
		{"malformed", `{"name": `, "", "not valid JSON"},
		{"not json", `name=x`, "", "not valid JSON"},
		{"empty", ``, "", "empty"},
		{"two objects", `{"name":"a"} {"name":"b"}`, "", "one JSON object"},
		{"array body", `[{"name":"a"}]`, "", "object"},
		{"unknown field", `{"name":"a","colour":"red"}`, "", "colour"},
		{"wrong type", `{"name":"a","max_budget":"ten"}`, "max_budget", "max_budget"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.at(t)
			teams, audits := e.count("teams"), e.count("audit_logs")
			for _, path := range []string{"/api/v1/teams", "/api/v1/providers", "/api/v1/users"} {
				if c.name == "wrong type" && path != "/api/v1/teams" {
					continue
				}
				r := e.do(http.MethodPost, path, c.body)
				wantError(t, r, http.StatusBadRequest, "invalid_request", c.param, c.msg)
			}
			if e.count("teams") != teams || e.count("audit_logs") != audits {
				t.Error("a refused request wrote rows")
			}
		})
	}

	t.Run("over 1 MiB", func(t *testing.T) {
		e := e.at(t)
		teams, audits := e.count("teams"), e.count("audit_logs")
		wantError(t, e.do(http.MethodPost, "/api/v1/teams", big), http.StatusRequestEntityTooLarge, "request_too_large", "", "1 MiB")
		if e.count("teams") != teams || e.count("audit_logs") != audits {
			t.Error("a refused request wrote rows")
		}
	})

	t.Run("patch bodies", func(t *testing.T) {
		e := e.at(t)
		id := e.newTeam("patch-bodies")
		for _, body := range []string{`{"name": `, `{"nope": 1}`} {
			r := e.do(http.MethodPatch, "/api/v1/teams/"+id, body)
			wantError(t, r, http.StatusBadRequest, "invalid_request", "")
		}
		wantError(t, e.do(http.MethodPatch, "/api/v1/teams/"+id, big), http.StatusRequestEntityTooLarge, "request_too_large", "", "1 MiB")
		if r := e.must(http.StatusOK, http.MethodGet, "/api/v1/teams/"+id, nil); r.json["name"] != "patch-bodies" {
			t.Errorf("team changed by refused PATCHes: %s", r.raw)
		}
	})

	// A wrong method is refused with 405, the allowed methods, and writes nothing.
	t.Run("wrong method", func(t *testing.T) {
		e := e.at(t)
		id := e.newTeam("wrong-method")
		teams := e.count("teams")
		for _, p := range []string{"/api/v1/teams", "/api/v1/teams/" + id} {
			r := e.do(http.MethodPut, p, obj{"name": "replaced"})
			wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "")
			if !strings.Contains(r.raw, "PATCH") && !strings.Contains(r.raw, "POST") {
				t.Errorf("PUT %s: the error does not say which methods work: %s", p, r.raw)
			}
		}
		if e.count("teams") != teams {
			t.Error("PUT wrote a team")
		}
	})
}
