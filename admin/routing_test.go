package admin_test

import (
	"net/http"
	"testing"
)

func TestModelGroupsAndAliasesAPI(t *testing.T) {
	e := newEnv(t)
	r := e.must(http.StatusOK, http.MethodPut, "/api/v1/model-groups/gpt-4o", obj{"strategy": "least_busy", "fallbacks": []string{"claude", "gemini"}})
	if r.json["model_name"] != "gpt-4o" || r.json["strategy"] != "least_busy" {
		t.Fatalf("put = %v", r.json)
	}
	wantError(t, e.do(http.MethodPut, "/api/v1/model-groups/gpt-4o", obj{"strategy": "round_robin"}), http.StatusBadRequest, "invalid_request", "strategy", "least_busy")
	wantError(t, e.do(http.MethodPut, "/api/v1/model-groups/gpt-4o", obj{"fallbacks": []string{"gpt-4o"}}), http.StatusBadRequest, "invalid_request", "fallbacks", "itself")
	groups, _ := e.list("/api/v1/model-groups")
	if len(groups) != 1 || len(groups[0]["fallbacks"].([]any)) != 2 {
		t.Fatalf("groups = %v", groups)
	}
	e.must(http.StatusOK, http.MethodPut, "/api/v1/model-aliases/smart", obj{"model_name": "gpt-4o"})
	aliases, _ := e.list("/api/v1/model-aliases")
	if len(aliases) != 1 || aliases[0]["alias"] != "smart" || aliases[0]["model_name"] != "gpt-4o" {
		t.Fatalf("aliases = %v", aliases)
	}
	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/model-aliases/smart", nil)
	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/model-groups/gpt-4o", nil)
	if e.count("audit_logs") == 0 {
		t.Fatal("routing changes were not audited")
	}
}
