package mockllm

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Google shapes as a client sees them, declared apart from the
// implementation so a wrong JSON tag fails the tests.
type wireGemini struct {
	Candidates []struct {
		Content *struct {
			Role  string `json:"role"`
			Parts []struct {
				Text         *string `json:"text"`
				FunctionCall *struct {
					Name string          `json:"name"`
					Args json.RawMessage `json:"args"`
				} `json:"functionCall"`
			} `json:"parts"`
		} `json:"content"`
		FinishReason string `json:"finishReason"`
		Index        *int   `json:"index"`
	} `json:"candidates"`
	UsageMetadata *struct {
		PromptTokenCount     int `json:"promptTokenCount"`
		CandidatesTokenCount int `json:"candidatesTokenCount"`
		TotalTokenCount      int `json:"totalTokenCount"`
	} `json:"usageMetadata"`
	ModelVersion string `json:"modelVersion"`
	ResponseID   string `json:"responseId"`
}

type wireGoogleError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type   string `json:"@type"`
			Reason string `json:"reason"`
		} `json:"details"`
	} `json:"error"`
}

const (
	geminiPath = "/v1beta/models/mock-gemini"
	vertexPath = "/v1/projects/proj/locations/us-central1/publishers/google/models/mock-gemini"
)

// candidateText joins the text parts of candidate i.
func candidateText(g wireGemini, i int) string {
	var b strings.Builder
	if c := g.Candidates[i].Content; c != nil {
		for _, p := range c.Parts {
			if p.Text != nil {
				b.WriteString(*p.Text)
			}
		}
	}
	return b.String()
}

// parseGeminiSSE checks Google's framing, one data: line ended by a blank
// line with CRLF line ends, and returns the chunks.
func parseGeminiSSE(t *testing.T, body []byte) []wireGemini {
	t.Helper()
	blocks := strings.Split(string(body), "\r\n\r\n")
	if blocks[len(blocks)-1] != "" {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	var chunks []wireGemini
	for i, b := range blocks[:len(blocks)-1] {
		data, ok := strings.CutPrefix(b, "data: ")
		if !ok || strings.ContainsAny(data, "\r\n") {
			t.Fatalf("event %d is not one data: line: %q", i, b)
		}
		chunks = append(chunks, decode[wireGemini](t, []byte(data)))
	}
	return chunks
}

func TestGeminiGenerateContent(t *testing.T) {
	srv := newServer(t, Options{})
	_, chatData := call(t, http.MethodPost, srv.URL+"/v1/chat/completions",
		`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"},
		  {"role":"assistant","content":"Hi."},{"role":"user","content":"How are you?"}]}`, nil)
	chat := decode[wireChat](t, chatData)

	const body = `{"systemInstruction":{"parts":[{"text":"Be brief."}]},"contents":[
		{"role":"user","parts":[{"text":"Hello there"}]},{"role":"model","parts":[{"text":"Hi."}]},
		{"role":"user","parts":[{"text":"How are you?"},{"inlineData":{"mimeType":"image/png","data":"AAAA"}}]}]}`
	for _, path := range []string{geminiPath, vertexPath} {
		resp, data := call(t, http.MethodPost, srv.URL+path+":generateContent", body, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s: status %d, Content-Type %q: %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		g := decode[wireGemini](t, data)
		if len(g.Candidates) != 1 || g.ModelVersion != "mock-gemini" || g.ResponseID == "" {
			t.Fatalf("%s: answer = %s", path, data)
		}
		c := g.Candidates[0]
		if c.Content == nil || c.Content.Role != "model" || len(c.Content.Parts) != 1 || c.FinishReason != "STOP" || c.Index == nil || *c.Index != 0 {
			t.Errorf("%s: candidate = %s", path, data)
		}
		if got := candidateText(g, 0); got != chat.Choices[0].Message.Content {
			t.Errorf("%s: text %q, want the chat answer %q", path, got, chat.Choices[0].Message.Content)
		}
		u := g.UsageMetadata
		if u == nil || u.PromptTokenCount != chat.Usage.PromptTokens || u.CandidatesTokenCount != chat.Usage.CompletionTokens ||
			u.TotalTokenCount != chat.Usage.TotalTokens {
			t.Errorf("%s: usage = %+v, want the chat usage %+v", path, u, chat.Usage)
		}
	}
}

func TestGeminiCandidatesAndLimits(t *testing.T) {
	srv := newServer(t, Options{})
	_, data := call(t, http.MethodPost, srv.URL+geminiPath+":generateContent",
		`{"contents":[{"parts":[{"text":"Two please"}]}],"generationConfig":{"candidateCount":2}}`, nil)
	g := decode[wireGemini](t, data)
	if len(g.Candidates) != 2 || *g.Candidates[0].Index != 0 || *g.Candidates[1].Index != 1 {
		t.Fatalf("candidates = %s", data)
	}
	a, b := candidateText(g, 0), candidateText(g, 1)
	if a == b {
		t.Errorf("both candidates say %q", a)
	}
	if words := len(strings.Fields(a)) + len(strings.Fields(b)); g.UsageMetadata.CandidatesTokenCount != words ||
		g.UsageMetadata.TotalTokenCount != g.UsageMetadata.PromptTokenCount+words {
		t.Errorf("usage = %+v, want %d candidate tokens", g.UsageMetadata, words)
	}

	_, data = call(t, http.MethodPost, srv.URL+geminiPath+":generateContent",
		`{"contents":[{"parts":[{"text":"Short please"}]}],"generationConfig":{"maxOutputTokens":3}}`, nil)
	g = decode[wireGemini](t, data)
	if g.Candidates[0].FinishReason != "MAX_TOKENS" || candidateText(g, 0) != "Mock answer to:" || g.UsageMetadata.CandidatesTokenCount != 3 {
		t.Errorf("capped answer = %s", data)
	}
}

func TestGeminiToolRule(t *testing.T) {
	srv := newServer(t, Options{})
	const tools = `"tools":[{"functionDeclarations":[{"name":"get_weather","parameters":{"type":"OBJECT"}},{"name":"other"}]}]`
	for _, tc := range []struct {
		name, body string
		want       bool
		finish     string
	}{
		{"tools and weather", `{` + tools + `,"contents":[{"role":"user","parts":[{"text":"Weather in Paris?"}]}]}`, true, "STOP"},
		{"no tools", `{"contents":[{"role":"user","parts":[{"text":"Weather in Paris?"}]}]}`, false, "STOP"},
		{"not about weather", `{` + tools + `,"contents":[{"role":"user","parts":[{"text":"Hello"}]}]}`, false, "STOP"},
		{"answers a function response", `{` + tools + `,"contents":[
			{"role":"user","parts":[{"text":"Weather in Paris?"}]},
			{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{}}}]},
			{"role":"user","parts":[{"functionResponse":{"name":"get_weather","response":{"content":"sunny weather"}}}]}]}`, false, "STOP"},
		{"cut by maxOutputTokens", `{` + tools + `,"generationConfig":{"maxOutputTokens":2},"contents":[{"parts":[{"text":"weather?"}]}]}`, false, "MAX_TOKENS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+geminiPath+":generateContent", tc.body, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			c := decode[wireGemini](t, data).Candidates[0]
			if c.FinishReason != tc.finish {
				t.Errorf("finishReason = %s, want %s", c.FinishReason, tc.finish)
			}
			parts := c.Content.Parts
			if !tc.want {
				if len(parts) != 1 || parts[0].FunctionCall != nil {
					t.Errorf("parts = %s, want only text", data)
				}
				return
			}
			if len(parts) != 2 || parts[0].Text == nil || parts[1].FunctionCall == nil ||
				parts[1].FunctionCall.Name != "get_weather" || string(parts[1].FunctionCall.Args) != "{}" {
				t.Errorf("parts = %s, want text then functionCall get_weather {}", data)
			}
		})
	}
}

func TestGeminiStream(t *testing.T) {
	srv := newServer(t, Options{})
	for _, tc := range []struct {
		name, body string
		tool       bool
	}{
		{"text", `{"contents":[{"role":"user","parts":[{"text":"Stream this please"}]}]}`, false},
		{"function call", `{"tools":[{"functionDeclarations":[{"name":"get_weather"}]}],"contents":[{"role":"user","parts":[{"text":"weather?"}]}]}`, true},
		{"two candidates", `{"generationConfig":{"candidateCount":2},"contents":[{"role":"user","parts":[{"text":"Stream two"}]}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, whole := call(t, http.MethodPost, srv.URL+vertexPath+":generateContent", tc.body, nil)
			want := decode[wireGemini](t, whole)

			resp, data := call(t, http.MethodPost, srv.URL+vertexPath+":streamGenerateContent?alt=sse", tc.body, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
			}
			chunks := parseGeminiSSE(t, data)
			if len(chunks) < 2 {
				t.Fatalf("%d chunks, want a few words each: %q", len(chunks), data)
			}
			texts := make([]strings.Builder, len(want.Candidates))
			calls := 0
			for i, ch := range chunks {
				last := i == len(chunks)-1
				if ch.ModelVersion != "mock-gemini" || ch.ResponseID != chunks[0].ResponseID {
					t.Errorf("chunk %d: modelVersion %q, responseId %q", i, ch.ModelVersion, ch.ResponseID)
				}
				if (ch.UsageMetadata != nil) != last {
					t.Errorf("chunk %d: usageMetadata %v; only the last carries it", i, ch.UsageMetadata)
				}
				for _, c := range ch.Candidates {
					if (c.FinishReason != "") != last {
						t.Errorf("chunk %d: finishReason %q; only the last carries it", i, c.FinishReason)
					}
					if c.Content == nil {
						continue
					}
					for _, p := range c.Content.Parts {
						if p.Text != nil {
							if n := len(strings.Fields(*p.Text)); n < 1 || n > 4 {
								t.Errorf("chunk %d has %d words", i, n)
							}
							texts[*c.Index].WriteString(*p.Text)
						}
						if p.FunctionCall != nil {
							calls++
							if !last || p.FunctionCall.Name != "get_weather" || string(p.FunctionCall.Args) != "{}" {
								t.Errorf("chunk %d: functionCall %+v", i, p.FunctionCall)
							}
						}
					}
				}
			}
			for i := range want.Candidates {
				if texts[i].String() != candidateText(want, i) {
					t.Errorf("candidate %d streamed %q, want %q", i, texts[i].String(), candidateText(want, i))
				}
			}
			if tc.tool != (calls == 1) {
				t.Errorf("%d function calls streamed", calls)
			}
			if got := chunks[len(chunks)-1].UsageMetadata; *got != *want.UsageMetadata {
				t.Errorf("stream usage %+v, want %+v", got, want.UsageMetadata)
			}

			// Without alt=sse the same chunks come as one JSON array.
			resp, data = call(t, http.MethodPost, srv.URL+geminiPath+":streamGenerateContent", tc.body, nil)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("array stream: status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			array := decode[[]wireGemini](t, data)
			if len(array) != len(chunks) || *array[len(array)-1].UsageMetadata != *want.UsageMetadata {
				t.Errorf("array stream = %s", data)
			}
		})
	}
}

func TestGeminiErrors(t *testing.T) {
	srv := newServer(t, Options{APIKey: "AIza-mock"})
	const ok = `{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}`
	key := map[string]string{"x-goog-api-key": "AIza-mock"}
	bearer := map[string]string{"Authorization": "Bearer ya29.anything"}
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		code             int
		status, reason   string
	}{
		{"no key", geminiPath + ":generateContent", ok, nil, 403, "PERMISSION_DENIED", ""},
		{"wrong key", geminiPath + ":generateContent", ok, map[string]string{"x-goog-api-key": "AIza-wrong"}, 400, "INVALID_ARGUMENT", "API_KEY_INVALID"},
		{"bearer is not a Gemini API key", geminiPath + ":generateContent", ok, bearer, 403, "PERMISSION_DENIED", ""},
		{"vertex without a token", vertexPath + ":generateContent", ok, key, 401, "UNAUTHENTICATED", "CREDENTIALS_MISSING"},
		{"vertex with an empty token", vertexPath + ":generateContent", ok, map[string]string{"Authorization": "Bearer "}, 401, "UNAUTHENTICATED", "CREDENTIALS_MISSING"},
		{"no contents", geminiPath + ":generateContent", `{}`, key, 400, "INVALID_ARGUMENT", ""},
		{"bad role", geminiPath + ":generateContent", `{"contents":[{"role":"assistant","parts":[{"text":"hi"}]}]}`, key, 400, "INVALID_ARGUMENT", ""},
		{"no parts", vertexPath + ":generateContent", `{"contents":[{"role":"user","parts":[]}]}`, bearer, 400, "INVALID_ARGUMENT", ""},
		{"too many candidates", geminiPath + ":generateContent", `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"candidateCount":9}}`, key, 400, "INVALID_ARGUMENT", ""},
		{"maxOutputTokens 0", geminiPath + ":generateContent", `{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":0}}`, key, 400, "INVALID_ARGUMENT", ""},
		{"not JSON", geminiPath + ":generateContent", `{`, key, 400, "INVALID_ARGUMENT", ""},
		{"unknown method", geminiPath + ":countTokens", ok, key, 404, "NOT_FOUND", ""},
		{"no method", geminiPath, ok, key, 404, "NOT_FOUND", ""},
		{"forced 429", geminiPath + ":generateContent", ok, map[string]string{"x-goog-api-key": "AIza-mock", "x-mock-status": "429"}, 429, "RESOURCE_EXHAUSTED", ""},
		{"forced 503 on a vertex stream", vertexPath + ":streamGenerateContent?alt=sse", ok, map[string]string{"Authorization": "Bearer t", "x-mock-status": "503"}, 503, "UNAVAILABLE", ""},
		{"forced 500 wins over a bad body", geminiPath + ":generateContent", `nope`, map[string]string{"x-goog-api-key": "AIza-mock", "x-mock-status": "500"}, 500, "INTERNAL", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+tc.path, tc.body, tc.header)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, data)
			}
			e := decode[wireGoogleError](t, data).Error
			if e.Code != tc.code || e.Status != tc.status || e.Message == "" {
				t.Errorf("error = %s, want code %d status %s", data, tc.code, tc.status)
			}
			if tc.reason != "" && (len(e.Details) != 1 || e.Details[0].Reason != tc.reason || e.Details[0].Type != "type.googleapis.com/google.rpc.ErrorInfo") {
				t.Errorf("details = %+v, want reason %s", e.Details, tc.reason)
			}
		})
	}
	for name, tc := range map[string]struct {
		path   string
		header map[string]string
	}{
		"key header":     {geminiPath + ":generateContent", key},
		"key parameter":  {geminiPath + ":generateContent?key=AIza-mock", nil},
		"vertex bearer":  {vertexPath + ":generateContent", bearer},
		"vertex streams": {vertexPath + ":streamGenerateContent?alt=sse", bearer},
	} {
		if resp, data := call(t, http.MethodPost, srv.URL+tc.path, ok, tc.header); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d: %s", name, resp.StatusCode, data)
		}
	}
}
