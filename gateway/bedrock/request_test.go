package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each testdata/requests file holds an OpenAI chat request and the exact
// Converse body it must become.
func TestConverseBody(t *testing.T) {
	files, err := filepath.Glob("testdata/requests/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no request fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			var fixture struct {
				OpenAI   json.RawMessage `json:"openai"`
				Converse json.RawMessage `json:"converse"`
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &fixture); err != nil {
				t.Fatal(err)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, fixture.Converse); err != nil {
				t.Fatal(err)
			}
			got, err := converseBody(fixture.OpenAI)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("Converse body differs\n got %s\nwant %s", got, want.Bytes())
			}
		})
	}
}

func TestConverseBodyRefuses(t *testing.T) {
	cases := []struct {
		name, body, param, says string
	}{
		{"several choices", `{"messages":[{"role":"user","content":"hi"}],"n":2}`, "n", "one choice"},
		{"web image", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}`,
			"messages[0].content[0].image_url.url", "data URL"},
		{"image type", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/tiff;base64,AAAA"}}]}]}`,
			"messages[0].content[0].image_url.url", "PNG, JPEG, GIF or WebP"},
		{"not base64", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}]}]}`,
			"messages[0].content[0].image_url.url", "base64"},
		{"audio part", `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`,
			"messages[0].content[0].type", "input_audio"},
		{"unknown role", `{"messages":[{"role":"function","name":"f","content":"x"}]}`, "messages[0].role", "function"},
		{"tool without id", `{"messages":[{"role":"tool","content":"18 C"}]}`, "messages[0].tool_call_id", "tool_call_id"},
		{"bad arguments", `{"messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{city:"}}]}]}`,
			"messages[0].tool_calls[0].function.arguments", "JSON"},
		{"image in system", `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}`,
			"messages[0].content[0].type", "only text"},
		{"tool choice", `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}`,
			"tool_choice", "sometimes"},
		{"custom tool", `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"custom","custom":{"name":"f"}}]}`, "tools[0].type", "custom"},
		{"stop", `{"messages":[{"role":"user","content":"hi"}],"stop":5}`, "stop", "string"},
		{"not json", `{"messages":`, "", "not a valid chat request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := converseBody([]byte(c.body))
			var rerr *RequestError
			if !errors.As(err, &rerr) {
				t.Fatalf("want a *RequestError, got %v", err)
			}
			if rerr.Param != c.param || !strings.Contains(rerr.Message, c.says) {
				t.Errorf("got %q (param %q), want param %q and a message saying %q", rerr.Message, rerr.Param, c.param, c.says)
			}
		})
	}
}
