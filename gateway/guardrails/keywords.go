package guardrails

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxKeywords      = 1000
	maxKeywordLength = 200
)

func (r *Rule) compileKeywords(config []byte) error {
	var c struct {
		Keywords      []string `json:"keywords"`
		CaseSensitive bool     `json:"case_sensitive"`
	}
	if err := decodeConfig(config, &c, `"keywords" (a list of words or phrases) and "case_sensitive" (true or false)`); err != nil {
		return err
	}
	if len(c.Keywords) == 0 {
		return fmt.Errorf("config.keywords: list at least one word or phrase")
	}
	if len(c.Keywords) > maxKeywords {
		return fmt.Errorf("config.keywords: at most %d keywords (got %d)", maxKeywords, len(c.Keywords))
	}
	k := &keywords{fold: !c.CaseSensitive}
	longest := 0
	for i, w := range c.Keywords {
		w = strings.TrimSpace(w)
		if w == "" {
			return fmt.Errorf("config.keywords[%d]: must not be empty", i)
		}
		if len(w) > maxKeywordLength {
			return fmt.Errorf("config.keywords[%d]: at most %d bytes (got %d)", i, maxKeywordLength, len(w))
		}
		if !utf8.ValidString(w) {
			return fmt.Errorf("config.keywords[%d]: must be valid UTF-8", i)
		}
		if k.fold {
			w = foldSameLength(w)
		}
		k.words = append(k.words, w)
		longest = max(longest, len(w))
	}
	k.prepare()
	r.detectors = append(r.detectors, k.find)
	r.window = longest + utf8.UTFMax // the keyword and the character after it
	return nil
}

// keywords matches whole words or phrases: a keyword that starts (ends)
// with a letter or digit must not have one just before (after) it.
type keywords struct {
	words     []string
	set       *needles
	wordStart []bool // the keyword starts with a letter or digit: check the boundary
	wordEnd   []bool
	fold      bool
}

func (k *keywords) prepare() {
	k.set = newNeedles(k.words)
	for _, w := range k.words {
		first, _ := utf8.DecodeRuneInString(w)
		last, _ := utf8.DecodeLastRuneInString(w)
		k.wordStart = append(k.wordStart, isWordRune(first))
		k.wordEnd = append(k.wordEnd, isWordRune(last))
	}
}

func (k *keywords) find(t *text, out []Finding) []Finding {
	s := t.s
	if k.fold {
		s = t.folded()
	}
	k.set.each(s, func(start, w int) int {
		end := start + len(k.words[w])
		if k.wordStart[w] && start > 0 {
			if r, _ := utf8.DecodeLastRuneInString(s[:start]); isWordRune(r) {
				return 0
			}
		}
		if k.wordEnd[w] && end < len(s) {
			if r, _ := utf8.DecodeRuneInString(s[end:]); isWordRune(r) {
				return 0
			}
		}
		out = append(out, Finding{"KEYWORD", start, end})
		return 0 // other keywords may start here too; dedupe keeps the longest
	})
	return out
}

func isWordRune(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }
