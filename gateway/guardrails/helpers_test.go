package guardrails

import (
	"strings"
	"testing"

	"tollgate/store"
)

// rule compiles a guardrail of type typ with a JSON config.
func rule(t testing.TB, typ, mode, action, config string) *Rule {
	t.Helper()
	r, err := Compile(store.Guardrail{GuardrailSpec: store.GuardrailSpec{Name: "test", Type: typ, Mode: mode, Action: action,
		Enabled: true, Config: store.JSON(config)}})
	if err != nil {
		t.Fatalf("compile %s %s: %v", typ, config, err)
	}
	return r
}

// found lists "TYPE:matched text" for each finding.
func found(s string, fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Type+":"+s[f.Start:f.End])
	}
	return out
}

func same(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

type storeGuardrail = store.Guardrail

// guardrail is a pre_call block definition of type typ.
func guardrail(typ, config string) store.Guardrail {
	return store.Guardrail{GuardrailSpec: store.GuardrailSpec{Name: "test", Type: typ, Mode: "pre_call", Action: "block",
		Enabled: true, Config: store.JSON(config)}}
}
