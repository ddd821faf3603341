package guardrails

import (
	"fmt"
	"strings"
	"testing"
)

func TestRegexPatterns(t *testing.T) {
	r := rule(t, "regex", "pre_call", "mask", `{"patterns":[{"name":"EMPLOYEE_ID","pattern":"EMP-\\d{6}"},{"name":"PROJECT","pattern":"(?i)project\\s+(?:apollo|zeus)"}]}`)
	text := "EMP-123456 asked about Project Apollo; EMP-12345 did not"
	want := []string{"EMPLOYEE_ID:EMP-123456", "PROJECT:Project Apollo"}
	if got := found(text, r.Scan(text)); !same(got, want) {
		t.Errorf("found %q, want %q", got, want)
	}
	if got, want := Mask(text, r.Scan(text)), "[EMPLOYEE_ID] asked about [PROJECT]; EMP-12345 did not"; got != want {
		t.Errorf("masked %q, want %q", got, want)
	}
	if r.window != defaultWindow {
		t.Errorf("window %d with an unbounded pattern, want %d", r.window, defaultWindow)
	}
	if r := rule(t, "regex", "post_call", "mask", `{"patterns":[{"name":"EMPLOYEE_ID","pattern":"EMP-\\d{6}"}]}`); r.window != len("EMP-123456")+4 {
		t.Errorf("window %d, want the longest match and a character", r.window)
	}
}

// Go's RE2 runs these in linear time; they are refused because they are
// exponential in backtracking engines and usually a mistake.
func TestRegexCatastrophicShapesRefused(t *testing.T) {
	for _, tc := range []struct{ pattern, message string }{
		{`(a+)+`, "nested quantifier (a+)+ is refused"},
		{`(a*)*`, "nested quantifier (a*)* is refused"},
		{`(?:a+)+b`, "nested quantifier (?:a+)+ is refused"},
		{`^(\w+\s?)*$`, `nested quantifier (\w+\s?)* is refused`},
		{`(x+x+)+y`, "nested quantifier (x+x+)+ is refused"},
		{`(a{2,})*`, "nested quantifier (a{2,})* is refused"},
		{`(a|a)*`, "repeated alternation (a|a)* is refused: its branches a and a"},
		{`(\w|\d)+x`, `repeated alternation (\w|\d)+ is refused`},
		{`(?i)(a|A)+`, "repeated alternation (a|A)+ is refused"},
		{`(ab|ac)*`, "repeated alternation (ab|ac)* is refused"},
		{`(a?)*b`, "repetition (a?)* is refused: it repeats something that can match nothing"},
		{`(a|)+b`, "repetition (a|)+ is refused"},
	} {
		_, err := Compile(regexGuardrail(tc.pattern))
		if err == nil || !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "pattern EMPLOYEE_ID") {
			t.Errorf("%s: error %v, want one containing %q", tc.pattern, err, tc.message)
		}
	}
	for _, ok := range []string{`EMP-\d{6}`, `[A-Z]{3}-\d+`, `(ab)+`, `(?:foo|bar)+`, `\d+(?:\.\d+)?`, `(a|b)*c`, `(\d{1,3}\.){3}\d{1,3}`, `\bsecret\b`, `[(]x[)]+`, `a{2}`, `\Q(a+)+\E`, `x{`} {
		if _, err := Compile(regexGuardrail(ok)); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}

func regexGuardrail(pattern string) storeGuardrail {
	return guardrail("regex", fmt.Sprintf(`{"patterns":[{"name":"EMPLOYEE_ID","pattern":%q}]}`, pattern))
}

func TestRegexLimits(t *testing.T) {
	var many []string
	for i := range 21 {
		many = append(many, fmt.Sprintf(`{"name":"P%d","pattern":"x%d"}`, i, i))
	}
	for _, tc := range []struct{ config, message string }{
		{`{"patterns":[` + strings.Join(many, ",") + `]}`, "config.patterns: at most 20 patterns (got 21)"},
		{fmt.Sprintf(`{"patterns":[{"name":"LONG","pattern":%q}]}`, strings.Repeat("a", 513)), "config.patterns[0].pattern: pattern LONG: at most 512 characters (got 513)"},
		{`{"patterns":[{"name":"BIG","pattern":"[a-z]{1,400}[0-9]{1,400}[A-Z]{1,400}"}]}`, "too complex: it compiles to"},
		{`{"patterns":[{"name":"BAD","pattern":"a(b"}]}`, "config.patterns[0].pattern: pattern BAD: not a valid regular expression"},
		{`{"patterns":[{"name":"EMPTY","pattern":"x*"}]}`, "matches the empty string"},
		{`{"patterns":[{"name":"employee id","pattern":"x"}]}`, "config.patterns[0].name: must be 1 to 40 capital letters"},
		{`{"patterns":[{"name":"A","pattern":"x"},{"name":"A","pattern":"y"}]}`, "config.patterns[1].name: A is used twice"},
		{`{"patterns":[]}`, "config.patterns: list at least one pattern"},
		{`{"pattern":"x"}`, `config: unknown field "pattern"`},
	} {
		_, err := Compile(guardrail("regex", tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.message) {
			t.Errorf("%.60s: error %v, want one containing %q", tc.config, err, tc.message)
		}
	}
}

func TestRequiredLiteral(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		want    literal
	}{
		{`EMP-\d{6}`, literal{"EMP-", false}},
		{`\bOPS-\d{3,6}\b`, literal{"OPS-", false}},
		{`(?i)project\s+(?:apollo|zeus)`, literal{"project", true}},
		{`(?:abc)+x`, literal{"abc", false}},
		{`a|bcd`, literal{}},
		{`(?:abcd)?x`, literal{}},
		{`ab\d`, literal{}}, // too short to be worth it
	} {
		if got := requiredLiteral(tc.pattern); got != tc.want {
			t.Errorf("requiredLiteral(%s) = %+v, want %+v", tc.pattern, got, tc.want)
		}
	}
}
