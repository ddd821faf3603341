package gemini

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"tollgate/gateway/openai"
)

var createdField = regexp.MustCompile(`"created":\d+`)

// stable replaces the creation time, the one field that differs per run.
func stable(b []byte) string {
	return createdField.ReplaceAllString(string(b), `"created":0`)
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChatAnswerText(t *testing.T) {
	got, usage, err := ChatAnswer(readFile(t, "text.json"), "gemini-flash")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, stable(got), `{
		"id": "chatcmpl-mU1qaJ3tKd-vz7IP6a2V8Qc",
		"object": "chat.completion",
		"created": 0,
		"model": "gemini-flash",
		"choices": [{
			"index": 0,
			"message": {"role": "assistant", "content": "The capital of France is Paris.", "refusal": null},
			"logprobs": null,
			"finish_reason": "stop"
		}],
		"usage": {"prompt_tokens": 9, "completion_tokens": 31, "total_tokens": 40,
			"prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 24}}
	}`)
	if usage != (openai.Usage{PromptTokens: 9, CompletionTokens: 31, TotalTokens: 40}) {
		t.Errorf("usage %+v", usage)
	}
}

func TestChatAnswerFunctionCalls(t *testing.T) {
	got, usage, err := ChatAnswer(readFile(t, "function_call.json"), "gemini-3-flash")
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, stable(got), `{
		"id": "chatcmpl-Z9pqaPrWKIWBz7IPnKjGkQU",
		"object": "chat.completion",
		"created": 0,
		"model": "gemini-3-flash",
		"choices": [{
			"index": 0,
			"message": {
				"role": "assistant",
				"content": "Let me check both cities.",
				"refusal": null,
				"tool_calls": [
					{"id": "call_0", "type": "function",
					 "function": {"name": "get_current_temperature", "arguments": "{\"location\":\"Paris\"}"},
					 "extra_content": {"google": {"thought_signature": "CiQBcsjafBZpM2Wr4Pn5WkK6Xy3s="}}},
					{"id": "call_1", "type": "function",
					 "function": {"name": "get_current_temperature", "arguments": "{\"location\":\"London\",\"unit\":\"celsius\"}"}}
				]
			},
			"logprobs": null,
			"finish_reason": "tool_calls"
		}],
		"usage": {"prompt_tokens": 71, "completion_tokens": 81, "total_tokens": 152,
			"prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 43}}
	}`)
	if usage.PromptTokens != 71 || usage.CompletionTokens != 81 || usage.TotalTokens != 152 {
		t.Errorf("usage %+v", usage)
	}
}

// The answer's tool calls, sent back as the next request's history, give
// Gemini its own function calls back, signature included.
func TestFunctionCallsRoundTrip(t *testing.T) {
	answer, _, err := ChatAnswer(readFile(t, "function_call.json"), "m")
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Choices []struct {
			Message json.RawMessage `json:"message"`
		} `json:"choices"`
	}
	json.Unmarshal(answer, &a)
	body := `{"messages": [{"role": "user", "content": "Paris and London?"}, ` + string(a.Choices[0].Message) + `,
		{"role": "tool", "tool_call_id": "call_0", "content": "{\"c\": 18}"},
		{"role": "tool", "tool_call_id": "call_1", "content": "{\"c\": 12}"}]}`
	got := translated(t, body)
	sameJSON(t, got, `{"contents": [
		{"role": "user", "parts": [{"text": "Paris and London?"}]},
		{"role": "model", "parts": [
			{"text": "Let me check both cities."},
			{"functionCall": {"name": "get_current_temperature", "args": {"location":"Paris"}}, "thoughtSignature": "CiQBcsjafBZpM2Wr4Pn5WkK6Xy3s="},
			{"functionCall": {"name": "get_current_temperature", "args": {"location":"London","unit":"celsius"}}}
		]},
		{"role": "user", "parts": [
			{"functionResponse": {"name": "get_current_temperature", "response": {"content": {"c": 18}}}},
			{"functionResponse": {"name": "get_current_temperature", "response": {"content": {"c": 12}}}}
		]}
	]}`)
}

func TestFinishReasons(t *testing.T) {
	cases := []struct {
		reason    string
		toolCalls bool
		want      string
	}{
		{"STOP", false, "stop"},
		{"MAX_TOKENS", false, "length"},
		{"SAFETY", false, "content_filter"},
		{"RECITATION", false, "content_filter"},
		{"BLOCKLIST", false, "content_filter"},
		{"PROHIBITED_CONTENT", false, "content_filter"},
		{"SPII", false, "content_filter"},
		{"IMAGE_SAFETY", false, "content_filter"},
		{"MODEL_ARMOR", false, "content_filter"},
		{"OTHER", false, "stop"},
		{"LANGUAGE", false, "stop"},
		{"MALFORMED_FUNCTION_CALL", false, "stop"},
		{"STOP", true, "tool_calls"},
		{"MAX_TOKENS", true, "tool_calls"},
		{"SAFETY", true, "content_filter"},
	}
	for _, c := range cases {
		parts := `{"text": "partial"}`
		if c.toolCalls {
			parts = `{"functionCall": {"name": "f", "args": {}}}`
		}
		body := `{"candidates": [{"content": {"role": "model", "parts": [` + parts + `]}, "finishReason": "` + c.reason + `"}]}`
		got, _, err := ChatAnswer([]byte(body), "m")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), `"finish_reason":"`+c.want+`"`) {
			t.Errorf("%s (tool calls %v): %s, want %s", c.reason, c.toolCalls, got, c.want)
		}
	}
}

func TestChatAnswerShapes(t *testing.T) {
	t.Run("prompt blocked", func(t *testing.T) {
		got, usage, err := ChatAnswer([]byte(`{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
			"usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}, "modelVersion": "gemini-2.5-flash"}`), "")
		if err != nil {
			t.Fatal(err)
		}
		s := stable(got)
		if !strings.Contains(s, `"choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null},"logprobs":null,"finish_reason":"content_filter"}]`) ||
			!strings.Contains(s, `"model":"gemini-2.5-flash"`) || !strings.HasPrefix(s, `{"id":"chatcmpl-`) || usage.PromptTokens != 5 {
			t.Errorf("%s %+v", s, usage)
		}
	})
	t.Run("candidates become choices in index order", func(t *testing.T) {
		got, _, err := ChatAnswer([]byte(`{"candidates": [
			{"content": {"role": "model", "parts": [{"text": "B"}]}, "finishReason": "STOP", "index": 1},
			{"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "MAX_TOKENS"}]}`), "m")
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			Choices []struct {
				Index   int
				Message struct{ Content string }
			}
		}
		json.Unmarshal(got, &c)
		if len(c.Choices) != 2 || c.Choices[0].Index != 0 || c.Choices[0].Message.Content != "A" || c.Choices[1].Message.Content != "B" {
			t.Errorf("%s", got)
		}
	})
	t.Run("thoughts and signatures are not content", func(t *testing.T) {
		got, _, _ := ChatAnswer([]byte(`{"candidates": [{"content": {"role": "model", "parts": [
			{"text": "**Planning** the answer", "thought": true},
			{"text": "42", "thoughtSignature": "c2ln"}]}, "finishReason": "STOP"}],
			"usageMetadata": {"promptTokenCount": 3, "cachedContentTokenCount": 2, "candidatesTokenCount": 1, "thoughtsTokenCount": 6, "toolUsePromptTokenCount": 4, "totalTokenCount": 14}}`), "m")
		s := string(got)
		if !strings.Contains(s, `"content":"42"`) || strings.Contains(s, "Planning") ||
			!strings.Contains(s, `"usage":{"prompt_tokens":7,"completion_tokens":7,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":6}}`) {
			t.Errorf("%s", s)
		}
	})
	t.Run("the part's own call id is kept", func(t *testing.T) {
		got, _, _ := ChatAnswer([]byte(`{"candidates": [{"content": {"role": "model", "parts": [
			{"functionCall": {"id": "fc-7", "name": "f"}}]}, "finishReason": "STOP"}]}`), "m")
		if !strings.Contains(string(got), `"tool_calls":[{"id":"fc-7","type":"function","function":{"name":"f","arguments":"{}"}}]`) {
			t.Errorf("%s", got)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		if _, _, err := ChatAnswer([]byte(`<html>`), "m"); err == nil {
			t.Error("accepted")
		}
	})
}

func TestErrorMessage(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}}`,
			"API key not valid. Please pass a valid API key. (INVALID_ARGUMENT)"},
		{`[{"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}}]`, "Resource exhausted. (RESOURCE_EXHAUSTED)"},
		{`{"error": {"message": "bare"}}`, "bare"},
		{"  upstream exploded \n", "upstream exploded"},
		{strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
	}
	for _, c := range cases {
		if got := ErrorMessage([]byte(c.body)); got != c.want {
			t.Errorf("ErrorMessage(%.40q) = %q, want %q", c.body, got, c.want)
		}
	}
}
