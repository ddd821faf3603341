package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	openaisdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"tollgate/gateway/openai"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// translate runs ChatStream over a whole upstream stream.
func translate(t testing.TB, upstream []byte, includeUsage bool) (string, openai.Usage, error) {
	t.Helper()
	var out bytes.Buffer
	usage, err := ChatStream(&out, func() {}, bytes.NewReader(upstream), "claude-opus", includeUsage)
	return out.String(), usage, err
}

func TestChatStreamText(t *testing.T) {
	head := `data: {"id":"chatcmpl-msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","object":"chat.completion.chunk","created":1700000000,"model":"claude-opus",`
	cases := []struct {
		name         string
		includeUsage bool
		want         string
	}{
		{"without usage", false, head + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
			head + `"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
			head + `"choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
			head + `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}` + "\n\n" +
			"data: [DONE]\n\n"},
		{"with usage", true, head + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
			head + `"choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
			head + `"choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
			head + `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n" +
			head + `"choices":[],"usage":{"prompt_tokens":25,"completion_tokens":15,"total_tokens":40}}` + "\n\n" +
			"data: [DONE]\n\n"},
	}
	upstream := readFile(t, "testdata/text.sse")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, usage, err := translate(t, upstream, c.includeUsage)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("stream differs\n got:\n%s\nwant:\n%s", got, c.want)
			}
			if want := (openai.Usage{PromptTokens: 25, CompletionTokens: 15, TotalTokens: 40}); usage != want {
				t.Errorf("usage %+v, want %+v", usage, want)
			}
		})
	}
}

// TestChatStreamGolden compares whole translated streams with files in
// testdata; go test -update rewrites them, to be read before committing.
func TestChatStreamGolden(t *testing.T) {
	cases := []struct {
		in, golden   string
		includeUsage bool
		usage        openai.Usage
	}{
		{"testdata/tool_use.sse", "testdata/tool_use.openai.sse", true, openai.Usage{PromptTokens: 472, CompletionTokens: 89, TotalTokens: 561}},
		{"testdata/tool_use.sse", "testdata/tool_use.nousage.openai.sse", false, openai.Usage{PromptTokens: 472, CompletionTokens: 89, TotalTokens: 561}},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			got, usage, err := translate(t, readFile(t, c.in), c.includeUsage)
			if err != nil {
				t.Fatal(err)
			}
			if usage != c.usage {
				t.Errorf("usage %+v, want %+v", usage, c.usage)
			}
			if *update {
				if err := os.WriteFile(c.golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if want := string(readFile(t, c.golden)); got != want {
				t.Errorf("stream differs from %s\n got:\n%s", c.golden, got)
			}
		})
	}
}

// TestChatStreamMatchesAnswer decodes every translated chunk as OpenAI
// clients do, and checks that the reassembled message is the one the
// non-streamed translation gives for the same answer.
func TestChatStreamMatchesAnswer(t *testing.T) {
	for _, name := range []string{"text", "tool_use"} {
		t.Run(name, func(t *testing.T) {
			stream, _, err := translate(t, readFile(t, "testdata/"+name+".sse"), true)
			if err != nil {
				t.Fatal(err)
			}
			body, _, err := ChatAnswer(readFile(t, "testdata/"+name+".json"), "claude-opus")
			if err != nil {
				t.Fatal(err)
			}
			var answer struct {
				ID      string `json:"id"`
				Choices []struct {
					Message      reassembled `json:"message"`
					FinishReason string      `json:"finish_reason"`
				} `json:"choices"`
				Usage openai.Usage `json:"usage"`
			}
			if err := json.Unmarshal(body, &answer); err != nil {
				t.Fatal(err)
			}
			want := answer.Choices[0].Message
			want.FinishReason, want.Usage, want.ID = answer.Choices[0].FinishReason, &answer.Usage, answer.ID

			got := reassemble(t, stream)
			compareMessages(t, "reassembler", got, want)
			compareMessages(t, "openai-go accumulator", sdkAccumulate(t, stream), want)
		})
	}
}

// reassembled is an assistant message put together from chunks.
type reassembled struct {
	ID           string
	Role         string         `json:"role"`
	Content      *string        `json:"content"`
	ToolCalls    []wireToolCall `json:"tool_calls"`
	FinishReason string
	Usage        *openai.Usage
}

type wireToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// reassemble accumulates chunks as the OpenAI SDKs do — strings are
// concatenated, tool calls are merged by index — and fails on anything an
// SDK would choke on or mis-merge.
func reassemble(t *testing.T, stream string) reassembled {
	t.Helper()
	events := strings.Split(stream, "\n\n")
	if events[len(events)-1] != "" || events[len(events)-2] != "data: [DONE]" {
		t.Fatalf("stream does not end with data: [DONE] and a blank line: %q", stream[max(0, len(stream)-80):])
	}
	var msg reassembled
	empty := ""
	msg.Content = &empty
	for i, ev := range events[:len(events)-2] {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("event %d is not one data line: %q", i, ev)
		}
		var c struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			Model   string `json:"model"`
			Choices []struct {
				Index int `json:"index"`
				Delta struct {
					Role      *string `json:"role"`
					Content   *string `json:"content"`
					ToolCalls []struct {
						Index    *int    `json:"index"`
						ID       *string `json:"id"`
						Type     *string `json:"type"`
						Function struct {
							Name      *string `json:"name"`
							Arguments *string `json:"arguments"`
						} `json:"function"`
					} `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *openai.Usage `json:"usage"`
		}
		dec := json.NewDecoder(strings.NewReader(data))
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if c.Object != "chat.completion.chunk" || c.Created == 0 || c.Model != "claude-opus" || c.ID == "" {
			t.Fatalf("event %d has a wrong header: %s", i, data)
		}
		if msg.ID != "" && c.ID != msg.ID {
			t.Fatalf("event %d changes the id", i)
		}
		msg.ID = c.ID
		if msg.FinishReason != "" && len(c.Choices) > 0 {
			t.Fatalf("event %d follows the finish reason", i)
		}
		if len(c.Choices) == 0 {
			if c.Usage == nil || msg.Usage != nil {
				t.Fatalf("event %d has no choices and is not the one usage chunk", i)
			}
			msg.Usage = c.Usage
			continue
		}
		if len(c.Choices) != 1 || c.Choices[0].Index != 0 {
			t.Fatalf("event %d: want one choice of index 0", i)
		}
		ch := c.Choices[0]
		if r := ch.Delta.Role; r != nil {
			if msg.Role != "" || i != 0 {
				t.Fatalf("event %d names the role again", i)
			}
			msg.Role = *r
		}
		if ch.Delta.Content != nil {
			*msg.Content += *ch.Delta.Content
		}
		for _, tc := range ch.Delta.ToolCalls {
			if tc.Index == nil || *tc.Index > len(msg.ToolCalls) {
				t.Fatalf("event %d: tool call index missing or skips ahead", i)
			}
			if *tc.Index == len(msg.ToolCalls) {
				if tc.ID == nil || tc.Type == nil || tc.Function.Name == nil {
					t.Fatalf("event %d: a new tool call lacks its id, type or name", i)
				}
				call := wireToolCall{ID: *tc.ID, Type: *tc.Type}
				call.Function.Name = *tc.Function.Name
				msg.ToolCalls = append(msg.ToolCalls, call)
			} else if tc.ID != nil || tc.Type != nil || tc.Function.Name != nil {
				t.Fatalf("event %d repeats a tool call's id, type or name, which SDKs would concatenate", i)
			}
			if tc.Function.Arguments != nil {
				msg.ToolCalls[*tc.Index].Function.Arguments += *tc.Function.Arguments
			}
		}
		if ch.FinishReason != nil {
			msg.FinishReason = *ch.FinishReason
		}
	}
	return msg
}

// sdkAccumulate parses the stream with the OpenAI Go SDK's own SSE decoder
// and chunk accumulator.
func sdkAccumulate(t *testing.T, stream string) reassembled {
	t.Helper()
	resp := &http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(strings.NewReader(stream))}
	s := ssestream.NewStream[openaisdk.ChatCompletionChunk](ssestream.NewDecoder(resp), nil)
	var acc openaisdk.ChatCompletionAccumulator
	for s.Next() {
		if !acc.AddChunk(s.Current()) {
			t.Fatalf("SDK accumulator rejected chunk %s", s.Current().RawJSON())
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("SDK stream: %v", err)
	}
	if len(acc.Choices) != 1 {
		t.Fatalf("SDK saw %d choices", len(acc.Choices))
	}
	m := acc.Choices[0].Message
	content := m.Content
	out := reassembled{ID: acc.ID, Role: string(m.Role), Content: &content, FinishReason: acc.Choices[0].FinishReason,
		Usage: &openai.Usage{PromptTokens: acc.Usage.PromptTokens, CompletionTokens: acc.Usage.CompletionTokens, TotalTokens: acc.Usage.TotalTokens}}
	for _, tc := range m.ToolCalls {
		call := wireToolCall{ID: tc.ID, Type: string(tc.Type)}
		call.Function.Name, call.Function.Arguments = tc.Function.Name, tc.Function.Arguments
		out.ToolCalls = append(out.ToolCalls, call)
	}
	return out
}

// compareMessages checks a reassembled message against the non-streamed
// one; arguments compare as JSON, since the stream carries Anthropic's own
// spacing.
func compareMessages(t *testing.T, who string, got, want reassembled) {
	t.Helper()
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	if got.ID != want.ID || got.Role != want.Role || str(got.Content) != str(want.Content) || got.FinishReason != want.FinishReason {
		t.Errorf("%s: id %q role %q content %q finish %q, want %q %q %q %q", who,
			got.ID, got.Role, str(got.Content), got.FinishReason, want.ID, want.Role, str(want.Content), want.FinishReason)
	}
	if got.Usage == nil || *got.Usage != *want.Usage {
		t.Errorf("%s: usage %+v, want %+v", who, got.Usage, *want.Usage)
	}
	if len(got.ToolCalls) != len(want.ToolCalls) {
		t.Fatalf("%s: %d tool calls, want %d", who, len(got.ToolCalls), len(want.ToolCalls))
	}
	for i := range got.ToolCalls {
		g, w := got.ToolCalls[i], want.ToolCalls[i]
		if g.ID != w.ID || g.Type != w.Type || g.Function.Name != w.Function.Name {
			t.Errorf("%s: tool call %d is %+v, want %+v", who, i, g, w)
		}
		if canonical(t, []byte(g.Function.Arguments)) != canonical(t, []byte(w.Function.Arguments)) {
			t.Errorf("%s: tool call %d arguments %s, want %s", who, i, g.Function.Arguments, w.Function.Arguments)
		}
	}
}

func TestChatStreamBrokenOff(t *testing.T) {
	doc := string(readFile(t, "testdata/tool_use.sse"))
	cut := func(before string) []byte {
		i := strings.Index(doc, before)
		if i < 0 {
			t.Fatalf("%q not in the stream", before)
		}
		return []byte(doc[:i])
	}
	overloaded := "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n"
	cases := []struct {
		name     string
		upstream []byte
		usage    openai.Usage
		errType  string // of a *StreamError, or "" for ErrStreamCut
		lastOut  string // the last chunk written
	}{
		{"cut in the middle of the tool arguments", cut(`event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" Francisc"}}`),
			openai.Usage{PromptTokens: 472, CompletionTokens: 2, TotalTokens: 474}, "", `{"arguments":" \"San"}`},
		{"cut after message_delta", cut("event: message_stop"),
			openai.Usage{PromptTokens: 472, CompletionTokens: 89, TotalTokens: 561}, "", `{"arguments":"renheit\"}"}`},
		{"cut in the middle of an event", cut(`"partial_json":" Francisc"`),
			openai.Usage{PromptTokens: 472, CompletionTokens: 2, TotalTokens: 474}, "", ""},
		{"nothing at all", nil, openai.Usage{}, "", ""},
		{"error event", append(cut("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1"), overloaded...),
			openai.Usage{PromptTokens: 472, CompletionTokens: 2, TotalTokens: 474}, "overloaded_error", `{"content":":"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, usage, err := translate(t, c.upstream, true)
			var streamErr *StreamError
			switch {
			case c.errType == "" && !errors.Is(err, ErrStreamCut):
				t.Errorf("error %v, want ErrStreamCut", err)
			case c.errType != "" && (!errors.As(err, &streamErr) || streamErr.Type != c.errType || streamErr.Message != "Overloaded"):
				t.Errorf("error %v, want a %s StreamError", err, c.errType)
			}
			if usage != c.usage {
				t.Errorf("usage %+v, want %+v", usage, c.usage)
			}
			if strings.Contains(out, "[DONE]") || strings.Contains(out, "finish_reason\":\"") {
				t.Errorf("a broken stream was finished:\n%s", out)
			}
			if c.lastOut != "" && !strings.Contains(out[strings.LastIndex(out[:len(out)-2], "\n\n")+2:], c.lastOut) {
				t.Errorf("last chunk lacks %s:\n%s", c.lastOut, out)
			}
		})
	}
}

func TestChatStreamShapes(t *testing.T) {
	ev := func(data string) string { return "event: x\ndata: " + data + "\n\n" }
	start := ev(`{"type":"message_start","message":{"id":"msg_9","type":"message","role":"assistant","content":[],"usage":{"input_tokens":2679,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3}}}`)
	stop := ev(`{"type":"message_stop"}`)
	long := strings.Repeat("ab", 40_000) // longer than the read buffer
	cases := []struct {
		name     string
		upstream string
		contains []string
		absent   []string
		usage    openai.Usage
	}{
		{
			name: "message_delta counts replace message_start's, cache included",
			upstream: start + ev(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":10682,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":510,"server_tool_use":{"web_search_requests":1}}}`) +
				stop,
			contains: []string{`"usage":{"prompt_tokens":12782,"completion_tokens":510,"total_tokens":13292,"prompt_tokens_details":{"cached_tokens":2000}}`},
			usage:    openai.Usage{PromptTokens: 12782, CompletionTokens: 510, TotalTokens: 13292},
		},
		{
			name: "a tool without arguments gets {}; two tools count from 0",
			upstream: start +
				ev(`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_a","name":"now","input":{}}}`) +
				ev(`{"type":"content_block_stop","index":0}`) +
				ev(`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_b","name":"today","input":{}}}`) +
				ev(`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}`) +
				ev(`{"type":"content_block_stop","index":1}`) +
				ev(`{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":30}}`) + stop,
			contains: []string{
				`"delta":{"tool_calls":[{"index":0,"id":"toolu_a","type":"function","function":{"name":"now","arguments":""}}]}`,
				`"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}`,
				`"delta":{"tool_calls":[{"index":1,"id":"toolu_b","type":"function","function":{"name":"today","arguments":""}}]}`,
				`"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}`,
				`"finish_reason":"tool_calls"`,
			},
			usage: openai.Usage{PromptTokens: 2679, CompletionTokens: 30, TotalTokens: 2709},
		},
		{
			name: "thinking, server tools, unknown events and comments are not passed on",
			upstream: start + ": keep-alive\n\n" +
				ev(`{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}`) +
				ev(`{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"SECRET"}}`) +
				ev(`{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"SIG"}}`) +
				ev(`{"type":"content_block_stop","index":0}`) +
				ev(`{"type":"content_block_start","index":1,"content_block":{"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{}}}`) +
				ev(`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"query\":\"SEARCH\"}"}}`) +
				ev(`{"type":"content_block_stop","index":1}`) +
				ev(`{"type":"something_new","index":5}`) +
				ev(`{"type":"content_block_start","index":2,"content_block":{"type":"text","text":"It is "}}`) +
				ev(`{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"sunny <&>"}}`) +
				ev(`{"type":"content_block_stop","index":2}`) + stop,
			contains: []string{`"delta":{"content":"It is "}`, `"delta":{"content":"sunny <&>"}`, `"finish_reason":"stop"`},
			absent:   []string{"SECRET", "SIG", "SEARCH", "srvtoolu", "tool_calls", "something_new"},
			usage:    openai.Usage{PromptTokens: 2679, CompletionTokens: 3, TotalTokens: 2682},
		},
		{
			name: "CRLF line endings and a line longer than the buffer",
			upstream: strings.ReplaceAll(start+
				ev(`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)+
				ev(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"`+long+`"}}`)+
				stop, "\n", "\r\n"),
			contains: []string{`"delta":{"content":"` + long + `"}`},
			usage:    openai.Usage{PromptTokens: 2679, CompletionTokens: 3, TotalTokens: 2682},
		},
		{
			name:     "max_tokens ends with length",
			upstream: start + ev(`{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":4096}}`) + stop,
			contains: []string{`"finish_reason":"length"`},
			usage:    openai.Usage{PromptTokens: 2679, CompletionTokens: 4096, TotalTokens: 6775},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, usage, err := translate(t, []byte(c.upstream), true)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range c.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %s", s)
				}
			}
			for _, s := range c.absent {
				if strings.Contains(out, s) {
					t.Errorf("output has %s", s)
				}
			}
			if usage != c.usage {
				t.Errorf("usage %+v, want %+v", usage, c.usage)
			}
			reassemble(t, out) // every chunk still parses and merges
		})
	}
}

// eventReader hands out one upstream event per Read, as a slow network does.
type eventReader struct{ events []string }

func (r *eventReader) Read(p []byte) (int, error) {
	if len(r.events) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.events[0])
	if r.events[0] = r.events[0][n:]; r.events[0] == "" {
		r.events = r.events[1:]
	}
	return n, nil
}

func TestChatStreamFlushesEachEvent(t *testing.T) {
	doc := string(readFile(t, "testdata/text.sse"))
	events := strings.SplitAfter(doc, "\n\n")
	var out bytes.Buffer
	var flushedAt []int
	_, err := ChatStream(&out, func() { flushedAt = append(flushedAt, strings.Count(out.String(), "\n\n")) }, &eventReader{events}, "m", false)
	if err != nil {
		t.Fatal(err)
	}
	// message_start, the two text deltas, and message_stop (finish chunk
	// and [DONE]) each go out at once; ping and the rest write nothing.
	if want := []int{1, 2, 3, 5}; fmt.Sprint(flushedAt) != fmt.Sprint(want) {
		t.Errorf("flushed after chunks %v, want %v", flushedAt, want)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("caller went away") }

func TestChatStreamWriteError(t *testing.T) {
	usage, err := ChatStream(failingWriter{}, func() {}, bytes.NewReader(readFile(t, "testdata/text.sse")), "m", false)
	if err == nil || err.Error() != "caller went away" {
		t.Errorf("error %v", err)
	}
	if usage.PromptTokens != 25 {
		t.Errorf("usage %+v", usage)
	}
}

// benchmarkStream is a 500-event Messages stream of short text deltas.
func benchmarkStream() []byte {
	var b strings.Builder
	b.WriteString("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1000,\"output_tokens\":1}}}\n\n")
	b.WriteString("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
	for i := 0; i < 495; i++ {
		fmt.Fprintf(&b, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" word%d\"}}\n\n", i)
	}
	b.WriteString("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n")
	b.WriteString("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":500}}\n\n")
	b.WriteString("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	return []byte(b.String())
}

func BenchmarkChatStream(b *testing.B) {
	upstream := benchmarkStream()
	if n := bytes.Count(upstream, []byte("\n\n")); n != 500 {
		b.Fatalf("%d events", n)
	}
	b.SetBytes(int64(len(upstream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ChatStream(io.Discard, func() {}, bytes.NewReader(upstream), "claude-x", true); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "new\nline\r\ttab", "\x00\x01\x1f\x7f", "<b>&amp;</b>",
		"émoji 🎉 and 中文", "line\u2028sep\u2029para", "bad \xff\xfe utf8", "cut rune \xe2\x82",
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := string(appendJSONString(nil, s)); got != strings.TrimSuffix(want.String(), "\n") {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want.String())
		}
	}
}
