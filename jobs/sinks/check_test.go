package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testErr runs Test and returns its *Error.
func testErr(t *testing.T, typ, base string, client *http.Client) *Error {
	t.Helper()
	err := Test(context.Background(), sink(typ, base, ``), "secret-key-123", client)
	if err == nil {
		t.Fatal("Test succeeded, want a failure")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Test error %T %v, want *Error", err, err)
	}
	if strings.Contains(e.Message, "secret-key-123") {
		t.Errorf("message shows the secret: %s", e.Message)
	}
	return e
}

func wantIn(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q lacks %q", msg, p)
		}
	}
}

func TestTestSendsSyntheticEvent(t *testing.T) {
	for _, typ := range []string{"amberflo", "openmeter", "webhook"} {
		t.Run(typ, func(t *testing.T) {
			f := newFake(t, nil)
			if err := Test(context.Background(), sink(typ, f.URL, ``), "k", nil); err != nil {
				t.Fatalf("Test: %v", err)
			}
			reqs := f.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			body := string(reqs[0].Body)
			wantIn(t, body, `"tollgate-test-`, `"tollgate-test"`)
		})
	}
}

func TestTestExplainsAnswers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		typ    string
		answer func(w http.ResponseWriter)
		status int
		want   []string
	}{
		{"not found", "amberflo", func(w http.ResponseWriter) { http.NotFound(w, nil) }, 404,
			[]string{"404", "the URL is wrong", "https://app.amberflo.io"}},
		{"web page", "openmeter", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte("<!DOCTYPE html><html><head><title>Welcome</title></head></html>"))
		}, 200, []string{"web page", "the URL is wrong", "https://openmeter.cloud"}},
		{"key refused", "amberflo", func(w http.ResponseWriter) { w.WriteHeader(http.StatusUnauthorized) }, 401,
			[]string{"refused the key", "401", "Amberflo account settings"}},
		{"forbidden", "openmeter", func(w http.ResponseWriter) { w.WriteHeader(http.StatusForbidden) }, 403,
			[]string{"refused the key", "API token"}},
		{"stripe key refused", "stripe", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"message":"Invalid API Key provided: secret-key-123","type":"invalid_request_error"}}`))
		}, 401, []string{"refused the key", "Developers → API keys"}},
		{"other", "webhook", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusUnprocessableEntity)
			w.Write([]byte(`{"error": "unknown field secret-key-123"}`))
		}, 422, []string{"HTTP 422", "unknown field [secret]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *request) { tc.answer(w) })
			e := testErr(t, tc.typ, f.URL, nil)
			if e.Status != tc.status {
				t.Errorf("Status = %d, want %d", e.Status, tc.status)
			}
			wantIn(t, e.Message, tc.want...)
		})
	}
}

func TestTestUnreachableHost(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := testErr(t, "amberflo", "http://"+addr, nil)
	wantIn(t, e.Message, "cannot be reached", addr, "refused")
	if e.Status != 0 {
		t.Errorf("Status = %d, want 0", e.Status)
	}
}

func TestTestNoAnswerInTime(t *testing.T) {
	// Accepts connections and never answers, as when a firewall drops
	// what is sent.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	e := testErr(t, "openmeter", "http://"+l.Addr().String(), &http.Client{Timeout: 200 * time.Millisecond})
	wantIn(t, e.Message, "did not answer in time", "outbound HTTPS", "seems blocked", "HTTPS_PROXY")
}

func TestTestUntrustedCertificate(t *testing.T) {
	// A self-signed certificate, as an intercepting proxy presents.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	e := testErr(t, "amberflo", srv.URL, nil)
	wantIn(t, e.Message, "not trusted", "unknown authority", "intercepted", "CA certificate")
}

// stripeMeters answers Stripe's meter list in pages of two.
func stripeMeters(names ...string) func(w http.ResponseWriter, r *request) {
	return func(w http.ResponseWriter, r *request) {
		if r.Method != http.MethodGet || r.Path != "/v1/billing/meters" || r.Header.Get("Authorization") != "Bearer secret-key-123" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		from := 0
		if after := r.Query; strings.Contains(after, "starting_after=mtr_") {
			i := strings.Index(after, "starting_after=mtr_") + len("starting_after=mtr_")
			from = int(after[i]-'0') + 1
		}
		type meter struct {
			ID        string `json:"id"`
			EventName string `json:"event_name"`
		}
		page := struct {
			Object  string  `json:"object"`
			Data    []meter `json:"data"`
			HasMore bool    `json:"has_more"`
		}{Object: "list", Data: []meter{}}
		for i := from; i < len(names) && i < from+2; i++ {
			page.Data = append(page.Data, meter{ID: "mtr_" + string(rune('0'+i)), EventName: names[i]})
		}
		page.HasMore = from+2 < len(names)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(page)
	}
}

func TestTestStripeChecksMeter(t *testing.T) {
	f := newFake(t, stripeMeters("api_calls", "storage", "llm_usage"))
	if err := Test(context.Background(), sink("stripe", f.URL, ``), "secret-key-123", nil); err != nil {
		t.Errorf("Test: %v", err)
	}
	for _, r := range f.requests() {
		if r.Method != http.MethodGet {
			t.Errorf("Test sent %s %s: a Stripe test must not create meter events", r.Method, r.Path)
		}
	}
	f = newFake(t, stripeMeters("api_calls"))
	e := testErr(t, "stripe", f.URL, nil)
	wantIn(t, e.Message, "no active meter", `"llm_usage"`, "event_name")
}

func TestTestRedirectNotFollowed(t *testing.T) {
	dest := newFake(t, nil)
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		http.Redirect(w, &http.Request{Method: r.Method}, dest.URL+"/ingest?x=1", http.StatusFound)
	})
	e := testErr(t, "amberflo", f.URL, nil)
	wantIn(t, e.Message, "redirects (HTTP 302) to "+dest.URL+":", "the URL is wrong")
	if strings.Contains(e.Message, "x=1") || len(dest.requests()) != 0 {
		t.Errorf("redirect followed or shown in full: %s", e.Message)
	}
}

func TestTestPlainHTTPHost(t *testing.T) {
	f := newFake(t, nil)
	e := testErr(t, "webhook", "https://"+f.Listener.Addr().String(), nil)
	wantIn(t, e.Message, "plain HTTP", "http://")
}
