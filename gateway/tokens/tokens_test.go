package tokens

import (
	"bytes"
	"encoding/json"
	"os"
	"sync"
	"testing"

	"github.com/pkoukk/tiktoken-go"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Counts published in OpenAI's cookbook "How to count tokens with tiktoken",
// and "hello world" (two tokens in both encodings). お誕生日おめでとう tells the
// two encodings apart.
func TestText(t *testing.T) {
	tests := []struct {
		model, text string
		want        int64
	}{
		{"gpt-4", "hello world", 2},
		{"gpt-4o", "hello world", 2},
		{"gpt-4o-mini", "tiktoken is great!", 6},
		{"gpt-4", "antidisestablishmentarianism", 6},
		{"gpt-5", "antidisestablishmentarianism", 6},
		{"gpt-3.5-turbo", "2 + 2 = 4", 7},
		{"o3-mini", "2 + 2 = 4", 7},
		{"gpt-4", "お誕生日おめでとう", 9},
		{"gpt-4.1", "お誕生日おめでとう", 8},
		{"gpt-4", "", 0},
	}
	for _, tt := range tests {
		if got := Text(tt.model, tt.text); got != tt.want {
			t.Errorf("Text(%q, %q) = %d, want %d", tt.model, tt.text, got, tt.want)
		}
	}
}

func TestEncodingFor(t *testing.T) {
	tests := []struct {
		model string
		want  *encoding
	}{
		{"gpt-4o", o200kBase},
		{"gpt-4o-mini-2024-07-18", o200kBase},
		{"gpt-4.1-nano", o200kBase},
		{"gpt-4.5-preview", o200kBase},
		{"gpt-5-mini", o200kBase},
		{"o1", o200kBase},
		{"o3-mini", o200kBase},
		{"o4-mini", o200kBase},
		{"gpt-4", cl100kBase},
		{"gpt-4-turbo", cl100kBase},
		{"gpt-4-0613", cl100kBase},
		{"GPT-4", cl100kBase},
		{"openai/gpt-4", cl100kBase},
		{"azure/gpt-4o", o200kBase},
		{"gpt-3.5-turbo-16k", cl100kBase},
		{"text-embedding-3-small", cl100kBase},
		{"text-embedding-ada-002", cl100kBase},
		{"claude-sonnet-4-5", o200kBase},
		{"gemini-2.5-pro", o200kBase},
		{"llama-3.1-70b-instruct", o200kBase},
		{"", o200kBase},
	}
	for _, tt := range tests {
		if got := encodingFor(tt.model); got != tt.want {
			t.Errorf("encodingFor(%q) = %s, want %s", tt.model, got.name, tt.want.name)
		}
	}
}

// The cookbook's example conversation: 129 prompt tokens for gpt-3.5-turbo
// and gpt-4, 124 for gpt-4o and gpt-4o-mini, as counted by the OpenAI API.
func TestInputCookbookMessages(t *testing.T) {
	raw := readFixture(t, "cookbook_messages.json")
	for model, want := range map[string]int64{"gpt-3.5-turbo": 129, "gpt-4": 129, "gpt-4-0613": 129, "gpt-4o": 124, "gpt-4o-mini": 124} {
		if got := Input(model, "messages", raw); got != want {
			t.Errorf("Input(%s, cookbook messages) = %d, want %d", model, got, want)
		}
	}
}

func TestInputMessages(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want int64
	}{
		// 3 per message + "user" (1) + "hello world" (2) + 3 for the reply.
		{"string content", `[{"role":"user","content":"hello world"}]`, 3 + 1 + 2 + 3},
		{"text part", `[{"role":"user","content":[{"type":"text","text":"hello world"}]}]`, 3 + 1 + 2 + 3},
		{"two text parts", `[{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"text","text":"hello world"}]}]`, 3 + 1 + 2 + 2 + 3},
		{"image part", `[{"role":"user","content":[{"type":"text","text":"hello world"},{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"high"}}]}]`, 3 + 1 + 2 + 85 + 3},
		{"two images", `[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},{"type":"image_url","image_url":{"url":"https://example.com/b.png"}}]}]`, 3 + 1 + 85 + 85 + 3},
		{"audio part counts nothing", `[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}}]}]`, 3 + 1 + 3},
		{"refusal part", `[{"role":"assistant","content":[{"type":"refusal","refusal":"hello world"}]}]`, 3 + 1 + 2 + 3},
		// "example_user" is 2 tokens in o200k_base, plus 1 for having a name.
		{"name", `[{"role":"system","name":"example_user","content":"hello world"}]`, 3 + 1 + 2 + 1 + 2 + 3},
		{"null content", `[{"role":"assistant","content":null}]`, 3 + 1 + 3},
		{"no messages", `[]`, 3},
		{"absent", ``, 0},
		{"null", `null`, 0},
	}
	for _, tt := range tests {
		if got := Input("gpt-4o", "messages", json.RawMessage(tt.raw)); got != tt.want {
			t.Errorf("%s: Input = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// Tool calls and tool results, held to the cookbook's rule applied with
// tiktoken-go: every value counts, names cost one more.
func TestInputToolCalls(t *testing.T) {
	raw := `[
		{"role":"user","content":"What's the weather in Paris?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_9f2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"unit\":\"celsius\"}"}}]},
		{"role":"tool","tool_call_id":"call_9f2","content":"{\"temperature\":18,\"sky\":\"clear\"}"},
		{"role":"assistant","content":null,"function_call":{"name":"get_time","arguments":"{\"tz\":\"Europe/Paris\"}"}}
	]`
	for _, enc := range []*encoding{cl100kBase, o200kBase} {
		ref := reference(t, enc)
		n := func(s string) int64 { return int64(len(ref.EncodeOrdinary(s))) }
		want := 3 + n("user") + n("What's the weather in Paris?") +
			3 + n("assistant") + n("get_weather") + n(`{"city":"Paris","unit":"celsius"}`) +
			3 + n("tool") + n("call_9f2") + n(`{"temperature":18,"sky":"clear"}`) +
			3 + n("assistant") + n("get_time") + n(`{"tz":"Europe/Paris"}`) +
			3
		model := map[*encoding]string{cl100kBase: "gpt-4", o200kBase: "gpt-4o"}[enc]
		if got := Input(model, "messages", json.RawMessage(raw)); got != want {
			t.Errorf("%s: Input = %d, want %d", model, got, want)
		}
	}
}

func TestInputPrompt(t *testing.T) {
	tests := []struct {
		name, field, raw string
		want             int64
	}{
		{"string", "prompt", `"hello world"`, 2},
		{"strings", "prompt", `["hello world", "お誕生日おめでとう"]`, 2 + 8},
		{"token ids", "prompt", `[15339, 1917]`, 2},
		{"token id batches", "input", `[[15339, 1917], [1, 2, 3], []]`, 5},
		{"empty array", "input", `[]`, 0},
		{"embedding input", "input", ` "hello world" `, 2},
		{"escaped string", "prompt", `"hello\u0020world"`, 2},
	}
	for _, tt := range tests {
		if got := Input("gpt-4o", tt.field, json.RawMessage(tt.raw)); got != tt.want {
			t.Errorf("%s: Input(%s) = %d, want %d", tt.name, tt.raw, got, tt.want)
		}
	}
}

// JSON that cannot be read counts one token per four bytes, rounded up.
func TestInputMalformed(t *testing.T) {
	tests := []struct {
		name, field, raw string
		want             int64
	}{
		{"truncated messages", "messages", `[{"role":"user","content":"hello`, 8},   // 32 bytes
		{"messages not an array", "messages", `{"role":"user"}`, 4},                 // 15 bytes
		{"content a number", "messages", `[{"role":"user","content":42}]`, 8},       // 30 bytes
		{"part not an object", "messages", `[{"role":"user","content":["hi"]}]`, 9}, // 34 bytes
		{"one byte", "prompt", `x`, 1},
		{"prompt a number", "prompt", `42`, 1},
		{"mixed ids and text", "prompt", `[1, "a"]`, 2},
		{"unterminated string", "input", `"hello world`, 3},
	}
	for _, tt := range tests {
		if got := Input("gpt-4o", tt.field, json.RawMessage(tt.raw)); got != tt.want {
			t.Errorf("%s: Input(%s) = %d, want %d", tt.name, tt.raw, got, tt.want)
		}
	}
}

// The cookbook's tool example: the OpenAI API counted 101 prompt tokens for
// gpt-4o and 105 for gpt-4, rendering the tool in its own format. Counting
// the compact JSON text instead overestimates by a few tokens, which is the
// safe side for a budget.
func TestInputWithTools(t *testing.T) {
	var req struct {
		Messages json.RawMessage `json:"messages"`
		Tools    json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(readFixture(t, "cookbook_tools.json"), &req); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		model    string
		want     int64
		openAI   int64
		messages int64
	}{
		{"gpt-4o", 119, 101, 33},
		{"gpt-4", 119, 105, 34},
	}
	for _, tt := range tests {
		if got := Input(tt.model, "messages", req.Messages); got != tt.messages {
			t.Errorf("%s: Input = %d, want %d", tt.model, got, tt.messages)
		}
		got := InputWithTools(tt.model, "messages", req.Messages, req.Tools)
		if got != tt.want {
			t.Errorf("%s: InputWithTools = %d, want %d", tt.model, got, tt.want)
		}
		if got < tt.openAI {
			t.Errorf("%s: InputWithTools = %d, below the %d OpenAI counted", tt.model, got, tt.openAI)
		}
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, req.Tools, "", "\t\t"); err != nil {
		t.Fatal(err)
	}
	if got := InputWithTools("gpt-4o", "messages", req.Messages, indented.Bytes()); got != 119 {
		t.Errorf("InputWithTools with indented tools = %d, want 119 as compact", got)
	}
	if got, want := InputWithTools("gpt-4o", "messages", req.Messages, nil), Input("gpt-4o", "messages", req.Messages); got != want {
		t.Errorf("InputWithTools without tools = %d, want Input's %d", got, want)
	}
	if got := InputWithTools("gpt-4o", "messages", nil, json.RawMessage(`[{"name":`)); got != 3 { // 9 bytes
		t.Errorf("InputWithTools with malformed tools = %d, want 3", got)
	}
}

// The benchmark's conversation, counted with tiktoken-go field by field.
func TestInputMatchesTiktokenOnLongChat(t *testing.T) {
	raw := readFixture(t, "chat_4000.json")
	var msgs []struct{ Role, Content string }
	if err := json.Unmarshal(raw, &msgs); err != nil {
		t.Fatal(err)
	}
	for model, enc := range map[string]*encoding{"gpt-4": cl100kBase, "gpt-4o": o200kBase} {
		ref := reference(t, enc)
		want := int64(3)
		for _, m := range msgs {
			want += 3 + int64(len(ref.EncodeOrdinary(m.Role))+len(ref.EncodeOrdinary(m.Content)))
		}
		if got := Input(model, "messages", raw); got != want {
			t.Errorf("%s: Input = %d, tiktoken-go %d", model, got, want)
		}
	}
}

// Fresh encodings, so that the 32 goroutines also race to load them.
func TestConcurrentFirstUse(t *testing.T) {
	raw := readFixture(t, "chat_4000.json")
	want := map[string]int64{"gpt-4": Input("gpt-4", "messages", raw), "gpt-4o": Input("gpt-4o", "messages", raw)}
	fresh := map[string]*encoding{
		"gpt-4":  {name: cl100kBase.name, split: cl100kBase.split},
		"gpt-4o": {name: o200kBase.name, split: o200kBase.split},
	}
	var wg sync.WaitGroup
	for g := range 32 {
		model := []string{"gpt-4", "gpt-4o"}[g%2]
		wg.Go(func() {
			enc := fresh[model]
			if err := enc.load(); err != nil {
				t.Error(err)
				return
			}
			if n, ok := enc.messages(raw); !ok || n != want[model] {
				t.Errorf("%s on a fresh encoding: %d, %v; want %d", model, n, ok, want[model])
			}
			if n := Input(model, "messages", raw); n != want[model] {
				t.Errorf("%s: Input = %d, want %d", model, n, want[model])
			}
		})
	}
	wg.Wait()
}

func BenchmarkInput4000(b *testing.B) {
	raw := readFixture(b, "chat_4000.json")
	for _, model := range []string{"gpt-4o", "gpt-4"} {
		b.Run(model, func(b *testing.B) {
			b.ReportMetric(float64(Input(model, "messages", raw)), "tokens")
			b.ReportAllocs()
			for b.Loop() {
				Input(model, "messages", raw)
			}
		})
	}
}

// BenchmarkTiktokenGo4000 encodes the same conversation with tiktoken-go's
// Encode, for comparison.
func BenchmarkTiktokenGo4000(b *testing.B) {
	var msgs []struct{ Role, Content string }
	if err := json.Unmarshal(readFixture(b, "chat_4000.json"), &msgs); err != nil {
		b.Fatal(err)
	}
	for _, enc := range []*encoding{o200kBase, cl100kBase} {
		ref := reference(b, enc)
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				countWith(ref, msgs)
			}
		})
	}
}

func countWith(ref *tiktoken.Tiktoken, msgs []struct{ Role, Content string }) int {
	n := 3
	for _, m := range msgs {
		n += 3 + len(ref.Encode(m.Role, nil, nil)) + len(ref.Encode(m.Content, nil, nil))
	}
	return n
}
