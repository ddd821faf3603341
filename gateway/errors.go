package gateway

import (
	"encoding/json"
	"net/http"
)

// apiError is an error as the caller sees it, in OpenAI's envelope.
type apiError struct {
	Status  int
	Type    string
	Code    string
	Param   string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func badRequest(param, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_request_error", Param: param, Message: msg}
}

func unauthorized(msg string) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key", Message: msg}
}

func forbidden(msg string) *apiError {
	return &apiError{Status: http.StatusForbidden, Type: "permission_error", Code: "permission_denied", Message: msg}
}

func modelNotFound(msg string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: "model", Message: msg}
}

func upstreamFailed(status int, msg string) *apiError {
	switch status {
	case http.StatusGatewayTimeout:
		return &apiError{Status: status, Type: "timeout_error", Code: "upstream_timeout", Message: msg}
	case http.StatusServiceUnavailable:
		return &apiError{Status: status, Type: "service_unavailable", Code: "no_healthy_deployment", Message: msg}
	}
	return &apiError{Status: http.StatusBadGateway, Type: "upstream_error", Code: "upstream_error", Message: msg}
}

func internalError() *apiError {
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error", Message: "The gateway hit an internal error; the request id identifies it in the gateway's logs."}
}

type errorEnvelope struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	var env errorEnvelope
	env.Error.Message, env.Error.Type, env.Error.Code = e.Message, e.Type, e.Code
	if e.Param != "" {
		env.Error.Param = &e.Param
	}
	writeJSON(w, e.Status, env)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
