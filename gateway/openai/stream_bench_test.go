package openai

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkStreamCopier passes a 50-chunk answer through and finds its
// usage, as the gateway does for every streamed chat completion: a role
// chunk, 47 content chunks, a finish chunk and the usage chunk, then
// [DONE].
func BenchmarkStreamCopier(b *testing.B) {
	body := sseAnswer(47)
	rd := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		sc := StreamCopier{DropUsageChunk: true}
		if err := sc.Copy(io.Discard, func() {}, rd); err != nil {
			b.Fatal(err)
		}
		if !sc.HasUsage || !sc.Done || sc.Chunks != 49 {
			b.Fatalf("usage %v, done %v, %d chunks", sc.HasUsage, sc.Done, sc.Chunks)
		}
	}
}

// sseAnswer is a chat completion stream as OpenAI sends it with
// include_usage: usage is null on every chunk but the last.
func sseAnswer(words int) []byte {
	const head = `{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_06737a9306",`
	var buf bytes.Buffer
	event := func(rest string) { fmt.Fprintf(&buf, "data: %s%s}\n\n", head, rest) }
	event(`"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null`)
	for i := range words {
		event(fmt.Sprintf(`"choices":[{"index":0,"delta":{"content":" word%d"},"logprobs":null,"finish_reason":null}],"usage":null`, i))
	}
	event(`"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null`)
	event(fmt.Sprintf(`"choices":[],"usage":{"prompt_tokens":212,"completion_tokens":%d,"total_tokens":%d,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}`, words, 212+words))
	buf.WriteString("data: [DONE]\n\n")
	return buf.Bytes()
}
