package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
func (req *llmRequest) upstreamBody(d *Deployment) ([]byte, error) {
	out := make(map[string]json.RawMessage, len(req.fields)+2)
	for k, v := range req.fields {
		out[k] = v
	}
	if len(d.Params) > 0 {
		var defaults map[string]json.RawMessage
		if err := json.Unmarshal(d.Params, &defaults); err == nil {
			for k, v := range defaults {
				if _, set := out[k]; !set {
					out[k] = v
				}
			}
		}
	}
	model, _ := json.Marshal(d.UpstreamModel)
	out["model"] = model
	if req.stream {
		opts := map[string]json.RawMessage{}
		if raw, ok := out["stream_options"]; ok {
			json.Unmarshal(raw, &opts)
		}
		opts["include_usage"] = json.RawMessage("true")
		b, _ := json.Marshal(opts)
		out["stream_options"] = b
	}
	return json.Marshal(out)
}
