package guardrails

import (
	"encoding/binary"
	"strings"
	"unicode"
	"unicode/utf8"
)

// needles finds many short strings in one pass over a text: a position is
// looked at only when its first two bytes start one of them, which a
// bitset of byte pairs answers. Searching for each string in turn reads
// the text once per string; this reads it once.
type needles struct {
	words  []string
	pairs  [1 << 16 / 64]uint64 // byte pairs that start a word
	byPair map[uint16][]int     // indexes into words, in their order
	single [256][]int           // one-byte words
	short  bool                 // any one-byte words
}

func newNeedles(words []string) *needles {
	n := &needles{words: words, byPair: map[uint16][]int{}}
	for i, w := range words {
		if len(w) == 1 {
			n.single[w[0]] = append(n.single[w[0]], i)
			n.short = true
			continue
		}
		p := uint16(w[0])<<8 | uint16(w[1])
		n.pairs[p/64] |= 1 << (p % 64)
		n.byPair[p] = append(n.byPair[p], i)
	}
	return n
}

// each calls found for every word that starts at every position of s, in
// order of position and then of words; found returns where to go on from
// (a position at or before the current one goes on with the next).
func (n *needles) each(s string, found func(pos, word int) int) {
	for i := 0; i+1 < len(s); i++ {
		if n.short {
			for _, w := range n.single[s[i]] {
				if next := found(i, w); next > i+1 {
					i = next - 1
				}
			}
		}
		p := uint16(s[i])<<8 | uint16(s[i+1])
		if n.pairs[p/64]&(1<<(p%64)) == 0 {
			continue
		}
		for _, w := range n.byPair[p] {
			if strings.HasPrefix(s[i:], n.words[w]) {
				if next := found(i, w); next > i+1 {
					i = next - 1
					break
				}
			}
		}
	}
	if len(s) > 0 && n.short {
		for _, w := range n.single[s[len(s)-1]] {
			found(len(s)-1, w)
		}
	}
}

// foldSameLength lowercases s rune by rune where that keeps the rune's
// encoded length (all of ASCII, most of Unicode), so that offsets found in
// the result are offsets in s. ASCII goes eight bytes at a time.
func foldSameLength(s string) string {
	b := []byte(s)
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if x&high != 0 {
			break
		}
		// A byte's top bit is set in ge when it is at least 'A', in gt
		// when it is above 'Z'; capitals get 0x20 added.
		ge := x + (0x80-'A')*ones
		gt := x + (0x80-'Z'-1)*ones
		x |= (ge &^ gt & high) >> 2
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if l := unicode.ToLower(r); r != utf8.RuneError && l != r && utf8.RuneLen(l) == size {
			utf8.EncodeRune(b[i:], l)
		}
		i += size
	}
	return string(b)
}
