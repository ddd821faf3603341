package tokens

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/dlclark/regexp2"
	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// The tests hold the hand-written splitter and merger to tiktoken-go, run
// with the same offline vocabularies, on the same text.

var (
	loaderOnce sync.Once
	patterns   = map[*encoding]*regexp2.Regexp{
		cl100kBase: regexp2.MustCompile(`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`, regexp2.None),
		o200kBase: regexp2.MustCompile(strings.Join([]string{
			`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
			`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
			`\p{N}{1,3}`,
			` ?[^\s\p{L}\p{N}]+[\r\n/]*`,
			`\s*[\r\n]+`,
			`\s+(?!\S)`,
			`\s+`,
		}, "|"), regexp2.None),
	}
)

// reference returns tiktoken-go's encoder for enc.
func reference(t testing.TB, enc *encoding) *tiktoken.Tiktoken {
	t.Helper()
	// SetBpeLoader writes a package variable without a lock, so it is set once
	// before any encoder is built.
	loaderOnce.Do(func() { tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader()) })
	ref, err := tiktoken.GetEncoding(enc.name)
	if err != nil {
		t.Fatalf("tiktoken-go %s: %v", enc.name, err)
	}
	if err := enc.load(); err != nil {
		t.Fatal(err)
	}
	return ref
}

func splitPieces(enc *encoding, s string) []string {
	s = validUTF8(s)
	var pieces []string
	for i := 0; i < len(s); {
		end := enc.split(s, i)
		if end <= i {
			panic("split made no progress")
		}
		pieces = append(pieces, s[i:end])
		i = end
	}
	return pieces
}

func referencePieces(enc *encoding, s string) []string {
	var pieces []string
	m, _ := patterns[enc].FindStringMatch(validUTF8(s))
	for m != nil {
		pieces = append(pieces, m.String())
		m, _ = patterns[enc].FindNextMatch(m)
	}
	return pieces
}

// alphabet mixes every class the patterns tell apart: cases (including
// title case, modifier letters and letters without case), combining marks,
// digits of several kinds, apostrophes for contractions, white space of
// several kinds and line breaks, punctuation and slashes.
var alphabet = []string{
	"a", "e", "s", "t", "l", "d", "r", "v", "m", "A", "S", "T", "L", "R", "V", "E", "D", "M", "x", "Q",
	"é", "É", "ß", "ǅ", "ʰ", "ー", "中", "文", "あ", "ㄱ", "ا", "ב", "Ω", "ω", "Ж", "ж", "ſ", "K", "İ",
	"\u0301", "\u0903", "\u20dd", "क", "ि",
	"0", "1", "7", "²", "Ⅻ", "٣", "½",
	"'", "'", "’", "'s", "'LL", "'re",
	" ", " ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2028", "\u0085", "\v",
	".", ",", "!", "?", "/", "//", "-", "_", "(", ")", "{", "}", "\"", "#", "@", "😀", "👍🏽", "\u200d", "\ufffd",
}

func randomText(r *rand.Rand, maxLen int) string {
	var b strings.Builder
	for range r.IntN(maxLen + 1) {
		b.WriteString(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func TestSplitMatchesPatterns(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for enc := range patterns {
		for range 20000 {
			s := randomText(r, 24)
			got, want := splitPieces(enc, s), referencePieces(enc, s)
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
				t.Fatalf("%s split %q:\n got %q\nwant %q", enc.name, s, got, want)
			}
		}
	}
}

func TestCountMatchesTiktoken(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	long := []string{
		strings.Repeat("a", 3000),
		strings.Repeat("ab", 1000),
		strings.Repeat("=", 700),
		strings.Repeat("😀", 200),
		strings.Repeat("\u0301", 150),
	}
	for _, enc := range []*encoding{cl100kBase, o200kBase} {
		ref := reference(t, enc)
		texts := append([]string{}, long...)
		for range 5000 {
			texts = append(texts, randomText(r, 40))
		}
		// Long pieces without spaces exercise mergeLarge.
		for range 50 {
			var b strings.Builder
			for range 100 + r.IntN(300) {
				b.WriteByte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"[r.IntN(52)])
			}
			texts = append(texts, b.String())
		}
		for _, s := range texts {
			if got, want := enc.count(s), len(ref.EncodeOrdinary(s)); got != want {
				t.Fatalf("%s count %.200q = %d, tiktoken-go %d", enc.name, s, got, want)
			}
		}
	}
}

func FuzzCount(f *testing.F) {
	for _, s := range []string{"hello world", "I'm HERE'S  \n\n  x", "a\u0301b ǅx ʰ中", "x = 12345;\r\n//", "\xff\xfeinvalid"} {
		f.Add(s)
	}
	refs := map[*encoding]*tiktoken.Tiktoken{cl100kBase: reference(f, cl100kBase), o200kBase: reference(f, o200kBase)}
	f.Fuzz(func(t *testing.T, s string) {
		for enc, ref := range refs {
			got, want := splitPieces(enc, s), referencePieces(enc, s)
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
				t.Fatalf("%s split %q:\n got %q\nwant %q", enc.name, s, got, want)
			}
			if got, want := enc.count(s), len(ref.EncodeOrdinary(s)); got != want {
				t.Fatalf("%s count %.200q = %d, tiktoken-go %d", enc.name, s, got, want)
			}
		}
	})
}
