package tokens

import (
	"container/heap"
	"math"
)

// count returns the number of tokens of text: each piece is one token when
// the vocabulary has it whole, which is most of them, or else as many as byte
// pair merging leaves.
func (e *encoding) count(text string) int {
	text = validUTF8(text)
	n := 0
	for i := 0; i < len(text); {
		end := e.split(text, i)
		n += e.countPiece(text[i:end])
		i = end
	}
	return n
}

// smallPiece is the longest piece merged by rescanning every pair after
// each merge; longer ones, such as a long run of one letter, use a heap so
// that a hostile prompt cannot make counting quadratic.
const smallPiece = 64

func (e *encoding) countPiece(piece string) int {
	if len(piece) == 1 {
		return 1
	}
	if _, ok := e.vocab.lookup(piece); ok {
		return 1
	}
	if len(piece) <= smallPiece {
		return e.mergeSmall(piece)
	}
	return e.mergeLarge(piece)
}

// rank returns the rank of b as one token, or math.MaxInt if it is none.
func (e *encoding) rank(b string) int {
	if len(b) > e.maxTokenLen {
		return math.MaxInt
	}
	if r, ok := e.vocab.lookup(b); ok {
		return r
	}
	return math.MaxInt
}

// mergeSmall applies byte pair merging: repeatedly join the adjacent pair of
// parts whose union has the lowest rank, the leftmost on a tie, until no
// union is a token. Every single byte is a token, so the parts left are
// the tokens.
func (e *encoding) mergeSmall(piece string) int {
	var startsBuf [smallPiece + 1]int
	var ranksBuf [smallPiece]int
	// starts[k] is where part k begins; the last entry is len(piece).
	starts := startsBuf[:len(piece)+1]
	for k := range starts {
		starts[k] = k
	}
	// ranks[k] is the rank of part k joined with part k+1.
	ranks := ranksBuf[:len(piece)-1]
	for k := range ranks {
		ranks[k] = e.rank(piece[k : k+2])
	}
	for len(ranks) > 0 {
		best, at := math.MaxInt, -1
		for k, r := range ranks {
			if r < best {
				best, at = r, k
			}
		}
		if at < 0 {
			break
		}
		starts = append(starts[:at+1], starts[at+2:]...)
		ranks = append(ranks[:at], ranks[at+1:]...)
		if at < len(ranks) {
			ranks[at] = e.rank(piece[starts[at]:starts[at+2]])
		}
		if at > 0 {
			ranks[at-1] = e.rank(piece[starts[at-1]:starts[at+1]])
		}
	}
	return len(starts) - 1
}

// mergeLarge is mergeSmall with the parts in a linked list and the pairs in
// a heap ordered by (rank, position), so the pair chosen each time is the
// same. Pairs outdated by a merge stay in the heap and are skipped.
func (e *encoding) mergeLarge(piece string) int {
	n := len(piece)
	// Parts are named by the offset they begin at; next[k] is where the part
	// after part k begins, prev[k] where the one before begins (-1 for none).
	next := make([]int, n)
	prev := make([]int, n)
	for k := range n {
		next[k], prev[k] = k+1, k-1
	}
	end := func(k int) int { // end of the pair that part k begins
		if next[k] >= n {
			return -1
		}
		return next[next[k]]
	}
	var h pairHeap
	for k := 0; k+1 < n; k++ {
		if r := e.rank(piece[k : k+2]); r != math.MaxInt {
			h = append(h, pair{rank: r, start: k, end: k + 2})
		}
	}
	heap.Init(&h)
	parts := n
	for h.Len() > 0 {
		p := heap.Pop(&h).(pair)
		if prev[p.start] == -2 || end(p.start) != p.end {
			continue // a part of this pair was merged into another since
		}
		gone := next[p.start]
		next[p.start] = next[gone]
		if next[gone] < n {
			prev[next[gone]] = p.start
		}
		prev[gone] = -2
		parts--
		if pe := end(p.start); pe >= 0 {
			if r := e.rank(piece[p.start:pe]); r != math.MaxInt {
				heap.Push(&h, pair{rank: r, start: p.start, end: pe})
			}
		}
		if before := prev[p.start]; before >= 0 {
			if r := e.rank(piece[before:p.end]); r != math.MaxInt {
				heap.Push(&h, pair{rank: r, start: before, end: p.end})
			}
		}
	}
	return parts
}

type pair struct{ rank, start, end int }

type pairHeap []pair

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].start < h[j].start
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pair)) }
func (h *pairHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}
