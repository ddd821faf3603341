package guardrails

import (
	"context"
	"encoding/json"
	"os"
	"testing"
)

// prompt4000 is a 4,000-token support conversation (gateway/tokens'
// fixture) with an e-mail address, a phone number, an IP address, a card
// number and an IBAN pasted in, as users paste them.
func prompt4000(t testing.TB) Input {
	t.Helper()
	raw, err := os.ReadFile("testdata/chat_4000.json")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []struct{ Role, Content string }
	if err := json.Unmarshal(raw, &msgs); err != nil {
		t.Fatal(err)
	}
	in := Input{Model: "gpt-4o"}
	for _, m := range msgs {
		in.Texts = append(in.Texts, Text{Role: m.Role, Text: m.Content})
	}
	return in
}

// builtIn is one rule of every offline type that reads text.
func builtIn(t testing.TB) []*Rule {
	return []*Rule{
		rule(t, "pii", "pre_call", "mask", `{}`),
		rule(t, "secrets", "pre_call", "block", `{}`),
		rule(t, "prompt_injection", "pre_call", "block", `{}`),
		rule(t, "keywords", "pre_call", "block", `{"keywords":["project zeus","internal only","top secret","acquisition","layoffs","salary","password","darkstar","merger","codename"]}`),
		rule(t, "regex", "pre_call", "mask", `{"patterns":[{"name":"EMPLOYEE_ID","pattern":"EMP-\\d{6}"},{"name":"TICKET","pattern":"\\bOPS-\\d{3,6}\\b"}]}`),
	}
}

func TestPrompt4000Findings(t *testing.T) {
	in := prompt4000(t)
	rules := builtIn(t)
	pii := rules[0].Check(context.Background(), in)
	want := []Hit{{"EMAIL", 1}, {"PHONE", 1}, {"IP_ADDRESS", 1}, {"CREDIT_CARD", 1}, {"IBAN", 1}}
	if pii == nil || !sameOutcome(&Outcome{Action: "mask", Hits: pii.Hits}, &Outcome{Action: "mask", Hits: want}) {
		t.Fatalf("pii on the fixture: %+v, want %v", pii, want)
	}
	if len(pii.Texts) != len(in.Texts) {
		t.Fatalf("%d masked texts of %d", len(pii.Texts), len(in.Texts))
	}
	for _, r := range rules[1:] {
		if o := r.Check(context.Background(), in); o != nil {
			t.Errorf("%s found %+v in an ordinary conversation", r.Type, o.Hits)
		}
	}
}

// BenchmarkBuiltIn4000 runs every offline detector (all PII entities,
// secrets, prompt injection, 10 keywords, 2 patterns) on a 4,000-token
// prompt, as a request with all of them applied pays.
func BenchmarkBuiltIn4000(b *testing.B) {
	in := prompt4000(b)
	rules := builtIn(b)
	ctx := context.Background()
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, r := range rules {
				r.Check(ctx, in)
			}
		}
	})
	for _, r := range rules {
		b.Run(r.Type, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.Check(ctx, in)
			}
		})
	}
}

// BenchmarkStream1000Words streams a 1,000-word answer word by word
// through a masking pii rule: the cost per chunk of checking an answer.
func BenchmarkStream1000Words(b *testing.B) {
	in := prompt4000(b)
	answer := in.Texts[2].Text + in.Texts[4].Text + in.Texts[6].Text
	r := rule(b, "pii", "post_call", "mask", `{}`)
	var words []string
	start := 0
	for i := 0; i < len(answer); i++ {
		if answer[i] == ' ' {
			words = append(words, answer[start:i+1])
			start = i + 1
		}
	}
	b.ReportMetric(float64(len(words)), "chunks")
	b.ReportAllocs()
	for b.Loop() {
		st := r.NewStream()
		for _, w := range words {
			st.Push(w)
		}
		st.Flush()
	}
}
