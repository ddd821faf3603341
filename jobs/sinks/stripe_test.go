package sinks

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"tollgate/store"
)

// stripeForm parses a meter event request the way Stripe reads it.
func stripeForm(t *testing.T, r request) url.Values {
	t.Helper()
	if r.Method != http.MethodPost || r.Path != "/v1/billing/meter_events" {
		t.Fatalf("request %s %s, want POST /v1/billing/meter_events", r.Method, r.Path)
	}
	form, err := url.ParseQuery(string(r.Body))
	if err != nil {
		t.Fatalf("body is not form-encoded: %v", err)
	}
	return form
}

// newStripeSender is a Stripe sender whose clock reads start + 1h.
func newStripeSender(t *testing.T, base, config string) *stripe {
	t.Helper()
	s := mustNew(t, sink("stripe", base, config), "sk_test_123").(*stripe)
	s.now = func() time.Time { return start.Add(time.Hour) }
	return s
}

func TestStripeMeterEventForm(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"object":"billing.meter_event"}`))
	})
	if err := newStripeSender(t, f.URL, `{}`).Send(context.Background(), []store.MeterEvent{usage("req_1")}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer sk_test_123" {
		t.Errorf("Authorization = %q", got)
	}
	if got := reqs[0].Header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", got)
	}
	want := url.Values{
		"event_name":                  {"llm_usage"},
		"identifier":                  {"req_1"},
		"timestamp":                   {fmt.Sprint(start.Unix())},
		"payload[stripe_customer_id]": {"cus_123"},
		"payload[value]":              {"165"},
	}
	if got := stripeForm(t, reqs[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("form = %v, want %v", got, want)
	}
}

func TestStripeValueOptions(t *testing.T) {
	for _, tc := range []struct {
		value string
		cost  float64
		want  string
	}{
		{"tokens", 0.0125, "165"},
		{"input_tokens", 0.0125, "120"},
		{"output_tokens", 0.0125, "45"},
		{"requests", 0.0125, "1"},
		{"cost_cents", 0.0125, "1"},
		{"cost_cents", 0.016, "2"},
		{"cost_cents", 12.344, "1234"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			f := newFake(t, nil)
			e := usage("req_1")
			e.Cost = tc.cost
			cfg := fmt.Sprintf(`{"value": %q, "event_name": "ai_tokens"}`, tc.value)
			if err := newStripeSender(t, f.URL, cfg).Send(context.Background(), []store.MeterEvent{e}); err != nil {
				t.Fatal(err)
			}
			form := stripeForm(t, f.requests()[0])
			if got := form.Get("payload[value]"); got != tc.want {
				t.Errorf("payload[value] = %s, want %s", got, tc.want)
			}
			if form.Get("event_name") != "ai_tokens" || form.Get("identifier") != "req_1" {
				t.Errorf("event_name %s, identifier %s", form.Get("event_name"), form.Get("identifier"))
			}
		})
	}
	if _, err := New(sink("stripe", "https://api.stripe.com", `{"value": "euros"}`), "k", nil); err == nil {
		t.Error("New took value \"euros\"")
	}
}

func TestStripeSkipsWhatItCannotTake(t *testing.T) {
	f := newFake(t, nil)
	s := newStripeSender(t, f.URL, ``)
	noCustomer := usage("req_nocust")
	noCustomer.CustomerID = ""
	tooOld := usage("req_old")
	tooOld.CreatedAt = s.now().Add(-36 * 24 * time.Hour)
	lastDay := usage("req_lastday")
	lastDay.CreatedAt = s.now().Add(-34 * 24 * time.Hour)
	if err := s.Send(context.Background(), []store.MeterEvent{noCustomer, announcement(), tooOld, lastDay}); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	if len(reqs) != 1 || stripeForm(t, reqs[0]).Get("identifier") != "req_lastday" {
		t.Errorf("requests = %d, want only the event within 35 days", len(reqs))
	}
	if got := Skipped(s); got != 3 {
		t.Errorf("Skipped = %d, want 3", got)
	}
}

func TestStripeDuplicateIdentifierIsDelivered(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		form, _ := url.ParseQuery(string(r.Body))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		if form.Get("identifier") == "req_dup" {
			fmt.Fprintf(w, `{"error":{"message":"An event already exists with identifier %s.","type":"invalid_request_error"}}`, form.Get("identifier"))
			return
		}
		w.Write([]byte(`{"error":{"message":"Invalid timestamp: must be within the past 35 days","param":"timestamp","type":"invalid_request_error"}}`))
	})
	s := newStripeSender(t, f.URL, ``)
	if err := s.Send(context.Background(), []store.MeterEvent{usage("req_dup")}); err != nil {
		t.Errorf("duplicate identifier: %v, want delivered", err)
	}
	err := s.Send(context.Background(), []store.MeterEvent{usage("req_other")})
	if e, ok := err.(*Error); !ok || e.Status != http.StatusBadRequest {
		t.Errorf("other 400: %v, want a 400 *Error", err)
	}
}

func TestStripeConcurrency(t *testing.T) {
	var (
		mu        sync.Mutex
		inFlight  int
		maxFlight int
		perCust   = map[string]int{}
		seen      = map[string]int{}
		overlap   bool
	)
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		form, _ := url.ParseQuery(string(r.Body))
		cust := form.Get("payload[stripe_customer_id]")
		mu.Lock()
		inFlight++
		maxFlight = max(maxFlight, inFlight)
		perCust[cust]++
		if perCust[cust] > 1 {
			overlap = true
		}
		seen[form.Get("identifier")]++
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		mu.Lock()
		inFlight--
		perCust[cust]--
		mu.Unlock()
		w.Write([]byte(`{}`))
	})
	s := newStripeSender(t, f.URL, ``)
	var events []store.MeterEvent
	var want []string
	for i := range s.MaxEvents() {
		e := usage(fmt.Sprintf("req_%02d", i))
		e.CustomerID = fmt.Sprintf("cus_%d", i%12)
		events = append(events, e)
		want = append(want, e.ID)
	}
	if err := s.Send(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var got []string
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s sent %d times", id, n)
		}
		got = append(got, id)
	}
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sent %d identifiers, want all %d", len(got), len(want))
	}
	if maxFlight > stripeConcurrency || maxFlight < 2 {
		t.Errorf("%d requests at once, want 2 to %d", maxFlight, stripeConcurrency)
	}
	if overlap {
		t.Error("two requests of one customer at once; Stripe allows one per customer and meter")
	}
}

func TestStripeConcurrentSendsKeepOneRequestPerCustomer(t *testing.T) {
	var (
		mu      sync.Mutex
		perCust = map[string]int{}
		overlap bool
		sent    int
	)
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		form, _ := url.ParseQuery(string(r.Body))
		cust := form.Get("payload[stripe_customer_id]")
		mu.Lock()
		perCust[cust]++
		overlap = overlap || perCust[cust] > 1
		sent++
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		perCust[cust]--
		mu.Unlock()
	})
	s := newStripeSender(t, f.URL, ``)
	var wg sync.WaitGroup
	for w := range 4 {
		var events []store.MeterEvent
		for i := range 10 {
			e := usage(fmt.Sprintf("req_%d_%d", w, i))
			e.CustomerID = fmt.Sprintf("cus_%d", i%2)
			events = append(events, e)
		}
		wg.Go(func() {
			if err := s.Send(context.Background(), events); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if overlap {
		t.Error("concurrent sends had two requests of one customer at once")
	}
	if sent != 40 {
		t.Errorf("%d events sent, want 40", sent)
	}
}

func TestStripeFailedBatchCountsNoSkips(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) { w.WriteHeader(http.StatusInternalServerError) })
	s := newStripeSender(t, f.URL, ``)
	noCustomer := usage("req_nocust")
	noCustomer.CustomerID = ""
	if err := s.Send(context.Background(), []store.MeterEvent{noCustomer, usage("req_1")}); err == nil {
		t.Fatal("Send of a batch Stripe refused succeeded")
	}
	if got := Skipped(s); got != 0 {
		t.Errorf("Skipped = %d after a failed send, want 0: the batch is sent again", got)
	}
}
