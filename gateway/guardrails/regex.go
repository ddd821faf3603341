package guardrails

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxPatterns      = 20
	maxPatternLength = 512
	maxInstructions  = 2000
)

// patternName is also the placeholder ([EMPLOYEE_ID]) and a metric label.
var patternName = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,39}$`)

func (r *Rule) compileRegex(config []byte) error {
	var c struct {
		Patterns []struct {
			Name    string `json:"name"`
			Pattern string `json:"pattern"`
		} `json:"patterns"`
	}
	if err := decodeConfig(config, &c, `"patterns" (a list of {"name": "EMPLOYEE_ID", "pattern": "EMP-\\d{6}"})`); err != nil {
		return err
	}
	if len(c.Patterns) == 0 {
		return fmt.Errorf("config.patterns: list at least one pattern, such as {\"name\": \"EMPLOYEE_ID\", \"pattern\": \"EMP-\\\\d{6}\"}")
	}
	if len(c.Patterns) > maxPatterns {
		return fmt.Errorf("config.patterns: at most %d patterns (got %d)", maxPatterns, len(c.Patterns))
	}
	p := &patterns{}
	seen := map[string]bool{}
	r.window = 0
	for i, pat := range c.Patterns {
		field := fmt.Sprintf("config.patterns[%d]", i)
		if !patternName.MatchString(pat.Name) {
			return fmt.Errorf("%s.name: must be 1 to 40 capital letters, digits or underscores starting with a letter, such as EMPLOYEE_ID (got %q)", field, pat.Name)
		}
		if seen[pat.Name] {
			return fmt.Errorf("%s.name: %s is used twice", field, pat.Name)
		}
		seen[pat.Name] = true
		re, width, err := compilePattern(pat.Pattern)
		if err != nil {
			return fmt.Errorf("%s.pattern: pattern %s: %v", field, pat.Name, err)
		}
		p.names = append(p.names, pat.Name)
		p.res = append(p.res, re)
		p.lits = append(p.lits, requiredLiteral(pat.Pattern))
		if width < 0 || width+utf8.UTFMax > defaultWindow {
			r.window = defaultWindow
		} else {
			r.window = max(r.window, width+utf8.UTFMax)
		}
	}
	r.detectors = append(r.detectors, p.find)
	return nil
}

type patterns struct {
	names []string
	res   []*regexp.Regexp
	lits  []literal
}

// literal is text every match of a pattern contains: a text without it
// is not run through the pattern.
type literal struct {
	s    string
	fold bool // compare with the lowercased text
}

func (p *patterns) find(t *text, out []Finding) []Finding {
	for i, re := range p.res {
		if l := p.lits[i]; l.s != "" {
			hay := t.s
			if l.fold {
				hay = t.folded()
			}
			if !strings.Contains(hay, l.s) {
				continue
			}
		}
		for _, m := range re.FindAllStringIndex(t.s, -1) {
			if m[1] > m[0] {
				out = append(out, Finding{p.names[i], m[0], m[1]})
			}
		}
	}
	return out
}

// compilePattern checks one admin pattern and compiles it. Go's regexp
// (RE2) runs in time linear in the input whatever the pattern, so nothing
// here protects the gateway itself: the shapes refused below are the ones
// that take exponential time in backtracking engines (PCRE, Java, Python,
// JavaScript), where admins often copy their patterns, and they usually
// signal a pattern that does not say what its author meant. It returns the
// longest match in bytes, or -1 when unbounded.
func compilePattern(pattern string) (*regexp.Regexp, int, error) {
	if pattern == "" {
		return nil, 0, fmt.Errorf("must not be empty")
	}
	if len(pattern) > maxPatternLength {
		return nil, 0, fmt.Errorf("at most %d characters (got %d)", maxPatternLength, len(pattern))
	}
	parsed, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, 0, fmt.Errorf("not a valid regular expression: %v", err)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, 0, fmt.Errorf("not a valid regular expression: %v", err)
	}
	if len(prog.Inst) > maxInstructions {
		return nil, 0, fmt.Errorf("too complex: it compiles to %d instructions, the limit is %d (large counted repeats such as {1,500} add up quickly)", len(prog.Inst), maxInstructions)
	}
	p := &shapeParser{s: pattern}
	n, err := p.alternation()
	if err != nil {
		return nil, 0, err
	}
	if n.nullable {
		return nil, 0, fmt.Errorf("matches the empty string, so it would match everywhere; make at least one part required")
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, 0, fmt.Errorf("not a valid regular expression: %v", err)
	}
	return re, maxWidth(parsed.Simplify()), nil
}

// shape is what the safety check knows of a piece of a pattern.
type shape struct {
	src       string
	first     []rune   // ranges (lo, hi pairs) of the characters a match can start with
	nullable  bool     // it can match the empty string
	unbounded bool     // it holds a *, + or {n,}
	branches  []*shape // a group's alternatives, when it has several
}

// shapeParser walks the pattern's own text rather than syntax.Parse's
// tree: the parser simplifies (?:a+)+ to a+ and (a|a) to a, which hides
// exactly the shapes to refuse.
type shapeParser struct {
	s    string
	i    int
	fold bool
}

func (p *shapeParser) alternation() (*shape, error) {
	start := p.i
	var branches []*shape
	for {
		b, err := p.concat()
		if err != nil {
			return nil, err
		}
		branches = append(branches, b)
		if p.i < len(p.s) && p.s[p.i] == '|' {
			p.i++
			continue
		}
		break
	}
	if len(branches) == 1 {
		return branches[0], nil
	}
	n := &shape{src: p.s[start:p.i], branches: branches}
	for _, b := range branches {
		n.first = append(n.first, b.first...)
		n.nullable = n.nullable || b.nullable
		n.unbounded = n.unbounded || b.unbounded
	}
	return n, nil
}

func (p *shapeParser) concat() (*shape, error) {
	start := p.i
	var items []*shape
	for p.i < len(p.s) && p.s[p.i] != '|' && p.s[p.i] != ')' {
		a, err := p.atom()
		if err != nil {
			return nil, err
		}
		if a, err = p.quantified(a); err != nil {
			return nil, err
		}
		items = append(items, a)
	}
	if len(items) == 1 {
		return items[0], nil
	}
	n := &shape{src: p.s[start:p.i], nullable: true}
	for _, it := range items {
		if n.nullable {
			n.first = append(n.first, it.first...)
		}
		n.nullable = n.nullable && it.nullable
		n.unbounded = n.unbounded || it.unbounded
	}
	return n, nil
}

var counted = regexp.MustCompile(`^\{(\d+)(,(\d*))?\}`)

// quantified reads the repetition operators after an atom and refuses the
// shapes that backtracking engines take exponential time on.
func (p *shapeParser) quantified(a *shape) (*shape, error) {
	for p.i < len(p.s) {
		start := p.i
		unbounded, optional := false, false
		switch p.s[p.i] {
		case '*':
			unbounded, optional = true, true
			p.i++
		case '+':
			unbounded = true
			p.i++
		case '?':
			optional = true
			p.i++
		case '{':
			m := counted.FindStringSubmatch(p.s[p.i:])
			if m == nil {
				return a, nil // a literal {
			}
			unbounded = m[2] != "" && m[3] == ""
			optional = m[1] == "0"
			p.i += len(m[0])
		default:
			return a, nil
		}
		if p.i < len(p.s) && p.s[p.i] == '?' {
			p.i++ // lazy
		}
		src := a.src + p.s[start:p.i]
		if unbounded {
			if a.unbounded {
				return nil, fmt.Errorf("nested quantifier %s is refused: it can take exponential time in other engines and usually signals a mistake; repeat the inner part only, or bound it as in {1,20}", src)
			}
			if x, y, ok := overlapping(a.branches); ok {
				return nil, fmt.Errorf("repeated alternation %s is refused: its branches %s and %s can match the same text, which can take exponential time in other engines; make the branches start differently or use a character class", src, x, y)
			}
			if a.nullable {
				return nil, fmt.Errorf("repetition %s is refused: it repeats something that can match nothing, which can take exponential time in other engines", src)
			}
		}
		a = &shape{src: src, first: a.first, nullable: a.nullable || optional, unbounded: a.unbounded || unbounded}
	}
	return a, nil
}

func overlapping(branches []*shape) (string, string, bool) {
	for i := range branches {
		for j := i + 1; j < len(branches); j++ {
			if intersects(branches[i].first, branches[j].first) {
				return branches[i].src, branches[j].src, true
			}
		}
	}
	return "", "", false
}

func intersects(a, b []rune) bool {
	for i := 0; i+1 < len(a); i += 2 {
		for j := 0; j+1 < len(b); j += 2 {
			if a[i] <= b[j+1] && b[j] <= a[i+1] {
				return true
			}
		}
	}
	return false
}

func (p *shapeParser) atom() (*shape, error) {
	start := p.i
	switch c := p.s[p.i]; c {
	case '(':
		p.i++
		if strings.HasPrefix(p.s[p.i:], "?") {
			// (?flags) (?flags:…) (?P<name>…) (?<name>…)
			j := p.i + 1
			if strings.HasPrefix(p.s[j:], "P<") || strings.HasPrefix(p.s[j:], "<") {
				k := strings.IndexByte(p.s[j:], '>')
				if k < 0 {
					return nil, fmt.Errorf("unterminated group name")
				}
				p.i = j + k + 1
			} else {
				k := strings.IndexAny(p.s[j:], ":)")
				if k < 0 {
					return nil, fmt.Errorf("unterminated flags")
				}
				flags := p.s[j : j+k]
				if on, _, _ := strings.Cut(flags, "-"); strings.Contains(on, "i") {
					p.fold = true // conservative: case folding only adds overlaps
				}
				p.i = j + k + 1
				if p.s[j+k] == ')' {
					return &shape{src: p.s[start:p.i], nullable: true}, nil
				}
			}
		}
		inner, err := p.alternation()
		if err != nil {
			return nil, err
		}
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return nil, fmt.Errorf("missing )")
		}
		p.i++
		return &shape{src: p.s[start:p.i], first: inner.first, nullable: inner.nullable, unbounded: inner.unbounded, branches: inner.branches}, nil
	case '[':
		j := p.i + 1
		if j < len(p.s) && p.s[j] == '^' {
			j++
		}
		if j < len(p.s) && p.s[j] == ']' {
			j++
		}
		for j < len(p.s) && p.s[j] != ']' {
			switch {
			case p.s[j] == '\\':
				j += 2
			case strings.HasPrefix(p.s[j:], "[:"):
				if k := strings.Index(p.s[j:], ":]"); k >= 0 {
					j += k + 2
				} else {
					j++
				}
			default:
				j++
			}
		}
		p.i = min(j+1, len(p.s))
	case '\\':
		j := p.i + 1
		if j >= len(p.s) {
			return nil, fmt.Errorf("trailing backslash")
		}
		switch p.s[j] {
		case 'Q':
			if k := strings.Index(p.s[j:], `\E`); k >= 0 {
				j += k + 2
			} else {
				j = len(p.s)
			}
		case 'p', 'P', 'x':
			if j+1 < len(p.s) && p.s[j+1] == '{' {
				if k := strings.IndexByte(p.s[j:], '}'); k >= 0 {
					j += k + 1
				} else {
					j = len(p.s)
				}
			} else if p.s[j] == 'x' {
				j = min(j+3, len(p.s))
			} else {
				j = min(j+2, len(p.s))
			}
		case '0', '1', '2', '3', '4', '5', '6', '7':
			k := j + 1
			for k < len(p.s) && k < j+3 && '0' <= p.s[k] && p.s[k] <= '7' {
				k++
			}
			j = k
		default:
			_, size := utf8.DecodeRuneInString(p.s[j:])
			j += size
		}
		p.i = j
	default:
		_, size := utf8.DecodeRuneInString(p.s[p.i:])
		p.i += size
	}
	return p.leaf(p.s[start:p.i])
}

// leaf describes a single-character piece (a literal, class, escape or
// anchor) through the standard parser.
func (p *shapeParser) leaf(src string) (*shape, error) {
	flags := ""
	if p.fold {
		flags = "(?i)"
	}
	re, err := syntax.Parse(flags+src, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("not a valid regular expression near %q: %v", src, err)
	}
	first, nullable := firstOf(re)
	return &shape{src: src, first: first, nullable: nullable}, nil
}

// firstOf is the set of characters a match of re can start with, and
// whether re can match the empty string.
func firstOf(re *syntax.Regexp) ([]rune, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return nil, true
		}
		r := re.Rune[0]
		out := []rune{r, r}
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				out = append(out, f, f)
			}
		}
		return out, false
	case syntax.OpCharClass:
		return re.Rune, false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return []rune{0, unicode.MaxRune}, false
	case syntax.OpCapture:
		return firstOf(re.Sub[0])
	case syntax.OpStar, syntax.OpQuest:
		f, _ := firstOf(re.Sub[0])
		return f, true
	case syntax.OpPlus:
		return firstOf(re.Sub[0])
	case syntax.OpRepeat:
		f, n := firstOf(re.Sub[0])
		return f, n || re.Min == 0
	case syntax.OpConcat:
		var out []rune
		for _, sub := range re.Sub {
			f, n := firstOf(sub)
			out = append(out, f...)
			if !n {
				return out, false
			}
		}
		return out, true
	case syntax.OpAlternate:
		var out []rune
		nullable := false
		for _, sub := range re.Sub {
			f, n := firstOf(sub)
			out = append(out, f...)
			nullable = nullable || n
		}
		return out, nullable
	}
	return nil, true // empty match and the anchors
}

// maxWidth is the longest match of re in bytes, or -1 when unbounded.
func maxWidth(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
		}
		return n
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 0
		}
		return utf8.RuneLen(re.Rune[len(re.Rune)-1])
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return utf8.UTFMax
	case syntax.OpCapture, syntax.OpQuest:
		return maxWidth(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		return -1
	case syntax.OpRepeat:
		w := maxWidth(re.Sub[0])
		if re.Max < 0 || w < 0 {
			return -1
		}
		return w * re.Max
	case syntax.OpConcat:
		n := 0
		for _, sub := range re.Sub {
			w := maxWidth(sub)
			if w < 0 {
				return -1
			}
			n += w
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, sub := range re.Sub {
			w := maxWidth(sub)
			if w < 0 {
				return -1
			}
			n = max(n, w)
		}
		return n
	}
	return 0
}

// requiredLiteral finds the longest literal that every match of pattern
// holds, when it is at least 3 bytes long (and ASCII when matched without
// case).
func requiredLiteral(pattern string) literal {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return literal{}
	}
	l := required(re.Simplify())
	if len(l.s) < 3 {
		return literal{}
	}
	if l.fold {
		for i := 0; i < len(l.s); i++ {
			if l.s[i] >= utf8.RuneSelf {
				return literal{}
			}
		}
		l.s = strings.ToLower(l.s)
	}
	return l
}

func required(re *syntax.Regexp) literal {
	switch re.Op {
	case syntax.OpLiteral:
		return literal{string(re.Rune), re.Flags&syntax.FoldCase != 0}
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		var best literal
		for _, sub := range re.Sub {
			if l := required(sub); len(l.s) > len(best.s) {
				best = l
			}
		}
		return best
	}
	return literal{}
}
