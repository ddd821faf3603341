package mockllm

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Anthropic shapes as a client sees them, declared apart from the
// implementation so a wrong JSON tag fails the tests.
type wireMessage struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Role    string `json:"role"`
	Model   string `json:"model"`
	Content []struct {
		Type  string          `json:"type"`
		Text  *string         `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content"`
	StopReason   *string `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Usage        struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

type wireAnthropicError struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

type wireAnthropicEvent struct {
	Type         string       `json:"type"`
	Message      *wireMessage `json:"message"`
	Index        *int         `json:"index"`
	ContentBlock *struct {
		Type  string          `json:"type"`
		Text  *string         `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content_block"`
	Delta struct {
		Type        string  `json:"type"`
		Text        string  `json:"text"`
		PartialJSON string  `json:"partial_json"`
		StopReason  *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *struct {
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

var anthropicHeaders = map[string]string{"anthropic-version": "2023-06-01"}

func withHeaders(extra map[string]string) map[string]string {
	h := map[string]string{"anthropic-version": "2023-06-01"}
	for k, v := range extra {
		h[k] = v
	}
	return h
}

// parseAnthropicSSE checks Anthropic's framing, an event: line naming the
// data's type then one data: line per event, and returns the events.
func parseAnthropicSSE(t *testing.T, body []byte) []wireAnthropicEvent {
	t.Helper()
	blocks := strings.Split(string(body), "\n\n")
	if blocks[len(blocks)-1] != "" {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	var events []wireAnthropicEvent
	for i, b := range blocks[:len(blocks)-1] {
		lines := strings.Split(b, "\n")
		name, ok1 := strings.CutPrefix(lines[0], "event: ")
		if len(lines) != 2 || !ok1 || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("event %d is not an event: line and a data: line: %q", i, b)
		}
		ev := decode[wireAnthropicEvent](t, []byte(strings.TrimPrefix(lines[1], "data: ")))
		if ev.Type != name {
			t.Errorf("event %d is named %q but its data has type %q", i, name, ev.Type)
		}
		events = append(events, ev)
	}
	return events
}

func TestAnthropicMessage(t *testing.T) {
	srv := newServer(t, Options{})
	// The same conversation as an OpenAI chat request: the answers must match.
	_, chatData := call(t, http.MethodPost, srv.URL+"/v1/chat/completions",
		`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"}]}`, nil)
	chat := decode[wireChat](t, chatData)

	for _, body := range []string{
		`{"model":"mock-claude","max_tokens":1024,"system":"Be brief.","messages":[{"role":"user","content":"Hello there"}]}`,
		`{"model":"mock-claude","max_tokens":1024,"system":[{"type":"text","text":"Be brief."}],
		  "messages":[{"role":"user","content":[{"type":"text","text":"Hello there"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}]}]}`,
	} {
		resp, data := call(t, http.MethodPost, srv.URL+"/v1/messages", body, anthropicHeaders)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
		}
		m := decode[wireMessage](t, data)
		if !strings.HasPrefix(m.ID, "msg_") || m.Type != "message" || m.Role != "assistant" || m.Model != "mock-claude" {
			t.Errorf("envelope = %+v", m)
		}
		if len(m.Content) != 1 || m.Content[0].Type != "text" || m.Content[0].Text == nil || *m.Content[0].Text != chat.Choices[0].Message.Content {
			t.Errorf("content = %s, want one text block %q", data, chat.Choices[0].Message.Content)
		}
		if m.StopReason == nil || *m.StopReason != "end_turn" || m.StopSequence != nil {
			t.Errorf("stop_reason %v, stop_sequence %v", m.StopReason, m.StopSequence)
		}
		if m.Usage.InputTokens != chat.Usage.PromptTokens || m.Usage.OutputTokens != chat.Usage.CompletionTokens {
			t.Errorf("usage = %+v, want the chat usage %+v", m.Usage, chat.Usage)
		}
		var raw map[string]json.RawMessage
		_ = json.Unmarshal(data, &raw)
		if string(raw["stop_sequence"]) != "null" {
			t.Errorf("stop_sequence = %s, want null", raw["stop_sequence"])
		}
	}
}

func TestAnthropicToolRule(t *testing.T) {
	srv := newServer(t, Options{})
	const tools = `"tools":[{"name":"get_weather","input_schema":{"type":"object"}},{"name":"other","input_schema":{"type":"object"}}]`
	for _, tc := range []struct {
		name, body string
		wantTool   bool
		wantStop   string
	}{
		{"tools and weather", `{"model":"c","max_tokens":100,` + tools + `,"messages":[{"role":"user","content":"What's the WEATHER in Paris?"}]}`, true, "tool_use"},
		{"no tools", `{"model":"c","max_tokens":100,"messages":[{"role":"user","content":"What's the weather in Paris?"}]}`, false, "end_turn"},
		{"not about weather", `{"model":"c","max_tokens":100,` + tools + `,"messages":[{"role":"user","content":"Hello"}]}`, false, "end_turn"},
		{"weather only in an earlier turn", `{"model":"c","max_tokens":100,` + tools + `,"messages":[
			{"role":"user","content":"weather?"},{"role":"assistant","content":"Where?"},{"role":"user","content":"Paris"}]}`, false, "end_turn"},
		{"answers a tool result", `{"model":"c","max_tokens":100,` + tools + `,"messages":[
			{"role":"user","content":"weather in Paris?"},
			{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},{"type":"text","text":"and the weather tomorrow?"}]}]}`, false, "end_turn"},
		{"cut by max_tokens", `{"model":"c","max_tokens":2,` + tools + `,"messages":[{"role":"user","content":"weather?"}]}`, false, "max_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/messages", tc.body, anthropicHeaders)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			m := decode[wireMessage](t, data)
			if *m.StopReason != tc.wantStop {
				t.Errorf("stop_reason = %s, want %s", *m.StopReason, tc.wantStop)
			}
			if m.Content[0].Type != "text" {
				t.Errorf("first block %q, want text", m.Content[0].Type)
			}
			if !tc.wantTool {
				if len(m.Content) != 1 {
					t.Errorf("content = %s, want only text", data)
				}
				return
			}
			if len(m.Content) != 2 {
				t.Fatalf("content = %s, want text then tool_use", data)
			}
			use := m.Content[1]
			if use.Type != "tool_use" || !strings.HasPrefix(use.ID, "toolu_") || use.Name != "get_weather" || string(use.Input) != "{}" {
				t.Errorf("tool_use block = %+v", use)
			}
			if m.Usage.OutputTokens != len(strings.Fields(*m.Content[0].Text)) {
				t.Errorf("output_tokens = %d for %q", m.Usage.OutputTokens, *m.Content[0].Text)
			}
		})
	}
}

func TestAnthropicStream(t *testing.T) {
	srv := newServer(t, Options{})
	for _, tc := range []struct {
		name, body string
		tool       bool
		stop       string
	}{
		{"text", `{"model":"c","max_tokens":100,"messages":[{"role":"user","content":"Stream please"}]}`, false, "end_turn"},
		{"tool", `{"model":"c","max_tokens":100,"tools":[{"name":"get_weather","input_schema":{}}],"messages":[{"role":"user","content":"weather?"}]}`, true, "tool_use"},
		{"truncated", `{"model":"c","max_tokens":3,"messages":[{"role":"user","content":"Stream please"}]}`, false, "max_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, whole := call(t, http.MethodPost, srv.URL+"/v1/messages", tc.body, anthropicHeaders)
			want := decode[wireMessage](t, whole)

			streamBody := strings.Replace(tc.body, "{", `{"stream":true,`, 1)
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/messages", streamBody, anthropicHeaders)
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
			}
			events := parseAnthropicSSE(t, data)

			var names []string
			var text, args strings.Builder
			for _, ev := range events {
				names = append(names, ev.Type)
				if ev.Type == "content_block_delta" {
					switch ev.Delta.Type {
					case "text_delta":
						if *ev.Index != 0 {
							t.Errorf("text_delta in block %d", *ev.Index)
						}
						text.WriteString(ev.Delta.Text)
					case "input_json_delta":
						if *ev.Index != 1 {
							t.Errorf("input_json_delta in block %d", *ev.Index)
						}
						args.WriteString(ev.Delta.PartialJSON)
					default:
						t.Errorf("delta type %q", ev.Delta.Type)
					}
				}
			}
			words := len(strings.Fields(*want.Content[0].Text))
			wantNames := []string{"message_start", "content_block_start", "ping"}
			for range words {
				wantNames = append(wantNames, "content_block_delta")
			}
			wantNames = append(wantNames, "content_block_stop")
			if tc.tool {
				wantNames = append(wantNames, "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop")
			}
			wantNames = append(wantNames, "message_delta", "message_stop")
			if strings.Join(names, ",") != strings.Join(wantNames, ",") {
				t.Fatalf("events\n%v\nwant\n%v", names, wantNames)
			}

			start := events[0].Message
			if start == nil || !strings.HasPrefix(start.ID, "msg_") || start.Type != "message" || start.Role != "assistant" ||
				start.Model != "c" || start.Content == nil || len(start.Content) != 0 || start.StopReason != nil ||
				start.Usage.InputTokens != want.Usage.InputTokens {
				t.Errorf("message_start = %+v", start)
			}
			if cb := events[1].ContentBlock; cb == nil || cb.Type != "text" || cb.Text == nil || *cb.Text != "" || *events[1].Index != 0 {
				t.Errorf("first content_block_start = %+v", cb)
			}
			if text.String() != *want.Content[0].Text {
				t.Errorf("streamed text %q, want %q", text.String(), *want.Content[0].Text)
			}
			if tc.tool {
				cb := events[len(events)-6].ContentBlock
				if cb == nil || cb.Type != "tool_use" || !strings.HasPrefix(cb.ID, "toolu_") || cb.Name != "get_weather" || string(cb.Input) != "{}" {
					t.Errorf("tool content_block_start = %+v", cb)
				}
				if args.String() != "{}" {
					t.Errorf("input_json_delta fragments join to %q, want {}", args.String())
				}
			}
			md := events[len(events)-2]
			if md.Delta.StopReason == nil || *md.Delta.StopReason != tc.stop || md.Usage == nil || md.Usage.OutputTokens != want.Usage.OutputTokens {
				t.Errorf("message_delta = %+v, want stop %s and %d output tokens", md, tc.stop, want.Usage.OutputTokens)
			}
		})
	}
}

func TestAnthropicErrors(t *testing.T) {
	srv := newServer(t, Options{APIKey: "sk-ant"})
	const ok = `{"model":"c","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	key := map[string]string{"x-api-key": "sk-ant"}
	for _, tc := range []struct {
		name, body string
		header     map[string]string
		status     int
		errType    string
		message    string
	}{
		{"no key", ok, anthropicHeaders, 401, "authentication_error", "invalid x-api-key"},
		{"wrong key", ok, withHeaders(map[string]string{"x-api-key": "nope"}), 401, "authentication_error", "invalid x-api-key"},
		{"bearer is not the Anthropic header", ok, withHeaders(map[string]string{"Authorization": "Bearer sk-ant"}), 401, "authentication_error", ""},
		{"no anthropic-version", ok, key, 400, "invalid_request_error", "anthropic-version: header is required"},
		{"unknown anthropic-version", ok, map[string]string{"x-api-key": "sk-ant", "anthropic-version": "2099-01-01"}, 400, "invalid_request_error", ""},
		{"no max_tokens", `{"model":"c","messages":[{"role":"user","content":"hi"}]}`, withHeaders(key), 400, "invalid_request_error", "max_tokens: Field required"},
		{"max_tokens 0", `{"model":"c","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, withHeaders(key), 400, "invalid_request_error", ""},
		{"no model", `{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, withHeaders(key), 400, "invalid_request_error", "model: Field required"},
		{"no messages", `{"model":"c","max_tokens":10}`, withHeaders(key), 400, "invalid_request_error", "messages: Field required"},
		{"empty messages", `{"model":"c","max_tokens":10,"messages":[]}`, withHeaders(key), 400, "invalid_request_error", ""},
		{"system role in messages", `{"model":"c","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}`, withHeaders(key), 400, "invalid_request_error", "messages.0.role: Input should be 'user' or 'assistant'"},
		{"content not text", `{"model":"c","max_tokens":10,"messages":[{"role":"user","content":42}]}`, withHeaders(key), 400, "invalid_request_error", ""},
		{"not JSON", `{`, withHeaders(key), 400, "invalid_request_error", ""},
		{"forced 529", ok, withHeaders(map[string]string{"x-api-key": "sk-ant", "x-mock-status": "529"}), 529, "overloaded_error", ""},
		{"forced 429", ok, withHeaders(map[string]string{"x-api-key": "sk-ant", "x-mock-status": "429"}), 429, "rate_limit_error", ""},
		{"forced 500 wins over a bad body", `nope`, withHeaders(map[string]string{"x-api-key": "sk-ant", "x-mock-status": "500"}), 500, "api_error", ""},
		{"forced 404", ok, withHeaders(map[string]string{"x-api-key": "sk-ant", "x-mock-status": "404"}), 404, "not_found_error", ""},
		{"bad latency hook", ok, withHeaders(map[string]string{"x-api-key": "sk-ant", "x-mock-latency-ms": "-1"}), 400, "invalid_request_error", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+"/v1/messages", tc.body, tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, data)
			}
			e := decode[wireAnthropicError](t, data)
			if e.Type != "error" || e.Error.Type != tc.errType || e.Error.Message == "" {
				t.Errorf("error = %s, want type %s", data, tc.errType)
			}
			if tc.message != "" && e.Error.Message != tc.message {
				t.Errorf("message = %q, want %q", e.Error.Message, tc.message)
			}
		})
	}
	resp, data := call(t, http.MethodPost, srv.URL+"/v1/messages", ok, withHeaders(key))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with the key: status %d: %s", resp.StatusCode, data)
	}
}

// TestFormatHooks checks the latency hook and injected failures on the
// Anthropic and Google endpoints.
func TestFormatHooks(t *testing.T) {
	endpoints := []struct{ path, body string }{
		{"/v1/messages", `{"model":"c","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1beta/models/g:generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`},
		{"/v1/projects/p/locations/l/publishers/google/models/g:generateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`},
	}
	srv := newServer(t, Options{})
	for _, ep := range endpoints {
		start := time.Now()
		resp, data := call(t, http.MethodPost, srv.URL+ep.path, ep.body, withHeaders(map[string]string{"x-mock-latency-ms": "200"}))
		if resp.StatusCode != http.StatusOK || time.Since(start) < 200*time.Millisecond {
			t.Errorf("%s: status %d after %v, want 200 after >= 200ms: %s", ep.path, resp.StatusCode, time.Since(start), data)
		}
	}
	failing := newServer(t, Options{ErrorRate: 1, Seed: 1})
	for _, ep := range endpoints {
		resp, data := call(t, http.MethodPost, failing.URL+ep.path, ep.body, anthropicHeaders)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("%s: status %d, want 500", ep.path, resp.StatusCode)
		}
		if strings.HasPrefix(ep.path, "/v1/messages") {
			if e := decode[wireAnthropicError](t, data); e.Error.Type != "api_error" {
				t.Errorf("injected failure = %s", data)
			}
		} else if e := decode[wireGoogleError](t, data); e.Error.Code != 500 || e.Error.Status != "INTERNAL" {
			t.Errorf("injected failure = %s", data)
		}
	}
}
