package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/gateway/openai"
)

// sseEvents reads the data payloads of an event stream.
func sseEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, data)
		}
	}
	return out
}

func TestStreamingPassthrough(t *testing.T) {
	for _, includeUsage := range []bool{true, false} {
		t.Run(fmt.Sprintf("include_usage=%v", includeUsage), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			body := `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"stream me a few words"}]}`
			if includeUsage {
				body = `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me a few words"}]}`
			}
			resp := e.post("/v1/chat/completions", body, bearer(e.key))
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			got := sseEvents(t, resp.Body)

			// What the provider streams when asked for usage, directly.
			direct := httptestPost(t, e.upstream.URL+"/v1/chat/completions", `{"model":"mock-gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream me a few words"}]}`, upstreamKey)
			want := sseEvents(t, strings.NewReader(direct))
			usage, ok := openai.UsageOf([]byte(want[len(want)-2]))
			if !ok {
				t.Fatalf("provider sent no usage chunk: %s", want[len(want)-2])
			}
			if !includeUsage {
				// The usage-only chunk the gateway asked for is not shown.
				want = append(want[:len(want)-2:len(want)-2], want[len(want)-1])
			}
			if len(got) != len(want) {
				t.Fatalf("%d events, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
			}
			for i := range got {
				if stripIDs(got[i]) != stripIDs(want[i]) {
					t.Errorf("event %d:\n got %s\nwant %s", i, got[i], want[i])
				}
			}
			if got[len(got)-1] != "[DONE]" {
				t.Error("stream does not end with [DONE]")
			}
			if resp.Trailer.Get("X-Tollgate-Cost") == "" {
				t.Error("no x-tollgate-cost trailer")
			}
			logs := e.spendLogs()
			if len(logs) != 1 || logs[0].OutputTokens == 0 || logs[0].InputTokens == 0 || logs[0].Cost == 0 {
				t.Fatalf("spend log %+v", logs)
			}
			if logs[0].InputTokens != usage.PromptTokens || logs[0].OutputTokens != usage.CompletionTokens {
				t.Errorf("tokens %d/%d, want the provider's %d/%d", logs[0].InputTokens, logs[0].OutputTokens, usage.PromptTokens, usage.CompletionTokens)
			}
		})
	}
}

// stripIDs removes the per-answer id and timestamp.
func stripIDs(event string) string {
	for _, field := range []string{`"id":"`, `"created":`} {
		if i := strings.Index(event, field); i >= 0 {
			j := i + len(field)
			for j < len(event) && event[j] != ',' {
				j++
			}
			event = event[:i] + event[j:]
		}
	}
	return event
}

func httptestPost(t *testing.T, url, body, key string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The gateway must pass each event on as it arrives, not when the answer
// ends: the provider here holds the stream open until the test has seen
// the first event through the gateway.
func TestStreamingIsNotBuffered(t *testing.T) {
	release := make(chan struct{})
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, `data: {"choices":[{"index":0,"delta":{"content":"first"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, `data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`+"\n\n")
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	e := newEnv(t, envOptions{upstream: upstream})
	resp := e.post("/v1/chat/completions", `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]}`, bearer(e.key))
	r := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() {
		line, _ := r.ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if !strings.Contains(line, "first") {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first event not passed on while the provider held the stream open")
	}
	close(release)
	rest, _ := io.ReadAll(r)
	if strings.Contains(string(rest), `"usage"`) {
		t.Error("usage chunk shown to a caller who did not ask for it")
	}
	logs := e.spendLogs()
	if len(logs) != 1 || logs[0].InputTokens != 5 || logs[0].OutputTokens != 2 {
		t.Errorf("spend log %+v", logs)
	}
}

func TestUpstreamFailures(t *testing.T) {
	cases := []struct {
		name     string
		upstream http.Handler
		headers  map[string]string
		status   int
		code     string
	}{
		{"provider 500", nil, map[string]string{"x-mock-status": "500"}, 502, "upstream_error"},
		{"provider 503", nil, map[string]string{"x-mock-status": "503"}, 502, "upstream_error"},
		{"provider 429", nil, map[string]string{"x-mock-status": "429"}, 429, "rate_limit_exceeded"},
		{"provider 400", nil, map[string]string{"x-mock-status": "400"}, 400, "upstream_invalid_request"},
		{"provider rejects credential", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(401)
			fmt.Fprintf(w, `{"error":{"message":"Incorrect API key provided: %s","code":"invalid_api_key"}}`, upstreamKey)
		}), nil, 502, "upstream_error"},
		{"timeout", nil, map[string]string{"x-mock-latency-ms": "3000"}, 504, "upstream_timeout"},
		{"connection reset", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}), nil, 502, "upstream_error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{upstream: c.upstream, timeout: 300 * time.Millisecond})
			// The gateway forwards no caller headers, so mock-llm's test
			// hooks are added on the provider side.
			e.hooks = c.headers
			resp := e.post("/v1/chat/completions", chatBody, bearer(e.key))
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if strings.Contains(string(body), upstreamKey) {
				t.Error("provider credential echoed to the caller")
			}
			if !strings.Contains(string(body), `"code":"`+c.code+`"`) {
				t.Errorf("body %s lacks code %s", body, c.code)
			}
			logs := e.spendLogs()
			if len(logs) != 1 || logs[0].Status != "failure" || logs[0].StatusCode != c.status || logs[0].Error == "" {
				t.Fatalf("failed request not recorded: %+v", logs)
			}
		})
	}
}
