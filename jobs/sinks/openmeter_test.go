package sinks

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

func TestOpenMeterCloudEvents(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) { w.WriteHeader(http.StatusNoContent) })
	snd := mustNew(t, sink("openmeter", f.URL, `{}`), "om-token")
	if err := snd.Send(context.Background(), []store.MeterEvent{usage("req_1"), usage("req_2")}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/api/v1/events" {
		t.Fatalf("requests = %+v, want one POST /api/v1/events", reqs)
	}
	r := reqs[0]
	if got := r.Header.Get("Content-Type"); got != "application/cloudevents-batch+json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer om-token" {
		t.Errorf("Authorization = %q", got)
	}
	var events []map[string]any
	if err := json.Unmarshal(r.Body, &events); err != nil {
		t.Fatalf("body is not a JSON array: %v", err)
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	ev := events[0]
	tm, err := time.Parse(time.RFC3339, ev["time"].(string))
	if err != nil || !tm.Equal(start) {
		t.Errorf("time = %v (%v), want %v in RFC 3339", ev["time"], err, start)
	}
	delete(ev, "time")
	want := map[string]any{
		"specversion": "1.0", "id": "req_1", "source": "tollgate", "type": "llm.request", "subject": "bu-payments",
		"datacontenttype": "application/json",
		"data": map[string]any{
			"model": "gpt-4o", "provider": "openai", "team": "Payments", "key_name": "payments-prod", "user": "ada@example.com",
			"usecase": "chat", "input_tokens": 120.0, "output_tokens": 45.0, "total_tokens": 165.0, "cost_usd": 0.0125,
			"duration_ms": 2071.0, "status_code": 200.0,
		},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("event =\n%v\nwant\n%v", ev, want)
	}
	if events[1]["id"] != "req_2" {
		t.Errorf("second id = %v", events[1]["id"])
	}
}

func TestOpenMeterSelfHostedWithoutToken(t *testing.T) {
	f := newFake(t, nil)
	snd := mustNew(t, sink("openmeter", f.URL, `{"event_type": "ai.call"}`), "")
	if err := snd.Send(context.Background(), []store.MeterEvent{usage("req_1")}); err != nil {
		t.Fatal(err)
	}
	r := f.requests()[0]
	if _, ok := r.Header["Authorization"]; ok {
		t.Errorf("Authorization sent without a token: %q", r.Header.Get("Authorization"))
	}
	if !strings.Contains(string(r.Body), `"type":"ai.call"`) {
		t.Errorf("body %s lacks the configured event type", r.Body)
	}
}

func TestOpenMeterSubjectUpsert(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		if r.Path == "/api/v1/subjects" {
			w.Header().Set("Content-Type", "application/json")
			w.Write(r.Body)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	a := announcement()
	a.CustomerID = "acme-42"
	if err := mustNew(t, sink("openmeter", f.URL, ``), "om-token").Send(context.Background(), []store.MeterEvent{a}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || reqs[0].Path != "/api/v1/subjects" {
		t.Fatalf("requests = %+v, want one POST /api/v1/subjects", reqs)
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer om-token" {
		t.Errorf("Authorization = %q", got)
	}
	if got := reqs[0].Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	var subjects []map[string]any
	json.Unmarshal(reqs[0].Body, &subjects)
	want := []map[string]any{{"key": "bu-payments", "displayName": "Payments",
		"metadata": map[string]any{"team": "Payments", "gateway": "tollgate", "billing_customer_id": "acme-42"}}}
	if !reflect.DeepEqual(subjects, want) {
		t.Errorf("subjects = %v, want %v", subjects, want)
	}
}

func TestOpenMeterWithoutSubjectsAPI(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		if r.Path == "/api/v1/subjects" {
			http.NotFound(w, nil)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	snd := mustNew(t, sink("openmeter", f.URL, ``), "")
	// With events taken in the same send, the 404 is the missing API.
	if err := snd.Send(context.Background(), []store.MeterEvent{usage("req_1"), announcement()}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := Skipped(snd); got != 1 {
		t.Errorf("Skipped = %d, want 1", got)
	}
	// Alone, it may as well be a wrong URL.
	err := snd.Send(context.Background(), []store.MeterEvent{announcement()})
	if e, ok := err.(*Error); !ok || e.Status != http.StatusNotFound {
		t.Errorf("announcement alone: err = %v, want a 404 *Error", err)
	}
}
