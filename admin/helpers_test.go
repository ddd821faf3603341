package admin_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/admin"
	"tollgate/store"
	"tollgate/store/storetest"
)

const masterKey = "sk-master-test-0123456789"

// env is the admin app on loopback, on a fresh PostgreSQL database and the
// test Redis.
type env struct {
	t   *testing.T
	st  *store.Store
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	return newEnvWithKey(t, masterKey)
}

func newEnvWithKey(t *testing.T, key string) *env {
	t.Helper()
	t.Parallel()
	st := storetest.New(t)
	rdb := storetest.Redis(t)
	srv := httptest.NewServer(admin.New(st, rdb, key, slog.New(slog.DiscardHandler)).Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, st: st, srv: srv}
}

// at is e reporting to t, for subtests.
func (e *env) at(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// obj is a decoded JSON object.
type obj = map[string]any

// resp is one answer: status, decoded JSON (nil when not an object) and
// raw body.
type resp struct {
	status int
	json   obj
	raw    string
	header http.Header
}

// do sends a request with the master key. body may be nil, a string (sent
// as is) or anything json.Marshal takes.
func (e *env) do(method, path string, body any) resp {
	e.t.Helper()
	return e.doAuth(method, path, "Bearer "+masterKey, body)
}

// doAuth sends a request with the given Authorization header ("" for none).
func (e *env) doAuth(method, path, auth string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := resp{status: res.StatusCode, raw: string(raw), header: res.Header}
	_ = json.Unmarshal(raw, &r.json)
	return r
}

// must sends a request and fails the test unless the status is want.
func (e *env) must(want int, method, path string, body any) resp {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, r.status, want, r.raw)
	}
	return r
}

// create POSTs body to path, expects 201 and returns the object's id.
func (e *env) create(path string, body any) (string, obj) {
	e.t.Helper()
	r := e.must(http.StatusCreated, http.MethodPost, path, body)
	id, _ := r.json["id"].(string)
	if id == "" {
		e.t.Fatalf("POST %s: no id in %s", path, r.raw)
	}
	return id, r.json
}

// list GETs a list and returns its data.
func (e *env) list(path string) ([]obj, resp) {
	e.t.Helper()
	r := e.must(http.StatusOK, http.MethodGet, path, nil)
	var out struct {
		Data       []obj   `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(r.raw), &out); err != nil {
		e.t.Fatalf("GET %s: %v in %s", path, err, r.raw)
	}
	if out.Data == nil {
		e.t.Fatalf("GET %s: data is not an array: %s", path, r.raw)
	}
	return out.Data, r
}

// count is the number of rows in table.
func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.st.DB().Get(&n, "SELECT count(*) FROM "+table); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// auditText is every audit row as text, for searching secrets.
func (e *env) auditText() string {
	e.t.Helper()
	var rows []string
	if err := e.st.DB().Select(&rows, `SELECT row_to_json(a)::text FROM audit_logs a`); err != nil {
		e.t.Fatal(err)
	}
	return strings.Join(rows, "\n")
}

// wantError checks the error envelope: status, code, param (when not
// empty) and that the message holds every one of msgParts.
func wantError(t *testing.T, r resp, status int, code, param string, msgParts ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	e, ok := r.json["error"].(obj)
	if !ok {
		t.Fatalf("no error object in %s", r.raw)
	}
	msg, _ := e["message"].(string)
	if msg == "" {
		t.Errorf("error without a message: %s", r.raw)
	}
	if got, _ := e["code"].(string); got != code {
		t.Errorf("code %q, want %q (%s)", got, code, r.raw)
	}
	if param != "" {
		if got, _ := e["param"].(string); got != param {
			t.Errorf("param %q, want %q (%s)", got, param, r.raw)
		}
	}
	for _, p := range msgParts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not mention %q", msg, p)
		}
	}
}

// auditRows lists the audit log with the given query string.
func (e *env) auditRows(query string) []obj {
	e.t.Helper()
	rows, _ := e.list("/api/v1/audit-logs?limit=1000&" + query)
	return rows
}

// auditFor lists the audit rows of action on resourceID, newest first.
func (e *env) auditFor(action, resourceID string) []obj {
	e.t.Helper()
	var found []obj
	for _, a := range e.auditRows("action=" + action) {
		if a["resource_id"] == resourceID {
			found = append(found, a)
		}
	}
	return found
}

// wantAudit checks that one audit row records action on resourceID by the
// master key.
func (e *env) wantAudit(action, resourceType, resourceID string) obj {
	e.t.Helper()
	found := e.auditFor(action, resourceID)
	if len(found) != 1 {
		e.t.Fatalf("%d audit rows for %s on %s, want 1", len(found), action, resourceID)
	}
	a := found[0]
	if a["actor"] != "master-key" || a["resource_type"] != resourceType {
		e.t.Errorf("audit row %v: want actor master-key, resource_type %s", a, resourceType)
	}
	return a
}

// newTeam creates a team and returns its id.
func (e *env) newTeam(name string, models ...string) string {
	e.t.Helper()
	body := obj{"name": name}
	if len(models) > 0 {
		body["models"] = models
	}
	id, _ := e.create("/api/v1/teams", body)
	return id
}

// newProvider creates a mock provider and returns its id.
func (e *env) newProvider(name string) string {
	e.t.Helper()
	id, _ := e.create("/api/v1/providers", obj{"name": name, "type": "mock", "api_base": "http://127.0.0.1:9090/v1"})
	return id
}
