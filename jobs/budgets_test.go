package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/jobs"
	"tollgate/store"
	"tollgate/store/storetest"
)

func ptr[T any](v T) *T { return &v }

// received is one webhook delivery as the receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

func TestBudgetAlertsAreSignedAndDeliveredOnce(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	var mu sync.Mutex
	var got []received
	fail := atomic.Bool{}
	fail.Store(true)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{r.Header.Clone(), b})
		mu.Unlock()
		if fail.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		}
	}))
	defer hook.Close()
	const secret = "whsec-test"
	a := &jobs.Alerts{URLs: []string{hook.URL + "/hooks/tollgate?token=very-secret"}, Secret: secret, MaxAttempts: 3,
		Client: &http.Client{Timeout: 2 * time.Second}, Log: quiet}

	team, err := st.CreateTeam(ctx, "test", store.TeamSpec{Name: "research", SoftBudget: ptr(1.0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.InsertSpendLogs(ctx, []store.SpendLog{{RequestID: "r1", CreatedAt: time.Now(), TeamID: &team.ID, Cost: 1.5, Status: store.StatusSuccess}}); err != nil {
		t.Fatal(err)
	}
	// The receiver is down: the run reports it, the alert stays pending
	// with the error, which names the host but not the URL's token.
	if err := a.Run(ctx, st); err == nil {
		t.Fatal("a failed delivery was not reported")
	}
	alerts, _ := st.RecentAlerts(ctx, 10)
	if len(alerts) != 1 || alerts[0].DeliveredAt != nil || alerts[0].Attempts != 1 {
		t.Fatalf("after a failed delivery: %+v", alerts)
	}
	if msg := alerts[0].LastError; msg != "webhook "+hook.URL+" answered HTTP 503" {
		t.Fatalf("last error = %q", msg)
	}
	fail.Store(false)
	if err := a.Run(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(ctx, st); err != nil { // nothing left to send
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("receiver got %d deliveries, want 2 (one failed, one accepted)", len(got))
	}
	last := got[1]
	ts, _ := strconv.ParseInt(last.header.Get("X-Tollgate-Timestamp"), 10, 64)
	if want := jobs.Sign(secret, ts, last.body); last.header.Get("X-Tollgate-Signature") != want {
		t.Fatalf("signature %q, want %q", last.header.Get("X-Tollgate-Signature"), want)
	}
	if jobs.Sign("wrong", ts, last.body) == last.header.Get("X-Tollgate-Signature") {
		t.Fatal("the signature does not depend on the secret")
	}
	if got[0].header.Get("Idempotency-Key") != got[1].header.Get("Idempotency-Key") || got[1].header.Get("Idempotency-Key") == "" {
		t.Fatal("a re-sent alert must carry the same idempotency key")
	}
	var ev jobs.AlertEvent
	if err := json.Unmarshal(last.body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "budget.soft_exceeded" || ev.Alert.SubjectName != "research" || ev.Alert.Spend != 1.5 || ev.Alert.Threshold != 1 {
		t.Fatalf("event = %+v", ev)
	}
	alerts, _ = st.RecentAlerts(ctx, 10)
	if alerts[0].DeliveredAt == nil || alerts[0].Attempts != 2 {
		t.Fatalf("after delivery: %+v", alerts[0])
	}
}

func TestJobLeaderRunsAlone(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	release, ok, err := st.JobLock(ctx, "budget-reset")
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	// Another replica (another connection) cannot lead the same job…
	if _, ok, err := st.JobLock(ctx, "budget-reset"); err != nil || ok {
		t.Fatalf("second lock while held: %v %v", ok, err)
	}
	// …but may lead another one.
	other, ok, err := st.JobLock(ctx, "budget-alerts")
	if err != nil || !ok {
		t.Fatalf("other job: %v %v", ok, err)
	}
	other()
	release()
	again, ok, err := st.JobLock(ctx, "budget-reset")
	if err != nil || !ok {
		t.Fatalf("lock after release: %v %v", ok, err)
	}
	again()
}
