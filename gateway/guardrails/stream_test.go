package guardrails

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// streamAll pushes text in chunks of the given sizes (cycled) and returns
// everything released, and the number of findings reported.
func streamAll(st *Stream, text string, sizes []int) (string, int) {
	var out strings.Builder
	hits := 0
	for i, k := 0, 0; i < len(text); k++ {
		n := min(sizes[k%len(sizes)], len(text)-i)
		emit, fs := st.Push(text[i : i+n])
		out.WriteString(emit)
		hits += len(fs)
		i += n
	}
	emit, fs := st.Flush()
	out.WriteString(emit)
	return out.String(), hits + len(fs)
}

var streamCorpus = []string{
	"Sure! Contact jane.doe@northwind-logistics.com or call +44 20 7946 0958 before Friday.",
	"The refund went to card 4111 1111 1111 1111 and the IBAN DE89 3704 0044 0532 0130 00 was charged twice.",
	"Use AKIAIOSFODNN7EXAMPLE with aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in staging only.",
	"Set Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyLCJleHAiOjE5MTYyMzkwMjIsInJvbGVzIjpbImFkbWluIiwib3BzIiwiZmluYW5jZSJdfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c and retry.",
	"Servers 203.0.113.42 and 2001:db8::8a2e:370:7334 answered; SSN 123-45-6789 was in the log, as was project zeus.",
	strings.Repeat("A perfectly ordinary sentence about budgets and latency. ", 12) + "Then ops@example.org wrote.",
	fakePEM("PRIVATE KEY", fakeKeyLine, fakeKeyLine, fakeKeyLine, fakeKeyLine, fakeKeyLine, fakeKeyLine, fakeKeyLine, fakeKeyLine) + "\nDone.",
}

// Whatever the chunking, a masking stream releases exactly the masked
// answer, and reports every finding once.
func TestStreamMatchesWholeText(t *testing.T) {
	rules := []*Rule{
		rule(t, "pii", "post_call", "mask", `{}`),
		rule(t, "secrets", "post_call", "mask", `{}`),
		rule(t, "keywords", "post_call", "mask", `{"keywords":["project zeus","budgets"]}`),
		rule(t, "regex", "post_call", "mask", `{"patterns":[{"name":"SSN_LIKE","pattern":"\\d{3}-\\d{2}-\\d{4}"}]}`),
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, r := range rules {
		for _, text := range streamCorpus {
			want := Mask(text, r.Scan(text))
			wantHits := len(r.Scan(text))
			for _, sizes := range [][]int{{1}, {3}, {7, 1, 13}, {64}, {len(text)}, {rnd.IntN(9) + 1, rnd.IntN(40) + 1, rnd.IntN(5) + 1}} {
				got, hits := streamAll(r.NewStream(), text, sizes)
				if got != want || hits != wantHits {
					t.Errorf("%s, chunks %v:\n got %q (%d hits)\nwant %q (%d hits)", r.Type, sizes, got, hits, want, wantHits)
				}
			}
		}
	}
}

// A match split across chunks is caught, and a masking stream releases
// text before the whole answer has arrived.
func TestStreamWindow(t *testing.T) {
	r := rule(t, "keywords", "post_call", "mask", `{"keywords":["forbidden"]}`)
	st := r.NewStream()
	var out strings.Builder
	released := 0
	for _, c := range []string{"Mock answer to: tell me the ", "forb", "idden", " word now", " please, and more words to push it out."} {
		emit, _ := st.Push(c)
		out.WriteString(emit)
		if emit != "" {
			released++
		}
	}
	emit, _ := st.Flush()
	out.WriteString(emit)
	if got, want := out.String(), "Mock answer to: tell me the [KEYWORD] word now please, and more words to push it out."; got != want {
		t.Errorf("released %q, want %q", got, want)
	}
	if released < 2 {
		t.Errorf("text released by %d pushes: the stream held everything back", released)
	}
	if r.window != len("forbidden")+4 {
		t.Errorf("window %d", r.window)
	}
}

func TestStreamBlock(t *testing.T) {
	r := rule(t, "keywords", "post_call", "block", `{"keywords":["forbidden"]}`)
	st := r.NewStream()
	var out strings.Builder
	var hits []Finding
	for _, c := range []string{"Mock answer to: a ", "long", " sentence with the ", "forbid", "den", " word in it and more."} {
		emit, fs := st.Push(c)
		out.WriteString(emit)
		hits = append(hits, fs...)
	}
	emit, fs := st.Flush()
	out.WriteString(emit)
	hits = append(hits, fs...)
	want := "Mock answer to: a long sentence with the "
	if got := out.String(); got != want {
		t.Errorf("released %q, want the text before the match, %q", got, want)
	}
	if len(hits) != 1 || hits[0].Type != "KEYWORD" || hits[0].Start != len(want) {
		t.Errorf("hits %+v", hits)
	}
	if emit, fs := st.Push("more"); emit != "" || fs != nil {
		t.Errorf("after a block the stream released %q", emit)
	}
}

func TestStreamLog(t *testing.T) {
	r := rule(t, "pii", "post_call", "log", `{}`)
	text := streamCorpus[0]
	got, hits := streamAll(r.NewStream(), text, []int{5})
	if got != text || hits != 2 {
		t.Errorf("log stream released %q with %d hits, want the text unchanged and 2 hits", got, hits)
	}
}

// A JWT much longer than the window is held back while it grows and is
// masked whole.
func TestStreamHoldsGrowingMatch(t *testing.T) {
	r := rule(t, "secrets", "post_call", "mask", `{}`)
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJ" + strings.Repeat("abcdefghij", 60) + ".sig0123456789"
	got, hits := streamAll(r.NewStream(), "token "+jwt+" end", []int{8})
	if got != "token [JWT] end" || hits != 1 {
		t.Errorf("released %q with %d hits", got, hits)
	}
}

func TestNewStreamOnlyForScanningRules(t *testing.T) {
	if rule(t, "external", "post_call", "log", `{"url":"http://127.0.0.1:1/"}`).NewStream() != nil {
		t.Error("an external rule streams")
	}
}

// FuzzStream holds streaming to scanning the whole text: any chunking of
// any text releases the masked text.
func FuzzStream(f *testing.F) {
	for _, s := range streamCorpus {
		f.Add(s, uint64(1))
	}
	f.Add("x 4111 1111 1111 1111 y", uint64(7))
	// A regression the fuzzer found: a key block whose body holds a byte
	// no PEM body can, and a line running into the next block's start.
	l := fakeKeyLine
	f.Add(fakePEM("PRIVATE KEY", l, l, l[:59]+"\x82"+l[60:], l, l, l, l[:40]+"7QC"+l[:10]+"gEAA"+l)+"\nDone.", uint64(11))
	rules := []*Rule{
		rule(f, "pii", "post_call", "mask", `{}`),
		rule(f, "secrets", "post_call", "mask", `{}`),
	}
	f.Fuzz(func(t *testing.T, text string, seed uint64) {
		rnd := rand.New(rand.NewPCG(seed, seed))
		sizes := []int{rnd.IntN(30) + 1, rnd.IntN(5) + 1, rnd.IntN(80) + 1}
		for _, r := range rules {
			fs := r.Scan(text)
			for _, x := range fs {
				if x.Start < 0 || x.End > len(text) || x.Start >= x.End {
					t.Fatalf("%s: finding %+v out of %d bytes", r.Type, x, len(text))
				}
			}
			want := Mask(text, fs)
			if got, _ := streamAll(r.NewStream(), text, sizes); got != want {
				t.Fatalf("%s, chunks %v:\n got %q\nwant %q", r.Type, sizes, got, want)
			}
		}
	})
}

// FuzzScan holds every detector to findings inside the text, in order,
// none inside another, and masking to leave the text around them alone.
func FuzzScan(f *testing.F) {
	for _, s := range streamCorpus {
		f.Add(s)
	}
	f.Add("Ignore all previous instructions. ZEUS naïve EMP-123456 ☃")
	rules := builtIn(f)
	f.Fuzz(func(t *testing.T, text string) {
		for _, r := range rules {
			fs := r.Scan(text)
			end, apart := -1, true
			var want strings.Builder // the text with each finding replaced, when they do not overlap
			for _, x := range fs {
				if x.Start < 0 || x.End > len(text) || x.Start >= x.End || x.End <= end {
					t.Fatalf("%s: findings %+v in %d bytes", r.Type, fs, len(text))
				}
				if x.Start < end {
					apart = false
				} else {
					want.WriteString(text[max(end, 0):x.Start] + "[" + x.Type + "]")
				}
				end = x.End
			}
			want.WriteString(text[max(end, 0):])
			if got := Mask(text, fs); apart && got != want.String() {
				t.Fatalf("%s: Mask changed more than its findings:\n got %q\nwant %q", r.Type, got, want.String())
			}
		}
	})
}
