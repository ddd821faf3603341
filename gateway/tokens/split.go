package tokens

import (
	"unicode"
	"unicode/utf8"
)

// Before BPE, tiktoken cuts text into pieces with one regular expression per
// encoding. tiktoken-go runs those expressions with a backtracking engine
// over a []rune copy of the text, which costs about 5 ms per 4,000 tokens;
// the functions here walk the same alternatives by hand, in the same order
// and with the same backtracking outcome, over the string itself. The tests
// compare every piece against the original expressions.
//
// cl100k_base:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// o200k_base:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+

// Character classes, one bit each.
const (
	classLetter  = 1 << iota // \p{L}
	classNumber              // \p{N}
	classSpace               // \s
	classNewline             // \r or \n
	classUpper               // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]: may open a word in o200k_base
	classLower               // [\p{Ll}\p{Lm}\p{Lo}\p{M}]: may continue a word in o200k_base
)

var asciiClasses = func() (t [utf8.RuneSelf]uint8) {
	for r := range rune(utf8.RuneSelf) {
		t[r] = lookupClasses(r)
	}
	return t
}()

func lookupClasses(r rune) uint8 {
	var c uint8
	if unicode.IsLetter(r) {
		c |= classLetter
	}
	if unicode.IsNumber(r) {
		c |= classNumber
	}
	if unicode.IsSpace(r) {
		c |= classSpace
	}
	if r == '\r' || r == '\n' {
		c |= classNewline
	}
	upper := unicode.In(r, unicode.Lu, unicode.Lt, unicode.Lm, unicode.Lo, unicode.M)
	if upper {
		c |= classUpper
	}
	if unicode.In(r, unicode.Ll, unicode.Lm, unicode.Lo, unicode.M) {
		c |= classLower
	}
	return c
}

// classesAt decodes the rune at i and returns its classes and width.
// Text is made valid UTF-8 before splitting (see validUTF8).
func classesAt(s string, i int) (uint8, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return asciiClasses[b], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return lookupClasses(r), n
}

// isPunct reports [^\s\p{L}\p{N}].
func isPunct(c uint8) bool { return c&(classSpace|classLetter|classNumber) == 0 }

// isPrefix reports [^\r\n\p{L}\p{N}], the optional character before a word.
func isPrefix(c uint8) bool { return c&(classNewline|classLetter|classNumber) == 0 }

// run returns the end of the run of characters that have one of want, from i.
func run(s string, i int, want uint8) int {
	for i < len(s) {
		c, n := classesAt(s, i)
		if c&want == 0 {
			break
		}
		i += n
	}
	return i
}

// contraction returns the end of (?i:'s|'t|'re|'ve|'m|'ll|'d) at i, or -1.
// Only ASCII letters lower-case to these, so ASCII folding is exact.
func contraction(s string, i int) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return -1
	}
	switch s[i+1] | 0x20 {
	case 's', 't', 'm', 'd':
		return i + 2
	case 'r', 'v', 'l':
		if i+2 < len(s) {
			a, b := s[i+1]|0x20, s[i+2]|0x20
			if (a == 'r' || a == 'v') && b == 'e' || a == 'l' && b == 'l' {
				return i + 3
			}
		}
	}
	return -1
}

// numbers returns the end of \p{N}{1,3} at i, whose first rune is a number.
func numbers(s string, i, n int) int {
	end := i + n
	for range 2 {
		if end >= len(s) {
			break
		}
		c, n := classesAt(s, end)
		if c&classNumber == 0 {
			break
		}
		end += n
	}
	return end
}

// punctuation returns the end of ` ?[^\s\p{L}\p{N}]+` followed by a run of
// trail characters, at i, or -1.
func punctuation(s string, i int, trail uint8, slash bool) int {
	j := i
	if s[j] == ' ' {
		j++
	}
	if j >= len(s) {
		return -1
	}
	c, n := classesAt(s, j)
	if !isPunct(c) {
		return -1
	}
	end := j + n
	for end < len(s) {
		c, n := classesAt(s, end)
		if !isPunct(c) {
			break
		}
		end += n
	}
	for end < len(s) && (s[end] == '\r' || s[end] == '\n' || (slash && s[end] == '/')) {
		end++
	}
	return end
}

// whitespace returns the end of `\s*[\r\n]+|\s+(?!\S)|\s+` at i, whose rune
// is white space.
func whitespace(s string, i int) int {
	end, last, lastNewline := i, i, -1
	for end < len(s) {
		c, n := classesAt(s, end)
		if c&classSpace == 0 {
			break
		}
		if c&classNewline != 0 {
			lastNewline = end
		}
		last = end
		end += n
	}
	switch {
	case lastNewline >= 0: // \s*[\r\n]+ backtracks to the last line break
		return lastNewline + 1
	case end == len(s) || last == i: // \s+(?!\S) at the end of text, or \s+ alone
		return end
	default: // \s+(?!\S) leaves the last space to the word after it
		return last
	}
}

// splitCL100K returns the end of the cl100k_base piece that starts at i.
func splitCL100K(s string, i int) int {
	c, n := classesAt(s, i)
	if s[i] == '\'' {
		if end := contraction(s, i); end >= 0 {
			return end
		}
	}
	switch {
	case c&classLetter != 0:
		return run(s, i+n, classLetter)
	case isPrefix(c) && i+n < len(s):
		if next, m := classesAt(s, i+n); next&classLetter != 0 {
			return run(s, i+n+m, classLetter)
		}
	case c&classNumber != 0:
		return numbers(s, i, n)
	}
	if end := punctuation(s, i, classNewline, false); end >= 0 {
		return end
	}
	return whitespace(s, i)
}

// splitO200K returns the end of the o200k_base piece that starts at i.
func splitO200K(s string, i int) int {
	c, n := classesAt(s, i)
	prefixed := isPrefix(c)
	if prefixed {
		if end := wordLowerO200K(s, i+n); end >= 0 {
			return end
		}
	}
	if end := wordLowerO200K(s, i); end >= 0 {
		return end
	}
	if prefixed {
		if end := wordUpperO200K(s, i+n); end >= 0 {
			return end
		}
	}
	if end := wordUpperO200K(s, i); end >= 0 {
		return end
	}
	if c&classNumber != 0 {
		return numbers(s, i, n)
	}
	if end := punctuation(s, i, classNewline, true); end >= 0 {
		return end
	}
	return whitespace(s, i)
}

// wordLowerO200K matches [Upper]*[Lower]+(contraction)? at i, or returns -1.
// When the greedy [Upper]* run is not followed by a [Lower] character, the
// engine backtracks into the run to its last character that is also [Lower]
// (Lm, Lo and M are in both classes) and ends the word there.
func wordLowerO200K(s string, i int) int {
	end, lastLowerEnd := i, -1
	for end < len(s) {
		c, n := classesAt(s, end)
		if c&classUpper == 0 {
			break
		}
		end += n
		if c&classLower != 0 {
			lastLowerEnd = end
		}
	}
	if end < len(s) {
		if c, n := classesAt(s, end); c&classLower != 0 {
			return withContraction(s, run(s, end+n, classLower))
		}
	}
	if lastLowerEnd < 0 {
		return -1
	}
	return withContraction(s, lastLowerEnd)
}

// wordUpperO200K matches [Upper]+[Lower]*(contraction)? at i, or returns -1.
func wordUpperO200K(s string, i int) int {
	if i >= len(s) {
		return -1
	}
	c, n := classesAt(s, i)
	if c&classUpper == 0 {
		return -1
	}
	end := run(s, i+n, classUpper)
	return withContraction(s, run(s, end, classLower))
}

func withContraction(s string, end int) int {
	if c := contraction(s, end); c >= 0 {
		return c
	}
	return end
}

// validUTF8 replaces each invalid byte with U+FFFD, as tiktoken does when it
// turns text into runes, so that splitting only sees whole runes.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b = utf8.AppendRune(b, r)
		i += n
	}
	return string(b)
}
