package tokens

import (
	"testing"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// The packed vocabulary answers as the map it was built from, for every
// token, and knows no others.
func TestVocab(t *testing.T) {
	ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe("o200k_base.tiktoken")
	if err != nil {
		t.Fatal(err)
	}
	v := newVocab(ranks)
	for tok, want := range ranks {
		if got, ok := v.lookup(tok); !ok || got != want {
			t.Fatalf("lookup(%q) = %d %v, want %d", tok, got, ok, want)
		}
	}
	for _, s := range []string{"", "tollgate-not-a-token-§§§", "\x00\x01\x02\x03\x04\x05\x06\x07"} {
		if _, in := ranks[s]; in {
			continue
		}
		if r, ok := v.lookup(s); ok {
			t.Errorf("lookup(%q) = %d, want no token", s, r)
		}
	}
}
