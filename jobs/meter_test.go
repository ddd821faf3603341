package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate/jobs"
	"tollgate/store"
	"tollgate/store/storetest"
)

// billingSink is a billing system on loopback speaking Tollgate's webhook
// format. It keeps every event id it stored, so re-sends show up as
// duplicates, as a real system's dedup would count them.
type billingSink struct {
	srv      *httptest.Server
	mu       sync.Mutex
	seen     map[string]int
	requests int
	// answer picks the reply to the nth request (1-based): 200, an error
	// status, or 0 to store the events and never answer (a lost reply).
	answer func(n int) int
}

func newBillingSink(t testing.TB, answer func(n int) int) *billingSink {
	b := &billingSink{seen: map[string]int{}, answer: answer}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			Events []store.MeterEvent `json:"events"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.requests++
		status := http.StatusOK
		if b.answer != nil {
			status = b.answer(b.requests)
		}
		if status == http.StatusOK || status == 0 {
			for _, e := range body.Events {
				b.seen[e.ID]++
			}
		}
		b.mu.Unlock()
		switch status {
		case 0:
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case http.StatusOK:
			w.WriteHeader(http.StatusOK)
		default:
			http.Error(w, "billing system unavailable", status)
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// tally returns how many distinct ids the sink stored and how many
// arrived more than once.
func (b *billingSink) tally() (unique, duplicates int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range b.seen {
		unique++
		duplicates += n - 1
	}
	return unique, duplicates
}

// seedEvents adds n billed requests of a new team; the outbox gives each,
// and the team's business-unit announcement, a pending delivery for every
// enabled sink. It returns how many events that makes.
func seedEvents(t testing.TB, st *store.Store, n int) int {
	t.Helper()
	ctx := context.Background()
	team, err := st.CreateTeam(ctx, "test", store.TeamSpec{Name: fmt.Sprintf("bu-%d", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for start := 0; start < n; start += 1000 {
		var logs []store.SpendLog
		for i := start; i < min(start+1000, n); i++ {
			logs = append(logs, store.SpendLog{RequestID: fmt.Sprintf("req-%06d", i), CreatedAt: now, TeamID: &team.ID,
				Model: "gpt-4o-mini", Provider: "openai", Endpoint: "chat", InputTokens: 10, OutputTokens: 5, Cost: 0.001,
				Status: store.StatusSuccess, StatusCode: 200})
		}
		if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
			t.Fatal(err)
		}
	}
	return n + 1
}

func newSink(t testing.TB, st *store.Store, url string) *store.Sink {
	t.Helper()
	secret := "whsec-test"
	s, err := st.CreateSink(context.Background(), "test", store.SinkInput{
		SinkSpec: store.SinkSpec{Name: "finance-webhook", Type: "webhook", URL: url, Enabled: true}, Secret: &secret})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func deliveryCounts(t testing.TB, st *store.Store, sinkID string) map[string]int {
	t.Helper()
	rows := []struct {
		Status string `db:"status"`
		N      int    `db:"n"`
	}{}
	if err := st.DB().Select(&rows, `SELECT status, count(*) AS n FROM meter_deliveries WHERE sink_id = $1 GROUP BY status`, sinkID); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out
}

// drain runs the job until nothing is pending, or fails the test.
func drain(t testing.TB, st *store.Store, sinkID string, run func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for deliveryCounts(t, st, sinkID)[store.DeliveryPending] > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("still pending after 30s: %v", deliveryCounts(t, st, sinkID))
		}
		run()
		time.Sleep(20 * time.Millisecond)
	}
}

func fastMeter(st *store.Store, reg prometheus.Registerer) *jobs.Meter {
	mm := jobs.NewMeterMetrics(st)
	if reg != nil {
		mm.Register(reg)
	}
	return &jobs.Meter{St: st, Client: &http.Client{Timeout: 200 * time.Millisecond}, MaxAttempts: 100,
		Lease: 400 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Metrics: mm, Log: quiet}
}

func gather(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		total := 0.0
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return total
	}
	return -1
}

func TestMeterPushSurvivesErrorsAndTimeouts(t *testing.T) {
	st := storetest.New(t)
	// Three 500s, then two answers that never come (the events were stored
	// but the reply was lost), then a healthy sink.
	sink := newBillingSink(t, func(n int) int {
		switch {
		case n <= 3:
			return http.StatusInternalServerError
		case n <= 5:
			return 0
		}
		return http.StatusOK
	})
	s := newSink(t, st, sink.srv.URL)
	n := seedEvents(t, st, 1000)
	reg := prometheus.NewRegistry()
	m := fastMeter(st, reg)
	if got := gather(t, reg, "tollgate_meter_events_pending"); got != float64(n) {
		t.Fatalf("pending gauge before the push = %v, want %d", got, n)
	}

	// The first run meets the 500: it records the error and stops.
	if err := m.Run(context.Background()); err == nil {
		t.Fatal("a failing sink was not reported")
	}
	var lastErr string
	st.DB().Get(&lastErr, `SELECT last_error FROM meter_deliveries WHERE sink_id = $1 AND last_error <> '' LIMIT 1`, s.ID)
	if lastErr == "" {
		t.Fatal("the failure was not kept on the delivery")
	}
	drain(t, st, s.ID, func() error { return m.Run(context.Background()) })

	unique, dups := sink.tally()
	if unique != n {
		t.Fatalf("the sink holds %d distinct events, want %d", unique, n)
	}
	if dups == 0 {
		t.Fatal("the lost replies should have made the job send some events again")
	}
	if c := deliveryCounts(t, st, s.ID); c[store.DeliveryDelivered] != n {
		t.Fatalf("deliveries = %v", c)
	}
	if got := gather(t, reg, "tollgate_meter_events_delivered_total"); got != float64(n) {
		t.Fatalf("delivered counter = %v, want %d", got, n)
	}
	if gather(t, reg, "tollgate_meter_push_errors_total") < 5 {
		t.Fatal("the push errors were not counted")
	}
	if got := gather(t, reg, "tollgate_meter_lag_seconds"); got != 0 {
		t.Fatalf("lag after the drain = %v", got)
	}
	t.Logf("errors and timeouts: %d events, %d distinct at the sink, %d re-sent and deduped, last error %q", n, unique, dups, lastErr)
}

func TestMeterEventsFailAfterMaxAttemptsAndReplay(t *testing.T) {
	st := storetest.New(t)
	var mu sync.Mutex
	healthy := false
	sink := newBillingSink(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if healthy {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	s := newSink(t, st, sink.srv.URL)
	n := seedEvents(t, st, 50)
	m := fastMeter(st, nil)
	m.MaxAttempts = 3
	for range 3 {
		m.Run(context.Background())
		time.Sleep(80 * time.Millisecond) // past the backoff
	}
	if c := deliveryCounts(t, st, s.ID); c[store.DeliveryFailed] != n {
		t.Fatalf("after 3 failed attempts: %v", c)
	}
	var lastErr string
	st.DB().Get(&lastErr, `SELECT last_error FROM meter_deliveries WHERE sink_id = $1 AND status = 'failed' LIMIT 1`, s.ID)
	if lastErr == "" {
		t.Fatal("failed events lost their last error")
	}
	// Failed events are left alone until replayed.
	mu.Lock()
	healthy = true
	mu.Unlock()
	m.Run(context.Background())
	if u, _ := sink.tally(); u != 0 {
		t.Fatalf("failed events were sent without a replay: %d", u)
	}
	replayed, err := st.ReplayFailed(context.Background(), "admin", s.ID)
	if err != nil || replayed != int64(n) {
		t.Fatalf("replay: %d %v", replayed, err)
	}
	drain(t, st, s.ID, func() error { return m.Run(context.Background()) })
	if u, d := sink.tally(); u != n || d != 0 {
		t.Fatalf("after replay: %d distinct, %d duplicates", u, d)
	}
}

func TestTwoPushersAtOnceSendEachEventOnce(t *testing.T) {
	dsn := storetest.NewDatabase(t)
	sealer, _ := store.NewSealer(storetest.SecretKey)
	open := func() *store.Store {
		st, err := store.Open(context.Background(), dsn, sealer)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a, b := open(), open()
	sink := newBillingSink(t, nil)
	s := newSink(t, a, sink.srv.URL)
	n := seedEvents(t, a, 3000)
	// Each pusher is another replica: its own pool, its own job runs, no
	// shared memory. They run the push (not the scheduler) side by side.
	var wg sync.WaitGroup
	for _, st := range []*store.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := fastMeter(st, nil)
			m.Workers = 2
			// Leases and timeouts long enough that a slow machine never
			// lets one lapse: this test is about two pushers sharing the
			// work, not about re-sending after a lease ran out.
			m.Lease, m.Client = time.Minute, &http.Client{Timeout: 30 * time.Second}
			for range 20 {
				m.Run(context.Background())
			}
		}()
	}
	wg.Wait()
	drain(t, a, s.ID, func() error { return fastMeter(a, nil).Run(context.Background()) })
	if u, d := sink.tally(); u != n || d != 0 {
		t.Fatalf("two pushers: %d distinct of %d, %d sent twice", u, n, d)
	}
}

// BenchmarkMeterPush10k delivers 10,000 pending events to a local sink.
func BenchmarkMeterPush10k(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		st := storetest.New(b)
		sink := newBillingSink(b, nil)
		s := newSink(b, st, sink.srv.URL)
		total := seedEvents(b, st, 10000)
		m := fastMeter(st, nil)
		m.Client.Timeout = 10 * time.Second
		b.StartTimer()
		start := time.Now()
		if err := m.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/10k-events")
		b.StopTimer()
		if u, _ := sink.tally(); u != total {
			b.Fatalf("%d delivered", u)
		}
		if c := deliveryCounts(b, st, s.ID); c[store.DeliveryDelivered] != total {
			b.Fatalf("deliveries = %v", c)
		}
		b.StartTimer()
	}
}
