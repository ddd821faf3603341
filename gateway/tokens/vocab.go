package tokens

import (
	"hash/maphash"
	"math/bits"
)

// vocab is a BPE vocabulary packed for lookups: the tokens end to end in
// one string, and an open-addressing table of their positions. It holds no
// pointers but one, so the garbage collector never walks its 200,000
// entries, and it takes about a third of the memory of a map[string]int.
// Every governed request counts its prompt with it, and the gateway keeps
// it for its whole life.
type vocab struct {
	data  string   // the tokens, concatenated
	start []uint32 // token i is data[start[i]:start[i+1]]
	rank  []uint32 // token i's rank
	slots []uint32 // token index + 1 by hash; 0 is empty
	mask  uint64
	seed  maphash.Seed
}

func newVocab(ranks map[string]int) *vocab {
	v := &vocab{
		start: make([]uint32, 0, len(ranks)+1),
		rank:  make([]uint32, 0, len(ranks)),
		seed:  maphash.MakeSeed(),
	}
	size := 0
	for tok := range ranks {
		size += len(tok)
	}
	data := make([]byte, 0, size)
	for tok, r := range ranks {
		v.start = append(v.start, uint32(len(data)))
		v.rank = append(v.rank, uint32(r))
		data = append(data, tok...)
	}
	v.start = append(v.start, uint32(len(data)))
	v.data = string(data)
	// At most half full, so a miss ends after a probe or two.
	n := 1 << bits.Len(uint(2*len(ranks)))
	v.slots, v.mask = make([]uint32, n), uint64(n-1)
	for i := range v.rank {
		h := maphash.String(v.seed, v.token(i)) & v.mask
		for v.slots[h] != 0 {
			h = (h + 1) & v.mask
		}
		v.slots[h] = uint32(i + 1)
	}
	return v
}

func (v *vocab) token(i int) string { return v.data[v.start[i]:v.start[i+1]] }

// lookup returns the rank of s as one token.
func (v *vocab) lookup(s string) (int, bool) {
	for h := maphash.String(v.seed, s) & v.mask; ; h = (h + 1) & v.mask {
		i := v.slots[h]
		if i == 0 {
			return 0, false
		}
		if v.token(int(i-1)) == s {
			return int(v.rank[i-1]), true
		}
	}
}
