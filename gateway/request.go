package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
)

// endpoint is one of the LLM API operations.
type endpoint struct {
	name      string // chat, completions, embeddings: the spend log's endpoint
	path      string // upstream path after the provider's base URL
	required  string // the field that must be present besides model
	streaming bool   // whether stream: true is honoured
}

var (
	endpointChat        = endpoint{name: "chat", path: "/chat/completions", required: "messages", streaming: true}
	endpointCompletions = endpoint{name: "completions", path: "/completions", required: "prompt", streaming: true}
	endpointEmbeddings  = endpoint{name: "embeddings", path: "/embeddings", required: "input"}
)

// llmRequest is a parsed caller request. Fields are kept raw so everything
// the gateway does not look at passes through untouched.
type llmRequest struct {
	fields       map[string]json.RawMessage
	model        string
	stream       bool
	includeUsage bool // the caller asked for the usage chunk
	size         int
	guardrails   []string // guardrails the caller opted into; the field never goes upstream
}

// readRequest reads and checks the body against the endpoint's rules.
func readRequest(w http.ResponseWriter, r *http.Request, ep endpoint, limit int64) (*llmRequest, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
			Message: fmt.Sprintf("The request body is larger than the gateway's limit of %d bytes.", limit)}
	}
	if err != nil {
		return nil, badRequest("", "Could not read the request body: "+err.Error())
	}
	req := &llmRequest{size: len(body)}
	if err := json.Unmarshal(body, &req.fields); err != nil || req.fields == nil {
		return nil, badRequest("", "The request body must be a JSON object: "+jsonErrorText(err))
	}
	raw, ok := req.fields["model"]
	if !ok || json.Unmarshal(raw, &req.model) != nil || req.model == "" {
		return nil, badRequest("model", "You must provide a model parameter (a string naming one of the models from GET /v1/models).")
	}
	if err := checkRequired(req.fields, ep.required); err != nil {
		return nil, err
	}
	if raw, ok := req.fields["guardrails"]; ok {
		if json.Unmarshal(raw, &req.guardrails) != nil {
			return nil, badRequest("guardrails", "guardrails must be a list of guardrail names, such as [\"pii-mask\"].")
		}
		delete(req.fields, "guardrails")
	}
	if raw, ok := req.fields["stream"]; ok && ep.streaming {
		if json.Unmarshal(raw, &req.stream) != nil {
			return nil, badRequest("stream", "stream must be true or false.")
		}
	}
	if raw, ok := req.fields["stream_options"]; ok && req.stream {
		var opts struct {
			IncludeUsage bool `json:"include_usage"`
		}
		if json.Unmarshal(raw, &opts) != nil {
			return nil, badRequest("stream_options", "stream_options must be an object such as {\"include_usage\": true}.")
		}
		req.includeUsage = opts.IncludeUsage
	}
	return req, nil
}

func jsonErrorText(err error) string {
	if err == nil {
		return "got null"
	}
	return err.Error()
}

// checkRequired makes sure the endpoint's main input is present and not empty.
func checkRequired(fields map[string]json.RawMessage, name string) *apiError {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return badRequest(name, fmt.Sprintf("Missing required parameter: %s.", name))
	}
	if name == "messages" {
		var msgs []json.RawMessage
		if json.Unmarshal(raw, &msgs) != nil {
			return badRequest(name, "messages must be an array of message objects.")
		}
		if len(msgs) == 0 {
			return badRequest(name, "messages must hold at least one message.")
		}
	}
	if string(raw) == `""` || string(raw) == "[]" {
		return badRequest(name, fmt.Sprintf("%s must not be empty.", name))
	}
	return nil
}

// upstreamBody is the caller's body for one deployment: its upstream model
// name, its default params where the caller set none, and a request for
// the usage chunk when streaming, so that every call can be priced.
//
// The fields are written out as they came, in key order: they were
// checked when the request was read, so re-encoding them (as json.Marshal
// of the map would, validating and escaping every value again) is not
// needed, and the caller's bytes reach the provider unchanged.
func (req *llmRequest) upstreamBody(d *Deployment) ([]byte, error) {
	var defaults map[string]json.RawMessage
	if len(d.Params) > 0 {
		json.Unmarshal(d.Params, &defaults) // checked when the model was saved
	}
	model, err := json.Marshal(d.UpstreamModel)
	if err != nil {
		return nil, err
	}
	set := func(k string) json.RawMessage {
		switch {
		case k == "model":
			return model
		case k == "stream_options" && req.stream:
			return withIncludeUsage(req.fields[k])
		}
		if v, ok := req.fields[k]; ok {
			return v
		}
		return defaults[k]
	}
	keys := make([]string, 0, len(req.fields)+len(defaults)+2)
	for k := range req.fields {
		keys = append(keys, k)
	}
	for k := range defaults {
		if _, ok := req.fields[k]; !ok {
			keys = append(keys, k)
		}
	}
	if _, ok := req.fields["model"]; !ok {
		keys = append(keys, "model")
	}
	if _, ok := req.fields["stream_options"]; !ok && req.stream {
		keys = append(keys, "stream_options")
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	buf := make([]byte, 0, req.size+len(d.Params)+len(model)+32)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = append(buf, set(k)...)
	}
	return append(buf, '}'), nil
}

// withIncludeUsage is the caller's stream_options asking for the usage chunk.
func withIncludeUsage(raw json.RawMessage) json.RawMessage {
	var opts map[string]json.RawMessage
	json.Unmarshal(raw, &opts) // an object or null, checked when the request was read
	if opts == nil {
		opts = map[string]json.RawMessage{}
	}
	if string(opts["include_usage"]) == "true" {
		return raw
	}
	opts["include_usage"] = json.RawMessage("true")
	b, _ := json.Marshal(opts)
	return b
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			b, _ := json.Marshal(s)
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
