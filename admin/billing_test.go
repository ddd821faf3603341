package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/store"
)

const sinkSecret = "amberflo-secret-value-9876"

// roleKeys are bearer headers of a finance user and of a member.
func (e *env) roleKeys() (finance, member string) {
	e.t.Helper()
	fin, _ := e.create("/api/v1/users", obj{"email": "fin@corp.example", "role": "finance"})
	team := e.newTeam("members-team")
	mem, _ := e.create("/api/v1/users", obj{"email": "mem@corp.example", "role": "member", "teams": []string{team}})
	finKey := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": fin, "key_type": "management"}).json["key"].(string)
	memKey := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"user_id": mem, "team_id": team, "key_type": "default"}).json["key"].(string)
	return "Bearer " + finKey, "Bearer " + memKey
}

func TestBillingSinksAPI(t *testing.T) {
	e := newEnv(t)
	createdResp := e.must(http.StatusCreated, http.MethodPost, "/api/v1/billing/sinks", obj{"name": "amberflo-prod", "type": "amberflo",
		"secret": sinkSecret, "config": obj{"cost_meter": "llm_cost"}})
	created := createdResp.json
	id, _ := created["id"].(string)
	if created["has_secret"] != true || created["secret_hint"] == "" || created["enabled"] != true || created["url"] != "https://app.amberflo.io" {
		t.Errorf("created %v", created)
	}
	if _, ok := created["secret"]; ok {
		t.Error("the secret field is returned")
	}
	got := e.must(http.StatusOK, http.MethodGet, "/api/v1/billing/sinks/"+id, nil)
	rows, list := e.list("/api/v1/billing/sinks")
	if len(rows) != 1 || rows[0]["id"] != id || rows[0]["name"] != "amberflo-prod" {
		t.Errorf("list %v", rows)
	}

	// A change without a secret keeps it; "" removes it.
	changed := e.must(http.StatusOK, http.MethodPatch, "/api/v1/billing/sinks/"+id, obj{"name": "amberflo", "enabled": false}).json
	if changed["name"] != "amberflo" || changed["enabled"] != false || changed["has_secret"] != true {
		t.Errorf("patched %v", changed)
	}
	sink, err := e.st.GetSink(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if secret, _ := e.st.SinkSecret(sink); secret != sinkSecret || !strings.Contains(string(sink.Config), "llm_cost") {
		t.Errorf("stored secret kept %v, config %s", secret == sinkSecret, sink.Config)
	}
	cleared := e.must(http.StatusOK, http.MethodPatch, "/api/v1/billing/sinks/"+id, obj{"secret": ""}).json
	if cleared["has_secret"] != false || cleared["secret_hint"] != "" {
		t.Errorf("cleared %v", cleared)
	}

	for _, r := range []resp{createdResp, got, list} {
		if strings.Contains(r.raw, sinkSecret) {
			t.Errorf("a response holds the secret: %s", r.raw)
		}
	}
	e.wantAudit("sink.create", "sink", id)
	if len(e.auditFor("sink.update", id)) != 2 {
		t.Error("want two sink.update audit rows")
	}
	if strings.Contains(e.auditText(), sinkSecret) {
		t.Error("the audit log holds the secret")
	}

	wantError(t, e.do(http.MethodPost, "/api/v1/billing/sinks", obj{"name": "x", "type": "kafka"}), 400, "invalid_request", "type", "amberflo")
	wantError(t, e.do(http.MethodPost, "/api/v1/billing/sinks", obj{"name": "hook", "type": "webhook"}), 400, "invalid_request", "url")
	wantError(t, e.do(http.MethodPost, "/api/v1/billing/sinks", obj{"name": "amberflo", "type": "amberflo"}), 409, "conflict", "")
	wantError(t, e.do(http.MethodGet, "/api/v1/billing/sinks/00000000-0000-0000-0000-000000000000", nil), 404, "not_found", "")

	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/billing/sinks/"+id, nil)
	e.wantAudit("sink.delete", "sink", id)
	wantError(t, e.do(http.MethodPost, "/api/v1/billing/sinks/"+id+"/replay", nil), 404, "not_found", "")
	wantError(t, e.do(http.MethodPost, "/api/v1/billing/sinks/"+id+"/test", nil), 404, "not_found", "")
}

// billedLogs are n successful requests of team now, which the outbox
// queues for every enabled sink.
func billedLogs(t *testing.T, st *store.Store, prefix, teamID string, n int, at time.Time) []string {
	t.Helper()
	var logs []store.SpendLog
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s-%d", prefix, i)
		ids = append(ids, id)
		logs = append(logs, store.SpendLog{RequestID: id, CreatedAt: at, TeamID: &teamID, Model: "gpt-4o", Provider: "openai",
			InputTokens: 10, OutputTokens: 5, Cost: 0.01, Status: store.StatusSuccess, StatusCode: 200})
	}
	if _, err := st.InsertSpendLogs(context.Background(), logs); err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestBillingStatusAndReplay(t *testing.T) {
	e := newEnv(t)
	sinkID, _ := e.create("/api/v1/billing/sinks", obj{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/usage"})
	offID, _ := e.create("/api/v1/billing/sinks", obj{"name": "off", "type": "webhook", "url": "http://127.0.0.1:9/off", "enabled": false})
	team := e.newTeam("growth")
	ids := billedLogs(t, e.st, "req-status", team, 5, time.Now())

	// The outbox queued each request, and the team's business-unit
	// announcement, for the enabled sink only: 6 deliveries.
	db := e.st.DB()
	mustExec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(`UPDATE meter_deliveries SET status = 'delivered', delivered_at = now() - interval '2 minutes' WHERE event_id = $1`, ids[0])
	mustExec(`UPDATE meter_deliveries SET status = 'failed', attempts = 12, last_error = 'the webhook receiver answered HTTP 500'
		WHERE event_id IN ($1, $2)`, ids[1], ids[2])
	mustExec(`UPDATE meter_deliveries SET created_at = now() - interval '5 minutes' WHERE event_id = $1`, ids[3])

	rows, _ := e.list("/api/v1/billing/status")
	if len(rows) != 2 {
		t.Fatalf("status rows %v", rows)
	}
	hook, off := rows[0], rows[1]
	if hook["sink_id"] != sinkID || hook["name"] != "hook" || hook["type"] != "webhook" || hook["enabled"] != true {
		t.Errorf("hook status %v", hook)
	}
	if hook["delivered"] != 1.0 || hook["pending"] != 3.0 || hook["failed"] != 2.0 || hook["last_error"] != "the webhook receiver answered HTTP 500" {
		t.Errorf("hook counts %v", hook)
	}
	if age, _ := hook["oldest_pending_age_seconds"].(float64); age < 295 || age > 400 || hook["oldest_pending"] == nil {
		t.Errorf("oldest pending %v, age %v s; want about 5 minutes", hook["oldest_pending"], hook["oldest_pending_age_seconds"])
	}
	if hook["last_delivered"] == nil {
		t.Error("no last_delivered")
	}
	if off["sink_id"] != offID || off["pending"] != 0.0 || off["oldest_pending"] != nil || off["oldest_pending_age_seconds"] != nil || off["enabled"] != false {
		t.Errorf("disabled sink status %v", off)
	}

	r := e.must(http.StatusOK, http.MethodPost, "/api/v1/billing/sinks/"+sinkID+"/replay", nil)
	if r.json["replayed"] != 2.0 {
		t.Errorf("replay %s", r.raw)
	}
	a := e.wantAudit("sink.replay", "sink", sinkID)
	if !strings.Contains(fmt.Sprint(a["after"]), "2") {
		t.Errorf("replay audit %v", a)
	}
	rows, _ = e.list("/api/v1/billing/status")
	if rows[0]["pending"] != 5.0 || rows[0]["failed"] != 0.0 {
		t.Errorf("after replay %v", rows[0])
	}
	if r := e.must(http.StatusOK, http.MethodPost, "/api/v1/billing/sinks/"+sinkID+"/replay", nil); r.json["replayed"] != 0.0 {
		t.Errorf("second replay %s", r.raw)
	}
}

func TestBillingTestEvent(t *testing.T) {
	e := newEnv(t)
	var got atomic.Int32
	var sawSignature atomic.Bool
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got.Add(1)
		sawSignature.Store(strings.HasPrefix(r.Header.Get("X-Tollgate-Signature"), "sha256="))
		w.WriteHeader(http.StatusOK)
	}))
	defer ok.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"bad key"}`, http.StatusUnauthorized)
	}))
	defer refusing.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()

	okID, _ := e.create("/api/v1/billing/sinks", obj{"name": "hook", "type": "webhook", "url": ok.URL + "/usage", "secret": "whsec-123456"})
	r := e.must(http.StatusOK, http.MethodPost, "/api/v1/billing/sinks/"+okID+"/test", nil)
	if r.json["ok"] != true || got.Load() != 1 || !sawSignature.Load() {
		t.Errorf("test event: %s, %d requests, signed %v", r.raw, got.Load(), sawSignature.Load())
	}
	if e.count("meter_events") != 0 {
		t.Error("a test event entered the outbox")
	}

	for _, c := range []struct{ name, url, want string }{
		{"refusing", refusing.URL + "/usage", "401"},
		{"unreachable", goneURL + "/usage", ""},
	} {
		id, _ := e.create("/api/v1/billing/sinks", obj{"name": c.name, "type": "webhook", "url": c.url, "secret": "whsec-123456"})
		r := e.do(http.MethodPost, "/api/v1/billing/sinks/"+id+"/test", nil)
		msg, _ := r.json["error"].(string)
		if r.status != http.StatusBadGateway || r.json["ok"] != false || msg == "" || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
		if strings.Contains(msg, "whsec-123456") {
			t.Errorf("%s: the message shows the secret", c.name)
		}
	}
}

func TestBillingRoles(t *testing.T) {
	e := newEnv(t)
	fin, mem := e.roleKeys()
	id, _ := e.create("/api/v1/billing/sinks", obj{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/usage", "secret": sinkSecret})

	// Finance reads sinks, status and chargeback; changes nothing.
	for _, path := range []string{"/api/v1/billing/sinks", "/api/v1/billing/sinks/" + id, "/api/v1/billing/status",
		"/api/v1/chargeback", "/api/v1/chargeback?format=csv"} {
		if r := e.doAuth(http.MethodGet, path, fin, nil); r.status != http.StatusOK || strings.Contains(r.raw, sinkSecret) {
			t.Errorf("finance GET %s: %d", path, r.status)
		}
	}
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/v1/billing/sinks", obj{"name": "x", "type": "webhook", "url": "http://127.0.0.1:9/x"}},
		{http.MethodPatch, "/api/v1/billing/sinks/" + id, obj{"enabled": false}},
		{http.MethodDelete, "/api/v1/billing/sinks/" + id, nil},
		{http.MethodPost, "/api/v1/billing/sinks/" + id + "/replay", nil},
		{http.MethodPost, "/api/v1/billing/sinks/" + id + "/test", nil},
	} {
		wantError(t, e.doAuth(c.method, c.path, fin, c.body), http.StatusForbidden, "forbidden", "")
	}
	// Members see none of it.
	for _, path := range []string{"/api/v1/billing/sinks", "/api/v1/billing/status", "/api/v1/chargeback", "/api/v1/chargeback?format=csv"} {
		wantError(t, e.doAuth(http.MethodGet, path, mem, nil), http.StatusForbidden, "forbidden", "")
	}
	if e.count("billing_sinks") != 1 {
		t.Error("a refused call changed the sinks")
	}
}
