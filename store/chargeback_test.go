package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"tollgate/store"
)

// chargebackFixture is two months of spend for three teams, a deleted team
// and spend without a team, far enough ahead that every team exists in
// both months.
type chargebackFixture struct {
	growth, research, idle, gone *store.Team
	web, hinted, lab, dropped    *store.Key
}

func day(d string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", d)
	if err != nil {
		panic(err)
	}
	return t
}

func newChargebackFixture(t *testing.T, st *store.Store) chargebackFixture {
	t.Helper()
	ctx := t.Context()
	var f chargebackFixture
	var err error
	f.growth, err = st.CreateTeam(ctx, testActor, store.TeamSpec{Name: "growth", MaxBudget: ptr(100.0), BudgetDuration: ptr("monthly"),
		Metadata: store.JSON(`{"business_unit_id": "BU-42"}`)})
	if err != nil {
		t.Fatal(err)
	}
	profile, err := st.CreateBudget(ctx, testActor, store.BudgetSpec{Name: "small", MaxBudget: ptr(50.0)})
	if err != nil {
		t.Fatal(err)
	}
	f.research, err = st.CreateTeam(ctx, testActor, store.TeamSpec{Name: "research", BudgetID: &profile.ID})
	if err != nil {
		t.Fatal(err)
	}
	f.idle = mustTeam(t, st, "idle")
	f.gone = mustTeam(t, st, "gone")
	f.web, _ = mustKey(t, st, store.KeySpec{Alias: "web", TeamID: &f.growth.ID})
	f.hinted, _ = mustKey(t, st, store.KeySpec{TeamID: &f.growth.ID})
	f.lab, _ = mustKey(t, st, store.KeySpec{Alias: "lab", TeamID: &f.research.ID})
	f.dropped, _ = mustKey(t, st, store.KeySpec{Alias: "dropped", TeamID: &f.research.ID})

	n := 0
	log := func(at string, team *store.Team, key *store.Key, model string, in, out int64, cost float64) store.SpendLog {
		n++
		l := store.SpendLog{RequestID: fmt.Sprintf("cb-%d", n), CreatedAt: day(at), Model: model, Provider: "openai",
			InputTokens: in, OutputTokens: out, Cost: cost, Status: store.StatusSuccess, StatusCode: 200}
		if team != nil {
			l.TeamID = &team.ID
		}
		if key != nil {
			l.KeyID = &key.ID
		}
		return l
	}
	logs := []store.SpendLog{
		// February 2031: 28 days, over.
		log("2031-02-01 09:00", f.growth, f.web, "gpt-4o", 100, 10, 1.0),
		log("2031-02-01 10:00", f.growth, f.web, "gpt-4o", 200, 20, 1.0),
		log("2031-02-15 10:00", f.growth, f.hinted, "gpt-4o-mini", 50, 5, 0.5),
		log("2031-02-28 23:59", f.research, f.lab, "gpt-4o", 10, 1, 2.0),
		// March 2031, as of the 10th.
		log("2031-03-01 08:00", f.growth, f.web, "gpt-4o", 1000, 100, 7.0),
		log("2031-03-05 08:00", f.growth, f.hinted, "gpt-4o-mini", 10, 1, 1.4),
		log("2031-03-10 08:00", f.growth, f.web, "gpt-4o-mini", 20, 2, 2.1),
		log("2031-03-09 08:00", f.research, f.dropped, "gpt-4o", 30, 3, 0.7),
		log("2031-03-10 01:00", nil, nil, "gpt-4o", 5, 5, 0.07),
		log("2031-03-06 01:00", f.gone, nil, "gpt-4o", 1, 1, 0.3),
		// After the fixed now: not part of the month so far.
		log("2031-03-20 08:00", f.growth, f.web, "gpt-4o", 1, 1, 99.0),
	}
	if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteKey(ctx, testActor, f.dropped.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteTeam(ctx, testActor, f.gone.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

func teamRow(t *testing.T, rep *store.ChargebackReport, name string) store.ChargebackTeam {
	t.Helper()
	for _, r := range rep.Teams {
		if r.Team == name {
			return r
		}
	}
	t.Fatalf("no chargeback row %q in %+v", name, rep.Teams)
	return store.ChargebackTeam{}
}

func TestChargebackCurrentMonth(t *testing.T) {
	st, ctx := newStore(t)
	f := newChargebackFixture(t, st)

	now := day("2031-03-10 12:00")
	rep, err := st.Chargeback(ctx, day("2031-03-17 00:00"), now)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Period != "2031-03" || rep.Complete || rep.DaysInMonth != 31 || rep.DaysElapsed != 10 || rep.ForecastDays != 7 {
		t.Errorf("report header %+v", rep)
	}
	// Highest cost first; idle is listed with nothing.
	var order []string
	for _, r := range rep.Teams {
		order = append(order, r.Team)
	}
	if fmt.Sprint(order) != "[growth research (deleted team) (no team) idle]" {
		t.Errorf("teams %v", order)
	}

	growth := teamRow(t, rep, "growth")
	// 7.0 + 1.4 + 2.1 to date; the window (Mar 4 – 10) holds 3.5, 0.5 a day,
	// for 21 more days.
	if !approxEqual(growth.Cost, 10.5) || !approxEqual(growth.SpendToDate, 10.5) || !approxEqual(growth.DailyAverage, 0.5) ||
		!approxEqual(growth.Forecast, 21.0) {
		t.Errorf("growth cost %v to date %v average %v forecast %v", growth.Cost, growth.SpendToDate, growth.DailyAverage, growth.Forecast)
	}
	if growth.Requests != 3 || growth.InputTokens != 1030 || growth.OutputTokens != 103 {
		t.Errorf("growth usage %+v", growth.ChargebackUsage)
	}
	if growth.BusinessUnit != "BU-42" || growth.MaxBudget == nil || *growth.MaxBudget != 100 || *growth.BudgetDuration != "monthly" {
		t.Errorf("growth budget %v unit %q", growth.MaxBudget, growth.BusinessUnit)
	}
	if len(growth.Models) != 2 || growth.Models[0].Model != "gpt-4o" || !approxEqual(growth.Models[0].Cost, 7.0) ||
		growth.Models[1].Model != "gpt-4o-mini" || !approxEqual(growth.Models[1].Cost, 3.5) || growth.Models[1].Requests != 2 {
		t.Errorf("growth by model %+v", growth.Models)
	}
	if len(growth.Keys) != 2 || growth.Keys[0].Key != "web" || !approxEqual(growth.Keys[0].Cost, 9.1) ||
		growth.Keys[1].Key != f.hinted.Hint || !approxEqual(growth.Keys[1].Cost, 1.4) {
		t.Errorf("growth by key %+v", growth.Keys)
	}
	if len(growth.Lines) != 3 || growth.Lines[0].Model != "gpt-4o" || growth.Lines[0].Key != "web" || *growth.Lines[0].KeyID != f.web.ID {
		t.Errorf("growth lines %+v", growth.Lines)
	}

	research := teamRow(t, rep, "research")
	if !approxEqual(research.Cost, 0.7) || !approxEqual(research.Forecast, 0.7+0.1*21) || research.MaxBudget == nil || *research.MaxBudget != 50 {
		t.Errorf("research cost %v forecast %v budget %v (from its profile)", research.Cost, research.Forecast, research.MaxBudget)
	}
	if research.BusinessUnit != "research" || len(research.Keys) != 1 || research.Keys[0].Key != store.DeletedKey {
		t.Errorf("research unit %q keys %+v", research.BusinessUnit, research.Keys)
	}
	none := teamRow(t, rep, store.NoTeam)
	if none.TeamID != nil || !approxEqual(none.Cost, 0.07) || !approxEqual(none.Forecast, 0.28) || none.Keys[0].Key != store.NoKey {
		t.Errorf("no team row %+v", none)
	}
	gone := teamRow(t, rep, store.DeletedTeam)
	if gone.TeamID == nil || *gone.TeamID != f.gone.ID || !approxEqual(gone.Cost, 0.3) {
		t.Errorf("deleted team row %+v", gone)
	}
	idle := teamRow(t, rep, "idle")
	if idle.Cost != 0 || idle.Forecast != 0 || idle.Lines == nil || len(idle.Lines) != 0 {
		t.Errorf("idle row %+v", idle)
	}
	if !approxEqual(rep.Cost, 10.5+0.7+0.07+0.3) || rep.Requests != 6 || !approxEqual(rep.Forecast, 21+2.8+0.28+0.3+0.3/7*21) {
		t.Errorf("totals cost %v requests %d forecast %v", rep.Cost, rep.Requests, rep.Forecast)
	}

	// Early in a month the average is over the days it has had.
	rep, err = st.Chargeback(ctx, now, day("2031-03-03 06:00"))
	if err != nil {
		t.Fatal(err)
	}
	growth = teamRow(t, rep, "growth")
	if rep.ForecastDays != 3 || !approxEqual(growth.Cost, 7.0) || !approxEqual(growth.Forecast, 7.0+7.0/3*28) {
		t.Errorf("on the 3rd: %d days, cost %v forecast %v", rep.ForecastDays, growth.Cost, growth.Forecast)
	}
}

func TestChargebackPastMonth(t *testing.T) {
	st, ctx := newStore(t)
	newChargebackFixture(t, st)
	rep, err := st.Chargeback(ctx, day("2031-02-01 00:00"), day("2031-03-10 12:00"))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Complete || rep.DaysInMonth != 28 || rep.ForecastDays != 0 {
		t.Errorf("header %+v", rep)
	}
	growth := teamRow(t, rep, "growth")
	if !approxEqual(growth.Cost, 2.5) || !approxEqual(growth.Forecast, 2.5) || growth.DailyAverage != 0 || growth.Requests != 3 {
		t.Errorf("growth %+v", growth)
	}
	research := teamRow(t, rep, "research")
	if !approxEqual(research.Cost, 2.0) || !approxEqual(research.Forecast, 2.0) {
		t.Errorf("research %+v", research)
	}
	if !approxEqual(rep.Cost, 4.5) || !approxEqual(rep.Forecast, 4.5) {
		t.Errorf("totals %v %v", rep.Cost, rep.Forecast)
	}
	// A team made after a month is listed for it only with spend in it.
	if _, err := st.DB().Exec(`UPDATE teams SET created_at = '2031-04-02' WHERE name IN ('idle', 'growth')`); err != nil {
		t.Fatal(err)
	}
	rep, err = st.Chargeback(ctx, day("2031-02-01 00:00"), day("2031-04-10 12:00"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Teams {
		if r.Team == "idle" {
			t.Error("a team made after the month is listed without spend")
		}
	}
	teamRow(t, rep, "growth")
}

func TestChargebackPeriods(t *testing.T) {
	st, ctx := newStore(t)
	_, err := st.Chargeback(ctx, day("2031-04-01 00:00"), day("2031-03-31 23:00"))
	if ve := asValidation(t, err); ve.Field != "period" {
		t.Errorf("future month: field %q", ve.Field)
	}
	for _, bad := range []string{"", "2031", "2031-13", "2031-3", "03-2031", "2031-03-01"} {
		if _, err := store.ParsePeriod("period", bad); err == nil {
			t.Errorf("period %q accepted", bad)
		} else if ve := (*store.ValidationError)(nil); !errors.As(err, &ve) || ve.Field != "period" {
			t.Errorf("period %q: %v", bad, err)
		}
	}
	m, err := store.ParsePeriod("period", "2031-03")
	if err != nil || !m.Equal(day("2031-03-01 00:00")) {
		t.Errorf("2031-03: %v %v", m, err)
	}
}
