package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"tollgate/store"
)

func TestNextReset(t *testing.T) {
	// Wednesday 2026-11-18 15:04 UTC.
	from := time.Date(2026, 11, 18, 15, 4, 5, 0, time.UTC)
	cases := map[string]time.Time{
		"daily":   time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC),
		"weekly":  time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), // the next Monday
		"monthly": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		"30d":     from.Add(30 * 24 * time.Hour),
		"12h":     from.Add(12 * time.Hour),
	}
	for dur, want := range cases {
		got, err := store.NextReset(dur, from)
		if err != nil || !got.Equal(want) {
			t.Errorf("NextReset(%q) = %v, %v; want %v", dur, got, err, want)
		}
	}
	// A Monday at midnight resets the following Monday, not the same instant.
	monday := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	if got, _ := store.NextReset("weekly", monday); !got.Equal(monday.AddDate(0, 0, 7)) {
		t.Errorf("weekly from a Monday = %v", got)
	}
	// December rolls into January.
	if got, _ := store.NextReset("monthly", time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("monthly from December = %v", got)
	}
	if _, err := store.NextReset("fortnightly", from); err == nil {
		t.Error("an unknown duration was accepted")
	}
}

func TestBudgetProfilesFillKeyAndTeamLimits(t *testing.T) {
	st, ctx := newStore(t)
	b, err := st.CreateBudget(ctx, testActor, store.BudgetSpec{Name: "small", MaxBudget: ptr(5.0), BudgetDuration: ptr("daily"), RPMLimit: ptr[int64](10)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateBudget(ctx, testActor, store.BudgetSpec{Name: "small"}); !errors.As(err, new(*store.ConflictError)) {
		t.Fatalf("duplicate profile name: want a conflict, got %v", err)
	}
	if _, err := st.CreateBudget(ctx, testActor, store.BudgetSpec{Name: "bad", BudgetDuration: ptr("sometimes")}); asValidation(t, err).Field != "budget_duration" {
		t.Fatalf("bad duration: %v", err)
	}
	team, err := st.CreateTeam(ctx, testActor, store.TeamSpec{Name: "ml", BudgetID: &b.ID, MaxParallelRequests: ptr[int64](4)})
	if err != nil {
		t.Fatal(err)
	}
	if team.BudgetResetAt == nil || !team.BudgetResetAt.After(time.Now()) {
		t.Fatalf("team on a daily profile has reset time %v", team.BudgetResetAt)
	}
	l := team.Limits(b)
	if *l.MaxBudget != 5 || *l.RPMLimit != 10 || *l.MaxParallelRequests != 4 {
		t.Fatalf("team limits = %+v", l)
	}
	k, _ := mustKey(t, st, store.KeySpec{TeamID: &team.ID, BudgetID: &b.ID, MaxBudget: ptr(1.0),
		ModelRPMLimit: store.ModelLimits{"gpt-4o": 3}})
	if l := k.Limits(b); *l.MaxBudget != 1 || *l.RPMLimit != 10 || *l.BudgetDuration != "daily" {
		t.Fatalf("key's own max_budget must win over the profile's: %+v", l)
	}
	got, _ := st.GetKey(ctx, k.ID)
	if got.ModelRPMLimit["gpt-4o"] != 3 || got.BudgetResetAt == nil {
		t.Fatalf("stored key = %+v", got)
	}
	if _, err := mustKeyErr(st, store.KeySpec{ModelTPMLimit: store.ModelLimits{"x": -1}}); asValidation(t, err).Field != "model_tpm_limit" {
		t.Fatalf("negative model limit: %v", err)
	}
	if _, err := mustKeyErr(st, store.KeySpec{BudgetID: ptr("00000000-0000-0000-0000-00000000beef")}); asValidation(t, err).Field != "budget_id" {
		t.Fatalf("unknown profile: %v", err)
	}
	if err := st.DeleteBudget(ctx, testActor, b.ID); !errors.As(err, new(*store.ConflictError)) {
		t.Fatalf("deleting a used profile: want a conflict, got %v", err)
	}
	// Switching the profile to weekly restarts the periods of those that follow it.
	if _, err := st.UpdateBudget(ctx, testActor, b.ID, func(s *store.BudgetSpec) error { s.BudgetDuration = ptr("weekly"); return nil }); err != nil {
		t.Fatal(err)
	}
	after, _ := st.GetTeam(ctx, team.ID)
	want, _ := store.NextReset("weekly", time.Now())
	if after.BudgetResetAt == nil || !after.BudgetResetAt.Equal(want) {
		t.Fatalf("team reset after the profile became weekly = %v, want %v", after.BudgetResetAt, want)
	}
}

func mustKeyErr(st *store.Store, spec store.KeySpec) (*store.Key, error) {
	k, _, err := st.CreateKey(context.Background(), testActor, spec, "")
	return k, err
}

func TestSpendReachesUsersAndGlobalBudget(t *testing.T) {
	st, ctx := newStore(t)
	u := mustUser(t, st, "ana@example.com")
	k, _ := mustKey(t, st, store.KeySpec{UserID: &u.ID})
	now := time.Now()
	logs := []store.SpendLog{
		{RequestID: "r1", CreatedAt: now, KeyID: &k.ID, UserID: &u.ID, Cost: 0.25, Status: store.StatusSuccess},
		{RequestID: "r2", CreatedAt: now, KeyID: &k.ID, UserID: &u.ID, Cost: 0.5, Status: store.StatusSuccess},
		{RequestID: "r3", CreatedAt: now, Cost: 1, Status: store.StatusSuccess},
	}
	for range 2 { // the retry must not count twice
		if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := st.SubjectSpend(ctx, store.SubjectUser, u.ID); !approxEqual(got, 0.75) {
		t.Errorf("user spend = %v, want 0.75", got)
	}
	if got, _ := st.SubjectSpend(ctx, store.SubjectGlobal, ""); !approxEqual(got, 1.75) {
		t.Errorf("global spend = %v, want 1.75", got)
	}
	if got, _ := st.SubjectSpend(ctx, store.SubjectKey, k.ID); !approxEqual(got, 0.75) {
		t.Errorf("key spend = %v, want 0.75", got)
	}
}

func TestResetBudgetsStartsNewPeriodsAndAudits(t *testing.T) {
	st, ctx := newStore(t)
	team := mustTeam(t, st, "ops")
	daily, _ := mustKey(t, st, store.KeySpec{TeamID: &team.ID, MaxBudget: ptr(10.0), BudgetDuration: ptr("daily")})
	forever, _ := mustKey(t, st, store.KeySpec{TeamID: &team.ID, MaxBudget: ptr(10.0)})
	if _, err := st.UpdateGlobalBudget(ctx, testActor, func(g *store.GlobalBudgetSpec) error {
		g.MaxBudget, g.BudgetDuration = ptr(100.0), ptr("monthly")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := st.InsertSpendLogs(ctx, []store.SpendLog{
		{RequestID: "a", CreatedAt: now, KeyID: &daily.ID, TeamID: &team.ID, Cost: 2, Status: store.StatusSuccess},
		{RequestID: "b", CreatedAt: now, KeyID: &forever.ID, TeamID: &team.ID, Cost: 3, Status: store.StatusSuccess},
	}); err != nil {
		t.Fatal(err)
	}
	// Nothing is due yet.
	if done, err := st.ResetBudgets(ctx, "budget-reset", now); err != nil || len(done) != 0 {
		t.Fatalf("early reset: %v %v", done, err)
	}
	// Two days later the daily key's period has ended (twice: it moves past now).
	later := now.Add(49 * time.Hour)
	done, err := st.ResetBudgets(ctx, "budget-reset", later)
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].SubjectID != daily.ID || !approxEqual(done[0].Spend, 2) || !done[0].NextReset.After(later) {
		t.Fatalf("resets = %+v", done)
	}
	k, _ := st.GetKey(ctx, daily.ID)
	if k.Spend != 0 || !k.BudgetResetAt.Equal(done[0].NextReset) {
		t.Fatalf("daily key after reset: spend %v reset %v", k.Spend, k.BudgetResetAt)
	}
	if f, _ := st.GetKey(ctx, forever.ID); !approxEqual(f.Spend, 3) {
		t.Fatalf("a key without a period lost its spend: %v", f.Spend)
	}
	if n := count(t, st, `SELECT count(*) FROM audit_logs WHERE action = 'budget.reset' AND resource_id = $1 AND actor = 'budget-reset'`, daily.ID); n != 1 {
		t.Fatalf("audit rows for the reset = %d", n)
	}
	// The global budget's monthly period ends within 32 days.
	done, err = st.ResetBudgets(ctx, "budget-reset", now.AddDate(0, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	var global bool
	for _, d := range done {
		global = global || d.SubjectType == store.SubjectGlobal
	}
	if g, _ := st.GetGlobalBudget(ctx); !global || g.Spend != 0 {
		t.Fatalf("global budget not reset: %+v %+v", done, g)
	}
}

func TestBudgetAlertsOncePerPeriod(t *testing.T) {
	st, ctx := newStore(t)
	team, err := st.CreateTeam(ctx, testActor, store.TeamSpec{Name: "research", SoftBudget: ptr(1.0), MaxBudget: ptr(2.0), BudgetDuration: ptr("daily")})
	if err != nil {
		t.Fatal(err)
	}
	add := func(id string, cost float64) {
		t.Helper()
		if _, err := st.InsertSpendLogs(ctx, []store.SpendLog{{RequestID: id, CreatedAt: time.Now(), TeamID: &team.ID, Cost: cost, Status: store.StatusSuccess}}); err != nil {
			t.Fatal(err)
		}
	}
	add("x1", 0.5)
	if got, _ := st.RecordBudgetAlerts(ctx); len(got) != 0 {
		t.Fatalf("alerts below the soft budget: %+v", got)
	}
	add("x2", 0.6)
	got, _ := st.RecordBudgetAlerts(ctx)
	if len(got) != 1 || got[0].Kind != store.AlertSoft || got[0].SubjectName != "research" || !approxEqual(got[0].Threshold, 1) {
		t.Fatalf("soft alert = %+v", got)
	}
	add("x3", 0.1)
	if again, _ := st.RecordBudgetAlerts(ctx); len(again) != 0 {
		t.Fatalf("the soft alert fired twice in one period: %+v", again)
	}
	add("x4", 1)
	if hard, _ := st.RecordBudgetAlerts(ctx); len(hard) != 1 || hard[0].Kind != store.AlertHard {
		t.Fatalf("hard alert = %+v", hard)
	}
	// Delivery bookkeeping.
	pending, _ := st.UndeliveredAlerts(ctx, 5, 10)
	if len(pending) != 2 {
		t.Fatalf("undelivered = %d", len(pending))
	}
	st.MarkAlert(ctx, pending[0].ID, "HTTP 500")
	st.MarkAlert(ctx, pending[1].ID, "")
	pending, _ = st.UndeliveredAlerts(ctx, 5, 10)
	if len(pending) != 1 || pending[0].Attempts != 1 || pending[0].LastError != "HTTP 500" {
		t.Fatalf("after delivery: %+v", pending)
	}
	// A new period may alert again.
	if _, err := st.ResetBudgets(ctx, "budget-reset", time.Now().Add(25*time.Hour)); err != nil {
		t.Fatal(err)
	}
	add("x5", 1.5)
	if next, _ := st.RecordBudgetAlerts(ctx); len(next) != 1 || next[0].Kind != store.AlertSoft {
		t.Fatalf("alerts in the new period = %+v", next)
	}
}
