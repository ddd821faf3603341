package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sync"
	"testing"

	"tollgate/store"
)

// records decodes the meter records of Amberflo ingest requests, keeping
// the field names as sent.
func records(t *testing.T, reqs []request) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range reqs {
		if r.Method != http.MethodPost || r.Path != "/ingest" {
			t.Fatalf("request %s %s, want POST /ingest", r.Method, r.Path)
		}
		var batch []map[string]any
		if err := json.Unmarshal(r.Body, &batch); err != nil {
			t.Fatalf("ingest body is not a JSON array: %v: %s", err, r.Body)
		}
		out = append(out, batch...)
	}
	return out
}

func TestAmberfloUsageRecords(t *testing.T) {
	f := newFake(t, nil)
	snd := mustNew(t, sink("amberflo", f.URL, `{}`), "af-key")
	noCustomer := usage("req_2")
	noCustomer.CustomerID, noCustomer.UserEmail = "", ""
	if err := snd.Send(context.Background(), []store.MeterEvent{usage("req_1"), noCustomer}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	if got := reqs[0].Header.Get("X-API-KEY"); got != "af-key" {
		t.Errorf("X-API-KEY = %q", got)
	}
	if got := reqs[0].Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	recs := records(t, reqs)
	if len(recs) != 10 {
		t.Fatalf("%d records, want 5 per event", len(recs))
	}
	dims := map[string]any{
		"business_unit_id": "bu-payments", "team": "Payments", "key_name": "payments-prod", "user": "ada@example.com",
		"model": "gpt-4o", "provider": "openai", "region": "global", "usecase": "chat", "gateway": "tollgate",
	}
	with := func(extra ...string) map[string]any {
		d := map[string]any{}
		for k, v := range dims {
			d[k] = v
		}
		for i := 0; i < len(extra); i += 2 {
			d[extra[i]] = extra[i+1]
		}
		return d
	}
	want := []struct {
		meter string
		value float64
		dims  map[string]any
	}{
		{"llm_api_call", 1, with("error_code", "n")},
		{"llm_api_call_ms", 2071, with("error_code", "n")},
		{"llm_text_tokens", 120, with("type", "in", "cache", "n")},
		{"llm_text_tokens", 45, with("type", "out", "cache", "n")},
		{"llm_cost_usd", 0.0125, with()},
	}
	for i, w := range want {
		r := recs[i]
		if r["meterApiName"] != w.meter || r["meterValue"] != w.value {
			t.Errorf("record %d = %v %v, want %s %v", i, r["meterApiName"], r["meterValue"], w.meter, w.value)
		}
		if r["uniqueId"] != "req_1" || r["meterTimeInMillis"] != float64(start.UnixMilli()) || r["customerId"] != "cus_123" {
			t.Errorf("record %d: uniqueId %v, meterTimeInMillis %v, customerId %v", i, r["uniqueId"], r["meterTimeInMillis"], r["customerId"])
		}
		if !reflect.DeepEqual(r["dimensions"], w.dims) {
			t.Errorf("record %d (%s) dimensions = %v, want %v", i, w.meter, r["dimensions"], w.dims)
		}
		if len(r) != 6 {
			t.Errorf("record %d has fields %v, want uniqueId, meterApiName, meterValue, meterTimeInMillis, customerId, dimensions", i, r)
		}
	}
	for i, r := range recs[5:] {
		if _, ok := r["customerId"]; ok {
			t.Errorf("record %d of an event without customer has customerId %v", i+5, r["customerId"])
		}
		if u := r["dimensions"].(map[string]any)["user"]; u != "unknown" {
			t.Errorf("record %d: user = %v, want unknown", i+5, u)
		}
	}
}

func TestAmberfloConfig(t *testing.T) {
	f := newFake(t, nil)
	snd := mustNew(t, sink("amberflo", f.URL, `{"cost_meter": "ai_spend", "region": "eu-west-1"}`), "k")
	if err := snd.Send(context.Background(), []store.MeterEvent{usage("req_1")}); err != nil {
		t.Fatal(err)
	}
	recs := records(t, f.requests())
	if recs[4]["meterApiName"] != "ai_spend" {
		t.Errorf("cost meter = %v, want ai_spend", recs[4]["meterApiName"])
	}
	for _, r := range recs {
		if reg := r["dimensions"].(map[string]any)["region"]; reg != "eu-west-1" {
			t.Errorf("%v region = %v", r["meterApiName"], reg)
		}
	}
}

func TestAmberfloErrorDetails(t *testing.T) {
	for _, tc := range []struct {
		status int
		class  string
	}{
		{429, "RateLimitError"},
		{400, "InvalidRequestError"},
		{404, "InvalidRequestError"},
		{499, "ClientClosed"},
		{500, "InternalServerError"},
		{502, "APIConnectionError"},
		{503, "InternalServerError"},
		{504, "TimeoutError"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			f := newFake(t, nil)
			e := usage("req_err")
			e.StatusCode = tc.status
			if err := mustNew(t, sink("amberflo", f.URL, ``), "k").Send(context.Background(), []store.MeterEvent{e}); err != nil {
				t.Fatal(err)
			}
			recs := records(t, f.requests())
			if len(recs) != 6 {
				t.Fatalf("%d records, want 6", len(recs))
			}
			code := fmt.Sprint(tc.status)
			for _, i := range []int{0, 1} {
				if got := recs[i]["dimensions"].(map[string]any)["error_code"]; got != code {
					t.Errorf("%v error_code = %v, want %s", recs[i]["meterApiName"], got, code)
				}
			}
			last := recs[5]
			d := last["dimensions"].(map[string]any)
			if last["meterApiName"] != "llm_error_details" || last["meterValue"] != 1.0 || d["code"] != code || d["class"] != tc.class ||
				last["uniqueId"] != "req_err" || d["business_unit_id"] != "bu-payments" {
				t.Errorf("error record = %v", last)
			}
		})
	}
}

func TestAmberfloBatchesOfAtMost100Records(t *testing.T) {
	f := newFake(t, nil)
	snd := mustNew(t, sink("amberflo", f.URL, ``), "k")
	for _, n := range []int{snd.MaxEvents(), 3*snd.MaxEvents() + 1} {
		f.mu.Lock()
		f.got = nil
		f.mu.Unlock()
		var events []store.MeterEvent
		for i := range n {
			e := usage(fmt.Sprintf("req_%d", i))
			e.StatusCode = 500 // the most records an event makes
			events = append(events, e)
		}
		if err := snd.Send(context.Background(), events); err != nil {
			t.Fatal(err)
		}
		reqs := f.requests()
		total := 0
		for _, r := range reqs {
			recs := records(t, []request{r})
			if len(recs) > 100 {
				t.Errorf("%d events: a request carried %d records", n, len(recs))
			}
			total += len(recs)
		}
		if total != 6*n {
			t.Errorf("%d events: %d records sent, want %d", n, total, 6*n)
		}
		if n == snd.MaxEvents() && len(reqs) != 1 {
			t.Errorf("MaxEvents events took %d requests, want 1", len(reqs))
		}
	}
}

// amberfloCustomers is a fake of Amberflo's customer API.
type amberfloCustomers struct {
	mu        sync.Mutex
	customers map[string]map[string]any
	lieOnce   bool // the first lookup misses an existing customer, as in a race
}

func (a *amberfloCustomers) handle(w http.ResponseWriter, r *request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Header.Get("X-API-KEY") != "af-key" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.Path == "/ingest":
		w.Write([]byte(`{}`))
	case r.Method == http.MethodGet && r.Path == "/customers/":
		q, _ := url.ParseQuery(r.Query)
		c, ok := a.customers[q.Get("customerId")]
		if !ok || a.lieOnce {
			a.lieOnce = false
			w.Write([]byte(`{}`))
			return
		}
		json.NewEncoder(w).Encode(c)
	case r.Method == http.MethodPost && r.Path == "/customers":
		var c map[string]any
		json.Unmarshal(r.Body, &c)
		if _, ok := a.customers[c["customerId"].(string)]; ok {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"message":"Customer already exists"}`))
			return
		}
		a.customers[c["customerId"].(string)] = c
		json.NewEncoder(w).Encode(c)
	case r.Method == http.MethodPut && r.Path == "/customers":
		var c map[string]any
		json.Unmarshal(r.Body, &c)
		if _, ok := a.customers[c["customerId"].(string)]; !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		a.customers[c["customerId"].(string)] = c
		json.NewEncoder(w).Encode(c)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// customer is a copy of a stored customer.
func (a *amberfloCustomers) customer(id string) map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := json.Marshal(a.customers[id])
	var c map[string]any
	json.Unmarshal(b, &c)
	return c
}

func TestAmberfloAnnouncementCreatesThenUpdatesCustomer(t *testing.T) {
	cs := &amberfloCustomers{customers: map[string]map[string]any{}}
	f := newFake(t, cs.handle)
	snd := mustNew(t, sink("amberflo", f.URL, ``), "af-key")
	if err := snd.Send(context.Background(), []store.MeterEvent{announcement()}); err != nil {
		t.Fatalf("first announcement: %v", err)
	}
	want := map[string]any{"customerId": "bu-payments", "customerName": "Payments",
		"traits": map[string]any{"business_unit_id": "bu-payments", "team": "Payments", "gateway": "tollgate"}}
	if got := cs.customer("bu-payments"); !reflect.DeepEqual(got, want) {
		t.Fatalf("created customer = %v, want %v", got, want)
	}
	// Someone adds a trait in Amberflo; then the team is renamed.
	cs.mu.Lock()
	cs.customers["bu-payments"]["traits"].(map[string]any)["stripeId"] = "cus_9"
	cs.customers["bu-payments"]["customerEmail"] = "billing@example.com"
	cs.mu.Unlock()
	renamed := announcement()
	renamed.TeamName = "Payments EU"
	if err := snd.Send(context.Background(), []store.MeterEvent{renamed}); err != nil {
		t.Fatalf("second announcement: %v", err)
	}
	var methods []string
	for _, r := range f.requests() {
		methods = append(methods, r.Method+" "+r.Path)
	}
	if want := []string{"GET /customers/", "POST /customers", "GET /customers/", "PUT /customers"}; !reflect.DeepEqual(methods, want) {
		t.Errorf("requests = %v, want %v", methods, want)
	}
	want = map[string]any{"customerId": "bu-payments", "customerName": "Payments EU", "customerEmail": "billing@example.com",
		"traits": map[string]any{"business_unit_id": "bu-payments", "team": "Payments EU", "gateway": "tollgate", "stripeId": "cus_9"}}
	if got := cs.customer("bu-payments"); !reflect.DeepEqual(got, want) {
		t.Errorf("updated customer = %v, want %v", got, want)
	}
}

func TestAmberfloAnnouncementUsesBillingCustomerID(t *testing.T) {
	cs := &amberfloCustomers{customers: map[string]map[string]any{}}
	f := newFake(t, cs.handle)
	a := announcement()
	a.CustomerID = "acme-42"
	if err := mustNew(t, sink("amberflo", f.URL, ``), "af-key").Send(context.Background(), []store.MeterEvent{a, usage("req_1")}); err != nil {
		t.Fatal(err)
	}
	if got := cs.customer("acme-42"); got["customerName"] != "Payments" {
		t.Errorf("customer acme-42 = %v, want the announced team", got)
	}
	reqs := f.requests()
	if last := reqs[len(reqs)-1]; last.Path != "/ingest" {
		t.Errorf("usage went before the customer: %v", reqs)
	}
}

func TestAmberfloAnnouncementCreatedMeanwhile(t *testing.T) {
	cs := &amberfloCustomers{customers: map[string]map[string]any{
		"bu-payments": {"customerId": "bu-payments", "customerName": "Old", "traits": map[string]any{}}}, lieOnce: true}
	f := newFake(t, cs.handle)
	if err := mustNew(t, sink("amberflo", f.URL, ``), "af-key").Send(context.Background(), []store.MeterEvent{announcement()}); err != nil {
		t.Fatal(err)
	}
	if got := cs.customer("bu-payments")["customerName"]; got != "Payments" {
		t.Errorf("customerName = %v, want the customer replaced after the refused create", got)
	}
}
