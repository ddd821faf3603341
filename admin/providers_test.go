package admin_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"tollgate/store"
)

func TestProviderSecretNeverLeaves(t *testing.T) {
	e := newEnv(t)
	const secret = "sk-live-PROVIDER-s3cret-0123456789abcd"
	const secret2 = "sk-rotated-PROVIDER-s3cret-9876wxyz"

	cr := e.must(http.StatusCreated, http.MethodPost, "/api/v1/providers", obj{
		"name": "openai-prod", "type": "openai", "api_key": secret, "config": obj{"region": "eu"},
	})
	created := cr.json
	id, _ := created["id"].(string)
	if created["has_api_key"] != true {
		t.Errorf("has_api_key = %v, want true", created["has_api_key"])
	}
	if created["api_key_hint"] != "sk-…abcd" {
		t.Errorf("api_key_hint = %v, want sk-…abcd", created["api_key_hint"])
	}
	if created["api_base"] != "https://api.openai.com/v1" {
		t.Errorf("api_base = %v, want the OpenAI default", created["api_base"])
	}
	if _, ok := created["api_key"]; ok {
		t.Errorf("create response has an api_key field")
	}
	e.wantAudit("provider.create", "provider", id)

	// The stored column is sealed: not the plaintext, nor holding it, yet it
	// opens to it.
	var sealed []byte
	if err := e.st.DB().Get(&sealed, `SELECT api_key_enc FROM providers WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || bytes.Contains(sealed, []byte(secret)) || bytes.Contains(sealed, []byte("PROVIDER-s3cret")) {
		t.Errorf("api_key_enc is empty or holds the plaintext: %q", sealed)
	}
	p, err := e.st.GetProvider(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.st.ProviderAPIKey(p); err != nil || got != secret {
		t.Errorf("sealed key opens to %q, %v; want the secret", got, err)
	}

	// PATCH of the name alone keeps the key.
	r := e.must(http.StatusOK, http.MethodPatch, "/api/v1/providers/"+id, obj{"name": "openai-main"})
	if r.json["name"] != "openai-main" || r.json["has_api_key"] != true || r.json["api_key_hint"] != "sk-…abcd" {
		t.Errorf("PATCH name: %s", r.raw)
	}
	if r.json["type"] != "openai" || r.json["config"].(obj)["region"] != "eu" {
		t.Errorf("PATCH name changed other fields: %s", r.raw)
	}
	bodies := []string{cr.raw, r.raw}
	p, _ = e.st.GetProvider(context.Background(), id)
	if got, _ := e.st.ProviderAPIKey(p); got != secret {
		t.Errorf("after PATCH name the stored key opens to %q", got)
	}

	// GET one and list.
	bodies = append(bodies, e.must(http.StatusOK, http.MethodGet, "/api/v1/providers/"+id, nil).raw)
	rows, lr := e.list("/api/v1/providers")
	bodies = append(bodies, lr.raw)
	if len(rows) != 1 || rows[0]["has_api_key"] != true || rows[0]["api_key_hint"] != "sk-…abcd" {
		t.Errorf("list: %s", lr.raw)
	}

	// Rotating the key changes the hint.
	r = e.must(http.StatusOK, http.MethodPatch, "/api/v1/providers/"+id, obj{"api_key": secret2})
	if r.json["api_key_hint"] != "sk-…wxyz" || r.json["has_api_key"] != true {
		t.Errorf("PATCH api_key: %s", r.raw)
	}
	bodies = append(bodies, r.raw)

	// Clearing it.
	r = e.must(http.StatusOK, http.MethodPatch, "/api/v1/providers/"+id, obj{"api_key": ""})
	if r.json["has_api_key"] != false || r.json["api_key_hint"] != "" {
		t.Errorf("PATCH api_key \"\": %s", r.raw)
	}
	bodies = append(bodies, r.raw)
	var cleared []byte
	if err := e.st.DB().Get(&cleared, `SELECT api_key_enc FROM providers WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if len(cleared) != 0 {
		t.Errorf("api_key_enc still holds %d bytes after clearing", len(cleared))
	}
	r = e.must(http.StatusOK, http.MethodGet, "/api/v1/providers/"+id, nil)
	if r.json["has_api_key"] != false {
		t.Errorf("GET after clearing: %s", r.raw)
	}
	bodies = append(bodies, r.raw)

	if n := len(e.auditRows("resource=provider&action=provider.update")); n != 3 {
		t.Errorf("%d provider.update audit rows, want 3", n)
	}
	bodies = append(bodies, e.must(http.StatusOK, http.MethodGet, "/api/v1/audit-logs", nil).raw)
	bodies = append(bodies, e.must(http.StatusOK, http.MethodGet, "/api/v1/audit-logs?format=csv", nil).raw)
	bodies = append(bodies, e.auditText())
	for i, b := range bodies {
		for _, s := range []string{secret, secret2, "PROVIDER-s3cret"} {
			if strings.Contains(b, s) {
				t.Errorf("body %d holds the provider secret %q: %s", i, s, b)
			}
		}
	}
}

func TestProviderValidation(t *testing.T) {
	e := newEnv(t)
	e.newProvider("taken")
	cases := []struct {
		name   string
		body   obj
		status int
		param  string
		msg    []string
	}{
		{"unknown type", obj{"name": "p", "type": "openia"}, 400, "type", append([]string{"openia"}, store.ProviderTypes...)},
		{"no type", obj{"name": "p"}, 400, "type", []string{"openai", "anthropic", "mock"}},
		{"no name", obj{"type": "openai"}, 400, "name", []string{"name"}},
		{"blank name", obj{"name": "  ", "type": "openai"}, 400, "name", []string{"name"}},
		{"api_base required", obj{"name": "p", "type": "azure"}, 400, "api_base", []string{"api_base"}},
		{"api_base not a URL", obj{"name": "p", "type": "mock", "api_base": "ftp://x"}, 400, "api_base", []string{"api_base", "ftp://x"}},
		{"duplicate name", obj{"name": "taken", "type": "mock", "api_base": "http://h/v1"}, 409, "", []string{"taken"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := e.at(t)
			before, audits := e.count("providers"), e.count("audit_logs")
			r := e.do(http.MethodPost, "/api/v1/providers", c.body)
			code := "invalid_request"
			if c.status == 409 {
				code = "conflict"
			}
			wantError(t, r, c.status, code, c.param, c.msg...)
			if e.count("providers") != before || e.count("audit_logs") != audits {
				t.Error("a refused create wrote rows")
			}
		})
	}

	t.Run("patch to unknown type", func(t *testing.T) {
		e := e.at(t)
		id := e.newProvider("patched")
		r := e.do(http.MethodPatch, "/api/v1/providers/"+id, obj{"type": "nope"})
		wantError(t, r, 400, "invalid_request", "type", "nope", "openai")
		if g := e.must(200, http.MethodGet, "/api/v1/providers/"+id, nil); g.json["type"] != "mock" {
			t.Errorf("type changed by a refused PATCH: %s", g.raw)
		}
	})
}

func TestProviderDelete(t *testing.T) {
	e := newEnv(t)
	used := e.newProvider("used")
	unused := e.newProvider("unused")
	e.create("/api/v1/models", obj{"model_name": "gpt-x", "provider_id": used})
	e.create("/api/v1/models", obj{"model_name": "gpt-y", "provider_id": used})

	r := e.do(http.MethodDelete, "/api/v1/providers/"+used, nil)
	wantError(t, r, http.StatusConflict, "conflict", "", "2 model")
	e.must(http.StatusOK, http.MethodGet, "/api/v1/providers/"+used, nil)
	if n := len(e.auditRows("action=provider.delete")); n != 0 {
		t.Errorf("%d provider.delete audit rows after a refused delete", n)
	}

	r = e.do(http.MethodDelete, "/api/v1/providers/"+unused, nil)
	if r.status != http.StatusNoContent || r.raw != "" {
		t.Fatalf("DELETE unused provider: %d %q", r.status, r.raw)
	}
	wantError(t, e.do(http.MethodGet, "/api/v1/providers/"+unused, nil), http.StatusNotFound, "not_found", "")
	wantError(t, e.do(http.MethodDelete, "/api/v1/providers/"+unused, nil), http.StatusNotFound, "not_found", "")
	a := e.wantAudit("provider.delete", "provider", unused)
	if a["after"] != nil || a["before"] == nil {
		t.Errorf("provider.delete audit row: before %v, after %v", a["before"], a["after"])
	}
}
