package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// translated returns the Gemini body for an OpenAI body, compacted.
func translated(t *testing.T, body string) string {
	t.Helper()
	gr, err := translateRequest([]byte(body))
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	b, err := json.Marshal(gr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameJSON compares byte for byte after compacting the expectation, so key
// order counts too.
func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var w bytes.Buffer
	if err := json.Compact(&w, []byte(want)); err != nil {
		t.Fatalf("bad expectation: %v", err)
	}
	if got != w.String() {
		t.Errorf("JSON differs\n got %s\nwant %s", got, w.String())
	}
}

func TestTranslateSystemAndMultiTurn(t *testing.T) {
	got := translated(t, `{
		"model": "gemini-2.5-flash",
		"messages": [
			{"role": "system", "content": "You are terse."},
			{"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
			{"role": "user", "content": "Hi"},
			{"role": "assistant", "content": "Bonjour"},
			{"role": "user", "content": "What is 2+2?"},
			{"role": "user", "content": [{"type": "text", "text": "Be brief."}]},
			{"role": "assistant", "content": [{"type": "text", "text": "Quatre"}, {"type": "text", "text": "."}]},
			{"role": "assistant", "content": null},
			{"role": "user", "content": ""}
		]
	}`)
	sameJSON(t, got, `{
		"contents": [
			{"role": "user", "parts": [{"text": "Hi"}]},
			{"role": "model", "parts": [{"text": "Bonjour"}]},
			{"role": "user", "parts": [{"text": "What is 2+2?"}, {"text": "Be brief."}]},
			{"role": "model", "parts": [{"text": "Quatre"}, {"text": "."}]}
		],
		"systemInstruction": {"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]}
	}`)
}

// Gemini refuses a request without contents: a system-only prompt (valid
// for OpenAI) is sent as the user's turn.
func TestTranslateSystemOnly(t *testing.T) {
	got := translated(t, `{"messages": [{"role": "system", "content": "Write a haiku about tolls."}]}`)
	sameJSON(t, got, `{"contents": [{"role": "user", "parts": [{"text": "Write a haiku about tolls."}]}]}`)
}

func TestTranslateToolRoundTrip(t *testing.T) {
	got := translated(t, `{
		"model": "gemini-3-flash-preview",
		"messages": [
			{"role": "user", "content": "Weather in Paris and London?"},
			{"role": "assistant", "content": "Let me check.", "tool_calls": [
				{"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"},
				 "extra_content": {"google": {"thought_signature": "CiQBcsjafBZp"}}},
				{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}
			]},
			{"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
			{"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "14:05"}]},
			{"role": "user", "content": "And tomorrow?"},
			{"role": "assistant", "tool_calls": [
				{"id": "call_0", "type": "function", "function": {"name": "get_forecast", "arguments": "{\"city\":\"Paris\",\"days\":1}"}}
			]},
			{"role": "tool", "tool_call_id": "call_0", "content": "rain"}
		],
		"tools": [
			{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
				"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}},
			{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
			{"type": "function", "function": {"name": "get_forecast", "description": "Forecast",
				"parameters": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
					"properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}}}}
		]
	}`)
	// The second assistant turn's call id repeats the first's: the result
	// belongs to the latest call with that id. Its call carries no signature,
	// so it gets the one Google documents for foreign history.
	sameJSON(t, got, `{
		"contents": [
			{"role": "user", "parts": [{"text": "Weather in Paris and London?"}]},
			{"role": "model", "parts": [
				{"text": "Let me check."},
				{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "CiQBcsjafBZp"},
				{"functionCall": {"name": "get_time", "args": {}}}
			]},
			{"role": "user", "parts": [
				{"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 21, "sky": "clear"}}}},
				{"functionResponse": {"name": "get_time", "response": {"content": "14:05"}}},
				{"text": "And tomorrow?"}
			]},
			{"role": "model", "parts": [
				{"functionCall": {"name": "get_forecast", "args": {"city":"Paris","days":1}}, "thoughtSignature": "skip_thought_signature_validator"}
			]},
			{"role": "user", "parts": [
				{"functionResponse": {"name": "get_forecast", "response": {"content": "rain"}}}
			]}
		],
		"tools": [{"functionDeclarations": [
			{"name": "get_weather", "description": "Current weather",
			 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
			{"name": "get_time"},
			{"name": "get_forecast", "description": "Forecast",
			 "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}}}
		]}]
	}`)
}

func TestTranslateImagesAndMedia(t *testing.T) {
	got := translated(t, `{
		"messages": [{"role": "user", "content": [
			{"type": "text", "text": "Compare these."},
			{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
			{"type": "image_url", "image_url": {"url": "https://example.com/cats/tabby.WEBP?size=large", "detail": "high"}},
			{"type": "image_url", "image_url": {"url": "https://example.com/render"}},
			{"type": "image_url", "image_url": {"url": "gs://bucket/scan.png"}},
			{"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
			{"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}
		]}]
	}`)
	sameJSON(t, got, `{
		"contents": [{"role": "user", "parts": [
			{"text": "Compare these."},
			{"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
			{"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cats/tabby.WEBP?size=large"}},
			{"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/render"}},
			{"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/scan.png"}},
			{"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
			{"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
		]}]
	}`)
}

func TestTranslateGenerationConfig(t *testing.T) {
	cases := []struct {
		name string
		in   string // request fields besides messages
		want string // the generationConfig, or "" for none
	}{
		{"nothing set", ``, ``},
		{"max_tokens and sampling", `"max_tokens": 256, "temperature": 0, "top_p": 0.9, "stop": "END", "seed": 7`,
			`{"stopSequences": ["END"], "maxOutputTokens": 256, "temperature": 0, "topP": 0.9, "seed": 7}`},
		{"max_completion_tokens wins", `"max_tokens": 10, "max_completion_tokens": 20, "stop": ["a", "b"]`,
			`{"stopSequences": ["a", "b"], "maxOutputTokens": 20}`},
		{"n and penalties", `"n": 3, "presence_penalty": 0.5, "frequency_penalty": -0.5`,
			`{"candidateCount": 3, "presencePenalty": 0.5, "frequencyPenalty": -0.5}`},
		{"n of one is the default", `"n": 1`, ``},
		{"json mode", `"response_format": {"type": "json_object"}`, `{"responseMimeType": "application/json"}`},
		{"text format", `"response_format": {"type": "text"}`, ``},
		{"json schema", `"response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": {
			"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
			"required": ["name", "age"], "additionalProperties": false}}}`,
			`{"responseMimeType": "application/json", "responseSchema": {"type": "object",
				"properties": {"name": {"type": "string"}, "age": {"type": "integer", "nullable": true}},
				"required": ["name", "age"], "propertyOrdering": ["name", "age"]}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := `{"messages": [{"role": "user", "content": "x"}]`
			if c.in != "" {
				body += ", " + c.in
			}
			got := translated(t, body+"}")
			want := `{"contents": [{"role": "user", "parts": [{"text": "x"}]}]`
			if c.want != "" {
				want += `, "generationConfig": ` + c.want
			}
			sameJSON(t, got, want+"}")
		})
	}
}

func TestTranslateToolChoice(t *testing.T) {
	cases := []struct {
		choice string
		want   string // toolConfig, "" for none
	}{
		{``, ``},
		{`"auto"`, `{"functionCallingConfig": {"mode": "AUTO"}}`},
		{`"none"`, `{"functionCallingConfig": {"mode": "NONE"}}`},
		{`"required"`, `{"functionCallingConfig": {"mode": "ANY"}}`},
		{`{"type": "function", "function": {"name": "f"}}`, `{"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}}`},
	}
	for _, c := range cases {
		t.Run(c.choice, func(t *testing.T) {
			body := `{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}]`
			if c.choice != "" {
				body += `, "tool_choice": ` + c.choice
			}
			got := translated(t, body+"}")
			want := `{"contents": [{"role": "user", "parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{"name": "f"}]}]`
			if c.want != "" {
				want += `, "toolConfig": ` + c.want
			}
			sameJSON(t, got, want+"}")
		})
	}
	// Without tools there is nothing to configure.
	got := translated(t, `{"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}`)
	sameJSON(t, got, `{"contents": [{"role": "user", "parts": [{"text": "x"}]}]}`)
}

func TestGeminiSchemaStripsWhatGeminiRejects(t *testing.T) {
	in := `{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"$id": "urn:order",
		"title": "Order",
		"type": "object",
		"additionalProperties": false,
		"$defs": {
			"Item": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+$"}, "qty": {"type": "integer", "exclusiveMinimum": 0}}, "required": ["sku"]},
			"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}
		},
		"properties": {
			"additionalProperties": {"type": "string", "description": "a property that happens to carry the name"},
			"items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1, "uniqueItems": true},
			"status": {"const": "open"},
			"priority": {"enum": [1, 2, null]},
			"email": {"type": "string", "format": "email"},
			"due": {"type": "string", "format": "date-time", "examples": ["2026-01-01T00:00:00Z"]},
			"note": {"anyOf": [{"type": "string", "maxLength": 80}, {"type": "null"}], "default": null},
			"contact": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
			"shipping": {"allOf": [{"$ref": "#/$defs/Item"}], "description": "where it goes"},
			"tree": {"$ref": "#/$defs/Node"},
			"meta": {"type": "object", "patternProperties": {"^x-": {"type": "string"}}, "not": {"required": ["y"]}}
		},
		"required": ["items"]
	}`
	s, err := geminiSchema(json.RawMessage(in), false)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(s)
	item := `{"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+$"}, "qty": {"type": "integer"}}, "required": ["sku"]}`
	want := `{
		"title": "Order",
		"type": "object",
		"properties": {
			"additionalProperties": {"type": "string", "description": "a property that happens to carry the name"},
			"items": {"type": "array", "items": ` + item + `, "minItems": 1},
			"status": {"enum": ["open"]},
			"priority": {"nullable": true, "enum": ["1", "2"]},
			"email": {"type": "string"},
			"due": {"type": "string", "format": "date-time"},
			"note": {"nullable": true, "type": "string", "maxLength": 80, "default": null},
			"contact": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
			"shipping": {"type": "object", "properties": {"sku": {"type": "string", "pattern": "^[A-Z]+$"}, "qty": {"type": "integer"}}, "required": ["sku"], "description": "where it goes"},
			"tree": {"type": "object", "properties": {"child": {"type": "object"}}},
			"meta": {"type": "object"}
		},
		"required": ["items"]
	}`
	sameJSON(t, string(got), want)
	for _, banned := range []string{"$schema", "$id", "$defs", "$ref", "additionalProperties\":false", "exclusiveMinimum", "uniqueItems", "examples", "oneOf", "allOf", "const", "patternProperties", "\"not\""} {
		if strings.Contains(string(got), banned) {
			t.Errorf("%s left in %s", banned, got)
		}
	}
}

func TestTranslateRefusesWhatGeminiCannotTake(t *testing.T) {
	cases := []struct {
		name, body, param string
	}{
		{"not JSON", `{"messages": [`, ""},
		{"unknown role", `{"messages": [{"role": "robot", "content": "x"}]}`, "messages[0].role"},
		{"orphan tool result", `{"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_9", "content": "1"}]}`, "messages[1].tool_call_id"},
		{"arguments not an object", `{"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"call without name", `{"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"arguments": "{}"}}]}]}`, "messages[0].tool_calls[0].function.name"},
		{"unknown part", `{"messages": [{"role": "user", "content": [{"type": "video_url"}]}]}`, "messages[0].content[0].type"},
		{"image in system", `{"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}`, "messages[0].content[0].type"},
		{"url-encoded data URL", `{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"relative image URL", `{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "cat.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"file by id", `{"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}`, "messages[0].content[0].file"},
		{"bad stop", `{"messages": [], "stop": 5}`, "stop"},
		{"bad format", `{"messages": [], "response_format": {"type": "yaml"}}`, "response_format.type"},
		{"custom tool", `{"messages": [], "tools": [{"type": "custom", "custom": {"name": "x"}}]}`, "tools[0].type"},
		{"schema not an object", `{"messages": [], "tools": [{"type": "function", "function": {"name": "f", "parameters": [1]}}]}`, "tools[0].function.parameters"},
		{"bad tool_choice", `{"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "sometimes"}`, "tool_choice"},
		{"allowed_tools choice", `{"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "allowed_tools"}}`, "tool_choice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := translateRequest([]byte(c.body))
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RequestError", err)
			}
			if re.Param != c.param {
				t.Errorf("param %q, want %q (%v)", re.Param, c.param, err)
			}
		})
	}
}

// The legacy function_call / role function pair still round-trips.
func TestTranslateLegacyFunctionCall(t *testing.T) {
	got := translated(t, `{"messages": [
		{"role": "user", "content": "x"},
		{"role": "assistant", "content": null, "function_call": {"name": "lookup", "arguments": "{\"q\":1}"}},
		{"role": "function", "name": "lookup", "content": "[1,2]"}
	]}`)
	sameJSON(t, got, `{"contents": [
		{"role": "user", "parts": [{"text": "x"}]},
		{"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q":1}}, "thoughtSignature": "skip_thought_signature_validator"}]},
		{"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"content": [1,2]}}}]}
	]}`)
}

// Definitions that each refer twice to the next would unroll to 2^30
// nodes; the translation stops instead.
func TestGeminiSchemaBoundsInlining(t *testing.T) {
	var defs []string
	for i := range 30 {
		defs = append(defs, fmt.Sprintf(`"D%d": {"type": "object", "properties": {"a": {"$ref": "#/$defs/D%d"}, "b": {"$ref": "#/$defs/D%d"}}}`, i, i+1, i+1))
	}
	defs = append(defs, `"D30": {"type": "string"}`)
	in := `{"$defs": {` + strings.Join(defs, ",") + `}, "type": "object", "properties": {"root": {"$ref": "#/$defs/D0"}}}`
	if _, err := geminiSchema(json.RawMessage(in), false); err == nil || !strings.Contains(err.Error(), "nodes") {
		t.Fatalf("got %v, want the size error", err)
	}
}
