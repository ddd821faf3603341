package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tollgate/store"
	"tollgate/store/storetest"
)

// BenchmarkInsertSpendLogs writes the spend writer's full batch (1,000
// rows of one key, team and user) with a billing sink enabled, so each row
// also queues its meter event and delivery, as under full governance. The
// target is 10,000 rows/s (docs/performance.md).
func BenchmarkInsertSpendLogs(b *testing.B) {
	ctx := context.Background()
	st := storetest.New(b)
	secret := "bench-sink-secret"
	if _, err := st.CreateSink(ctx, "bench", store.SinkInput{SinkSpec: store.SinkSpec{Name: "webhook", Type: "webhook",
		URL: "http://127.0.0.1:9/meter-events", Enabled: true}, Secret: &secret}); err != nil {
		b.Fatal(err)
	}
	team, err := st.CreateTeam(ctx, "bench", store.TeamSpec{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	user, err := st.CreateUser(ctx, "bench", store.UserInput{UserSpec: store.UserSpec{Email: "bench@example.com"}})
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := st.CreateKey(ctx, "bench", store.KeySpec{Alias: "bench", TeamID: &team.ID, UserID: &user.ID}, "")
	if err != nil {
		b.Fatal(err)
	}
	const batch = 1000
	logs := make([]store.SpendLog, batch)
	n := 0
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		for i := range logs {
			n++
			logs[i] = store.SpendLog{RequestID: fmt.Sprintf("req_bench_%012d", n), CreatedAt: time.Now(),
				KeyID: &key.ID, TeamID: &team.ID, UserID: &user.ID, Model: "gpt-4o-mini", Provider: "openai", Endpoint: "chat",
				InputTokens: 212, OutputTokens: 96, Cost: 0.0000894, LatencyMS: 830, Status: store.StatusSuccess, StatusCode: 200}
		}
		if got, err := st.InsertSpendLogs(ctx, logs); err != nil || got != batch {
			b.Fatalf("inserted %d of %d: %v", got, batch, err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "rows/s")
}
