package mockllm

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wire shapes as a client sees them, declared independently of the
// implementation so a wrong JSON tag fails the tests.
type wireUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type wireChat struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage wireUsage `json:"usage"`
}

type wireChunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *wireUsage `json:"usage"`
}

type wireError struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func newServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewHandler(opts))
	t.Cleanup(srv.Close)
	return srv
}

// call sends one request and returns the response with its body read.
func call(t *testing.T, method, url, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %T: %v\nbody: %s", v, err, data)
	}
	return v
}

func assertJSONEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body = %s\nwant   %s", got, want)
	}
}

// parseSSE checks the event-stream framing and returns the JSON payloads;
// it fails unless [DONE] is the last event.
func parseSSE(t *testing.T, body []byte) []json.RawMessage {
	t.Helper()
	blocks := strings.Split(string(body), "\n\n")
	if blocks[len(blocks)-1] != "" {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	blocks = blocks[:len(blocks)-1]
	var payloads []json.RawMessage
	for i, b := range blocks {
		data, ok := strings.CutPrefix(b, "data: ")
		if !ok {
			t.Fatalf("event %d is not a data line: %q", i, b)
		}
		if data == "[DONE]" {
			if i != len(blocks)-1 {
				t.Fatalf("[DONE] is event %d of %d", i, len(blocks))
			}
			return payloads
		}
		payloads = append(payloads, json.RawMessage(data))
	}
	t.Fatalf("stream has no [DONE]: %q", body)
	return nil
}

func TestEstimateTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"abcd", 1},
		{"abcde", 2},
		{"héllo wörld", 3}, // 11 runes, not 13 bytes
	} {
		if got := EstimateTokens(tc.in); got != tc.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestChatCompletion(t *testing.T) {
	srv := newServer(t, Options{})
	long := strings.Repeat("abcdefghi ", 10) // 100 chars, forces truncation
	for _, tc := range []struct {
		name        string
		path        string
		body        string
		texts       []string // message texts as the mock should read them
		wantPrefix  string
		wantMessage int
	}{
		{
			name:       "string content",
			path:       "/v1/chat/completions",
			body:       `{"model":"mock-gpt","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"What is the capital of France?"}]}`,
			texts:      []string{"You are terse.", "What is the capital of France?"},
			wantPrefix: "Mock answer to: What is the capital of France? ",
		},
		{
			name:       "content parts",
			path:       "/v1/chat/completions",
			body:       `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"Describe"},{"type":"image_url","image_url":{"url":"http://x/y.png"}},{"type":"text","text":"this picture"}]}]}`,
			texts:      []string{"Describe\nthis picture"},
			wantPrefix: "Mock answer to: Describe this picture ",
		},
		{
			name:       "last user turn is answered, long prompt truncated, no /v1 prefix",
			path:       "/chat/completions",
			body:       `{"model":"m","messages":[{"role":"user","content":"first"},{"role":"assistant","content":null},{"role":"user","content":"` + long + `"},{"role":"assistant","content":"ok"}]}`,
			texts:      []string{"first", "", long, "ok"},
			wantPrefix: "Mock answer to: " + strings.TrimSpace(long[:60]) + "... ",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().Unix()
			resp, data := call(t, http.MethodPost, srv.URL+tc.path, tc.body, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			got := decode[wireChat](t, data)
			req := decode[struct{ Model string }](t, []byte(tc.body))
			if !strings.HasPrefix(got.ID, "chatcmpl-mock-") || got.Object != "chat.completion" || got.Model != req.Model {
				t.Errorf("id/object/model = %q/%q/%q", got.ID, got.Object, got.Model)
			}
			if got.Created < before || got.Created > time.Now().Unix() {
				t.Errorf("created = %d, not now", got.Created)
			}
			if len(got.Choices) != 1 {
				t.Fatalf("%d choices", len(got.Choices))
			}
			c := got.Choices[0]
			if c.Index != 0 || c.Message.Role != "assistant" || c.FinishReason != "stop" {
				t.Errorf("choice = %+v", c)
			}
			if !strings.HasPrefix(c.Message.Content, tc.wantPrefix) || !strings.HasSuffix(c.Message.Content, ".") {
				t.Errorf("content = %q, want prefix %q", c.Message.Content, tc.wantPrefix)
			}
			wantPrompt := EstimateTokens(strings.Join(tc.texts, "")) + 3*len(tc.texts) + 3
			want := wireUsage{
				PromptTokens:     wantPrompt,
				CompletionTokens: len(strings.Fields(c.Message.Content)),
				TotalTokens:      wantPrompt + len(strings.Fields(c.Message.Content)),
			}
			if got.Usage != want {
				t.Errorf("usage = %+v, want %+v", got.Usage, want)
			}
		})
	}
}

func TestChatDeterministic(t *testing.T) {
	a := newServer(t, Options{Seed: 1})
	b := newServer(t, Options{Seed: 2})
	body := func(q string) string {
		return `{"model":"mock-gpt","messages":[{"role":"user","content":"` + q + `"}]}`
	}
	answer := func(srv *httptest.Server, q string) wireChat {
		resp, data := call(t, http.MethodPost, srv.URL+"/v1/chat/completions", body(q), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, data)
		}
		return decode[wireChat](t, data)
	}
	first, again, other := answer(a, "hello"), answer(b, "hello"), answer(a, "goodbye")
	if first.Choices[0].Message.Content != again.Choices[0].Message.Content || first.Usage != again.Usage {
		t.Errorf("same request, different answers:\n%+v\n%+v", first, again)
	}
	if first.ID == again.ID {
		t.Errorf("two responses share id %q", first.ID)
	}
	// Compare the filler after the echoed prompt, so the echo alone cannot pass.
	filler := strings.TrimPrefix(first.Choices[0].Message.Content, "Mock answer to: hello ")
	otherFiller := strings.TrimPrefix(other.Choices[0].Message.Content, "Mock answer to: goodbye ")
	if filler == otherFiller {
		t.Errorf("different requests, same filler %q", filler)
	}
}

func TestChatMaxTokens(t *testing.T) {
	srv := newServer(t, Options{})
	const msgs = `"messages":[{"role":"user","content":"count to ten"}]`
	for _, tc := range []struct {
		name       string
		limits     string
		wantTokens int // 0: uncapped
		wantFinish string
	}{
		{"max_tokens caps", `"max_tokens":3`, 3, "length"},
		{"max_completion_tokens caps", `"max_completion_tokens":5`, 5, "length"},
		{"max_completion_tokens wins", `"max_tokens":1000,"max_completion_tokens":2`, 2, "length"},
		{"large cap is not hit", `"max_tokens":1000`, 0, "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/chat/completions", `{"model":"m",`+msgs+`,`+tc.limits+`}`, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			got := decode[wireChat](t, data)
			c := got.Choices[0]
			if c.FinishReason != tc.wantFinish {
				t.Errorf("finish_reason = %q, want %q", c.FinishReason, tc.wantFinish)
			}
			words := len(strings.Fields(c.Message.Content))
			if got.Usage.CompletionTokens != words || (tc.wantTokens > 0 && words != tc.wantTokens) {
				t.Errorf("completion_tokens = %d, words = %d, want %d", got.Usage.CompletionTokens, words, tc.wantTokens)
			}
			if tc.wantTokens == 3 && c.Message.Content != "Mock answer to:" {
				t.Errorf("capped content = %q", c.Message.Content)
			}
		})
	}
}

func TestChatStream(t *testing.T) {
	srv := newServer(t, Options{})
	const base = `"model":"mock-gpt","messages":[{"role":"user","content":"Stream me a story"}]`
	for _, tc := range []struct {
		name         string
		limit        string
		includeUsage bool
		wantFinish   string
	}{
		{"plain", "", false, "stop"},
		{"include_usage", "", true, "stop"},
		{"capped with usage", `,"max_tokens":4`, true, "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The plain answer to the same request is the reference.
			_, data := call(t, http.MethodPost, srv.URL+"/v1/chat/completions", `{`+base+tc.limit+`}`, nil)
			whole := decode[wireChat](t, data)

			streamBody := `{` + base + tc.limit + `,"stream":true`
			if tc.includeUsage {
				streamBody += `,"stream_options":{"include_usage":true}`
			}
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/chat/completions", streamBody+`}`, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type = %q", ct)
			}
			payloads := parseSSE(t, data)
			wordChunks := whole.Usage.CompletionTokens
			wantChunks := 1 + wordChunks + 1
			if tc.includeUsage {
				wantChunks++
			}
			if len(payloads) != wantChunks {
				t.Fatalf("%d chunks, want %d", len(payloads), wantChunks)
			}

			var content strings.Builder
			var id string
			for i, p := range payloads {
				chunk := decode[wireChunk](t, p)
				fields := decode[map[string]json.RawMessage](t, p)
				if i == 0 {
					id = chunk.ID
				}
				if chunk.ID != id || !strings.HasPrefix(id, "chatcmpl-mock-") || chunk.Object != "chat.completion.chunk" || chunk.Model != "mock-gpt" {
					t.Errorf("chunk %d: id/object/model = %q/%q/%q", i, chunk.ID, chunk.Object, chunk.Model)
				}
				usageRaw, hasUsage := fields["usage"]
				isUsageChunk := tc.includeUsage && i == len(payloads)-1
				switch {
				case isUsageChunk:
					if string(fields["choices"]) != "[]" || chunk.Usage == nil || *chunk.Usage != whole.Usage {
						t.Errorf("usage chunk = %s, want choices [] and usage %+v", p, whole.Usage)
					}
					continue
				case tc.includeUsage && string(usageRaw) != "null":
					t.Errorf("chunk %d: usage = %s, want null", i, usageRaw)
				case !tc.includeUsage && hasUsage:
					t.Errorf("chunk %d carries usage without include_usage: %s", i, p)
				}
				if len(chunk.Choices) != 1 {
					t.Fatalf("chunk %d: %d choices", i, len(chunk.Choices))
				}
				c := chunk.Choices[0]
				switch {
				case i == 0:
					if c.Delta.Role == nil || *c.Delta.Role != "assistant" || c.Delta.Content == nil || *c.Delta.Content != "" || c.FinishReason != nil {
						t.Errorf("first chunk = %s", p)
					}
				case i <= wordChunks:
					if c.Delta.Content == nil || c.Delta.Role != nil || c.FinishReason != nil {
						t.Errorf("content chunk %d = %s", i, p)
					} else {
						content.WriteString(*c.Delta.Content)
					}
				default:
					if c.Delta.Content != nil || c.FinishReason == nil || *c.FinishReason != tc.wantFinish {
						t.Errorf("finish chunk = %s, want finish_reason %q", p, tc.wantFinish)
					}
				}
			}
			if want := whole.Choices[0].Message.Content; content.String() != want {
				t.Errorf("streamed content = %q, want %q", content.String(), want)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	const stream = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`

	t.Run("options latency", func(t *testing.T) {
		srv := newServer(t, Options{Latency: 150 * time.Millisecond, Jitter: 50 * time.Millisecond})
		start := time.Now()
		call(t, http.MethodPost, srv.URL+"/v1/chat/completions", chat, nil)
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("answered after %v, want >= 150ms", d)
		}
	})
	t.Run("header overrides latency", func(t *testing.T) {
		srv := newServer(t, Options{Latency: time.Minute})
		start := time.Now()
		resp, _ := call(t, http.MethodPost, srv.URL+"/v1/chat/completions", chat, map[string]string{"x-mock-latency-ms": "0"})
		if resp.StatusCode != http.StatusOK || time.Since(start) > 10*time.Second {
			t.Errorf("status %d after %v; header did not override", resp.StatusCode, time.Since(start))
		}
	})
	t.Run("stream splits latency", func(t *testing.T) {
		srv := newServer(t, Options{})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(stream))
		req.Header.Set("x-mock-latency-ms", "300")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		first := time.Since(start)
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatal(err)
		}
		total := time.Since(start)
		if first < 150*time.Millisecond || total < 299*time.Millisecond {
			t.Errorf("first chunk after %v (want >= 150ms), done after %v (want >= 300ms)", first, total)
		}
	})
}

// TestClientGoesAway checks handlers stop waiting when the client leaves:
// httptest.Server.Close blocks until every handler has returned.
func TestClientGoesAway(t *testing.T) {
	for _, body := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
	} {
		srv := httptest.NewServer(NewHandler(Options{Latency: time.Minute}))
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("request finished despite a minute of latency")
		}
		cancel()
		start := time.Now()
		srv.Close()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("handler kept running %v after the client left", d)
		}
	}
}

func TestEmbeddings(t *testing.T) {
	srv := newServer(t, Options{})
	type wireEmbeddings struct {
		Object string `json:"object"`
		Model  string `json:"model"`
		Data   []struct {
			Object    string          `json:"object"`
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	for _, tc := range []struct {
		name       string
		body       string
		wantN      int
		wantDims   int
		wantTokens int
		sameAs     map[int]int // index -> earlier index with the same input
	}{
		{"string", `{"model":"mock-embed","input":"hello world"}`, 1, 16, EstimateTokens("hello world"), nil},
		{"strings with dimensions", `{"model":"mock-embed","input":["alpha","beta gamma","alpha"],"dimensions":8}`, 3, 8,
			EstimateTokens("alpha")*2 + EstimateTokens("beta gamma"), map[int]int{2: 0}},
		{"token array", `{"model":"mock-embed","input":[1,2,3]}`, 1, 16, 3, nil},
		{"token arrays", `{"model":"mock-embed","input":[[1,2],[3],[1,2]]}`, 3, 16, 5, map[int]int{2: 0}},
		{"base64", `{"model":"mock-embed","input":["x","y"],"dimensions":32,"encoding_format":"base64"}`, 2, 32, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/embeddings", tc.body, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			got := decode[wireEmbeddings](t, data)
			if got.Object != "list" || got.Model != "mock-embed" || len(got.Data) != tc.wantN {
				t.Fatalf("object/model/len = %q/%q/%d", got.Object, got.Model, len(got.Data))
			}
			if got.Usage.PromptTokens != tc.wantTokens || got.Usage.TotalTokens != tc.wantTokens {
				t.Errorf("usage = %+v, want %d", got.Usage, tc.wantTokens)
			}
			vecs := make([][]float64, len(got.Data))
			for i, d := range got.Data {
				if d.Object != "embedding" || d.Index != i {
					t.Errorf("data[%d] object/index = %q/%d", i, d.Object, d.Index)
				}
				vecs[i] = embeddingValues(t, d.Embedding)
				if len(vecs[i]) != tc.wantDims {
					t.Fatalf("data[%d] has %d dims, want %d", i, len(vecs[i]), tc.wantDims)
				}
				var norm float64
				for _, x := range vecs[i] {
					norm += x * x
				}
				if math.Abs(math.Sqrt(norm)-1) > 1e-6 {
					t.Errorf("data[%d] norm = %v", i, math.Sqrt(norm))
				}
			}
			for i := range vecs {
				for j := range i {
					earlier, dup := tc.sameAs[i]
					if same := slices.Equal(vecs[i], vecs[j]); same != (dup && earlier == j) {
						t.Errorf("vectors %d and %d equal = %v", i, j, same)
					}
				}
			}
		})
	}
}

// embeddingValues reads a float array or OpenAI's base64 float32 encoding.
func embeddingValues(t *testing.T, raw json.RawMessage) []float64 {
	t.Helper()
	var floats []float64
	if json.Unmarshal(raw, &floats) == nil {
		return floats
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("embedding is neither floats nor a string: %s", raw)
	}
	buf, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(buf)%4 != 0 {
		t.Fatalf("bad base64 embedding %q: %v", s, err)
	}
	for i := 0; i < len(buf); i += 4 {
		floats = append(floats, float64(math.Float32frombits(binary.LittleEndian.Uint32(buf[i:]))))
	}
	return floats
}

func TestCompletions(t *testing.T) {
	srv := newServer(t, Options{})
	type wireCompletion struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Text         string  `json:"text"`
			Index        int     `json:"index"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *wireUsage `json:"usage"`
	}
	for _, tc := range []struct {
		name       string
		body       string
		prompts    []string
		wantFinish string
	}{
		{"string prompt", `{"model":"mock-small","prompt":"Say this is a test"}`, []string{"Say this is a test"}, "stop"},
		{"prompt array", `{"model":"mock-small","prompt":["one","two"]}`, []string{"one", "two"}, "stop"},
		{"capped", `{"model":"mock-small","prompt":"Say this is a test","max_tokens":2}`, []string{"Say this is a test"}, "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/completions", tc.body, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			got := decode[wireCompletion](t, data)
			if !strings.HasPrefix(got.ID, "cmpl-mock-") || got.Object != "text_completion" || got.Model != "mock-small" {
				t.Errorf("id/object/model = %q/%q/%q", got.ID, got.Object, got.Model)
			}
			if len(got.Choices) != len(tc.prompts) || got.Usage == nil {
				t.Fatalf("%d choices, usage %v", len(got.Choices), got.Usage)
			}
			var want wireUsage
			for i, c := range got.Choices {
				if c.Index != i || c.FinishReason == nil || *c.FinishReason != tc.wantFinish {
					t.Errorf("choice %d = %+v", i, c)
				}
				if tc.wantFinish == "stop" && !strings.HasPrefix(c.Text, "Mock answer to: "+tc.prompts[i]+" ") {
					t.Errorf("choice %d text = %q", i, c.Text)
				}
				want.PromptTokens += EstimateTokens(tc.prompts[i])
				want.CompletionTokens += len(strings.Fields(c.Text))
			}
			want.TotalTokens = want.PromptTokens + want.CompletionTokens
			if *got.Usage != want {
				t.Errorf("usage = %+v, want %+v", *got.Usage, want)
			}

			// The streamed text must match the plain answer.
			streamBody := strings.TrimSuffix(tc.body, "}") + `,"stream":true,"stream_options":{"include_usage":true}}`
			_, data = call(t, http.MethodPost, srv.URL+"/v1/completions", streamBody, nil)
			payloads := parseSSE(t, data)
			texts := make([]string, len(tc.prompts))
			for _, p := range payloads[:len(payloads)-1] {
				chunk := decode[wireCompletion](t, p)
				texts[chunk.Choices[0].Index] += chunk.Choices[0].Text
			}
			for i, c := range got.Choices {
				if texts[i] != c.Text {
					t.Errorf("streamed choice %d = %q, want %q", i, texts[i], c.Text)
				}
			}
			if last := decode[wireCompletion](t, payloads[len(payloads)-1]); len(last.Choices) != 0 || last.Usage == nil || *last.Usage != want {
				t.Errorf("final chunk = %s, want usage %+v", payloads[len(payloads)-1], want)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	srv := newServer(t, Options{})
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		name      string
		path      string
		body      string
		wantParam string // "" means null
	}{
		{"chat malformed JSON", "/v1/chat/completions", `{"model":`, ""},
		{"chat missing model", "/v1/chat/completions", `{` + msgs + `}`, "model"},
		{"chat missing messages", "/v1/chat/completions", `{"model":"m"}`, "messages"},
		{"chat empty messages", "/v1/chat/completions", `{"model":"m","messages":[]}`, "messages"},
		{"chat messages not an array", "/v1/chat/completions", `{"model":"m","messages":"hi"}`, "messages"},
		{"chat bad content", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":42}]}`, "messages[0].content"},
		{"chat missing role", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"a"},{"content":"b"}]}`, "messages[1].role"},
		{"chat unknown role", "/v1/chat/completions", `{"model":"m","messages":[{"role":"robot","content":"a"}]}`, "messages[0].role"},
		{"chat zero max_tokens", "/v1/chat/completions", `{"model":"m",` + msgs + `,"max_tokens":0}`, "max_tokens"},
		{"chat stream_options without stream", "/v1/chat/completions", `{"model":"m",` + msgs + `,"stream_options":{"include_usage":true}}`, "stream_options"},
		{"embeddings malformed JSON", "/v1/embeddings", `not json`, ""},
		{"embeddings missing model", "/v1/embeddings", `{"input":"x"}`, "model"},
		{"embeddings missing input", "/v1/embeddings", `{"model":"e"}`, "input"},
		{"embeddings empty string", "/v1/embeddings", `{"model":"e","input":""}`, "input"},
		{"embeddings empty array", "/v1/embeddings", `{"model":"e","input":[]}`, "input"},
		{"embeddings object input", "/v1/embeddings", `{"model":"e","input":{"a":1}}`, "input"},
		{"embeddings zero dimensions", "/v1/embeddings", `{"model":"e","input":"x","dimensions":0}`, "dimensions"},
		{"embeddings bad encoding", "/v1/embeddings", `{"model":"e","input":"x","encoding_format":"int8"}`, "encoding_format"},
		{"completions missing model", "/v1/completions", `{"prompt":"x"}`, "model"},
		{"completions missing prompt", "/v1/completions", `{"model":"m"}`, "prompt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+tc.path, tc.body, nil)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", resp.StatusCode, data)
			}
			got := decode[wireError](t, data).Error
			if got.Type != "invalid_request_error" || got.Message == "" {
				t.Errorf("error = %+v", got)
			}
			switch {
			case tc.wantParam == "" && got.Param != nil:
				t.Errorf("param = %q, want null", *got.Param)
			case tc.wantParam != "" && (got.Param == nil || *got.Param != tc.wantParam):
				t.Errorf("param = %v, want %q (body %s)", got.Param, tc.wantParam, data)
			}
		})
	}
}

func TestAPIKey(t *testing.T) {
	srv := newServer(t, Options{APIKey: "sk-mock"})
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	const unauthorized = `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"chat without key", http.MethodPost, "/v1/chat/completions", "", http.StatusUnauthorized},
		{"chat with wrong key", http.MethodPost, "/v1/chat/completions", "Bearer sk-other", http.StatusUnauthorized},
		{"chat with key but no Bearer", http.MethodPost, "/v1/chat/completions", "sk-mock", http.StatusUnauthorized},
		{"chat with key", http.MethodPost, "/v1/chat/completions", "Bearer sk-mock", http.StatusOK},
		{"embeddings without key", http.MethodPost, "/v1/embeddings", "", http.StatusUnauthorized},
		{"models without key", http.MethodGet, "/v1/models", "", http.StatusUnauthorized},
		{"models with key", http.MethodGet, "/v1/models", "Bearer sk-mock", http.StatusOK},
		{"health needs no key", http.MethodGet, "/health", "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header := map[string]string{}
			if tc.auth != "" {
				header["Authorization"] = tc.auth
			}
			resp, data := call(t, tc.method, srv.URL+tc.path, chat, header)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, data)
			}
			if tc.want == http.StatusUnauthorized {
				assertJSONEqual(t, data, unauthorized)
			}
		})
	}
}

func TestForcedStatus(t *testing.T) {
	srv := newServer(t, Options{})
	const chat = `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, header, body string
		wantStatus         int
		wantType           string
	}{
		{"500", "500", chat, 500, "server_error"},
		{"503", "503", chat, 503, "server_error"},
		{"429", "429", chat, 429, "requests"},
		{"400", "400", chat, 400, "invalid_request_error"},
		{"wins over a bad body", "502", `not json`, 502, "server_error"},
		{"on a stream", "500", `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`, 500, "server_error"},
		{"not a number", "abc", chat, 400, "invalid_request_error"},
		{"not an error status", "200", chat, 400, "invalid_request_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/chat/completions", tc.body, map[string]string{"x-mock-status": tc.header})
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, data)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := decode[wireError](t, data).Error; got.Type != tc.wantType || got.Message == "" {
				t.Errorf("error = %+v, want type %q", got, tc.wantType)
			}
		})
	}
}

func TestErrorRate(t *testing.T) {
	const injected = `{"error":{"message":"mock-llm injected failure","type":"server_error","param":null,"code":null}}`
	requests := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/embeddings", `{"model":"e","input":"hi"}`},
		{"/v1/completions", `{"model":"m","prompt":"hi"}`},
	}
	for _, tc := range []struct {
		name string
		rate float64
		want int
	}{
		{"always", 1, http.StatusInternalServerError},
		{"never", 0, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, Options{ErrorRate: tc.rate})
			for i := range 30 {
				r := requests[i%len(requests)]
				resp, data := call(t, http.MethodPost, srv.URL+r.path, r.body, nil)
				if resp.StatusCode != tc.want {
					t.Fatalf("request %d to %s: status %d, want %d", i, r.path, resp.StatusCode, tc.want)
				}
				if tc.want == http.StatusInternalServerError {
					assertJSONEqual(t, data, injected)
				}
			}
		})
	}

	t.Run("seeded rate is reproducible", func(t *testing.T) {
		outcomes := func() []int {
			srv := newServer(t, Options{ErrorRate: 0.5, Seed: 42})
			var statuses []int
			for range 60 {
				resp, _ := call(t, http.MethodPost, srv.URL+requests[0].path, requests[0].body, nil)
				statuses = append(statuses, resp.StatusCode)
			}
			return statuses
		}
		first, second := outcomes(), outcomes()
		if !slices.Equal(first, second) {
			t.Errorf("same seed, different outcomes:\n%v\n%v", first, second)
		}
		failures := 0
		for _, s := range first {
			if s == http.StatusInternalServerError {
				failures++
			}
		}
		if failures < 10 || failures > 50 {
			t.Errorf("%d of 60 failed at rate 0.5", failures)
		}
	})
}

func TestModelsHealthAndRoutes(t *testing.T) {
	srv := newServer(t, Options{})
	for _, path := range []string{"/v1/models", "/models"} {
		resp, data := call(t, http.MethodGet, srv.URL+path, "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		list := decode[struct {
			Object string
			Data   []struct{ ID, Object string }
		}](t, data)
		var ids []string
		for _, m := range list.Data {
			ids = append(ids, m.ID)
		}
		if list.Object != "list" || !slices.Contains(ids, "mock-gpt") || !slices.Contains(ids, "mock-embed") {
			t.Errorf("%s = %s", path, data)
		}
	}
	for _, tc := range []struct {
		method, path string
		want         int
		wantCode     string
	}{
		{http.MethodGet, "/v1/models/mock-gpt", 200, ""},
		{http.MethodGet, "/v1/models/nope", 404, "model_not_found"},
		{http.MethodGet, "/v1/nope", 404, ""},
		{http.MethodGet, "/v1/chat/completions", 404, ""}, // wrong method
	} {
		resp, data := call(t, tc.method, srv.URL+tc.path, "", nil)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
			continue
		}
		if tc.want == 404 {
			got := decode[wireError](t, data).Error
			if got.Type != "invalid_request_error" || (tc.wantCode != "" && (got.Code == nil || *got.Code != tc.wantCode)) {
				t.Errorf("%s %s: error = %s", tc.method, tc.path, data)
			}
		}
	}
	resp, data := call(t, http.MethodGet, srv.URL+"/health", "", nil)
	if resp.StatusCode != http.StatusOK || string(data) != "ok" {
		t.Errorf("health = %d %q", resp.StatusCode, data)
	}
}

// TestConcurrent exercises the shared random source under -race.
func TestConcurrent(t *testing.T) {
	srv := newServer(t, Options{ErrorRate: 0.3, Jitter: time.Millisecond, Seed: 7})
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for i := range 40 {
		wg.Go(func() {
			body := `{"model":"m","stream":` + strconv.FormatBool(i%2 == 0) + `,"messages":[{"role":"user","content":"hi"}]}`
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	n := 0
	for s := range statuses {
		n++
		if s != http.StatusOK && s != http.StatusInternalServerError {
			t.Errorf("status %d", s)
		}
	}
	if n != 40 {
		t.Errorf("%d of 40 requests answered", n)
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()

	// A taken address is reported, not ignored.
	if err := Serve(t.Context(), addr, Options{}, nil); err == nil {
		t.Error("Serve on a taken address returned nil")
	}
	ln.Close()

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, Options{}, nil) }()

	var healthy bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !healthy; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			healthy = resp.StatusCode == http.StatusOK
			resp.Body.Close()
		}
	}
	if !healthy {
		t.Fatal("server never became healthy")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if resp, err := http.Get("http://" + addr + "/health"); err == nil {
		resp.Body.Close()
		t.Error("server still answering after shutdown")
	}
}
