package store_test

import (
	"errors"
	"testing"
	"time"

	"tollgate/store"
)

func TestOutboxIsWrittenWithTheSpendLog(t *testing.T) {
	st, ctx := newStore(t)
	secret := "aflo-secret-key"
	sink, err := st.CreateSink(ctx, testActor, store.SinkInput{SinkSpec: store.SinkSpec{Name: "amberflo", Type: "amberflo", Enabled: true}, Secret: &secret})
	if err != nil {
		t.Fatal(err)
	}
	if sink.URL != "https://app.amberflo.io" || !sink.HasSecret || sink.SecretHint == "" || string(sink.SecretSealed) == secret {
		t.Fatalf("sink = %+v", sink)
	}
	if got, _ := st.SinkSecret(sink); got != secret {
		t.Fatal("the secret does not open")
	}
	if _, err := st.CreateSink(ctx, testActor, store.SinkInput{SinkSpec: store.SinkSpec{Name: "x", Type: "kafka"}}); asValidation(t, err).Field != "type" {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := st.CreateSink(ctx, testActor, store.SinkInput{SinkSpec: store.SinkSpec{Name: "y", Type: "webhook"}}); asValidation(t, err).Field != "url" {
		t.Fatalf("webhook without URL: %v", err)
	}
	// Team announcements: at creation, and again when renamed.
	team, err := st.CreateTeam(ctx, testActor, store.TeamSpec{Name: "ml-research", Metadata: store.JSON(`{"billing_customer_id":"cus_42"}`)})
	if err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, st, "ana@example.com")
	k, _ := mustKey(t, st, store.KeySpec{Alias: "notebook", TeamID: &team.ID, UserID: &u.ID, Metadata: store.JSON(`{"business_unit_id":"bu-ml-eu"}`)})
	now := time.Now()
	logs := []store.SpendLog{
		{RequestID: "ok-1", CreatedAt: now, KeyID: &k.ID, TeamID: &team.ID, UserID: &u.ID, Model: "gpt-4o", Provider: "openai",
			Endpoint: "chat", InputTokens: 10, OutputTokens: 20, Cost: 0.5, LatencyMS: 321, Status: store.StatusSuccess, StatusCode: 200},
		{RequestID: "broke-mid-stream", CreatedAt: now, KeyID: &k.ID, TeamID: &team.ID, Model: "gpt-4o", Cost: 0.1,
			Status: store.StatusFailure, StatusCode: 502, Error: "stream broke off"},
		{RequestID: "refused", CreatedAt: now, KeyID: &k.ID, TeamID: &team.ID, Model: "gpt-4o", Status: store.StatusFailure, StatusCode: 500},
	}
	for range 2 { // a retried batch adds no second event
		if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
			t.Fatal(err)
		}
	}
	events, err := st.LeaseDeliveries(ctx, sink.ID, 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]store.MeterEvent{}
	for _, e := range events {
		byID[e.ID] = e
	}
	if len(events) != 3 {
		t.Fatalf("events = %+v", events)
	}
	ok := byID["ok-1"]
	if ok.Kind != store.EventUsage || ok.TeamName != "ml-research" || ok.BusinessUnit != "bu-ml-eu" || ok.CustomerID != "cus_42" ||
		ok.KeyAlias != "notebook" || ok.UserEmail != "ana@example.com" || ok.InputTokens != 10 || ok.OutputTokens != 20 ||
		ok.Cost != 0.5 || ok.LatencyMS != 321 || ok.Endpoint != "chat" || ok.CreatedAt.Sub(now).Abs() > time.Microsecond {
		t.Fatalf("usage event = %+v", ok)
	}
	if e := byID["broke-mid-stream"]; e.StatusCode != 502 || e.Error != "stream broke off" {
		t.Fatalf("failed event with cost = %+v", e)
	}
	if _, billed := byID["refused"]; billed {
		t.Fatal("a failed request that cost nothing was billed")
	}
	var announce store.MeterEvent
	for _, e := range events {
		if e.Kind == store.EventBusinessUnit {
			announce = e
		}
	}
	if announce.BusinessUnit != "ml-research" || announce.CustomerID != "cus_42" {
		t.Fatalf("announcement = %+v", announce)
	}
	// Leased events are not handed out again until the lease ends.
	if again, _ := st.LeaseDeliveries(ctx, sink.ID, 100, time.Minute); len(again) != 0 {
		t.Fatalf("leased events handed out twice: %d", len(again))
	}
	if _, err := st.UpdateTeam(ctx, testActor, team.ID, func(s *store.TeamSpec) error { s.Name = "ml-platform"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateTeam(ctx, testActor, team.ID, func(s *store.TeamSpec) error { s.MaxBudget = ptr(5.0); return nil }); err != nil {
		t.Fatal(err)
	}
	renamed, _ := st.LeaseDeliveries(ctx, sink.ID, 100, time.Minute)
	if len(renamed) != 1 || renamed[0].Kind != store.EventBusinessUnit || renamed[0].TeamName != "ml-platform" {
		t.Fatalf("after a rename and a budget change: %+v", renamed)
	}
}

func TestDeliveriesFailAfterMaxAttempts(t *testing.T) {
	st, ctx := newStore(t)
	sink, err := st.CreateSink(ctx, testActor, store.SinkInput{SinkSpec: store.SinkSpec{Name: "hook", Type: "webhook", URL: "http://127.0.0.1:9/usage", Enabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.InsertSpendLogs(ctx, []store.SpendLog{{RequestID: "r1", CreatedAt: time.Now(), Cost: 1, Status: store.StatusSuccess}}); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		events, _ := st.LeaseDeliveries(ctx, sink.ID, 10, time.Millisecond)
		if len(events) != 1 {
			t.Fatalf("attempt %d: %d events due", attempt, len(events))
		}
		failed, err := st.MarkAttemptFailed(ctx, sink.ID, []string{"r1"}, "HTTP 503", time.Millisecond, time.Millisecond, 3)
		if err != nil || failed != map[bool]int{true: 1, false: 0}[attempt == 3] {
			t.Fatalf("attempt %d: failed %d, %v", attempt, failed, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	statuses, _ := st.SinkStatuses(ctx)
	if s := statuses[sink.ID]; s.Failed != 1 || s.Pending != 0 || s.LastError != "HTTP 503" {
		t.Fatalf("status = %+v", s)
	}
	if n, err := st.ReplayFailed(ctx, testActor, sink.ID); n != 1 || err != nil {
		t.Fatalf("replay = %d %v", n, err)
	}
	events, _ := st.LeaseDeliveries(ctx, sink.ID, 10, time.Minute)
	if len(events) != 1 {
		t.Fatal("a replayed event is not due")
	}
	if err := st.MarkDelivered(ctx, sink.ID, []string{"r1"}); err != nil {
		t.Fatal(err)
	}
	statuses, _ = st.SinkStatuses(ctx)
	if s := statuses[sink.ID]; s.Delivered != 1 || s.Failed != 0 || s.LastDelivered == nil {
		t.Fatalf("status after delivery = %+v", s)
	}
	// A deleted sink takes its deliveries with it.
	if err := st.DeleteSink(ctx, testActor, sink.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetSink(ctx, sink.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted sink: %v", err)
	}
	if n := count(t, st, `SELECT count(*) FROM meter_deliveries`); n != 0 {
		t.Fatalf("%d deliveries outlived their sink", n)
	}
}
