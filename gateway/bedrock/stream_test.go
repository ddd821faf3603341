package bedrock

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"tollgate/gateway/openai"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// requestFixture is the OpenAI side of a testdata/requests file.
func requestFixture(t testing.TB, name string) []byte {
	t.Helper()
	var f struct {
		OpenAI json.RawMessage `json:"openai"`
	}
	if err := json.Unmarshal(readFile(t, "testdata/requests/"+name+".json"), &f); err != nil {
		t.Fatal(err)
	}
	return f.OpenAI
}

// golden compares got with a testdata file, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want := readFile(t, path); !bytes.Equal(got, want) {
		t.Errorf("%s differs\n got %s\nwant %s", path, got, want)
	}
}

// encodeFrames turns a testdata/streams payload list into event stream
// messages framed as Bedrock sends them, one []byte per message.
func encodeFrames(t testing.TB, path string) [][]byte {
	t.Helper()
	var list []struct {
		Event     string          `json:"event"`
		Exception string          `json:"exception"`
		Payload   json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(readFile(t, path), &list); err != nil {
		t.Fatal(err)
	}
	enc := eventstream.NewEncoder()
	frames := make([][]byte, 0, len(list))
	for _, item := range list {
		var payload bytes.Buffer
		if err := json.Compact(&payload, item.Payload); err != nil {
			t.Fatal(err)
		}
		msg := eventstream.Message{Payload: payload.Bytes()}
		if item.Exception != "" {
			msg.Headers.Set(":exception-type", eventstream.StringValue(item.Exception))
			msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
			msg.Headers.Set(":message-type", eventstream.StringValue("exception"))
		} else {
			msg.Headers.Set(":event-type", eventstream.StringValue(item.Event))
			msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
			msg.Headers.Set(":message-type", eventstream.StringValue("event"))
		}
		var b bytes.Buffer
		if err := enc.Encode(&b, msg); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, b.Bytes())
	}
	return frames
}

func encodeStream(t testing.TB, path string) []byte {
	return bytes.Join(encodeFrames(t, path), nil)
}

// frameReader hands out one frame per Read, as frames arrive from a slow model.
type frameReader struct{ frames [][]byte }

func (r *frameReader) Read(p []byte) (int, error) {
	if len(r.frames) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.frames[0])
	if r.frames[0] = r.frames[0][n:]; len(r.frames[0]) == 0 {
		r.frames = r.frames[1:]
	}
	return n, nil
}

func TestChatStream(t *testing.T) {
	fixStamps(t)
	cases := []struct {
		stream       string
		includeUsage bool
		golden       string
		usage        openai.Usage
		flushes      int // when each frame arrives alone
	}{
		{"text", false, "text.sse", openai.Usage{PromptTokens: 12, CompletionTokens: 9, TotalTokens: 21}, 6},
		{"text", true, "text.usage.sse", openai.Usage{PromptTokens: 12, CompletionTokens: 9, TotalTokens: 21}, 6},
		{"tool", true, "tool.usage.sse", openai.Usage{PromptTokens: 1310, CompletionTokens: 88, TotalTokens: 1398}, 11},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			frames := encodeFrames(t, "testdata/streams/"+c.stream+".json")

			var out bytes.Buffer
			flushes := 0
			usage, err := ChatStream(&out, func() { flushes++ }, &frameReader{frames: slices.Clone(frames)}, "claude-sonnet", c.includeUsage)
			if err != nil {
				t.Fatal(err)
			}
			if usage != c.usage {
				t.Errorf("usage %+v, want %+v", usage, c.usage)
			}
			golden(t, "testdata/streams/"+c.golden, out.Bytes())
			if flushes != c.flushes {
				t.Errorf("%d flushes, want %d: one per frame that wrote, one at the end", flushes, c.flushes)
			}

			// Frames read in one go go out with one flush, byte for byte the same.
			var all bytes.Buffer
			flushes = 0
			if _, err := ChatStream(&all, func() { flushes++ }, bytes.NewReader(bytes.Join(frames, nil)), "claude-sonnet", c.includeUsage); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all.Bytes(), out.Bytes()) || flushes > 2 {
				t.Errorf("read at once: %d flushes, same output %v", flushes, bytes.Equal(all.Bytes(), out.Bytes()))
			}
		})
	}
}

// accumulated is a streamed answer put back together the way the OpenAI
// SDKs' stream accumulators do it.
type accumulated struct {
	Role         string
	Content      string
	ToolCalls    []accumulatedCall
	FinishReason string
	Usage        map[string]any
	Done         bool
}

type accumulatedCall struct{ ID, Type, Name, Arguments string }

func accumulate(t *testing.T, sse string) accumulated {
	t.Helper()
	var acc accumulated
	sc := bufio.NewScanner(strings.NewReader(sse))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if acc.Done {
			t.Fatalf("data after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			acc.Done = true
			continue
		}
		var chunk struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Role      string  `json:"role"`
					Content   *string `json:"content"`
					ToolCalls []struct {
						Index    *int   `json:"index"`
						ID       string `json:"id"`
						Type     string `json:"type"`
						Function struct {
							Name      string `json:"name"`
							Arguments string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage map[string]any `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			t.Fatalf("chunk %s: %v", data, err)
		}
		if chunk.Object != "chat.completion.chunk" || chunk.ID != "chatcmpl-test" {
			t.Errorf("chunk header %s", data)
		}
		if chunk.Usage != nil {
			acc.Usage = chunk.Usage
		}
		for _, ch := range chunk.Choices {
			if ch.Index != 0 {
				t.Errorf("choice index %d", ch.Index)
			}
			if ch.Delta.Role != "" {
				acc.Role = ch.Delta.Role
			}
			if ch.Delta.Content != nil {
				acc.Content += *ch.Delta.Content
			}
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil {
					t.Fatalf("tool call delta without index: %s", data)
				}
				for len(acc.ToolCalls) <= *tc.Index {
					acc.ToolCalls = append(acc.ToolCalls, accumulatedCall{})
				}
				call := &acc.ToolCalls[*tc.Index]
				if tc.ID != "" {
					call.ID = tc.ID
				}
				if tc.Type != "" {
					call.Type = tc.Type
				}
				call.Name += tc.Function.Name
				call.Arguments += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				acc.FinishReason = *ch.FinishReason
			}
		}
	}
	return acc
}

// compactJSON normalizes tool arguments, which a client parses as JSON.
func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("arguments %q are not JSON: %v", s, err)
	}
	return b.String()
}

// A streamed answer, put back together, is the answer Converse gives.
func TestStreamMatchesAnswer(t *testing.T) {
	fixStamps(t)
	for _, name := range []string{"text", "tool"} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if _, err := ChatStream(&out, func() {}, bytes.NewReader(encodeStream(t, "testdata/streams/"+name+".json")), "claude-sonnet", true); err != nil {
				t.Fatal(err)
			}
			streamed := accumulate(t, out.String())
			for i := range streamed.ToolCalls {
				streamed.ToolCalls[i].Arguments = compactJSON(t, streamed.ToolCalls[i].Arguments)
			}

			body, _, err := ChatAnswer(readFile(t, "testdata/answers/"+name+".json"), "claude-sonnet")
			if err != nil {
				t.Fatal(err)
			}
			var answer struct {
				Choices []struct {
					Message struct {
						Role      string  `json:"role"`
						Content   *string `json:"content"`
						ToolCalls []struct {
							ID       string `json:"id"`
							Type     string `json:"type"`
							Function struct {
								Name      string `json:"name"`
								Arguments string `json:"arguments"`
							} `json:"function"`
						} `json:"tool_calls"`
					} `json:"message"`
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
				Usage map[string]any `json:"usage"`
			}
			if err := json.Unmarshal(body, &answer); err != nil {
				t.Fatal(err)
			}
			m := answer.Choices[0].Message
			whole := accumulated{Role: m.Role, FinishReason: answer.Choices[0].FinishReason, Usage: answer.Usage, Done: true}
			if m.Content != nil {
				whole.Content = *m.Content
			}
			for _, tc := range m.ToolCalls {
				whole.ToolCalls = append(whole.ToolCalls, accumulatedCall{tc.ID, tc.Type, tc.Function.Name, compactJSON(t, tc.Function.Arguments)})
			}
			if !reflect.DeepEqual(streamed, whole) {
				t.Errorf("streamed and whole answers differ\nstreamed %+v\n   whole %+v", streamed, whole)
			}
		})
	}
}

func TestChatStreamFails(t *testing.T) {
	fixStamps(t)
	text := encodeFrames(t, "testdata/streams/text.json")
	cut := func(n int) []byte { // the text stream less its last n bytes
		all := bytes.Join(text, nil)
		return all[:len(all)-n]
	}
	corrupt := bytes.Join(text, nil)
	corrupt[len(text[0])+20] ^= 0xff // inside the second frame's headers

	errorFrame := func() []byte {
		msg := eventstream.Message{}
		msg.Headers.Set(":message-type", eventstream.StringValue("error"))
		msg.Headers.Set(":error-code", eventstream.StringValue("ServiceUnavailable"))
		msg.Headers.Set(":error-message", eventstream.StringValue("try later"))
		var b bytes.Buffer
		eventstream.NewEncoder().Encode(&b, msg)
		return b.Bytes()
	}

	cases := []struct {
		name      string
		in        []byte
		usage     openai.Usage
		exception string // the *StreamError type, or "" for a cut stream
		says      string
		wrote     string // the output so far holds this
	}{
		{"exception midway", encodeStream(t, "testdata/streams/exception_midway.json"), openai.Usage{},
			"modelStreamErrorException", "Model stream ended abnormally.", `"content":"Once upon"`},
		{"exception after metadata", encodeStream(t, "testdata/streams/exception_after_metadata.json"),
			openai.Usage{PromptTokens: 7, CompletionTokens: 2, TotalTokens: 9}, "internalServerException", "Retry your request", `"content":"Hi"`},
		{"throttled at once", encodeStream(t, "testdata/streams/throttled.json"), openai.Usage{}, "throttlingException", "Too many requests", ""},
		{"error message", append(bytes.Join(text[:2], nil), errorFrame()...), openai.Usage{}, "ServiceUnavailable", "try later", `"content":"Bonjour"`},
		{"cut inside the last frame", cut(7), openai.Usage{}, "", "unexpected EOF", `"finish_reason":"stop"`},
		{"cut inside a prelude", append(bytes.Join(text[:3], nil), text[3][:5]...), openai.Usage{}, "", "unexpected EOF", `"content":"! Il fait \"beau\""`},
		{"ends before messageStop", bytes.Join(text[:5], nil), openai.Usage{}, "", "before messageStop", `"content":" à Paris.\n"`},
		{"empty", nil, openai.Usage{}, "", "before messageStop", ""},
		{"corrupt", corrupt, openai.Usage{}, "", "checksum", `"role":"assistant"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			usage, err := ChatStream(&out, func() {}, bytes.NewReader(c.in), "claude-sonnet", true)
			if err == nil {
				t.Fatal("no error")
			}
			if usage != c.usage {
				t.Errorf("usage %+v, want %+v", usage, c.usage)
			}
			var serr *StreamError
			switch {
			case c.exception != "" && (!errors.As(err, &serr) || serr.Type != c.exception):
				t.Errorf("error %v, want a %s", err, c.exception)
			case c.exception == "" && c.name != "corrupt" && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("error %v, want io.ErrUnexpectedEOF", err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(c.says)) {
				t.Errorf("error %q does not say %q", err, c.says)
			}
			if !strings.Contains(out.String(), c.wrote) {
				t.Errorf("output so far lacks %s:\n%s", c.wrote, out.String())
			}
			if strings.Contains(out.String(), "[DONE]") {
				t.Error("a failed stream must not end with [DONE]")
			}
		})
	}
}

// failingWriter is a caller that went away.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestChatStreamWriteFails(t *testing.T) {
	_, err := ChatStream(failingWriter{}, func() {}, bytes.NewReader(encodeStream(t, "testdata/streams/text.json")), "m", false)
	if err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("error %v", err)
	}
}

func BenchmarkChatStream(b *testing.B) {
	var frames []string
	frames = append(frames, `{"event":"messageStart","payload":{"role":"assistant"}}`)
	for i := range 500 {
		frames = append(frames, fmt.Sprintf(`{"event":"contentBlockDelta","payload":{"contentBlockIndex":0,"delta":{"text":"token %d of a longer answer "}}}`, i))
	}
	frames = append(frames,
		`{"event":"contentBlockStop","payload":{"contentBlockIndex":0}}`,
		`{"event":"messageStop","payload":{"stopReason":"end_turn"}}`,
		`{"event":"metadata","payload":{"usage":{"inputTokens":100,"outputTokens":500,"totalTokens":600},"metrics":{"latencyMs":1}}}`)
	path := b.TempDir() + "/bench.json"
	if err := os.WriteFile(path, []byte("["+strings.Join(frames, ",")+"]"), 0o644); err != nil {
		b.Fatal(err)
	}
	stream := encodeStream(b, path)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ChatStream(io.Discard, func() {}, bytes.NewReader(stream), "claude-sonnet", true); err != nil {
			b.Fatal(err)
		}
	}
}
