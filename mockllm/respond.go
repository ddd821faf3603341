package mockllm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

const (
	typeInvalidRequest = "invalid_request_error"
	typeServerError    = "server_error"

	maxBodyBytes = 8 << 20
)

// apiError is an OpenAI error. Empty Param and Code go on the wire as null,
// as OpenAI sends them.
type apiError struct {
	Status  int
	Message string
	Type    string
	Param   string
	Code    string
}

func badRequest(param, code, message string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: message, Type: typeInvalidRequest, Param: param, Code: code}
}

func missingParam(param string) *apiError {
	return badRequest(param, "missing_required_parameter", fmt.Sprintf("Missing required parameter: '%s'.", param))
}

func writeError(w http.ResponseWriter, e *apiError) {
	type body struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	writeJSON(w, e.Status, map[string]body{"error": {
		Message: e.Message,
		Type:    e.Type,
		Param:   nullable(e.Param),
		Code:    nullable(e.Code),
	}})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do then
}

// decodeBody reads a JSON request body, mapping failures to the 400s OpenAI
// gives: type mismatches name the field, syntax errors have a null param.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Message: "Request body too large.", Type: typeInvalidRequest}
		}
		return badRequest("", "", "Could not read the request body.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		if typeErr, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && typeErr.Field != "" {
			return badRequest(typeErr.Field, "invalid_type", fmt.Sprintf("Invalid type for '%s'.", typeErr.Field))
		}
		return badRequest("", "", "We could not parse the JSON body of your request. The OpenAI API expects a JSON payload.")
	}
	return nil
}

// streamSSE writes events as OpenAI-style server-sent events, then the
// [DONE] sentinel, with streamFrames' timing.
func streamSSE[T any](w http.ResponseWriter, r *http.Request, delay time.Duration, events []T) {
	frames := make([][]byte, 0, len(events))
	for _, ev := range events {
		data, err := json.Marshal(ev)
		if err != nil {
			return
		}
		frames = append(frames, fmt.Appendf(nil, "data: %s\n\n", data))
	}
	streamFrames(w, r, "text/event-stream", delay, frames, []byte("data: [DONE]\n\n"))
}

// streamFrames writes the encoded frames of a stream, flushing each one,
// then tail (if any) right after the last. The first frame waits delay/2
// (time to first token) and the rest of delay is spread over the remaining
// frames. It stops as soon as the client goes away.
func streamFrames(w http.ResponseWriter, r *http.Request, contentType string, delay time.Duration, frames [][]byte, tail []byte) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache")

	first := delay / 2
	var gap time.Duration
	if len(frames) > 1 {
		gap = (delay - first) / time.Duration(len(frames)-1)
	}
	send := func(frame []byte) bool {
		if _, err := w.Write(frame); err != nil {
			return false
		}
		err := rc.Flush()
		return err == nil || errors.Is(err, http.ErrNotSupported)
	}
	for i, frame := range frames {
		wait := gap
		if i == 0 {
			wait = first
		}
		if !sleep(r.Context(), wait) || !send(frame) {
			return
		}
	}
	if tail != nil {
		send(tail)
	}
}

// usage is the OpenAI token accounting object.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// modelIDs are the models advertised by /v1/models; requests may still name
// any model.
var modelIDs = []string{"mock-gpt", "mock-small", "mock-embed"}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func newModel(id string) modelObject {
	return modelObject{ID: id, Object: "model", Created: 1700000000, OwnedBy: "mockllm"}
}

func listModels(w http.ResponseWriter, _ *http.Request) {
	data := make([]modelObject, len(modelIDs))
	for i, id := range modelIDs {
		data[i] = newModel(id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func getModel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, known := range modelIDs {
		if id == known {
			writeJSON(w, http.StatusOK, newModel(id))
			return
		}
	}
	writeError(w, &apiError{
		Status:  http.StatusNotFound,
		Message: fmt.Sprintf("The model '%s' does not exist", id),
		Type:    typeInvalidRequest,
		Param:   "model",
		Code:    "model_not_found",
	})
}

// invalid is a 400 invalid_request_error, as every provider's format maps it.
func invalid(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...), Type: typeInvalidRequest}
}
