package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// asMember calls the management API with a member's key and returns the
// status and the decoded answer.
func (s *stack) asMember(key, method, path string, body any) (int, map[string]any) {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, s.admin+"/api/v1"+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// chatWith makes a chat completion with key for model and returns the
// status and the body. The gateway learns of new models by NOTIFY, which
// on a loaded machine can take a moment, so a 404 is tried again for up to
// 10 s.
func (s *stack) chatWith(key, model string) (int, string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest("POST", s.gateway+"/v1/chat/completions",
			strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"from a member's own key"}]}`))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			s.t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// 401 and 404: the gateway has not yet seen the new key or model.
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusUnauthorized || time.Now().After(deadline) {
			return resp.StatusCode, string(raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A member makes their own key through the management API, within their
// team's rules, and it works through the gateway for the team's models only.
func TestMemberMadeKeyThroughTheGateway(t *testing.T) {
	s := startStack(t)
	prov := s.api("POST", "/providers", map[string]any{"name": "mock", "type": "mock", "api_base": s.provider.URL + "/v1", "api_key": "upstream-key"})
	for _, name := range []string{"gpt-4o-mini", "gpt-4o"} {
		s.api("POST", "/models", map[string]any{"model_name": name, "provider_id": prov["id"], "upstream_model": "mock-gpt",
			"input_cost_per_million": 0.15, "output_cost_per_million": 0.6})
	}
	team := s.api("POST", "/teams", map[string]any{"name": "growth-team", "models": []string{"gpt-4o-mini"},
		"member_key_caps": map[string]any{"max_budget": 5, "budget_duration": "monthly", "rpm_limit": 100}})
	user := s.api("POST", "/users", map[string]any{"email": "mem@corp.example", "role": "member", "teams": []string{team["id"].(string)}})
	memberKey := s.api("POST", "/keys", map[string]any{"user_id": user["id"], "team_id": team["id"], "key_type": "default"})["key"].(string)

	status, _ := s.asMember(memberKey, "POST", "/keys", map[string]any{"team_id": team["id"], "models": []string{"gpt-4o"}})
	if status != http.StatusForbidden {
		t.Errorf("member key for a model outside the team: %d", status)
	}
	status, key := s.asMember(memberKey, "POST", "/keys", map[string]any{"team_id": team["id"], "alias": "my-laptop"})
	if status != http.StatusCreated || key["max_budget"] != 5.0 || key["rpm_limit"] != 100.0 || key["user_id"] != user["id"] {
		t.Fatalf("member creates a key: %d %v", status, key)
	}
	secret := key["key"].(string)

	status, body := s.chatWith(secret, "gpt-4o-mini")
	if status != http.StatusOK || !strings.Contains(body, "chat.completion") {
		t.Fatalf("chat with the member's key: %d %s", status, body)
	}
	status, body = s.chatWith(secret, "gpt-4o")
	if status != http.StatusForbidden || !strings.Contains(body, "permission_denied") {
		t.Errorf("a model outside the team: %d %s", status, body)
	}
}
