package mockllm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// Bedrock shapes as a client sees them, declared apart from the
// implementation so a wrong JSON tag fails the tests.
type wireConverse struct {
	Output struct {
		Message struct {
			Role    string              `json:"role"`
			Content []wireConverseBlock `json:"content"`
		} `json:"message"`
	} `json:"output"`
	StopReason string            `json:"stopReason"`
	Usage      wireConverseUsage `json:"usage"`
	Metrics    *struct {
		LatencyMs *int64 `json:"latencyMs"`
	} `json:"metrics"`
}

type wireConverseBlock struct {
	Text    *string `json:"text"`
	ToolUse *struct {
		ToolUseID string          `json:"toolUseId"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
	} `json:"toolUse"`
}

type wireConverseUsage struct {
	InputTokens  int `json:"inputTokens"`
	OutputTokens int `json:"outputTokens"`
	TotalTokens  int `json:"totalTokens"`
}

// wireConverseEvent is any ConverseStream event payload.
type wireConverseEvent struct {
	eventType         string
	Role              string `json:"role"`
	ContentBlockIndex *int   `json:"contentBlockIndex"`
	Start             *struct {
		ToolUse *struct {
			ToolUseID string `json:"toolUseId"`
			Name      string `json:"name"`
		} `json:"toolUse"`
	} `json:"start"`
	Delta *struct {
		Text    *string `json:"text"`
		ToolUse *struct {
			Input string `json:"input"`
		} `json:"toolUse"`
	} `json:"delta"`
	StopReason string             `json:"stopReason"`
	Usage      *wireConverseUsage `json:"usage"`
	Metrics    *struct {
		LatencyMs *int64 `json:"latencyMs"`
	} `json:"metrics"`
	P *string `json:"p"`
}

const converseModel = "/model/anthropic.claude-3-5-haiku-20241022-v1:0"

// sigV4Headers is the shape of a SigV4-signed request for the access key
// and service. The mock does not check the signature, so any will do.
func sigV4Headers(accessKey, service string) map[string]string {
	return map[string]string{
		"Authorization": "AWS4-HMAC-SHA256 Credential=" + accessKey + "/20260101/us-east-1/" + service +
			"/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=0123abcd",
		"X-Amz-Date": "20260101T000000Z",
	}
}

func firstText(c wireConverse) string {
	var b strings.Builder
	for _, block := range c.Output.Message.Content {
		if block.Text != nil {
			b.WriteString(*block.Text)
		}
	}
	return b.String()
}

// readEventStream decodes an AWS event stream, checking each message is an
// application/json event, and returns the events in order.
func readEventStream(t *testing.T, body []byte) []wireConverseEvent {
	t.Helper()
	dec := eventstream.NewDecoder()
	r := bytes.NewReader(body)
	var events []wireConverseEvent
	for r.Len() > 0 {
		msg, err := dec.Decode(r, nil)
		if err != nil {
			t.Fatalf("message %d: %v", len(events), err)
		}
		header := func(name string) string {
			if v := msg.Headers.Get(name); v != nil {
				return v.String()
			}
			return ""
		}
		if header(":message-type") != "event" || header(":content-type") != "application/json" {
			t.Fatalf("message %d headers = %v", len(events), msg.Headers)
		}
		ev := decode[wireConverseEvent](t, msg.Payload)
		ev.eventType = header(":event-type")
		events = append(events, ev)
	}
	if _, err := dec.Decode(r, nil); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last message: %v", err)
	}
	return events
}

func TestBedrockConverse(t *testing.T) {
	srv := newServer(t, Options{})
	_, chatData := call(t, http.MethodPost, srv.URL+"/v1/chat/completions",
		`{"model":"m","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"},
		  {"role":"assistant","content":"Hi."},{"role":"user","content":"How are you?"}]}`, nil)
	chat := decode[wireChat](t, chatData)

	const body = `{"system":[{"text":"Be brief."}],"messages":[
		{"role":"user","content":[{"text":"Hello there"}]},{"role":"assistant","content":[{"text":"Hi."}]},
		{"role":"user","content":[{"text":"How are you?"},{"image":{"format":"png","source":{"bytes":"AAAA"}}}]}],
		"inferenceConfig":{"maxTokens":500,"temperature":0.2,"topP":0.9,"stopSequences":["###"]}}`
	// Model ids with a slash (inference profile ARNs) come escaped, as the SDKs send them.
	for _, path := range []string{converseModel, "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.mock-v1:0"} {
		resp, data := call(t, http.MethodPost, srv.URL+path+"/converse", body, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("x-amzn-RequestId") == "" {
			t.Fatalf("%s: status %d, headers %v: %s", path, resp.StatusCode, resp.Header, data)
		}
		c := decode[wireConverse](t, data)
		if c.Output.Message.Role != "assistant" || len(c.Output.Message.Content) != 1 || c.StopReason != "end_turn" ||
			c.Metrics == nil || c.Metrics.LatencyMs == nil {
			t.Errorf("%s: answer = %s", path, data)
		}
		if got := firstText(c); got != chat.Choices[0].Message.Content {
			t.Errorf("%s: text %q, want the chat answer %q", path, got, chat.Choices[0].Message.Content)
		}
		want := wireConverseUsage{chat.Usage.PromptTokens, chat.Usage.CompletionTokens, chat.Usage.TotalTokens}
		if c.Usage != want {
			t.Errorf("%s: usage = %+v, want the chat usage %+v", path, c.Usage, want)
		}
	}

	_, data := call(t, http.MethodPost, srv.URL+converseModel+"/converse",
		`{"messages":[{"role":"user","content":[{"text":"Short please"}]}],"inferenceConfig":{"maxTokens":3}}`, nil)
	if c := decode[wireConverse](t, data); c.StopReason != "max_tokens" || firstText(c) != "Mock answer to:" || c.Usage.OutputTokens != 3 {
		t.Errorf("capped answer = %s", data)
	}
}

func TestBedrockToolRule(t *testing.T) {
	srv := newServer(t, Options{})
	const tools = `"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":{"type":"object"}}}},
		{"toolSpec":{"name":"other","inputSchema":{"json":{"type":"object"}}}}],"toolChoice":{"auto":{}}}`
	for _, tc := range []struct {
		name, body string
		want       bool
		stop       string
	}{
		{"tools and weather", `{` + tools + `,"messages":[{"role":"user","content":[{"text":"Weather in Paris?"}]}]}`, true, "tool_use"},
		{"no tools", `{"messages":[{"role":"user","content":[{"text":"Weather in Paris?"}]}]}`, false, "end_turn"},
		{"not about weather", `{` + tools + `,"messages":[{"role":"user","content":[{"text":"Hello"}]}]}`, false, "end_turn"},
		{"answers a tool result", `{` + tools + `,"messages":[
			{"role":"user","content":[{"text":"Weather in Paris?"}]},
			{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"get_weather","input":{}}}]},
			{"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"json":{"sky":"sunny weather"}}]}}]}]}`, false, "end_turn"},
		{"cut by maxTokens", `{` + tools + `,"inferenceConfig":{"maxTokens":2},"messages":[{"role":"user","content":[{"text":"weather?"}]}]}`, false, "max_tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+converseModel+"/converse", tc.body, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, data)
			}
			c := decode[wireConverse](t, data)
			if c.StopReason != tc.stop {
				t.Errorf("stopReason = %s, want %s", c.StopReason, tc.stop)
			}
			blocks := c.Output.Message.Content
			if !tc.want {
				if len(blocks) != 1 || blocks[0].ToolUse != nil {
					t.Errorf("content = %s, want only text", data)
				}
				return
			}
			if len(blocks) != 2 || blocks[0].Text == nil || blocks[1].ToolUse == nil || blocks[1].ToolUse.ToolUseID == "" ||
				blocks[1].ToolUse.Name != "get_weather" || string(blocks[1].ToolUse.Input) != "{}" {
				t.Errorf("content = %s, want text then toolUse get_weather {}", data)
			}
		})
	}
	// A tool result's JSON is read as text, as Gemini's function responses are.
	_, data := call(t, http.MethodPost, srv.URL+converseModel+"/converse", `{`+tools+`,"messages":[{"role":"user","content":[
		{"toolResult":{"toolUseId":"t1","content":[{"json":{"sky": "clear"}}]}}]}]}`, nil)
	if got := firstText(decode[wireConverse](t, data)); !strings.HasPrefix(got, `Mock answer to: {"sky":"clear"}`) {
		t.Errorf("answer to a JSON tool result = %q", got)
	}
}

func TestBedrockStream(t *testing.T) {
	srv := newServer(t, Options{})
	for _, tc := range []struct {
		name, body string
		tool       bool
	}{
		{"text", `{"messages":[{"role":"user","content":[{"text":"Stream this please"}]}]}`, false},
		{"tool use", `{"toolConfig":{"tools":[{"toolSpec":{"name":"get_weather","inputSchema":{"json":{}}}}]},
			"messages":[{"role":"user","content":[{"text":"weather?"}]}]}`, true},
		{"capped", `{"inferenceConfig":{"maxTokens":2},"messages":[{"role":"user","content":[{"text":"Stream this please"}]}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, whole := call(t, http.MethodPost, srv.URL+converseModel+"/converse", tc.body, nil)
			want := decode[wireConverse](t, whole)

			resp, data := call(t, http.MethodPost, srv.URL+converseModel+"/converse-stream", tc.body,
				map[string]string{"Accept": "application/vnd.amazon.eventstream"})
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/vnd.amazon.eventstream" {
				t.Fatalf("status %d, Content-Type %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), data)
			}
			events := readEventStream(t, data)
			var order []string
			for _, ev := range events {
				if n := len(order); n == 0 || order[n-1] != ev.eventType {
					order = append(order, ev.eventType)
				}
				if (ev.P == nil) != (ev.eventType == "metadata") {
					t.Errorf("%s event: padding %v; every event but metadata has one", ev.eventType, ev.P)
				}
			}
			wantOrder := "messageStart contentBlockDelta contentBlockStop messageStop metadata"
			if tc.tool {
				wantOrder = "messageStart contentBlockDelta contentBlockStop contentBlockStart contentBlockDelta contentBlockStop messageStop metadata"
			}
			if strings.Join(order, " ") != wantOrder {
				t.Fatalf("events %v, want %s", order, wantOrder)
			}
			if events[0].Role != "assistant" {
				t.Errorf("messageStart = %+v", events[0])
			}
			var text, input strings.Builder
			var toolName string
			for _, ev := range events {
				switch ev.eventType {
				case "contentBlockStart":
					if *ev.ContentBlockIndex != 1 || ev.Start.ToolUse == nil || ev.Start.ToolUse.ToolUseID == "" {
						t.Errorf("contentBlockStart = %+v", ev)
					}
					toolName = ev.Start.ToolUse.Name
				case "contentBlockDelta":
					switch {
					case ev.Delta.Text != nil && *ev.ContentBlockIndex == 0:
						text.WriteString(*ev.Delta.Text)
					case ev.Delta.ToolUse != nil && *ev.ContentBlockIndex == 1:
						input.WriteString(ev.Delta.ToolUse.Input)
					default:
						t.Errorf("contentBlockDelta = %+v", ev)
					}
				case "contentBlockStop":
					if ev.ContentBlockIndex == nil {
						t.Errorf("contentBlockStop without an index")
					}
				}
			}
			if text.String() != firstText(want) {
				t.Errorf("streamed %q, want %q", text.String(), firstText(want))
			}
			if tc.tool && (toolName != "get_weather" || input.String() != "{}") {
				t.Errorf("tool %q with input %q, want get_weather {}", toolName, input.String())
			}
			stop, meta := events[len(events)-2], events[len(events)-1]
			if stop.StopReason != want.StopReason {
				t.Errorf("messageStop %q, want %q", stop.StopReason, want.StopReason)
			}
			if meta.Usage == nil || *meta.Usage != want.Usage || meta.Metrics == nil || meta.Metrics.LatencyMs == nil {
				t.Errorf("metadata = %+v, want usage %+v and metrics", meta, want.Usage)
			}
		})
	}
}

func TestBedrockErrors(t *testing.T) {
	srv := newServer(t, Options{APIKey: "AKIDMOCK"})
	const ok = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	signed := sigV4Headers("AKIDMOCK", "bedrock")
	with := func(k, v string) map[string]string {
		h := sigV4Headers("AKIDMOCK", "bedrock")
		h[k] = v
		return h
	}
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		status           int
		errType, message string
	}{
		{"no Authorization", "/converse", ok, nil, 403, "MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"another access key", "/converse", ok, sigV4Headers("AKIDOTHER", "bedrock"), 403, "UnrecognizedClientException", "The security token included in the request is invalid."},
		{"scoped to another service", "/converse-stream", ok, sigV4Headers("AKIDMOCK", "s3"), 403, "InvalidSignatureException", ""},
		{"a bearer token is not SigV4", "/converse", ok, map[string]string{"Authorization": "Bearer AKIDMOCK"}, 400, "IncompleteSignatureException", ""},
		{"no signature", "/converse", ok, with("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDMOCK/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host"), 400, "IncompleteSignatureException",
			"Authorization header requires 'Signature' parameter."},
		{"no X-Amz-Date", "/converse", ok, with("X-Amz-Date", ""), 400, "IncompleteSignatureException", ""},
		{"no messages", "/converse", `{}`, signed, 400, "ValidationException", ""},
		{"empty messages", "/converse", `{"messages":[]}`, signed, 400, "ValidationException", startWithUser},
		{"starts with the assistant", "/converse", `{"messages":[{"role":"assistant","content":[{"text":"hi"}]}]}`, signed, 400, "ValidationException", startWithUser},
		{"roles do not alternate", "/converse", `{"messages":[{"role":"user","content":[{"text":"a"}]},{"role":"user","content":[{"text":"b"}]}]}`, signed, 400, "ValidationException", ""},
		{"system role in messages", "/converse", `{"messages":[{"role":"system","content":[{"text":"hi"}]}]}`, signed, 400, "ValidationException",
			"1 validation error detected: Value 'system' at 'messages.1.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]"},
		{"tool blocks without toolConfig", "/converse", `{"messages":[{"role":"user","content":[{"text":"weather?"}]},
			{"role":"assistant","content":[{"toolUse":{"toolUseId":"t1","name":"get_weather","input":{}}}]},
			{"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"sunny"}]}}]}]}`, signed, 400, "ValidationException",
			"The toolConfig field must be defined when using toolUse and toolResult content blocks."},
		{"empty content", "/converse", `{"messages":[{"role":"user","content":[]}]}`, signed, 400, "ValidationException", ""},
		{"maxTokens 0", "/converse-stream", `{"messages":[{"role":"user","content":[{"text":"hi"}]}],"inferenceConfig":{"maxTokens":0}}`, signed, 400, "ValidationException", ""},
		{"not JSON", "/converse", `{`, signed, 400, "ValidationException", "Malformed input request, please reformat your input and retry."},
		{"forced 429", "/converse", ok, with("x-mock-status", "429"), 429, "ThrottlingException", ""},
		{"forced 424", "/converse", ok, with("x-mock-status", "424"), 424, "ModelErrorException", ""},
		{"forced 503 on a stream", "/converse-stream", ok, with("x-mock-status", "503"), 503, "ServiceUnavailableException", ""},
		{"forced 500 wins over a bad body", "/converse", `nope`, with("x-mock-status", "500"), 500, "InternalServerException", ""},
		{"bad latency hook", "/converse", ok, with("x-mock-latency-ms", "soon"), 400, "ValidationException", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := call(t, http.MethodPost, srv.URL+converseModel+tc.path, tc.body, tc.header)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, data)
			}
			e := decode[struct {
				Message string `json:"message"`
			}](t, data)
			if got := resp.Header.Get("x-amzn-ErrorType"); got != tc.errType || e.Message == "" || resp.Header.Get("x-amzn-RequestId") == "" {
				t.Errorf("x-amzn-ErrorType %q, body %s; want %s with a message and a request id", got, data, tc.errType)
			}
			if tc.message != "" && e.Message != tc.message {
				t.Errorf("message = %q, want %q", e.Message, tc.message)
			}
		})
	}
	for _, path := range []string{"/converse", "/converse-stream"} {
		if resp, data := call(t, http.MethodPost, srv.URL+converseModel+path, ok, signed); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the key: status %d: %s", path, resp.StatusCode, data)
		}
	}
}

// TestBedrockHooks checks the latency hook and injected failures on the
// Converse endpoints.
func TestBedrockHooks(t *testing.T) {
	const body = `{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`
	srv := newServer(t, Options{})
	start := time.Now()
	resp, data := call(t, http.MethodPost, srv.URL+converseModel+"/converse", body, map[string]string{"x-mock-latency-ms": "200"})
	if resp.StatusCode != http.StatusOK || time.Since(start) < 200*time.Millisecond {
		t.Errorf("status %d after %v, want 200 after >= 200ms: %s", resp.StatusCode, time.Since(start), data)
	}
	if c := decode[wireConverse](t, data); *c.Metrics.LatencyMs != 200 {
		t.Errorf("metrics.latencyMs = %d, want the 200 ms applied", *c.Metrics.LatencyMs)
	}
	failing := newServer(t, Options{ErrorRate: 1, Seed: 1})
	for _, path := range []string{"/converse", "/converse-stream"} {
		resp, data := call(t, http.MethodPost, failing.URL+converseModel+path, body, nil)
		if resp.StatusCode != http.StatusInternalServerError || resp.Header.Get("x-amzn-ErrorType") != "InternalServerException" {
			t.Errorf("%s: status %d, x-amzn-ErrorType %q: %s", path, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), data)
		}
	}
}
