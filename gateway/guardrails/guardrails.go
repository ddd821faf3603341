// Package guardrails checks prompts and answers: it finds personal data,
// credentials, keywords, admin-defined patterns, prompt injection and
// oversized prompts offline, and asks an external service when an admin
// configured one. It knows nothing of keys, teams or HTTP handlers: the
// gateway decides which rules apply and what to do with their outcome, and
// the admin app calls Compile to refuse a bad definition.
//
// A rule has a type (what it looks for), a mode (pre_call on the prompt,
// during_call on the prompt alongside the upstream call, post_call on the
// answer) and an action (block, mask, log). docs/guardrails.md describes
// each type's config.
package guardrails

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"tollgate/store"
)

// Finding is one match in a text: its type (EMAIL, AWS_ACCESS_KEY,
// KEYWORD, a regex pattern's name …) and where it is, in bytes.
type Finding struct {
	Type       string
	Start, End int
}

// Rule is a compiled guardrail, safe for concurrent use.
type Rule struct {
	Name      string
	Type      string
	Mode      string
	Action    string
	DefaultOn bool
	Enabled   bool
	TeamIDs   []string

	// detectors find matches in one text, in priority order: when two
	// findings cover the same bytes the first detector's is kept.
	detectors []detector
	window    int // bytes a streamed answer is held back: the longest match a detector can still be growing

	injection *injection
	size      *sizeLimit
	external  *external
}

// detector appends its findings in t to out.
type detector func(t *text, out []Finding) []Finding

// Compile checks a guardrail definition and builds its rule. Errors name
// the field at fault and say what is allowed; the admin API shows them as
// they are.
func Compile(g store.Guardrail) (*Rule, error) {
	r := &Rule{Name: g.Name, Type: g.Type, Mode: g.Mode, Action: g.Action, DefaultOn: g.DefaultOn, Enabled: g.Enabled,
		TeamIDs: []string(g.TeamIDs), window: defaultWindow}
	switch g.Mode {
	case store.ModePreCall, store.ModeDuringCall, store.ModePostCall:
	default:
		return nil, fmt.Errorf("mode: must be pre_call, during_call or post_call (got %q)", g.Mode)
	}
	switch g.Action {
	case store.ActionBlock, store.ActionMask, store.ActionLog:
	default:
		return nil, fmt.Errorf("action: must be block, mask or log (got %q)", g.Action)
	}
	if g.Mode == store.ModeDuringCall && g.Action == store.ActionMask {
		return nil, errors.New("action: mask is not possible during_call: the prompt is already on its way to the provider; use pre_call to mask, or block or log during_call")
	}
	config := []byte(g.Config)
	if len(strings.TrimSpace(string(config))) == 0 || string(config) == "null" {
		config = []byte("{}")
	}
	var err error
	switch g.Type {
	case store.GuardrailPII:
		err = r.compilePII(config)
	case store.GuardrailSecrets:
		err = r.compileSecrets(config)
	case store.GuardrailKeywords:
		err = r.compileKeywords(config)
	case store.GuardrailRegex:
		err = r.compileRegex(config)
	case store.GuardrailPromptInjection:
		err = r.compileInjection(config)
	case store.GuardrailMaxPromptSize:
		err = r.compileSize(config)
	case store.GuardrailExternal:
		err = r.compileExternal(config)
	default:
		return nil, fmt.Errorf("type: must be one of pii, secrets, keywords, regex, prompt_injection, max_prompt_size, external (got %q)", g.Type)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// decodeConfig reads a type's config strictly, so a misspelt field is an
// error rather than a silently ignored setting.
func decodeConfig(config []byte, v any, fields string) error {
	dec := json.NewDecoder(strings.NewReader(string(config)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return fmt.Errorf("config.%s: wrong type (%s expected)", ute.Field, ute.Type)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("config: unknown field %s; this type takes %s", f, fields)
		}
		return fmt.Errorf("config: must be a JSON object with %s: %v", fields, err)
	}
	return nil
}

// Scan finds every match of the rule in one text. max_prompt_size and
// external rules find nothing here: they judge a whole request (Check).
func (r *Rule) Scan(s string) []Finding {
	t := &text{s: s}
	var out []Finding
	for _, d := range r.detectors {
		out = d(t, out)
	}
	if r.injection != nil {
		out = r.injection.scan(t, "", out)
	}
	return dedupe(out)
}

// dedupe sorts findings by position and drops those inside another one
// (an OpenAI key inside a generic api_key=… value, a phone number that is
// also a card): the earlier detector's finding wins on equal spans.
func dedupe(fs []Finding) []Finding {
	if len(fs) < 2 {
		return fs
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return cmp.Compare(b.End, a.End)
	})
	out := fs[:1]
	maxEnd := fs[0].End
	for _, f := range fs[1:] {
		if f.End <= maxEnd {
			continue
		}
		out = append(out, f)
		maxEnd = f.End
	}
	return out
}

// Mask replaces each finding with [TYPE]. Overlapping findings are merged
// into one placeholder named after the first.
func Mask(s string, findings []Finding) string {
	if len(findings) == 0 {
		return s
	}
	fs := slices.Clone(findings)
	slices.SortStableFunc(fs, func(a, b Finding) int { return cmp.Compare(a.Start, b.Start) })
	var b strings.Builder
	b.Grow(len(s))
	pos := 0
	for i := 0; i < len(fs); {
		f := fs[i]
		start, end := max(f.Start, pos), f.End
		for i++; i < len(fs) && fs[i].Start < end; i++ {
			end = max(end, fs[i].End)
		}
		start, end = min(max(start, 0), len(s)), min(end, len(s))
		if end <= start {
			continue
		}
		b.WriteString(s[pos:start])
		b.WriteString("[" + f.Type + "]")
		pos = end
	}
	b.WriteString(s[pos:])
	return b.String()
}

// text is one text being scanned, with its lowercased copy made on first
// use by the detectors that match without case.
type text struct {
	s     string
	lower string
	low   bool
}

// folded returns s lowercased byte for byte the same length
// (foldSameLength), so offsets found in it are offsets in s.
func (t *text) folded() string {
	if !t.low {
		t.lower, t.low = foldSameLength(t.s), true
	}
	return t.lower
}

// defaultWindow is how much of a streamed answer is held back when a rule's
// longest possible match is not known more precisely: enough for an e-mail
// address (64 + 1 + 190 bytes at most here) and every credential format.
const defaultWindow = 256

// httpClient calls external guardrails; timeouts come from each rule.
var httpClient = &http.Client{Transport: &http.Transport{
	Proxy:               http.ProxyFromEnvironment,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     90 * time.Second,
}}
