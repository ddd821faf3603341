package guardrails

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// guardService answers every check with answer, after delay, and passes
// on each request it receives.
func guardService(t *testing.T, delay time.Duration, status int, answer string) (*httptest.Server, chan externalRequest) {
	t.Helper()
	got := make(chan externalRequest, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req externalRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request: %s %s %v", r.Method, r.Header.Get("Content-Type"), err)
		}
		got <- req
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestExternal(t *testing.T) {
	in := Input{Texts: []Text{{Role: "system", Text: "Be brief."}, {Role: "user", Text: "My name is Jane"}},
		Model: "gpt-test", RequestID: "req_1", TeamID: "team-1", KeyID: "key-1"}
	for _, tc := range []struct {
		name, mode, action string
		delay              time.Duration
		status             int
		answer, config     string
		want               *Outcome
	}{
		{name: "allow", answer: `{"action":"allow"}`},
		{name: "block", answer: `{"action":"block","reason":"names a person","types":["PERSON"]}`,
			want: &Outcome{Action: "block", Hits: []Hit{{"PERSON", 1}}, Reason: "names a person"}},
		{name: "block without types", answer: `{"action":"block"}`, want: &Outcome{Action: "block", Hits: []Hit{{"EXTERNAL", 1}}}},
		{name: "odd type names", answer: `{"action":"block","types":["a person","PERSON"]}`, want: &Outcome{Action: "block", Hits: []Hit{{"EXTERNAL", 1}, {"PERSON", 1}}}},
		{name: "mask", action: "mask", answer: `{"action":"mask","texts":["Be brief.","My name is [PERSON]"],"types":["PERSON"]}`,
			want: &Outcome{Action: "mask", Hits: []Hit{{"PERSON", 1}}, Texts: []string{"Be brief.", "My name is [PERSON]"}}},
		{name: "mask during_call is only recorded", mode: "during_call", answer: `{"action":"mask","texts":["a","b"]}`,
			want: &Outcome{Action: "log", Hits: []Hit{{"EXTERNAL", 1}}}},
		{name: "a log guardrail is a dry run", action: "log", answer: `{"action":"block","types":["PERSON"]}`,
			want: &Outcome{Action: "log", Hits: []Hit{{"PERSON", 1}}}},
		{name: "mask of the wrong number of texts", answer: `{"action":"mask","texts":["x"]}`,
			want: &Outcome{Action: "block", Hits: []Hit{{"EXTERNAL_ERROR", 1}}, Reason: "the guardrail service masked 1 texts of 2"}},
		{name: "timeout closed", delay: 300 * time.Millisecond, answer: `{"action":"allow"}`, config: `,"timeout_ms":50`,
			want: &Outcome{Action: "block", Hits: []Hit{{"EXTERNAL_TIMEOUT", 1}}, Reason: "the guardrail service did not answer within 50ms"}},
		{name: "timeout open", delay: 300 * time.Millisecond, answer: `{"action":"allow"}`, config: `,"timeout_ms":50,"fail_open":true`,
			want: &Outcome{Action: "log", Hits: []Hit{{"EXTERNAL_TIMEOUT", 1}}, Reason: "the guardrail service did not answer within 50ms"}},
		{name: "error status", status: 500, answer: `oops`,
			want: &Outcome{Action: "block", Hits: []Hit{{"EXTERNAL_ERROR", 1}}, Reason: "the guardrail service answered HTTP 500"}},
		{name: "unknown action", answer: `{"action":"maybe"}`,
			want: &Outcome{Action: "block", Hits: []Hit{{"EXTERNAL_ERROR", 1}}, Reason: `the guardrail service answered action "maybe" (allow, block or mask expected)`}},
		{name: "not JSON, open", answer: `<html>`, config: `,"fail_open":true`,
			want: &Outcome{Action: "log", Hits: []Hit{{"EXTERNAL_ERROR", 1}}, Reason: "the guardrail service's answer is not the expected JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = 200
			}
			srv, received := guardService(t, tc.delay, status, tc.answer)
			mode, action := tc.mode, tc.action
			if mode == "" {
				mode = "pre_call"
			}
			if action == "" {
				action = "block"
			}
			r := rule(t, "external", mode, action, `{"url":"`+srv.URL+`/check"`+tc.config+`}`)
			start := time.Now()
			o := r.Check(context.Background(), in)
			if time.Since(start) > 250*time.Millisecond {
				t.Errorf("took %s", time.Since(start))
			}
			if !sameOutcome(o, tc.want) {
				t.Errorf("outcome %+v, want %+v", o, tc.want)
			}
			got := <-received
			if got.Guardrail != "test" || got.Mode != mode || got.RequestID != "req_1" || got.TeamID != "team-1" || got.KeyID != "key-1" ||
				got.Model != "gpt-test" || strings.Join(got.Texts, "|") != "Be brief.|My name is Jane" {
				t.Errorf("the service received %+v", got)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		r := rule(t, "external", "pre_call", "block", `{"url":"http://127.0.0.1:1/check"}`)
		if o := r.Check(context.Background(), in); !sameOutcome(o, &Outcome{Action: "block", Hits: []Hit{{"EXTERNAL_ERROR", 1}}, Reason: "the guardrail service could not be reached"}) {
			t.Errorf("outcome %+v", o)
		}
	})
}

func sameOutcome(a, b *Outcome) bool {
	if a == nil || b == nil {
		return a == b
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestMaxPromptSize(t *testing.T) {
	in := Input{Model: "gpt-4o", Texts: []Text{{Role: "system", Text: "Be brief."}, {Role: "user", Text: strings.Repeat("word ", 100)}}}
	for _, tc := range []struct {
		config string
		want   *Outcome
	}{
		{`{"max_chars":1000}`, nil},
		{`{"max_chars":500}`, &Outcome{Action: "block", Hits: []Hit{{"PROMPT_TOO_LARGE", 1}}, Reason: "the prompt has 509 characters, more than the limit of 500"}},
		{`{"max_tokens":200}`, nil},
		{`{"max_tokens":50}`, &Outcome{Action: "block", Hits: []Hit{{"PROMPT_TOO_LARGE", 1}}, Reason: "the prompt has 104 tokens, more than the limit of 50"}},
	} {
		r := rule(t, "max_prompt_size", "pre_call", "block", tc.config)
		if o := r.Check(context.Background(), in); !sameOutcome(o, tc.want) {
			t.Errorf("%s: outcome %+v, want %+v", tc.config, o, tc.want)
		}
	}
}
