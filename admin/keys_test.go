package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

func TestKeySecretLifecycle(t *testing.T) {
	e := newEnv(t)
	team := e.newTeam("ml", "gpt-4o", "claude")

	cr := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{
		"alias": "ci-bot", "team_id": team, "models": []string{"gpt-4o"}, "metadata": obj{"owner": "ci"},
	})
	id, _ := cr.json["id"].(string)
	secret, _ := cr.json["key"].(string)
	if id == "" || !strings.HasPrefix(secret, "sk-") || len(secret) < 20 {
		t.Fatalf("create: id %q, key %q", id, secret)
	}
	if want := "sk-…" + secret[len(secret)-4:]; cr.json["key_hint"] != want {
		t.Errorf("key_hint = %v, want %s", cr.json["key_hint"], want)
	}
	if cr.json["alias"] != "ci-bot" || cr.json["team_id"] != team || cr.json["key_type"] != "llm_api" || cr.json["blocked"] != false {
		t.Errorf("create body: %s", cr.raw)
	}
	if _, ok := cr.json["key_hash"]; ok {
		t.Error("create response carries key_hash")
	}
	e.wantAudit("key.create", "key", id)

	// Only the SHA-256 is stored.
	var hash, row string
	if err := e.st.DB().Get(&hash, `SELECT key_hash FROM keys WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if hash != store.HashKey(secret) || len(hash) != 64 {
		t.Errorf("key_hash = %q, want sha256 hex of the secret", hash)
	}
	if err := e.st.DB().Get(&row, `SELECT row_to_json(k)::text FROM keys k WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(row, secret) || strings.Contains(row, secret[3:]) {
		t.Errorf("keys row holds the secret: %s", row)
	}

	var bodies []string
	r := e.must(http.StatusOK, http.MethodGet, "/api/v1/keys/"+id, nil)
	bodies = append(bodies, r.raw)
	if r.json["key_hint"] != cr.json["key_hint"] {
		t.Errorf("GET key_hint %v", r.json["key_hint"])
	}
	if _, ok := r.json["key"]; ok {
		t.Errorf("GET returns a key field: %s", r.raw)
	}
	rows, lr := e.list("/api/v1/keys")
	bodies = append(bodies, lr.raw)
	if len(rows) != 1 || rows[0]["id"] != id {
		t.Errorf("list: %s", lr.raw)
	}
	r = e.must(http.StatusOK, http.MethodPatch, "/api/v1/keys/"+id, obj{"alias": "ci-bot-2", "max_budget": 25})
	bodies = append(bodies, r.raw)
	if r.json["alias"] != "ci-bot-2" || r.json["max_budget"] != 25.0 || r.json["team_id"] != team {
		t.Errorf("PATCH: %s", r.raw)
	}
	e.wantAudit("key.update", "key", id)

	// Block and unblock.
	r = e.must(http.StatusOK, http.MethodPost, "/api/v1/keys/"+id+"/block", nil)
	bodies = append(bodies, r.raw)
	if r.json["blocked"] != true {
		t.Errorf("block: %s", r.raw)
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/keys/"+id, nil); g.json["blocked"] != true {
		t.Errorf("GET after block: %s", g.raw)
	}
	a := e.wantAudit("key.block", "key", id)
	if a["before"].(obj)["blocked"] != false || a["after"].(obj)["blocked"] != true {
		t.Errorf("key.block audit: %v", a)
	}
	r = e.must(http.StatusOK, http.MethodPost, "/api/v1/keys/"+id+"/unblock", nil)
	bodies = append(bodies, r.raw)
	if r.json["blocked"] != false {
		t.Errorf("unblock: %s", r.raw)
	}
	e.wantAudit("key.unblock", "key", id)
	if r.json["alias"] != "ci-bot-2" || r.json["max_budget"] != 25.0 {
		t.Errorf("unblock changed other fields: %s", r.raw)
	}

	// Regenerate: a new secret, the old hash gone.
	rg := e.must(http.StatusOK, http.MethodPost, "/api/v1/keys/"+id+"/regenerate", nil)
	secret2, _ := rg.json["key"].(string)
	if !strings.HasPrefix(secret2, "sk-") || secret2 == secret || rg.json["id"] != id {
		t.Fatalf("regenerate: %s", rg.raw)
	}
	if want := "sk-…" + secret2[len(secret2)-4:]; rg.json["key_hint"] != want {
		t.Errorf("key_hint after regenerate = %v, want %s", rg.json["key_hint"], want)
	}
	if strings.Contains(rg.raw, secret) {
		t.Error("regenerate response holds the old secret")
	}
	var n int
	e.st.DB().Get(&n, `SELECT count(*) FROM keys WHERE key_hash = $1`, store.HashKey(secret))
	if n != 0 {
		t.Error("the old key hash is still stored")
	}
	e.st.DB().Get(&n, `SELECT count(*) FROM keys WHERE id = $1 AND key_hash = $2`, id, store.HashKey(secret2))
	if n != 1 {
		t.Error("the new key hash is not stored")
	}
	e.wantAudit("key.regenerate", "key", id)
	r = e.must(http.StatusOK, http.MethodGet, "/api/v1/keys/"+id, nil)
	bodies = append(bodies, r.raw)

	// Neither secret ever shows again, in the API or the audit log.
	bodies = append(bodies,
		e.must(http.StatusOK, http.MethodGet, "/api/v1/audit-logs?limit=1000", nil).raw,
		e.must(http.StatusOK, http.MethodGet, "/api/v1/audit-logs?format=csv&limit=1000", nil).raw,
		e.auditText())
	for i, b := range bodies {
		for _, s := range []string{secret, secret[3:], secret2, secret2[3:]} {
			if strings.Contains(b, s) {
				t.Errorf("body %d holds a key secret: %s", i, b)
			}
		}
	}

	// Delete.
	if r := e.do(http.MethodDelete, "/api/v1/keys/"+id, nil); r.status != http.StatusNoContent || r.raw != "" {
		t.Fatalf("DELETE: %d %q", r.status, r.raw)
	}
	wantError(t, e.do(http.MethodGet, "/api/v1/keys/"+id, nil), http.StatusNotFound, "not_found", "")
	wantError(t, e.do(http.MethodPost, "/api/v1/keys/"+id+"/block", nil), http.StatusNotFound, "not_found", "")
	wantError(t, e.do(http.MethodPost, "/api/v1/keys/"+id+"/regenerate", nil), http.StatusNotFound, "not_found", "")
	e.wantAudit("key.delete", "key", id)
	if e.count("keys") != 0 {
		t.Error("key row left after DELETE")
	}
}

func TestKeyExpiry(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		duration string
		want     time.Duration
	}{
		{"30d", 30 * 24 * time.Hour},
		{"12h", 12 * time.Hour},
		{"15m", 15 * time.Minute},
		{"90s", 90 * time.Second},
	}
	for _, c := range cases {
		start := time.Now()
		_, body := e.create("/api/v1/keys", obj{"duration": c.duration})
		at, err := time.Parse(time.RFC3339Nano, body["expires_at"].(string))
		if err != nil {
			t.Fatalf("duration %s: expires_at %v: %v", c.duration, body["expires_at"], err)
		}
		if at.Before(start.Add(c.want-time.Second)) || at.After(time.Now().Add(c.want+time.Second)) {
			t.Errorf("duration %s: expires_at %s, want about %s", c.duration, at, start.Add(c.want))
		}
	}

	explicit := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	id, body := e.create("/api/v1/keys", obj{"expires_at": explicit.Format(time.RFC3339)})
	if at, _ := time.Parse(time.RFC3339Nano, body["expires_at"].(string)); !at.Equal(explicit) {
		t.Errorf("expires_at = %v, want %s", body["expires_at"], explicit)
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/keys/"+id, nil); g.json["expires_at"] == nil {
		t.Errorf("GET lost expires_at: %s", g.raw)
	}
	if _, body := e.create("/api/v1/keys", obj{}); body["expires_at"] != nil {
		t.Errorf("a key without duration expires at %v", body["expires_at"])
	}
}

func TestKeyValidation(t *testing.T) {
	e := newEnv(t)
	team := e.newTeam("restricted", "gpt-4o", "claude")
	open := e.newTeam("open")
	const ghost = "0b9e4c1e-0000-4000-8000-000000000004"
	cases := []struct {
		name  string
		body  any
		param string
		msg   []string
	}{
		{"duration and expires_at", obj{"duration": "30d", "expires_at": time.Now().Add(time.Hour).Format(time.RFC3339)}, "duration", []string{"expires_at", "duration"}},
		{"bad duration", obj{"duration": "a month"}, "duration", []string{"a month"}},
		{"negative duration", obj{"duration": "-5h"}, "duration", []string{"-5h"}},
		{"model outside team", obj{"team_id": team, "models": []string{"gpt-4o", "llama"}}, "models", []string{"llama", "restricted"}},
		{"unknown team", obj{"team_id": ghost}, "team_id", []string{ghost}},
		{"team not a uuid", obj{"team_id": "restricted"}, "team_id", []string{"team_id"}},
		{"unknown user", obj{"user_id": ghost}, "user_id", []string{ghost}},
		{"bad key_type", obj{"key_type": "root"}, "key_type", []string{"root"}},
		{"negative budget", obj{"max_budget": -1}, "max_budget", []string{"max_budget"}},
		{"negative parallel", obj{"max_parallel_requests": -1}, "max_parallel_requests", []string{"max_parallel_requests"}},
		{"bad budget_duration", obj{"budget_duration": "fortnightly"}, "budget_duration", []string{"fortnightly"}},
		{"caller-chosen secret", obj{"key": "sk-mine"}, "", []string{`"key"`}},
		{"unknown field", obj{"aliass": "x"}, "", []string{"aliass"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.at(t)
			keys, audits := e.count("keys"), e.count("audit_logs")
			r := e.do(http.MethodPost, "/api/v1/keys", c.body)
			wantError(t, r, http.StatusBadRequest, "invalid_request", c.param, c.msg...)
			if e.count("keys") != keys || e.count("audit_logs") != audits {
				t.Error("a refused create wrote rows")
			}
		})
	}

	// Models within the team's, or any model on a team with none listed.
	e.create("/api/v1/keys", obj{"team_id": team, "models": []string{"claude"}})
	e.create("/api/v1/keys", obj{"team_id": team})
	e.create("/api/v1/keys", obj{"team_id": open, "models": []string{"anything"}})
	if rows, _ := e.list("/api/v1/keys?team_id=" + team); len(rows) != 2 {
		t.Errorf("%d keys in team %s, want 2", len(rows), team)
	}
	wantError(t, e.do(http.MethodGet, "/api/v1/keys?team_id=x", nil), 400, "invalid_request", "team_id")

	// PATCH is held to the same rules and names unknown fields.
	id, _ := e.create("/api/v1/keys", obj{"team_id": team, "alias": "patched"})
	keys, audits := e.count("keys"), e.count("audit_logs")
	patches := []struct {
		body  obj
		param string
		msg   string
	}{
		{obj{"colour": "blue"}, "", "colour"},
		{obj{"alias": "x", "spend": 0}, "", "spend"},
		{obj{"key_hash": "00"}, "", "key_hash"},
		{obj{"models": []string{"llama"}}, "models", "llama"},
		{obj{"team_id": ghost}, "team_id", ghost},
		{obj{"key_type": "root"}, "key_type", "root"},
	}
	for _, p := range patches {
		r := e.do(http.MethodPatch, "/api/v1/keys/"+id, p.body)
		wantError(t, r, http.StatusBadRequest, "invalid_request", p.param, p.msg)
	}
	if e.count("keys") != keys || e.count("audit_logs") != audits {
		t.Error("refused PATCHes wrote rows")
	}
	if g := e.must(http.StatusOK, http.MethodGet, "/api/v1/keys/"+id, nil); g.json["alias"] != "patched" || g.json["team_id"] != team {
		t.Errorf("refused PATCHes changed the key: %s", g.raw)
	}
}
