package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"tollgate/store"
)

type problem struct {
	Error struct {
		Message string `json:"message"`
		Code    string `json:"code"`
		Param   string `json:"param,omitempty"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, code, msg string) {
	var p problem
	p.Error.Message, p.Error.Code = msg, code
	writeJSON(w, status, p)
}

// badInput is a request the API cannot read.
type badInput struct{ msg string }

func (e *badInput) Error() string { return e.msg }

// tooLarge is a body over the 1 MiB limit (413).
type tooLarge struct{}

func (e *tooLarge) Error() string { return "the request body is larger than 1 MiB" }

// writeErr maps store and input errors to statuses; anything else is a 500
// whose details go to the log only.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var (
		verr *store.ValidationError
		cerr *store.ConflictError
		berr *badInput
		terr *tooLarge
		ferr *errForbidden
		uerr *errUnauthorized
		aerr *errUnavailable
	)
	switch {
	case errors.As(err, &verr):
		var p problem
		p.Error.Message, p.Error.Code, p.Error.Param = verr.Message, "invalid_request", verr.Field
		writeJSON(w, http.StatusBadRequest, p)
	case errors.As(err, &uerr):
		writeProblem(w, http.StatusUnauthorized, "unauthorized", uerr.msg)
	case errors.As(err, &ferr):
		writeProblem(w, http.StatusForbidden, "forbidden", ferr.msg)
	case errors.As(err, &aerr):
		writeProblem(w, http.StatusServiceUnavailable, "unavailable", aerr.msg)
	case errors.As(err, &terr):
		writeProblem(w, http.StatusRequestEntityTooLarge, "request_too_large", terr.Error())
	case errors.As(err, &berr):
		writeProblem(w, http.StatusBadRequest, "invalid_request", berr.msg)
	case errors.As(err, &cerr):
		writeProblem(w, http.StatusConflict, "conflict", cerr.Message)
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, http.StatusNotFound, "not_found", capitalize(err.Error()))
	default:
		s.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeProblem(w, http.StatusInternalServerError, "internal_error", "Internal error; see the admin app's log.")
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

const maxAdminBody = 1 << 20

// readBody reads a JSON request body up to 1 MiB.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return nil, &badInput{"could not read the request body: " + err.Error()}
	}
	if len(body) > maxAdminBody {
		return nil, &tooLarge{}
	}
	return body, nil
}

// decodeInto lays a JSON object over v; unknown fields are refused so that
// a typo does not pass silently.
func decodeInto(body []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field == "":
			return &badInput{fmt.Sprintf("the request body must be a JSON object, not %s", typeErr.Value)}
		case errors.As(err, &typeErr):
			return &store.ValidationError{Field: typeErr.Field, Message: fmt.Sprintf("%s must be a JSON %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return &badInput{strings.TrimPrefix(err.Error(), "json: ") + " (see docs/openapi.yaml for the fields)"}
		case errors.Is(err, io.EOF):
			return &badInput{"the request body is empty; send a JSON object"}
		}
		return &badInput{"the request body is not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return &badInput{"the request body must hold one JSON object"}
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "float64", "int", "int64", "int32":
		return "number"
	case "slice":
		return "array"
	case "struct", "map":
		return "object"
	case "bool":
		return "boolean"
	case "ptr":
		return "value of another type"
	}
	return goKind
}

// decodeBody reads the body and decodes it into v.
func decodeBody(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	return decodeInto(body, v)
}

func pathID(r *http.Request) string { return mux.Vars(r)["id"] }

// pageOf reads limit and cursor.
func pageOf(r *http.Request) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Cursor: q.Get("cursor")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			return p, &store.ValidationError{Field: "limit", Message: "limit must be a positive whole number (at most 1000)"}
		}
		p.Limit = n
	}
	return p, nil
}

// timeParam reads an RFC 3339 time or a YYYY-MM-DD date (midnight UTC).
func timeParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	return time.Time{}, &store.ValidationError{Field: name, Message: fmt.Sprintf("%s must be an RFC 3339 time (2026-01-31T00:00:00Z) or a date (2026-01-31), got %q", name, v)}
}

type listResponse[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

func writeList[T any](w http.ResponseWriter, rows []T, next string) {
	resp := listResponse[T]{Data: rows}
	if next != "" {
		resp.NextCursor = &next
	}
	writeJSON(w, http.StatusOK, resp)
}
