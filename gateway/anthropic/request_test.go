package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"tollgate/gateway/openai"
)

func init() {
	now = func() time.Time { return time.Unix(1_700_000_000, 0) }
}

// canonical re-encodes JSON with sorted keys and numbers as written, so two
// documents compare equal exactly when they hold the same values.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	if g, w := canonical(t, got), canonical(t, []byte(want)); g != w {
		t.Errorf("JSON differs\n got: %s\nwant: %s", g, w)
	}
}

var weatherTool = `{"type":"function","function":{"name":"get_weather","description":"Weather in a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]},"strict":true}}`

const weatherToolOut = `{"name":"get_weather","description":"Weather in a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}`

func TestNewChatRequestBody(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "system, developer and multi-turn; unknown fields dropped",
			in: `{"model":"claude-sonnet-4-5","temperature":0.2,"top_p":0.9,"seed":7,"frequency_penalty":0.5,"logprobs":true,"stream_options":{"include_usage":true},
				"messages":[
					{"role":"system","content":"You are terse."},
					{"role":"user","content":"Hi","name":"ann"},
					{"role":"developer","content":[{"type":"text","text":"Answer in French."}]},
					{"role":"assistant","content":"Bonjour"},
					{"role":"user","content":"How are you?"},
					{"role":"user","content":[{"type":"text","text":"Really?"},{"type":"text","text":""}]}
				]}`,
			want: `{"model":"claude-sonnet-4-5","max_tokens":4096,"system":"You are terse.\n\nAnswer in French.","temperature":0.2,"top_p":0.9,
				"messages":[
					{"role":"user","content":[{"type":"text","text":"Hi"}]},
					{"role":"assistant","content":[{"type":"text","text":"Bonjour"}]},
					{"role":"user","content":[{"type":"text","text":"How are you?"},{"type":"text","text":"Really?"}]}
				]}`,
		},
		{
			name: "tool call round trip",
			in: `{"model":"m","tools":[` + weatherTool + `],"tool_choice":"auto","messages":[
					{"role":"user","content":"Weather in Paris and Rome?"},
					{"role":"assistant","content":null,"tool_calls":[
						{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},
						{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},
					{"role":"tool","tool_call_id":"call_1","content":"18C"},
					{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"21C"}]},
					{"role":"assistant","content":"Rome is warmer."},
					{"role":"user","content":"Thanks"}
				]}`,
			want: `{"model":"m","max_tokens":4096,"tools":[` + weatherToolOut + `],"tool_choice":{"type":"auto"},"messages":[
					{"role":"user","content":[{"type":"text","text":"Weather in Paris and Rome?"}]},
					{"role":"assistant","content":[
						{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},
						{"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"Rome"}}]},
					{"role":"user","content":[
						{"type":"tool_result","tool_use_id":"call_1","content":"18C"},
						{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"21C"}]}]},
					{"role":"assistant","content":[{"type":"text","text":"Rome is warmer."}]},
					{"role":"user","content":[{"type":"text","text":"Thanks"}]}
				]}`,
		},
		{
			name: "assistant text with a tool call; tool results go before user text",
			in: `{"model":"m","tools":[` + weatherTool + `],"messages":[
					{"role":"user","content":"Paris?"},
					{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},
					{"role":"user","content":"Quickly please."},
					{"role":"tool","tool_call_id":"call_1","content":""}
				]}`,
			want: `{"model":"m","max_tokens":4096,"tools":[` + weatherToolOut + `],"messages":[
					{"role":"user","content":[{"type":"text","text":"Paris?"}]},
					{"role":"assistant","content":[{"type":"text","text":"Let me look."},{"type":"tool_use","id":"call_1","name":"get_weather","input":{}}]},
					{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1"},{"type":"text","text":"Quickly please."}]}
				]}`,
		},
		{
			name: "images from a data URL and an https URL",
			in: `{"model":"m","messages":[{"role":"user","content":[
					{"type":"text","text":"What differs?"},
					{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
					{"type":"image_url","image_url":{"url":"https://example.com/cat.jpg","detail":"high"}}]}]}`,
			want: `{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[
					{"type":"text","text":"What differs?"},
					{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
					{"type":"image","source":{"type":"url","url":"https://example.com/cat.jpg"}}]}]}`,
		},
		{
			name: "stop string and max_tokens",
			in:   `{"model":"m","max_tokens":100,"stop":"END","messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":100,"stop_sequences":["END"],"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "stop array; max_completion_tokens wins over max_tokens",
			in:   `{"model":"m","max_tokens":100,"max_completion_tokens":200,"stop":["a","","b"],"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":200,"stop_sequences":["a","b"],"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "null stop, n of 1",
			in:   `{"model":"m","stop":null,"n":1,"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "tool_choice required",
			in:   `{"model":"m","tools":[` + weatherTool + `],"tool_choice":"required","messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"tools":[` + weatherToolOut + `],"tool_choice":{"type":"any"},"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "tool_choice names a function",
			in:   `{"model":"m","tools":[` + weatherTool + `],"tool_choice":{"type":"function","function":{"name":"get_weather"}},"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"tools":[` + weatherToolOut + `],"tool_choice":{"type":"tool","name":"get_weather"},"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "tool_choice none drops the tools",
			in:   `{"model":"m","tools":[` + weatherTool + `],"tool_choice":"none","messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "tool_choice none keeps the tools when the conversation used them",
			in: `{"model":"m","tools":[` + weatherTool + `],"tool_choice":"none","messages":[
					{"role":"user","content":"x"},
					{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
					{"role":"tool","tool_call_id":"call_1","content":"ok"}]}`,
			want: `{"model":"m","max_tokens":4096,"tools":[` + weatherToolOut + `],"tool_choice":{"type":"none"},"messages":[
					{"role":"user","content":[{"type":"text","text":"x"}]},
					{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{}}]},
					{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"ok"}]}]}`,
		},
		{
			name: "parallel_tool_calls false; a tool without parameters",
			in:   `{"model":"m","parallel_tool_calls":false,"tools":[{"type":"function","function":{"name":"now"}}],"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"tools":[{"name":"now","input_schema":{"type":"object","properties":{}}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true},"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "tool_choice without tools is dropped",
			in:   `{"model":"m","tool_choice":"required","messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "JSON mode appends an instruction to the system prompt",
			in:   `{"model":"m","response_format":{"type":"json_object"},"messages":[{"role":"system","content":"Extract the city."},{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"system":"Extract the city.\n\n` + jsonInstruction + `","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "JSON schema is quoted in the instruction",
			in:   `{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"city","schema":{"type":"object", "properties":{"city":{"type":"string"}}}}},"messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"system":"` + jsonInstruction + ` The object must match this JSON schema: {\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "response_format text changes nothing; user becomes metadata.user_id",
			in:   `{"model":"m","response_format":{"type":"text"},"user":"user-42","messages":[{"role":"user","content":"x"}]}`,
			want: `{"model":"m","max_tokens":4096,"metadata":{"user_id":"user-42"},"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "HTML characters are not escaped",
			in:   `{"model":"m","messages":[{"role":"user","content":"<b>&</b>"}]}`,
			want: `{"model":"m","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"<b>&</b>"}]}]}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := NewChatRequest(context.Background(), openai.Target{APIKey: "k"}, []byte(c.in), false)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(req.Body)
			assertJSON(t, body, c.want)
			if bytes.Contains(body, []byte(`\u003c`)) {
				t.Errorf("HTML-escaped body: %s", body)
			}
		})
	}
}

func TestNewChatRequestErrors(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		param string
	}{
		{"n above 1", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"wrong type", `{"model":"m","max_tokens":"many","messages":[{"role":"user","content":"x"}]}`, "max_tokens"},
		{"not an object", `[1,2]`, ""},
		{"unknown role", `{"model":"m","messages":[{"role":"function","content":"x"}]}`, "messages[0].role"},
		{"audio part", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"image path", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"/tmp/cat.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"data URL not base64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/svg+xml,<svg/>"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"arguments not an object", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"arguments not JSON", `{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{city"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool message without id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"image in system", `{"model":"m","messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "messages[0].content"},
		{"content a number", `{"model":"m","messages":[{"role":"user","content":5}]}`, "messages[0].content"},
		{"stop a number", `{"model":"m","stop":5,"messages":[{"role":"user","content":"x"}]}`, "stop"},
		{"tool_choice unknown", `{"model":"m","tool_choice":"sometimes","messages":[{"role":"user","content":"x"}]}`, "tool_choice"},
		{"custom tool", `{"model":"m","tools":[{"type":"custom","custom":{"name":"x"}}],"messages":[{"role":"user","content":"x"}]}`, "tools[0].type"},
		{"tool without name", `{"model":"m","tools":[{"type":"function","function":{}}],"messages":[{"role":"user","content":"x"}]}`, "tools[0].function.name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewChatRequest(context.Background(), openai.Target{}, []byte(c.in), false)
			var reqErr *RequestError
			if !errors.As(err, &reqErr) {
				t.Fatalf("error %v, want a *RequestError", err)
			}
			if reqErr.Param != c.param || reqErr.Message == "" {
				t.Errorf("param %q message %q, want param %q", reqErr.Param, reqErr.Message, c.param)
			}
		})
	}
}

func TestNewChatRequestHTTP(t *testing.T) {
	body := []byte(`{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}`)
	cases := []struct {
		name    string
		target  openai.Target
		stream  bool
		url     string
		version string
		accept  string
	}{
		{"defaults", openai.Target{APIKey: "sk-ant-1"}, false, "https://api.anthropic.com/v1/messages", "2023-06-01", "application/json"},
		{"base with /v1 and a newer version, streaming", openai.Target{APIKey: "sk-ant-1", BaseURL: "http://fake:8080/v1/", Config: map[string]string{"api_version": "2099-01-01"}}, true, "http://fake:8080/v1/messages", "2099-01-01", "text/event-stream"},
		{"base with a path prefix", openai.Target{APIKey: "sk-ant-1", BaseURL: "https://gw.example.com/anthropic"}, false, "https://gw.example.com/anthropic/v1/messages", "2023-06-01", "application/json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := NewChatRequest(context.Background(), c.target, body, c.stream)
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != "POST" || req.URL.String() != c.url {
				t.Errorf("%s %s, want POST %s", req.Method, req.URL, c.url)
			}
			for name, want := range map[string]string{
				"x-api-key": "sk-ant-1", "anthropic-version": c.version, "content-type": "application/json", "accept": c.accept, "authorization": "",
			} {
				if got := req.Header.Get(name); got != want {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			got, _ := io.ReadAll(req.Body)
			want := `{"model":"claude-haiku-4-5","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`
			if c.stream {
				want = `{"model":"claude-haiku-4-5","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"stream":true}`
			}
			if string(got) != want {
				t.Errorf("body\n got %s\nwant %s", got, want)
			}
			if req.GetBody == nil || req.ContentLength != int64(len(got)) {
				t.Error("body cannot be replayed for a retry")
			}
		})
	}
}

func TestNewChatRequestModelFromTarget(t *testing.T) {
	req, err := NewChatRequest(context.Background(), openai.Target{Model: "claude-opus-4-1"}, []byte(`{"messages":[{"role":"user","content":"x"}]}`), false)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(req.Body)
	assertJSON(t, body, `{"model":"claude-opus-4-1","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`)
}
