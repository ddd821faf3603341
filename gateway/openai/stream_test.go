package openai

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestStreamCopier(t *testing.T) {
	long := strings.Repeat("x", 70_000) // longer than the read buffer
	chunk := func(content string) string {
		return `data: {"choices":[{"index":0,"delta":{"content":"` + content + `"}}],"usage":null}` + "\n\n"
	}
	usage := `data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}` + "\n\n"
	done := "data: [DONE]\n\n"
	cases := []struct {
		name       string
		in         string
		drop       bool
		want       string
		hasUsage   bool
		chunks     int
		wantFlushs int
	}{
		{"passes everything with usage", chunk("a") + chunk("b") + usage + done, false, chunk("a") + chunk("b") + usage + done, true, 2, 1},
		{"drops the usage chunk", chunk("a") + usage + done, true, chunk("a") + done, true, 1, 1},
		{"no usage", chunk("a") + done, true, chunk("a") + done, false, 1, 1},
		{"long line kept whole", chunk(long) + done, false, chunk(long) + done, false, 1, 1},
		{"comments and events pass", ": keep-alive\n\nevent: ping\ndata: {}\n\n" + done, false, ": keep-alive\n\nevent: ping\ndata: {}\n\n" + done, false, 1, 1},
		{"no trailing blank line", chunk("a") + "data: [DONE]", false, chunk("a") + "data: [DONE]\n\n", false, 1, 1},
		{"last blank line missing", chunk("a") + chunk("b")[:len(chunk("b"))-1], false, chunk("a") + chunk("b"), false, 2, 1},
		{"ends inside an event", chunk("a") + chunk("b")[:30], false, chunk("a"), false, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			flushes := 0
			sc := StreamCopier{DropUsageChunk: c.drop}
			if err := sc.Copy(&out, func() { flushes++ }, strings.NewReader(c.in)); err != nil {
				t.Fatal(err)
			}
			if out.String() != c.want {
				t.Errorf("output differs:\n got %.200q\nwant %.200q", out.String(), c.want)
			}
			if sc.HasUsage != c.hasUsage || (c.hasUsage && (sc.Usage.PromptTokens != 11 || sc.Usage.CompletionTokens != 3)) {
				t.Errorf("usage %v %+v", sc.HasUsage, sc.Usage)
			}
			if sc.Chunks != c.chunks {
				t.Errorf("chunks %d, want %d", sc.Chunks, c.chunks)
			}
			if flushes < c.wantFlushs {
				t.Errorf("%d flushes", flushes)
			}
		})
	}
}

// A connection lost inside an event drops that event: written, its torn
// JSON would run into the error event the gateway sends next.
func TestStreamCopierDropsATornEvent(t *testing.T) {
	whole := `data: {"choices":[{"index":0,"delta":{"content":"a"}}]}` + "\n\n"
	torn := `data: {"choices":[{"index":0,"delta":{"cont`
	var out bytes.Buffer
	sc := StreamCopier{}
	err := sc.Copy(&out, func() {}, io.MultiReader(strings.NewReader(whole+torn), iotest.ErrReader(io.ErrUnexpectedEOF)))
	if err != io.ErrUnexpectedEOF || out.String() != whole || sc.Chunks != 1 {
		t.Fatalf("err %v, chunks %d, out %q", err, sc.Chunks, out.String())
	}
	// Whole lines without their blank line, then a broken connection:
	// dropped too, since the event may have had more lines.
	out.Reset()
	err = sc.Copy(&out, func() {}, io.MultiReader(strings.NewReader(whole+whole[:len(whole)-1]), iotest.ErrReader(io.ErrUnexpectedEOF)))
	if err != io.ErrUnexpectedEOF || out.String() != whole {
		t.Fatalf("err %v, out %q", err, out.String())
	}
}

func TestErrorMessage(t *testing.T) {
	if got := ErrorMessage([]byte(`{"error":{"message":"bad thing","type":"x"}}`)); got != "bad thing" {
		t.Errorf("envelope: %q", got)
	}
	if got := ErrorMessage([]byte("  upstream exploded  ")); got != "upstream exploded" {
		t.Errorf("plain: %q", got)
	}
	if got := ErrorMessage([]byte(strings.Repeat("y", 500))); len(got) > 210 {
		t.Errorf("not truncated: %d", len(got))
	}
}

func TestUsageOf(t *testing.T) {
	u, ok := UsageOf([]byte(`{"usage":{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}`))
	if !ok || u.PromptTokens != 4 || u.CompletionTokens != 6 {
		t.Errorf("usage %+v %v", u, ok)
	}
	if _, ok := UsageOf([]byte(`{"id":"x"}`)); ok {
		t.Error("usage found where there is none")
	}
}

func TestHasUsageObject(t *testing.T) {
	for _, c := range []struct {
		data string
		want bool
	}{
		{`{"choices":[{"delta":{"content":"hi"}}],"usage":null}`, false},
		{`{"choices":[],"usage":{"prompt_tokens":3}}`, true},
		{`{"choices":[], "usage" :  {"prompt_tokens":3}}`, true},
		{`{"choices":[{"delta":{"content":"the \"usage\": word"}}],"usage":null}`, false},
		{`{"choices":[{"delta":{"content":"\"usage\":"}}],"usage":{"total_tokens":1}}`, true},
		{`{"choices":[]}`, false},
		{`{"usage"`, false},
	} {
		if got := hasUsageObject([]byte(c.data)); got != c.want {
			t.Errorf("hasUsageObject(%s) = %v, want %v", c.data, got, c.want)
		}
	}
}
