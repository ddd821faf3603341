package guardrails

import (
	"fmt"
	"regexp"
)

// injection scores known prompt-injection and jailbreak phrasings. Each
// phrase found adds its weight; phrases inside tool results (role "tool",
// text the model did not get from the user) count double, since a web page
// or file telling the model to ignore its instructions is the attack
// itself. The request is flagged when the score reaches the threshold: a
// strong phrase weighs 1 (the default threshold), a weak one 0.5.
type injection struct {
	threshold float64
}

func (r *Rule) compileInjection(config []byte) error {
	c := struct {
		Threshold *float64 `json:"threshold"`
	}{}
	if err := decodeConfig(config, &c, `"threshold" (the score that flags a request: 1 by default; a known jailbreak phrase scores 1, a weaker sign 0.5, twice that in tool results)`); err != nil {
		return err
	}
	in := &injection{threshold: 1}
	if c.Threshold != nil {
		if *c.Threshold <= 0 || *c.Threshold > 10 {
			return fmt.Errorf("config.threshold: must be more than 0 and at most 10 (got %g)", *c.Threshold)
		}
		in.threshold = *c.Threshold
	}
	r.injection = in
	r.window = 160 // the longest phrase below
	return nil
}

// signal is one phrasing: found by its anchor (a cheap substring search in
// the lowercased text), then confirmed by its pattern, anchored at the
// anchor and run on at most 160 bytes.
type signal struct {
	anchors []string
	re      *regexp.Regexp
	weight  float64
	lineTop bool // only at the start of a line (a forged "system:" turn)
}

const (
	strong = 1.0
	weak   = 0.5
)

var signals = []signal{
	{anchors: []string{"ignore"}, weight: strong, re: regexp.MustCompile(
		`^ignore\s+(?:(?:all|any|the|of|your|my|these|those|every)\s+)*(?:(?:previous|prior|above|earlier|preceding|former|foregoing|past|original|system)\s+)+(?:instructions?|prompts?|rules|directions|directives|guidelines|messages|context|commands|orders)` +
			`|^ignore\s+(?:everything|all)\s+(?:above|before|previously|you\s+were\s+told)`)},
	{anchors: []string{"disregard", "forget", "override", "bypass"}, weight: strong, re: regexp.MustCompile(
		`^(?:disregard|forget|override|bypass)\s+(?:(?:all|any|the|your|of|everything|my)\s+)*(?:(?:previous|prior|above|earlier|preceding|original|initial|safety|system|content)\s+)*(?:instructions?|prompts?|rules|guidelines|programming|directions|protocols|filters|polic(?:y|ies)|training|message|you\s+were\s+told)`)},
	{anchors: []string{"you are now", "you're now"}, weight: strong, re: regexp.MustCompile(
		`^you(?:\s+are|'re)\s+now\s+(?:dan\b|in\s+(?:developer|god|jailbreak|dan|unrestricted)\s+mode|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken)|jailbroken|free\s+(?:from|of)\s+(?:all\s+)?(?:restrictions|rules|guidelines)|no\s+longer\s+(?:bound|restricted))`)},
	{anchors: []string{"developer mode", "god mode", "jailbreak mode", "dan mode"}, weight: strong, re: regexp.MustCompile(
		`^(?:developer|god|jailbreak|dan)\s+mode\s*(?:is\s+)?(?:enabled|activated|engaged)`)},
	{anchors: []string{"do anything now"}, weight: strong, re: regexp.MustCompile(`^do\s+anything\s+now`)},
	{anchors: []string{"pretend"}, weight: strong, re: regexp.MustCompile(
		`^pretend\s+(?:that\s+)?(?:you\s+(?:are|were)\s+an?\s+\w+\s+(?:that|who)\s+|to\s+be\s+an?\s+\w+\s+(?:that|who)\s+)?(?:you\s+)?(?:have|had|has)\s+no\s+(?:restrictions|rules|limits|limitations|filters|guidelines|ethics|morals|content\s+polic)`)},
	{anchors: []string{"act as"}, weight: strong, re: regexp.MustCompile(
		`^act\s+as\s+(?:if\s+you\s+(?:have|had)\s+no\s+(?:restrictions|rules|limits|limitations|filters|guidelines)|an?\s+(?:unrestricted|unfiltered|uncensored|jailbroken)\s+|dan\b)`)},
	{anchors: []string{"system prompt", "system message", "initial instructions", "hidden instructions", "original instructions"}, weight: strong, re: nil}, // see revealAt
	{anchors: []string{"new instructions", "updated instructions"}, weight: weak, re: regexp.MustCompile(`^(?:new|updated)\s+instructions\s*:`)},
	{anchors: []string{"from now on"}, weight: weak, re: regexp.MustCompile(`^from\s+now\s+on\s*,?\s+(?:you\s+(?:are|will|must|shall)|ignore|act|respond\s+without|answer\s+without)`)},
	{anchors: []string{"without"}, weight: weak, re: regexp.MustCompile(`^without\s+(?:any\s+)?(?:restrictions|filters|censorship|ethical\s+(?:guidelines|constraints))`)},
	{anchors: []string{"jailbreak", "jailbroken"}, weight: weak, re: regexp.MustCompile(`^jailbr(?:eak|oken)\b`)},
	{anchors: []string{"system:", "### system", "[system]", "<|system|>", "<|im_start|>system"}, weight: weak, lineTop: true, re: regexp.MustCompile(`^(?:system\s*:|### system|\[system\]|<\|system\|>|<\|im_start\|>system)`)},
}

// reveal asks for the system prompt: the verb comes before the anchor.
var reveal = regexp.MustCompile(`(?:reveal|show|print|repeat|output|display|leak|dump|tell\s+me|give\s+me|write\s+out|what\s+(?:is|are|was|were))\s+(?:me\s+)?(?:your|the)\s+(?:(?:full|entire|original|initial|hidden|secret|exact|complete)\s+)*$`)

// negated reports a "never", "do not" … just before a phrase: a system
// prompt saying "never reveal your system prompt" is not an attack.
var negated = regexp.MustCompile(`(?:never|not|don't|do\s+not|must\s+not|mustn't|won't|cannot|can't)\s+$`)

// anchors are every signal's anchors, found in one pass; anchorSignal
// maps each to its signal.
var anchors, anchorSignal = func() (*needles, []int) {
	var words []string
	var idx []int
	for i, sg := range signals {
		for _, a := range sg.anchors {
			words = append(words, a)
			idx = append(idx, i)
		}
	}
	return newNeedles(words), idx
}()

// score adds up the phrases found in one text.
func (in *injection) score(t *text, role string) (float64, []Finding) {
	if role == "system" || role == "developer" {
		return 0, nil // the operator's own instructions
	}
	low := t.folded()
	mult := 1.0
	if role == "tool" || role == "function" {
		mult = 2
	}
	var total float64
	var out []Finding
	done := 0 // phrases do not overlap
	anchors.each(low, func(pos, a int) int {
		if pos < done {
			return 0
		}
		sg := &signals[anchorSignal[a]]
		anchor := anchors.words[a]
		if word(low, pos-1) && anchor[0] != '<' && anchor[0] != '[' && anchor[0] != '#' {
			return 0
		}
		start, end := pos, -1
		if sg.re == nil {
			m := reveal.FindStringIndex(low[max(0, pos-60):pos])
			if m == nil {
				return 0
			}
			start, end = max(0, pos-60)+m[0], pos+len(anchor)
		} else {
			if sg.lineTop && !lineStart(low, pos) {
				return 0
			}
			m := sg.re.FindStringIndex(low[pos:min(len(low), pos+160)])
			if m == nil {
				return 0
			}
			end = pos + m[1]
		}
		if start < done || negated.MatchString(low[max(0, start-16):start]) {
			return 0
		}
		total += sg.weight * mult
		out = append(out, Finding{"PROMPT_INJECTION", start, end})
		done = end
		return end
	})
	return total, out
}

// lineStart: only spaces between the line's start and pos.
func lineStart(s string, pos int) bool {
	for k := pos - 1; k >= 0; k-- {
		switch s[k] {
		case '\n':
			return true
		case ' ', '\t':
		default:
			return false
		}
	}
	return true
}

func (in *injection) scan(t *text, role string, out []Finding) []Finding {
	score, fs := in.score(t, role)
	if score < in.threshold {
		return out
	}
	return append(out, fs...)
}
