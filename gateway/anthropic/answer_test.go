package anthropic

import (
	"os"
	"strings"
	"testing"

	"tollgate/gateway/openai"
)

func TestChatAnswer(t *testing.T) {
	toolUseDoc, err := os.ReadFile("testdata/tool_use.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		in    string
		want  string
		usage openai.Usage
	}{
		{
			name: "text in two blocks",
			in:   `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hi! "},{"type":"text","text":"I'm Claude."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":25}}`,
			want: `{"id":"chatcmpl-msg_1","object":"chat.completion","created":1700000000,"model":"sonnet",
				"choices":[{"index":0,"message":{"role":"assistant","content":"Hi! I'm Claude.","refusal":null},"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":10,"completion_tokens":25,"total_tokens":35}}`,
			usage: openai.Usage{PromptTokens: 10, CompletionTokens: 25, TotalTokens: 35},
		},
		{
			name: "tool use only: content is null",
			in:   `{"id":"msg_2","type":"message","role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city": "Paris"}},{"type":"tool_use","id":"toolu_2","name":"now","input":{}}],"stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":7}}`,
			want: `{"id":"chatcmpl-msg_2","object":"chat.completion","created":1700000000,"model":"sonnet",
				"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[
					{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
					{"id":"toolu_2","type":"function","function":{"name":"now","arguments":"{}"}}]},"logprobs":null,"finish_reason":"tool_calls"}],
				"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`,
			usage: openai.Usage{PromptTokens: 5, CompletionTokens: 7, TotalTokens: 12},
		},
		{
			name: "text and tool use, from Anthropic's streaming docs",
			in:   string(toolUseDoc),
			want: `{"id":"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion","created":1700000000,"model":"sonnet",
				"choices":[{"index":0,"message":{"role":"assistant","content":"Okay, let's check the weather for San Francisco, CA:","refusal":null,"tool_calls":[
					{"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\",\"unit\":\"fahrenheit\"}"}}]},
					"logprobs":null,"finish_reason":"tool_calls"}],
				"usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561}}`,
			usage: openai.Usage{PromptTokens: 472, CompletionTokens: 89, TotalTokens: 561},
		},
		{
			name: "thinking blocks are dropped; cache reads and writes count as prompt",
			in: `{"id":"msg_3","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"42"}],"stop_reason":"end_turn",
				"usage":{"input_tokens":10,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":5}}`,
			want: `{"id":"chatcmpl-msg_3","object":"chat.completion","created":1700000000,"model":"sonnet",
				"choices":[{"index":0,"message":{"role":"assistant","content":"42","refusal":null},"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":330,"completion_tokens":5,"total_tokens":335,"prompt_tokens_details":{"cached_tokens":300}}}`,
			usage: openai.Usage{PromptTokens: 330, CompletionTokens: 5, TotalTokens: 335},
		},
		{
			name: "an empty answer has empty content",
			in:   `{"id":"msg_4","type":"message","role":"assistant","content":[],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":0}}`,
			want: `{"id":"chatcmpl-msg_4","object":"chat.completion","created":1700000000,"model":"sonnet",
				"choices":[{"index":0,"message":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":"stop"}],
				"usage":{"prompt_tokens":1,"completion_tokens":0,"total_tokens":1}}`,
			usage: openai.Usage{PromptTokens: 1, TotalTokens: 1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body, usage, err := ChatAnswer([]byte(c.in), "sonnet")
			if err != nil {
				t.Fatal(err)
			}
			assertJSON(t, body, c.want)
			if usage != c.usage {
				t.Errorf("usage %+v, want %+v", usage, c.usage)
			}
		})
	}
}

func TestChatAnswerStopReasons(t *testing.T) {
	cases := []struct{ stop, finish string }{
		{"end_turn", "stop"},
		{"stop_sequence", "stop"},
		{"max_tokens", "length"},
		{"tool_use", "tool_calls"},
		{"refusal", "content_filter"},
		{"pause_turn", "stop"},
		{"model_context_window_exceeded", "length"},
		{"something_new", "stop"},
	}
	for _, c := range cases {
		t.Run(c.stop, func(t *testing.T) {
			in := `{"id":"msg_1","type":"message","content":[{"type":"text","text":"x"}],"stop_reason":"` + c.stop + `","usage":{"input_tokens":1,"output_tokens":1}}`
			body, _, err := ChatAnswer([]byte(in), "m")
			if err != nil {
				t.Fatal(err)
			}
			if want := `"finish_reason":"` + c.finish + `"`; !strings.Contains(string(body), want) {
				t.Errorf("%s lacks %s", body, want)
			}
		})
	}
}

func TestChatAnswerRejects(t *testing.T) {
	for _, in := range []string{
		`{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`,
		`{"object":"chat.completion"}`,
		`not json`,
		`{"id":"msg_1","type":"message","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":}}]}`,
	} {
		if _, _, err := ChatAnswer([]byte(in), "m"); err == nil {
			t.Errorf("%s: no error", in)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"},"request_id":"req_1"}`, "max_tokens: Field required"},
		{"  <html>Bad Gateway</html>  ", "<html>Bad Gateway</html>"},
		{`{"type":"error","error":{"type":"api_error"}}`, `{"type":"error","error":{"type":"api_error"}}`},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
	}
	for _, c := range cases {
		if got := ErrorMessage([]byte(c.in)); got != c.want {
			t.Errorf("ErrorMessage(%.40q) = %q, want %q", c.in, got, c.want)
		}
	}
}
