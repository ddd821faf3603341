package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// signInAs signs a browser in with a bearer key ("Bearer sk-…").
func (b *browser) signInAs(bearer string) {
	b.e.t.Helper()
	resp, _ := b.send("POST", "/signin", url.Values{"master_key": {strings.TrimPrefix(bearer, "Bearer ")}}, false)
	if resp.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("sign in: %d", resp.StatusCode)
	}
}

// wantPage checks a full page: 200, the CSP holds, no inline script or style.
func wantPage(t *testing.T, resp *http.Response, body, path string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "<main") {
		t.Fatalf("%s: %d", path, resp.StatusCode)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") {
		t.Errorf("%s: inline script or style", path)
	}
}

func TestDashboardBillingSinks(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()

	resp, body := b.send("GET", "/billing", nil, false)
	wantPage(t, resp, body, "/billing")
	for _, want := range []string{"No billing sinks yet", "TOLLGATE_AMBERFLO_API_KEY", `href="/billing" aria-current="page"`, `href="/chargeback"`,
		`data-sink-type`, `data-url-placeholder="https://app.amberflo.io (default)"`, `data-sink-fields="stripe" hidden`} {
		if !strings.Contains(body, want) {
			t.Errorf("billing page lacks %q", want)
		}
	}

	// Bad input comes back next to its field; nothing is written.
	_, body = b.send("POST", "/billing/sinks", url.Values{"name": {"hook"}, "type": {"webhook"}, "url": {"ftp://nope"}, "enabled": {"1"}}, true)
	if !strings.Contains(body, "url must be an http(s) URL") || !strings.Contains(body, `aria-invalid="true"`) {
		t.Errorf("bad url: %s", body)
	}
	_, body = b.send("POST", "/billing/sinks", url.Values{"name": {"stripe"}, "type": {"stripe"}, "value": {"bytes"}}, true)
	if !strings.Contains(body, "value must be one of tokens") {
		t.Errorf("bad stripe value: %s", body)
	}
	if e.count("billing_sinks") != 0 {
		t.Fatal("a refused form wrote a sink")
	}

	// A Stripe sink: its settings go to the config, its key is sealed.
	resp, body = b.send("POST", "/billing/sinks", url.Values{"name": {"stripe"}, "type": {"stripe"}, "secret": {"sk_test_abcdef123456"},
		"event_name": {"tokens_used"}, "value": {"cost_cents"}, "cost_meter": {"ignored"}, "enabled": {"1"}}, true)
	if !strings.Contains(resp.Header.Get("HX-Trigger"), "Billing sink stripe added") || !strings.Contains(body, `id="sinks-list" hx-swap-oob="true"`) {
		t.Fatalf("created: %v %s", resp.Header, body)
	}
	if strings.Contains(body, "sk_test_abcdef123456") || !strings.Contains(body, "3456") {
		t.Error("the list shows the secret, or not its hint")
	}
	var id, cfg string
	var enabled bool
	if err := e.st.DB().QueryRow(`SELECT id, config::text, enabled FROM billing_sinks WHERE name = 'stripe'`).Scan(&id, &cfg, &enabled); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg, `"event_name": "tokens_used"`) || !strings.Contains(cfg, `"value": "cost_cents"`) || strings.Contains(cfg, "cost_meter") || !enabled {
		t.Errorf("stored config %s, enabled %v", cfg, enabled)
	}

	// The edit dialog shows the hint, never the secret; empty keeps it.
	resp, body = b.send("GET", "/billing/sinks/"+id+"/edit", nil, true)
	if resp.StatusCode != 200 || !strings.Contains(body, "leave empty to keep") || strings.Contains(body, "sk_test_abcdef123456") ||
		!strings.Contains(body, `value="tokens_used"`) || !strings.Contains(body, `<option value="cost_cents" selected`) {
		t.Fatalf("edit dialog: %d %s", resp.StatusCode, body)
	}
	_, body = b.send("POST", "/billing/sinks/"+id, url.Values{"name": {""}, "type": {"stripe"}}, true)
	if !strings.Contains(body, "name is required") || !strings.Contains(body, "<dialog") || !strings.Contains(body, "leave empty to keep") {
		t.Errorf("edit error: %s", body)
	}
	_, body = b.send("POST", "/billing/sinks/"+id, url.Values{"name": {"stripe-live"}, "type": {"stripe"}, "secret": {""}, "event_name": {"tokens_used"}}, true)
	if !strings.Contains(body, "stripe-live") || strings.Contains(body, "<dialog") || !strings.Contains(body, "disabled") {
		t.Errorf("saved: %s", body)
	}
	k, err := e.st.GetSink(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := e.st.SinkSecret(k)
	if k.Name != "stripe-live" || k.Enabled || secret != "sk_test_abcdef123456" || strings.Contains(string(k.Config), "cost_cents") {
		t.Errorf("after edit: %s enabled %v secret kept %v config %s", k.Name, k.Enabled, secret == "sk_test_abcdef123456", k.Config)
	}
	b.send("POST", "/billing/sinks/"+id, url.Values{"name": {"stripe-live"}, "type": {"stripe"}, "clear_secret": {"1"}}, true)
	if k, _ := e.st.GetSink(context.Background(), id); k.HasSecret {
		t.Error("remove the stored secret did not")
	}

	resp, _ = b.send("DELETE", "/billing/sinks/"+id, nil, true)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("HX-Trigger"), "Billing sink deleted") || e.count("billing_sinks") != 0 {
		t.Errorf("delete: %d %v", resp.StatusCode, resp.Header)
	}
	if e.auditFor("sink.delete", id) == nil {
		t.Error("dashboard delete not audited")
	}
}

func TestDashboardBillingStatusAndActions(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer receiver.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer refusing.Close()
	okID, _ := e.create("/api/v1/billing/sinks", obj{"name": "receiver", "type": "webhook", "url": receiver.URL + "/usage"})
	badID, _ := e.create("/api/v1/billing/sinks", obj{"name": "refusing", "type": "webhook", "url": refusing.URL + "/usage", "secret": "whsec-987654"})
	team := e.newTeam("growth")
	ids := billedLogs(t, e.st, "req-web", team, 4, time.Now())
	e.st.DB().MustExec(`UPDATE meter_deliveries SET status = 'failed', last_error = 'the webhook receiver answered HTTP 500'
		WHERE sink_id = $1 AND event_id IN ($2, $3)`, okID, ids[0], ids[1])
	e.st.DB().MustExec(`UPDATE meter_deliveries SET created_at = now() - interval '3 minutes' WHERE sink_id = $1 AND status = 'pending'`, okID)

	resp, body := b.send("GET", "/billing", nil, false)
	wantPage(t, resp, body, "/billing")
	card := body[strings.Index(body, `id="sink-`+okID+`"`):strings.Index(body, `id="sink-`+badID+`"`)]
	for _, want := range []string{"<dt>Pending</dt><dd>3</dd>", ">2</dd>", "3 min", "the webhook receiver answered HTTP 500", "Replay failed (2)", "never"} {
		if !strings.Contains(card, want) {
			t.Errorf("status card lacks %q:\n%s", want, card)
		}
	}

	// The test button answers inline, in words, and in a toast.
	resp, body = b.send("POST", "/billing/sinks/"+okID+"/test", url.Values{}, true)
	if resp.StatusCode != 200 || !strings.Contains(body, "Test event accepted by receiver") || !strings.Contains(resp.Header.Get("HX-Trigger"), `"level":"ok"`) {
		t.Errorf("test ok: %d %s", resp.StatusCode, body)
	}
	resp, body = b.send("POST", "/billing/sinks/"+badID+"/test", url.Values{}, true)
	if resp.StatusCode != 200 || !strings.Contains(body, "Test event to refusing failed") || !strings.Contains(body, `role="alert"`) ||
		!strings.Contains(body, "401") || !strings.Contains(resp.Header.Get("HX-Trigger"), `"level":"error"`) || strings.Contains(body, "whsec-987654") {
		t.Errorf("test refused: %d %s", resp.StatusCode, body)
	}

	resp, body = b.send("POST", "/billing/sinks/"+okID+"/replay", url.Values{}, true)
	if !strings.Contains(resp.Header.Get("HX-Trigger"), "Replaying 2 failed events to receiver") || !strings.Contains(body, `id="sink-`+okID+`"`) ||
		!strings.Contains(body, "<dt>Pending</dt><dd>5</dd>") || !strings.Contains(body, "Replay failed (0)") {
		t.Errorf("replay: %v %s", resp.Header, body)
	}
}

func TestDashboardBillingRoles(t *testing.T) {
	e := newEnv(t)
	fin, mem := e.roleKeys()
	id, _ := e.create("/api/v1/billing/sinks", obj{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/usage", "secret": sinkSecret})

	b := e.browser()
	b.signInAs(fin)
	resp, body := b.send("GET", "/billing", nil, false)
	wantPage(t, resp, body, "/billing")
	if !strings.Contains(body, "hook") || strings.Contains(body, "Add a billing sink") || strings.Contains(body, "hx-post") ||
		strings.Contains(body, "hx-delete") || strings.Contains(body, sinkSecret) {
		t.Error("finance sees write controls or the secret on the billing page")
	}
	for _, c := range []struct{ method, path string }{{"POST", "/billing/sinks"}, {"POST", "/billing/sinks/" + id}, {"DELETE", "/billing/sinks/" + id},
		{"POST", "/billing/sinks/" + id + "/test"}, {"POST", "/billing/sinks/" + id + "/replay"}, {"GET", "/billing/sinks/" + id + "/edit"}} {
		if resp, _ := b.send(c.method, c.path, url.Values{"name": {"x"}, "type": {"webhook"}}, true); resp.StatusCode != http.StatusForbidden {
			t.Errorf("finance %s %s: %d", c.method, c.path, resp.StatusCode)
		}
	}
	if k, _ := e.st.GetSink(context.Background(), id); k == nil || k.Name != "hook" {
		t.Error("a finance request changed the sink")
	}

	b = e.browser()
	b.signInAs(mem)
	for _, path := range []string{"/billing", "/chargeback", "/chargeback.csv"} {
		if resp, _ := b.send("GET", path, nil, false); resp.StatusCode != http.StatusForbidden {
			t.Errorf("member GET %s: %d", path, resp.StatusCode)
		}
	}
	if _, body := b.send("GET", "/keys", nil, false); strings.Contains(body, `href="/billing"`) || strings.Contains(body, `href="/chargeback"`) {
		t.Error("member nav links to billing or chargeback")
	}
}
