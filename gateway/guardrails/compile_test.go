package guardrails

import (
	"context"
	"strings"
	"testing"

	"tollgate/store"
)

func TestCompileRefuses(t *testing.T) {
	for _, tc := range []struct {
		typ, mode, action, config string
		message                   string
	}{
		{"spam", "pre_call", "block", `{}`, "type: must be one of pii, secrets"},
		{"pii", "before", "block", `{}`, "mode: must be pre_call, during_call or post_call"},
		{"pii", "pre_call", "redact", `{}`, "action: must be block, mask or log"},
		{"pii", "during_call", "mask", `{}`, "action: mask is not possible during_call"},
		{"pii", "pre_call", "mask", `{"entities":["ssn"]}`, `config.entities: unknown entity "ssn"; choose from email, phone`},
		{"pii", "pre_call", "mask", `{"entity":["email"]}`, `config: unknown field "entity"`},
		{"pii", "pre_call", "mask", `{"entities":"email"}`, "config.entities: wrong type"},
		{"pii", "pre_call", "mask", `[1]`, "config: must be a JSON object"},
		{"secrets", "pre_call", "block", `{"aws":true}`, `config: unknown field "aws"`},
		{"keywords", "pre_call", "block", `{}`, "config.keywords: list at least one"},
		{"keywords", "pre_call", "block", `{"keywords":["ok"," "]}`, "config.keywords[1]: must not be empty"},
		{"prompt_injection", "pre_call", "block", `{"threshold":0}`, "config.threshold: must be more than 0"},
		{"max_prompt_size", "pre_call", "block", `{}`, `config: set "max_tokens", "max_chars" or both`},
		{"max_prompt_size", "pre_call", "block", `{"max_tokens":-5}`, "config.max_tokens: must be a positive integer"},
		{"max_prompt_size", "post_call", "block", `{"max_tokens":5}`, "mode: max_prompt_size checks prompts"},
		{"max_prompt_size", "pre_call", "mask", `{"max_chars":5}`, "action: mask is not possible for max_prompt_size"},
		{"external", "pre_call", "block", `{}`, "config.url: must be an http:// or https:// URL"},
		{"external", "pre_call", "block", `{"url":"ftp://x"}`, "config.url: must be an http:// or https:// URL"},
		{"external", "pre_call", "block", `{"url":"https://g.example/check","timeout_ms":0}`, "config.timeout_ms: must be 1 to 30000 (got 0)"},
		{"external", "pre_call", "block", `{"url":"https://g.example/check","timeout_ms":30001}`, "config.timeout_ms: must be 1 to 30000"},
		{"external", "during_call", "mask", `{"url":"https://g.example/check"}`, "action: mask is not possible during_call"},
	} {
		_, err := Compile(store.Guardrail{GuardrailSpec: store.GuardrailSpec{Name: "g", Type: tc.typ, Mode: tc.mode, Action: tc.action, Config: store.JSON(tc.config)}})
		if err == nil || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%s %s %s %s: error %v, want one containing %q", tc.typ, tc.mode, tc.action, tc.config, err, tc.message)
		}
	}
}

func TestCompileAccepts(t *testing.T) {
	for _, tc := range []struct{ typ, config string }{
		{"pii", ``},
		{"pii", `null`},
		{"pii", `{"entities":[]}`},
		{"secrets", `{}`},
		{"keywords", `{"keywords":["project zeus"],"case_sensitive":true}`},
		{"prompt_injection", `{"threshold":2}`},
		{"max_prompt_size", `{"max_tokens":100,"max_chars":1000}`},
		{"external", `{"url":"http://10.0.0.5:8000/check","timeout_ms":250,"fail_open":true}`},
	} {
		r, err := Compile(guardrail(tc.typ, tc.config))
		if err != nil {
			t.Errorf("%s %s: %v", tc.typ, tc.config, err)
			continue
		}
		if r.Name != "test" || r.Type != tc.typ || r.Mode != "pre_call" || r.Action != "block" || !r.Enabled {
			t.Errorf("%s: rule %+v", tc.typ, r)
		}
	}
}

func TestKeywords(t *testing.T) {
	r := rule(t, "keywords", "pre_call", "mask", `{"keywords":["zeus","Project Apollo","c++","naïve"]}`)
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"Zeus and ZEUS but not zeuses or Zeus_x", []string{"KEYWORD:Zeus", "KEYWORD:ZEUS"}},
		{"about project apollo.", []string{"KEYWORD:project apollo"}},
		{"we write c++ and c++17", []string{"KEYWORD:c++", "KEYWORD:c++"}},
		{"a NAÏVE idea; naïveté", []string{"KEYWORD:NAÏVE"}},
		{"nothing here", nil},
	} {
		if got := found(tc.text, r.Scan(tc.text)); !same(got, tc.want) {
			t.Errorf("%q: found %q, want %q", tc.text, got, tc.want)
		}
	}
	cs := rule(t, "keywords", "pre_call", "block", `{"keywords":["Zeus"],"case_sensitive":true}`)
	if got := found("zeus Zeus", cs.Scan("zeus Zeus")); !same(got, []string{"KEYWORD:Zeus"}) {
		t.Errorf("case sensitive: found %q", got)
	}
}

func TestMask(t *testing.T) {
	for _, tc := range []struct {
		text     string
		findings []Finding
		want     string
	}{
		{"mail a@b.io now", []Finding{{"EMAIL", 5, 11}}, "mail [EMAIL] now"},
		{"abcdefgh", []Finding{{"A", 0, 3}, {"B", 2, 5}}, "[A]fgh"},     // overlapping: merged
		{"abcdefgh", []Finding{{"B", 2, 5}, {"A", 0, 3}}, "[A]fgh"},     // in any order
		{"abcdefgh", []Finding{{"A", 0, 6}, {"B", 2, 4}}, "[A]gh"},      // contained
		{"abcdefgh", []Finding{{"A", 0, 2}, {"B", 2, 4}}, "[A][B]efgh"}, // adjacent: both
		{"abcdefgh", []Finding{{"A", 1, 3}, {"B", 5, 7}}, "a[A]de[B]h"}, // apart
		{"abc", []Finding{{"A", 2, 10}}, "ab[A]"},                       // clipped to the text
		{"abc", nil, "abc"},
	} {
		if got := Mask(tc.text, tc.findings); got != tc.want {
			t.Errorf("Mask(%q, %v) = %q, want %q", tc.text, tc.findings, got, tc.want)
		}
	}
}

func TestCheckMasksEveryText(t *testing.T) {
	r := rule(t, "pii", "pre_call", "mask", `{}`)
	in := Input{Texts: []Text{{Role: "system", Text: "Be brief."}, {Role: "user", Text: "I am jane@example.com, card 4111 1111 1111 1111, mail me at jane@example.com"}}}
	o := r.Check(context.Background(), in)
	want := &Outcome{Action: "mask", Hits: []Hit{{"EMAIL", 2}, {"CREDIT_CARD", 1}},
		Texts: []string{"Be brief.", "I am [EMAIL], card [CREDIT_CARD], mail me at [EMAIL]"}}
	if !sameOutcome(o, want) {
		t.Errorf("outcome %+v, want %+v", o, want)
	}
	if o := r.Check(context.Background(), Input{Texts: []Text{{Text: "nothing to see"}}}); o != nil {
		t.Errorf("outcome %+v for a clean text", o)
	}
}
