package sinks

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"tollgate/store"
)

// request is one request a fake billing system received.
type request struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   []byte
}

// fake is a billing system on loopback that records what it is sent and
// answers with handle.
type fake struct {
	*httptest.Server
	mu     sync.Mutex
	got    []request
	handle func(w http.ResponseWriter, r *request)
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *request)) *fake {
	t.Helper()
	f := &fake{handle: handle}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body}
		f.mu.Lock()
		f.got = append(f.got, req)
		f.mu.Unlock()
		if f.handle == nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		f.handle(w, &req)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.got...)
}

func sink(typ, url, config string) store.Sink {
	return store.Sink{SinkSpec: store.SinkSpec{Name: typ + "-test", Type: typ, URL: url, Config: store.JSON(config), Enabled: true}}
}

func mustNew(t *testing.T, s store.Sink, secret string) Sender {
	t.Helper()
	snd, err := New(s, secret, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return snd
}

var start = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)

// usage is a billed chat request of team Payments.
func usage(id string) store.MeterEvent {
	return store.MeterEvent{
		ID: id, Kind: store.EventUsage, CreatedAt: start,
		TeamName: "Payments", BusinessUnit: "bu-payments", CustomerID: "cus_123",
		KeyAlias: "payments-prod", UserEmail: "ada@example.com", Model: "gpt-4o", Provider: "openai", Endpoint: "chat",
		InputTokens: 120, OutputTokens: 45, Cost: 0.0125, LatencyMS: 2071, StatusCode: 200,
	}
}

// announcement is the business unit of team Payments.
func announcement() store.MeterEvent {
	return store.MeterEvent{ID: "bu-1", Kind: store.EventBusinessUnit, CreatedAt: start,
		TeamName: "Payments", BusinessUnit: "bu-payments"}
}
