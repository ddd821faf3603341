package bedrock

import (
	"encoding/json"
	"strings"
	"testing"

	"tollgate/gateway/openai"
)

func TestChatAnswer(t *testing.T) {
	fixStamps(t)
	cases := []struct {
		name  string
		usage openai.Usage
	}{
		{"text", openai.Usage{PromptTokens: 12, CompletionTokens: 9, TotalTokens: 21}},
		{"tool", openai.Usage{PromptTokens: 1310, CompletionTokens: 88, TotalTokens: 1398}},
		{"tool_only", openai.Usage{PromptTokens: 40, CompletionTokens: 12, TotalTokens: 52}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, usage, err := ChatAnswer(readFile(t, "testdata/answers/"+c.name+".json"), "claude-sonnet")
			if err != nil {
				t.Fatal(err)
			}
			if usage != c.usage {
				t.Errorf("usage %+v, want %+v", usage, c.usage)
			}
			golden(t, "testdata/answers/"+c.name+".openai.json", append(got, '\n'))
		})
	}
}

func TestChatAnswerStopReasons(t *testing.T) {
	cases := map[string]string{
		"end_turn":                      "stop",
		"stop_sequence":                 "stop",
		"max_tokens":                    "length",
		"model_context_window_exceeded": "length",
		"tool_use":                      "tool_calls",
		"content_filtered":              "content_filter",
		"guardrail_intervened":          "content_filter",
		"some_future_reason":            "stop",
	}
	for stop, want := range cases {
		body := `{"output":{"message":{"role":"assistant","content":[{"text":"x"}]}},"stopReason":"` + stop + `","usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}`
		got, _, err := ChatAnswer([]byte(body), "m")
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(got, &v); err != nil || len(v.Choices) != 1 || v.Choices[0].FinishReason != want {
			t.Errorf("%s: finish_reason %+v (%v), want %s", stop, v.Choices, err, want)
		}
	}
}

func TestChatAnswerCachedPrompt(t *testing.T) {
	body := `{"output":{"message":{"role":"assistant","content":[{"text":"ok"}]}},"stopReason":"end_turn",
		"usage":{"inputTokens":10,"outputTokens":5,"totalTokens":165,"cacheReadInputTokens":100,"cacheWriteInputTokens":50}}`
	got, usage, err := ChatAnswer([]byte(body), "m")
	if err != nil {
		t.Fatal(err)
	}
	if usage != (openai.Usage{PromptTokens: 160, CompletionTokens: 5, TotalTokens: 165}) {
		t.Errorf("usage %+v", usage)
	}
	if !strings.Contains(string(got), `"usage":{"prompt_tokens":160,"completion_tokens":5,"total_tokens":165,"prompt_tokens_details":{"cached_tokens":100}}`) {
		t.Errorf("usage JSON in %s", got)
	}
}

func TestChatAnswerRefuses(t *testing.T) {
	for _, body := range []string{`not json`, `{"message":"Malformed input request"}`} {
		if _, _, err := ChatAnswer([]byte(body), "m"); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}
