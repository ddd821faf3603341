package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"tollgate/store"
	"tollgate/store/storetest"
)

// TestMeterEventsSurviveAKilledPusher kills the process pushing meter events
// between the sink storing a batch and the process marking it delivered,
// then lets two other replicas finish the job side by side. The sink must
// end with every event exactly once after dedup by id, and nothing missing.
func TestMeterEventsSurviveAKilledPusher(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.NewDatabase(t)
	sealer, _ := store.NewSealer(storetest.SecretKey)
	st, err := store.Open(ctx, dsn, sealer)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	var (
		mu      sync.Mutex
		seen    = map[string]int{}
		victim  *exec.Cmd
		killed  = make(chan struct{})
		batches int
	)
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		if json.Unmarshal(raw, &body) != nil {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, e := range body.Events {
			seen[e.ID]++
		}
		batches++
		first := batches == 1
		mu.Unlock()
		if first {
			// Stored, but the pusher dies before it hears back.
			victim.Process.Signal(syscall.SIGKILL)
			victim.Wait()
			close(killed)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()

	secret := "whsec-e2e"
	if _, err := st.CreateSink(ctx, "test", store.SinkInput{
		SinkSpec: store.SinkSpec{Name: "webhook", Type: "webhook", URL: sink.URL, Enabled: true}, Secret: &secret}); err != nil {
		t.Fatal(err)
	}
	team, err := st.CreateTeam(ctx, "test", store.TeamSpec{Name: "finance-e2e"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var logs []store.SpendLog
	for i := range n {
		logs = append(logs, store.SpendLog{RequestID: fmt.Sprintf("req-e2e-%05d", i), CreatedAt: time.Now(), TeamID: &team.ID,
			Model: "gpt-4o-mini", Provider: "openai", Endpoint: "chat", InputTokens: 12, OutputTokens: 7, Cost: 0.002,
			Status: store.StatusSuccess, StatusCode: 200})
	}
	if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}

	start := func() *exec.Cmd {
		cmd := exec.Command(tollgateBinary(t), "admin")
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, flatten(map[string]string{
			"DATABASE_URL":                    dsn,
			"REDIS_URL":                       storetest.RedisURL(),
			"TOLLGATE_SECRET_KEY":             storetest.SecretKey,
			"TOLLGATE_ADMIN_ADDR":             freeAddr(t),
			"TOLLGATE_AUTO_MIGRATE":           "false",
			"TOLLGATE_METER_PUSH_INTERVAL":    "1s",
			"TOLLGATE_METER_LEASE":            "3s",
			"TOLLGATE_BILLING_WEBHOOK_URL":    sink.URL,
			"TOLLGATE_BILLING_WEBHOOK_SECRET": secret,
			"TOLLGATE_LOG_LEVEL":              "error",
		})...)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Signal(syscall.SIGTERM)
				cmd.Wait()
			}
			if t.Failed() {
				t.Logf("admin output:\n%s", out.String())
			}
		})
		return cmd
	}
	mu.Lock()
	victim = start()
	mu.Unlock()
	select {
	case <-killed:
	case <-time.After(20 * time.Second):
		t.Fatal("the first replica never pushed")
	}
	// Two replicas take over, at once.
	start()
	start()

	began := time.Now()
	for {
		var pending int
		st.DB().Get(&pending, `SELECT count(*) FROM meter_deliveries WHERE status <> 'delivered'`)
		if pending == 0 {
			break
		}
		if time.Since(began) > 60*time.Second {
			t.Fatalf("%d events still undelivered after a minute", pending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	unique, dups := 0, 0
	for _, c := range seen {
		unique++
		dups += c - 1
	}
	// The requests, and the team's business-unit announcement.
	if unique != n+1 {
		t.Fatalf("the sink holds %d distinct events of %d", unique, n+1)
	}
	if dups == 0 || dups > 400 {
		// Only what the killed replica had leased (at most 4 batches of
		// 100) may arrive twice.
		t.Fatalf("%d events arrived twice", dups)
	}
	t.Logf("SIGKILL between send and mark, then two replicas: %d events, %d distinct at the sink, %d re-sent and deduped, all delivered %s after the kill",
		n, unique, dups, time.Since(began).Round(time.Millisecond))
}
