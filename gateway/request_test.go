package gateway

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/store"
)

func deployment(upstream string) *Deployment {
	return &Deployment{Model: store.Model{ModelSpec: store.ModelSpec{UpstreamModel: upstream}}}
}

// The body a deployment gets: the caller's fields byte for byte, the
// upstream model name, defaults only where the caller set nothing, and the
// usage chunk asked for on streams, keeping the caller's other options.
func TestUpstreamBody(t *testing.T) {
	read := func(body string) *llmRequest {
		t.Helper()
		r := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		req, aerr := readRequest(httptest.NewRecorder(), r, endpointChat, 1<<20)
		if aerr != nil {
			t.Fatalf("readRequest(%s): %s", body, aerr.Message)
		}
		return req
	}
	decode := func(b []byte) map[string]json.RawMessage {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("upstream body is not a JSON object: %v\n%s", err, b)
		}
		return m
	}
	d := deployment(`gpt-4o "mini"`)
	d.Params = store.JSON(`{"temperature":0.2,"top_p":0.9}`)

	content := `"<b>caf\u00e9</b> & more"` // kept exactly as sent, not re-escaped
	req := read(`{"model":"alias","messages":[{"role":"user","content":` + content + `}],"temperature":1,"we\"ird":1,"guardrails":["pii"]}`)
	body, err := req.upstreamBody(d)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(body)
	var model string
	json.Unmarshal(m["model"], &model)
	switch {
	case model != d.UpstreamModel:
		t.Errorf("model = %q, want the deployment's %q", model, d.UpstreamModel)
	case string(m["temperature"]) != "1":
		t.Errorf("temperature = %s, want the caller's 1 over the default", m["temperature"])
	case string(m["top_p"]) != "0.9":
		t.Errorf("top_p = %s, want the default 0.9", m["top_p"])
	case string(m[`we"ird`]) != "1":
		t.Errorf("a key needing escapes was lost: %s", body)
	case m["guardrails"] != nil:
		t.Errorf("guardrails reached the provider: %s", body)
	case m["stream_options"] != nil:
		t.Errorf("stream_options added to a whole answer: %s", body)
	case !bytes.Contains(body, []byte(content)):
		t.Errorf("the caller's content was re-encoded: %s", body)
	}

	for _, c := range []struct{ in, want string }{
		{`{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true}`, `{"include_usage":true}`},
		{`{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":null}`, `{"include_usage":true}`},
		{`{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`, `{"include_usage":true}`},
		{`{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_obfuscation":false}}`, `{"include_obfuscation":false,"include_usage":true}`},
	} {
		body, err := read(c.in).upstreamBody(deployment("m"))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(decode(body)["stream_options"]); got != c.want {
			t.Errorf("%s: stream_options = %s, want %s", c.in, got, c.want)
		}
	}
}
