package gemini

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"tollgate/gateway/openai"
)

// stream runs ChatStream over a testdata file and returns what it wrote,
// with the creation time zeroed.
func stream(t *testing.T, name string, includeUsage bool) (string, openai.Usage, int, error) {
	t.Helper()
	var out bytes.Buffer
	flushes := 0
	usage, err := ChatStream(&out, func() { flushes++ }, bytes.NewReader(readFile(t, name)), "gemini-flash", includeUsage)
	return stable(out.Bytes()), usage, flushes, err
}

func TestChatStreamText(t *testing.T) {
	got, usage, flushes, err := stream(t, "text.sse", true)
	if err != nil {
		t.Fatal(err)
	}
	head := `data: {"id":"chatcmpl-mU1qaJ3tKd-vz7IP6a2V8Qc","object":"chat.completion.chunk","created":0,"model":"gemini-flash",`
	want := head + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
		head + `"choices":[{"index":0,"delta":{"content":"The capital"},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
		head + `"choices":[{"index":0,"delta":{"content":" of France is Paris."},"logprobs":null,"finish_reason":null}],"usage":null}` + "\n\n" +
		head + `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}` + "\n\n" +
		head + `"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":31,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":24}}}` + "\n\n" +
		"data: [DONE]\n\n"
	if got != want {
		t.Errorf("stream differs\n got %s\nwant %s", got, want)
	}
	if usage != (openai.Usage{PromptTokens: 9, CompletionTokens: 31, TotalTokens: 40}) {
		t.Errorf("usage %+v", usage)
	}
	if flushes != 4 { // one per upstream event, one after [DONE]
		t.Errorf("%d flushes, want 4", flushes)
	}
}

func TestChatStreamWithoutUsage(t *testing.T) {
	got, usage, _, err := stream(t, "text.sse", false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(got, "usage") || strings.Count(got, "data: ") != 5 || !strings.HasSuffix(got, "\n\ndata: [DONE]\n\n") {
		t.Errorf("stream without usage:\n%s", got)
	}
	if usage.TotalTokens != 40 {
		t.Errorf("usage is still returned for pricing: %+v", usage)
	}
}

func TestChatStreamFunctionCall(t *testing.T) {
	got, usage, _, err := stream(t, "function_call.sse", false)
	if err != nil {
		t.Fatal(err)
	}
	head := `data: {"id":"chatcmpl-Z9pqaPrWKIWBz7IPnKjGkQU","object":"chat.completion.chunk","created":0,"model":"gemini-flash",`
	want := head + `"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		head + `"choices":[{"index":0,"delta":{"content":"Let me check both cities."},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		head + `"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_0","type":"function","function":{"name":"get_current_temperature","arguments":"{\"location\":\"Paris\"}"},"extra_content":{"google":{"thought_signature":"CiQBcsjafBZpM2Wr4Pn5WkK6Xy3s="}}}]},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		head + `"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_1","type":"function","function":{"name":"get_current_temperature","arguments":"{\"location\":\"London\",\"unit\":\"celsius\"}"}}]},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		head + `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}` + "\n\n" +
		"data: [DONE]\n\n"
	if got != want {
		t.Errorf("stream differs\n got %s\nwant %s", got, want)
	}
	if usage.PromptTokens != 71 || usage.CompletionTokens != 81 {
		t.Errorf("usage %+v", usage)
	}
}

func TestChatStreamErrorEvent(t *testing.T) {
	got, usage, _, err := stream(t, "error.sse", true)
	if err == nil || !strings.Contains(err.Error(), "The model is overloaded") || !strings.Contains(err.Error(), "UNAVAILABLE") {
		t.Fatalf("error %v", err)
	}
	if usage.PromptTokens != 12 {
		t.Errorf("partial usage %+v", usage)
	}
	if !strings.Contains(got, `"content":"Once upon"`) || strings.Contains(got, "[DONE]") || strings.Contains(got, `"choices":[]`) {
		t.Errorf("written before the error:\n%s", got)
	}
}

func TestChatStreamCutOff(t *testing.T) {
	got, usage, _, err := stream(t, "cut.sse", true)
	if err == nil {
		t.Fatal("a stream cut mid-event passed as complete")
	}
	if usage != (openai.Usage{PromptTokens: 30, CompletionTokens: 7, TotalTokens: 37}) {
		t.Errorf("partial usage %+v", usage)
	}
	if strings.Contains(got, "[DONE]") || !strings.Contains(got, `" mix the"`) {
		t.Errorf("written:\n%s", got)
	}

	// Cut between events: every event is whole, but no finishReason came.
	whole := string(readFile(t, "cut.sse"))
	whole = whole[:strings.LastIndex(whole, "data:")]
	var out bytes.Buffer
	usage, err = ChatStream(&out, func() {}, strings.NewReader(whole), "m", true)
	if !errors.Is(err, ErrIncomplete) || usage.CompletionTokens != 7 || strings.Contains(out.String(), "[DONE]") {
		t.Errorf("got %v %+v\n%s", err, usage, out.String())
	}

	// Nothing at all.
	if _, err := ChatStream(io.Discard, func() {}, strings.NewReader(""), "m", false); !errors.Is(err, ErrIncomplete) {
		t.Errorf("empty stream: %v", err)
	}
}

func TestChatStreamShapes(t *testing.T) {
	t.Run("prompt blocked", func(t *testing.T) {
		in := `data: {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}, "modelVersion": "gemini-2.5-flash"}` + "\r\n\r\n"
		var out bytes.Buffer
		usage, err := ChatStream(&out, func() {}, strings.NewReader(in), "m", false)
		s := out.String()
		if err != nil || usage.PromptTokens != 8 || !strings.Contains(s, `"delta":{"role":"assistant","content":""}`) ||
			!strings.Contains(s, `"finish_reason":"content_filter"`) || !strings.HasSuffix(s, "data: [DONE]\n\n") {
			t.Errorf("%v %+v\n%s", err, usage, s)
		}
	})
	t.Run("a line longer than the read buffer", func(t *testing.T) {
		long := strings.Repeat("ab", 50_000)
		in := `data: {"candidates": [{"content": {"parts": [{"text": "` + long + `"}], "role": "model"}, "finishReason": "STOP"}]}` + "\n\n"
		var out bytes.Buffer
		if _, err := ChatStream(&out, func() {}, strings.NewReader(in), "m", false); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `"content":"`+long+`"`) {
			t.Error("the long text did not come through whole")
		}
	})
	t.Run("comments, other fields and a data line split in two", func(t *testing.T) {
		in := ": keep-alive\n\nevent: message\nid: 1\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hi\"}]},\ndata:  \"finishReason\": \"STOP\"}]}\n\n"
		var out bytes.Buffer
		if _, err := ChatStream(&out, func() {}, strings.NewReader(in), "m", false); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), `"content":"hi"`) {
			t.Errorf("%s", out.String())
		}
	})
	t.Run("two candidates", func(t *testing.T) {
		in := `data: {"candidates": [{"content": {"parts": [{"text": "A"}], "role": "model"}}, {"content": {"parts": [{"text": "B"}], "role": "model"}, "index": 1}]}` + "\n\n" +
			`data: {"candidates": [{"content": {"parts": [{"text": "!"}], "role": "model"}, "index": 1, "finishReason": "STOP"}]}` + "\n\n"
		var out bytes.Buffer
		_, err := ChatStream(&out, func() {}, strings.NewReader(in), "m", false)
		if !errors.Is(err, ErrIncomplete) {
			t.Errorf("candidate 0 never finished, got %v", err)
		}
		acc := accumulate(t, out.Bytes())
		if len(acc.Choices) != 2 || acc.Choices[0].Message.Content != "A" || acc.Choices[1].Message.Content != "B!" {
			t.Errorf("%+v", acc.Choices)
		}
	})
	t.Run("the caller goes away", func(t *testing.T) {
		_, err := ChatStream(failingWriter{}, func() {}, bytes.NewReader(readFile(t, "text.sse")), "m", false)
		if err == nil || !strings.Contains(err.Error(), "connection reset") {
			t.Errorf("got %v", err)
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("connection reset") }

// accumulate reads a translated stream the way the OpenAI Go SDK does: its
// SSE decoder, then its ChatCompletionAccumulator.
func accumulate(t *testing.T, sse []byte) sdk.ChatCompletion {
	t.Helper()
	resp := &http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(bytes.NewReader(sse))}
	s := ssestream.NewStream[sdk.ChatCompletionChunk](ssestream.NewDecoder(resp), nil)
	var acc sdk.ChatCompletionAccumulator
	for s.Next() {
		if !acc.AddChunk(s.Current()) {
			t.Fatalf("the SDK refused chunk %s", s.Current().RawJSON())
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the SDK could not read the stream: %v", err)
	}
	return acc.ChatCompletion
}

// A streamed answer, put back together by the SDK, is the same answer as
// the one ChatAnswer makes from the whole response.
func TestChatStreamMatchesAnswer(t *testing.T) {
	for _, name := range []string{"text", "vertex_text", "function_call"} {
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			if _, err := ChatStream(&out, func() {}, bytes.NewReader(readFile(t, name+".sse")), "gemini", true); err != nil {
				t.Fatal(err)
			}
			streamed := accumulate(t, out.Bytes())

			body, _, err := ChatAnswer(readFile(t, name+".json"), "gemini")
			if err != nil {
				t.Fatal(err)
			}
			var whole sdk.ChatCompletion
			if err := json.Unmarshal(body, &whole); err != nil {
				t.Fatal(err)
			}

			if streamed.ID != whole.ID || streamed.Model != whole.Model || len(streamed.Choices) != 1 || len(whole.Choices) != 1 {
				t.Fatalf("streamed %s %s %d choices, whole %s %s %d", streamed.ID, streamed.Model, len(streamed.Choices), whole.ID, whole.Model, len(whole.Choices))
			}
			sc, wc := streamed.Choices[0], whole.Choices[0]
			if sc.Message.Content != wc.Message.Content || sc.FinishReason != wc.FinishReason || sc.Message.Role != wc.Message.Role {
				t.Errorf("streamed %q %s, whole %q %s", sc.Message.Content, sc.FinishReason, wc.Message.Content, wc.FinishReason)
			}
			if len(sc.Message.ToolCalls) != len(wc.Message.ToolCalls) {
				t.Fatalf("streamed %d tool calls, whole %d", len(sc.Message.ToolCalls), len(wc.Message.ToolCalls))
			}
			for i, st := range sc.Message.ToolCalls {
				wt := wc.Message.ToolCalls[i]
				if st.ID != wt.ID || st.Function.Name != wt.Function.Name || st.Function.Arguments != wt.Function.Arguments || st.Type != wt.Type {
					t.Errorf("tool call %d: streamed %+v, whole %+v", i, st, wt)
				}
			}
			su, wu := streamed.Usage, whole.Usage
			if su.PromptTokens != wu.PromptTokens || su.CompletionTokens != wu.CompletionTokens || su.TotalTokens != wu.TotalTokens ||
				su.CompletionTokensDetails.ReasoningTokens != wu.CompletionTokensDetails.ReasoningTokens || su.TotalTokens == 0 {
				t.Errorf("usage streamed %+v, whole %+v", su, wu)
			}
		})
	}
}

// Over HTTP against a fake Gemini API: the built request reaches it as
// Google expects, and its event stream comes back as OpenAI chunks.
func TestStreamOverHTTP(t *testing.T) {
	sse := readFile(t, "function_call.sse")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Tools []struct {
				FunctionDeclarations []struct{ Name string }
			}
		}
		if r.URL.Path != "/v1beta/models/gemini-3-flash-preview:streamGenerateContent" || r.URL.Query().Get("alt") != "sse" ||
			r.Header.Get("x-goog-api-key") != "AIza-fake" || json.NewDecoder(r.Body).Decode(&body) != nil ||
			len(body.Tools) != 1 || body.Tools[0].FunctionDeclarations[0].Name != "get_current_temperature" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": {"code": 400, "message": "unexpected request `+r.URL.String()+`", "status": "INVALID_ARGUMENT"}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(sse)
	}))
	defer upstream.Close()

	tg := openai.Target{BaseURL: upstream.URL, APIKey: "AIza-fake", Model: "gemini-3-flash-preview"}
	req, err := NewChatRequest(context.Background(), tg, []byte(`{"model": "smart", "stream": true,
		"messages": [{"role": "user", "content": "Temperature in Paris and London?"}],
		"tools": [{"type": "function", "function": {"name": "get_current_temperature", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]}`), true)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("HTTP %d: %s", resp.StatusCode, ErrorMessage(b))
	}
	var out bytes.Buffer
	usage, err := ChatStream(&out, func() {}, resp.Body, "smart", true)
	if err != nil {
		t.Fatal(err)
	}
	acc := accumulate(t, out.Bytes())
	if tc := acc.Choices[0].Message.ToolCalls; len(tc) != 2 || tc[1].Function.Arguments != `{"location":"London","unit":"celsius"}` ||
		acc.Choices[0].FinishReason != "tool_calls" || acc.Model != "smart" || usage.TotalTokens != 152 {
		t.Errorf("%+v %+v", acc.Choices, usage)
	}
}

func BenchmarkChatStream(b *testing.B) {
	// A typical answer: 200 text events and a finish with usage.
	var in bytes.Buffer
	for range 200 {
		in.WriteString(`data: {"candidates": [{"content": {"parts": [{"text": "Some words of a longer answer, "}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 120,"totalTokenCount": 120},"modelVersion": "gemini-2.5-flash","responseId": "bench"}` + "\r\n\r\n")
	}
	in.WriteString(`data: {"candidates": [{"content": {"parts": [{"text": "done."}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 120,"candidatesTokenCount": 1400,"totalTokenCount": 1520},"modelVersion": "gemini-2.5-flash","responseId": "bench"}` + "\r\n\r\n")
	data := in.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ChatStream(io.Discard, func() {}, bytes.NewReader(data), "m", true); err != nil {
			b.Fatal(err)
		}
	}
}
