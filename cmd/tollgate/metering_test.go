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
	"strconv"
	"strings"
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

// TestEveryCallReachesAmberflo follows calls through the whole product: the
// gateway answers, the spend log and its meter event are written together,
// the push job sends them, and a fake Amberflo checks what it got.
func TestEveryCallReachesAmberflo(t *testing.T) {
	type record struct {
		UniqueID          string            `json:"uniqueId"`
		MeterAPIName      string            `json:"meterApiName"`
		MeterValue        float64           `json:"meterValue"`
		MeterTimeInMillis int64             `json:"meterTimeInMillis"`
		Dimensions        map[string]string `json:"dimensions"`
	}
	var (
		mu        sync.Mutex
		records   = map[string][]record{} // by uniqueId
		customers []map[string]any
	)
	amberflo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-KEY") != "aflo-e2e-key" {
			http.Error(w, `{"error":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/ingest":
			var batch []record
			if err := json.Unmarshal(raw, &batch); err != nil || len(batch) > 100 {
				http.Error(w, "bad batch", http.StatusBadRequest)
				return
			}
			for _, rec := range batch {
				records[rec.UniqueID] = append(records[rec.UniqueID], rec)
			}
			w.Write([]byte(`"Success"`))
		case r.URL.Path == "/customers" || r.URL.Path == "/customers/":
			if r.Method == http.MethodGet {
				w.Write([]byte(`{}`))
				return
			}
			var c map[string]any
			json.Unmarshal(raw, &c)
			customers = append(customers, c)
			w.Write(raw)
		default:
			http.NotFound(w, r)
		}
	}))
	defer amberflo.Close()

	s := startStackWith(t, map[string]string{
		"TOLLGATE_AMBERFLO_API_KEY":     "aflo-e2e-key",
		"TOLLGATE_AMBERFLO_URL":         amberflo.URL,
		"TOLLGATE_METER_PUSH_INTERVAL":  "1s",
		"TOLLGATE_SPEND_FLUSH_INTERVAL": "100ms",
	})
	key := s.setup()
	type call struct{ id, cost, endpoint string }
	var calls []call
	send := func(path, body, endpoint string) {
		req, _ := http.NewRequest(http.MethodPost, s.gateway+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		calls = append(calls, call{resp.Header.Get("X-Request-Id"), resp.Header.Get("X-Tollgate-Cost"), endpoint})
	}
	for i := range 3 {
		send("/v1/chat/completions", fmt.Sprintf(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"bill me %d"}]}`, i), "chat")
	}
	send("/v1/embeddings", `{"model":"text-embedding-3-small","input":"bill me too"}`, "embeddings")
	sent := time.Now()

	for {
		mu.Lock()
		arrived := 0
		for _, c := range calls {
			if len(records[c.id]) > 0 {
				arrived++
			}
		}
		mu.Unlock()
		if arrived == len(calls) {
			break
		}
		if time.Since(sent) > 30*time.Second {
			t.Fatalf("%d of %d calls reached Amberflo within 30s", arrived, len(calls))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("all %d calls reached the billing system %s after the last answer", len(calls), time.Since(sent).Round(time.Millisecond))

	mu.Lock()
	defer mu.Unlock()
	var logged []store.SpendLog
	st, _ := store.Open(context.Background(), s.dsn, nil)
	defer st.Close()
	logged, _, _ = st.ListSpendLogs(context.Background(), store.SpendFilter{Page: store.Page{Limit: 100}})
	byID := map[string]store.SpendLog{}
	for _, l := range logged {
		byID[l.RequestID] = l
	}
	for _, c := range calls {
		l := byID[c.id]
		meters := map[string]float64{}
		for _, rec := range records[c.id] {
			d := rec.Dimensions
			if d["business_unit_id"] != "growth-team" || d["team"] != "growth-team" || d["key_name"] != "e2e" || d["gateway"] != "tollgate" ||
				d["usecase"] != c.endpoint || d["provider"] != "mock" || d["region"] != "global" {
				t.Fatalf("%s dimensions = %v", rec.MeterAPIName, d)
			}
			if rec.MeterTimeInMillis != l.CreatedAt.UnixMilli() {
				t.Fatalf("meterTimeInMillis %d, request started %d", rec.MeterTimeInMillis, l.CreatedAt.UnixMilli())
			}
			name := rec.MeterAPIName
			if name == "llm_text_tokens" {
				name += ":" + d["type"]
			}
			if _, twice := meters[name]; twice {
				t.Fatalf("%s sent twice for %s", name, c.id)
			}
			meters[name] = rec.MeterValue
		}
		want := map[string]float64{
			"llm_api_call": 1, "llm_api_call_ms": float64(l.LatencyMS),
			"llm_text_tokens:in": float64(l.InputTokens), "llm_text_tokens:out": float64(l.OutputTokens), "llm_cost_usd": l.Cost,
		}
		for name, v := range want {
			if got, ok := meters[name]; !ok || got != v {
				t.Errorf("%s %s = %v (sent: %v), want %v", c.endpoint, name, got, ok, v)
			}
		}
		if header, _ := strconv.ParseFloat(c.cost, 64); header != l.Cost || strings.Contains(c.cost, "e") || len(meters) != len(want) {
			t.Errorf("%s: cost header %s, spend log %v, meters %v", c.id, c.cost, l.Cost, meters)
		}
	}
	if len(customers) == 0 || customers[0]["customerId"] != "growth-team" || customers[0]["customerName"] != "growth-team" {
		t.Fatalf("business unit announcement = %v", customers)
	}
}
