package sinks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

// verify checks a webhook request as a receiver would, from the spec alone.
func verify(r request, secret string) bool {
	ts := r.Header.Get("X-Tollgate-Timestamp")
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "." + string(r.Body)))
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	return hmac.Equal([]byte(r.Header.Get("X-Tollgate-Signature")), []byte(want))
}

func TestWebhookSignedBody(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) { w.WriteHeader(http.StatusAccepted) })
	snd := mustNew(t, sink("webhook", f.URL+"/hooks/billing", ``), "whsec")
	batch := []store.MeterEvent{usage("req_1"), announcement()}
	before := time.Now().Unix()
	if err := snd.Send(context.Background(), batch); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := f.requests()[0]
	if r.Method != http.MethodPost || r.Path != "/hooks/billing" || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("request %s %s %s", r.Method, r.Path, r.Header.Get("Content-Type"))
	}
	if ts, err := strconv.ParseInt(r.Header.Get("X-Tollgate-Timestamp"), 10, 64); err != nil || ts < before || ts > time.Now().Unix() {
		t.Errorf("X-Tollgate-Timestamp = %q", r.Header.Get("X-Tollgate-Timestamp"))
	}
	if !verify(r, "whsec") {
		t.Errorf("signature %q does not verify", r.Header.Get("X-Tollgate-Signature"))
	}
	if verify(r, "other") {
		t.Error("signature verifies with another secret")
	}
	var body struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Events) != 2 {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	if body.Events[0]["id"] != "req_1" || body.Events[0]["kind"] != "usage" || body.Events[0]["input_tokens"] != 120.0 ||
		body.Events[1]["kind"] != "business_unit" || body.Events[1]["business_unit"] != "bu-payments" {
		t.Errorf("events = %v", body.Events)
	}
}

func TestWebhookIdempotencyKey(t *testing.T) {
	f := newFake(t, nil)
	snd := mustNew(t, sink("webhook", f.URL, ``), "")
	batch := []store.MeterEvent{usage("req_1"), usage("req_2")}
	for range 2 {
		if err := snd.Send(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.Send(context.Background(), batch[:1]); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	k1, k2, k3 := reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"), reqs[2].Header.Get("Idempotency-Key")
	sum := sha256.Sum256([]byte("req_1\nreq_2"))
	if k1 != hex.EncodeToString(sum[:]) || k1 != k2 {
		t.Errorf("keys of the same batch: %q, %q, want both %x", k1, k2, sum)
	}
	if k3 == k1 || k3 == "" {
		t.Errorf("key of another batch = %q", k3)
	}
	if _, ok := reqs[0].Header["X-Tollgate-Signature"]; ok {
		t.Error("signature sent without a secret")
	}
}

func TestWebhookRefusalKeepsURLSecret(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *request) {
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("boom: bad signature whsec-very-secret"))
	})
	err := mustNew(t, sink("webhook", f.URL+"/in/tok_path?token=tok_query", ``), "whsec-very-secret").
		Send(context.Background(), []store.MeterEvent{usage("req_1")})
	if err == nil {
		t.Fatal("Send succeeded on a 500")
	}
	msg := err.Error()
	for _, secret := range []string{"tok_path", "tok_query", "whsec-very-secret"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error %q shows %s", msg, secret)
		}
	}
	if !strings.Contains(msg, "HTTP 500") || !strings.Contains(msg, "boom") {
		t.Errorf("error %q lacks the status and the answer", msg)
	}
}
