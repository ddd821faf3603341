package admin_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

// chargebackSpend bills two teams in a past month and in this one, with
// keys, and one request without a team. It returns the past month.
func chargebackSpend(e *env) (past time.Time, growth, research string) {
	e.t.Helper()
	growth, _ = e.create("/api/v1/teams", obj{"name": "growth", "max_budget": 100, "metadata": obj{"business_unit_id": "BU-42"}})
	research = e.newTeam("research")
	web := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"team_id": growth, "alias": "web"}).json["id"].(string)
	lab := e.must(http.StatusCreated, http.MethodPost, "/api/v1/keys", obj{"team_id": research, "alias": "lab"}).json["id"].(string)

	now := time.Now().UTC()
	past = store.MonthOf(now).AddDate(0, -2, 0)
	n := 0
	log := func(at time.Time, team, key *string, model string, cost float64) store.SpendLog {
		n++
		return store.SpendLog{RequestID: fmt.Sprintf("cb-%d", n), CreatedAt: at, TeamID: team, KeyID: key, Model: model, Provider: "openai",
			InputTokens: 100, OutputTokens: 10, Cost: cost, Status: store.StatusSuccess, StatusCode: 200}
	}
	logs := []store.SpendLog{
		log(past.Add(9*time.Hour), &growth, &web, "gpt-4o", 3.0),
		log(past.AddDate(0, 0, 3), &growth, &web, "gpt-4o-mini", 0.5),
		log(past.AddDate(0, 0, 10), &growth, &web, "gpt-4o-mini", 0.25),
		log(past.AddDate(0, 0, 20), &research, &lab, "gpt-4o", 1.5),
		log(past.AddDate(0, 0, 20), nil, nil, "gpt-4o", 0.125),
		// This month: today only.
		log(now.Add(-time.Minute), &growth, &web, "gpt-4o", 2.0),
	}
	if _, err := e.st.InsertSpendLogs(context.Background(), logs); err != nil {
		e.t.Fatal(err)
	}
	return past, growth, research
}

func teamOf(t *testing.T, rep obj, name string) obj {
	t.Helper()
	teams, _ := rep["teams"].([]any)
	for _, row := range teams {
		if r, _ := row.(obj); r["team"] == name {
			return r
		}
	}
	t.Fatalf("no team %q in %v", name, rep["teams"])
	return nil
}

// nearJSON reports whether a decoded JSON number is b.
func nearJSON(a any, b float64) bool {
	f, ok := a.(float64)
	return ok && near(f, b)
}

func TestChargebackJSON(t *testing.T) {
	e := newEnv(t)
	past, growth, _ := chargebackSpend(e)
	period := past.Format("2006-01")

	rep := e.must(http.StatusOK, http.MethodGet, "/api/v1/chargeback?period="+period, nil).json
	if rep["period"] != period || rep["complete"] != true || !nearJSON(rep["cost"], 5.375) || !nearJSON(rep["forecast"], 5.375) || rep["requests"] != 5.0 {
		t.Errorf("report %v", rep)
	}
	g := teamOf(t, rep, "growth")
	if g["team_id"] != growth || g["business_unit"] != "BU-42" || !nearJSON(g["cost"], 3.75) || !nearJSON(g["spend_to_date"], 3.75) ||
		!nearJSON(g["forecast"], 3.75) || !nearJSON(g["max_budget"], 100) || g["requests"] != 3.0 || g["input_tokens"] != 300.0 {
		t.Errorf("growth %v", g)
	}
	models, _ := g["models"].([]any)
	if len(models) != 2 || models[0].(obj)["model"] != "gpt-4o" || !nearJSON(models[0].(obj)["cost"], 3.0) ||
		!nearJSON(models[1].(obj)["cost"], 0.75) || models[1].(obj)["requests"] != 2.0 {
		t.Errorf("growth by model %v", models)
	}
	keys, _ := g["keys"].([]any)
	if len(keys) != 1 || keys[0].(obj)["key"] != "web" || !nearJSON(keys[0].(obj)["cost"], 3.75) {
		t.Errorf("growth by key %v", keys)
	}
	none := teamOf(t, rep, store.NoTeam)
	if none["team_id"] != nil || !nearJSON(none["cost"], 0.125) {
		t.Errorf("no team %v", none)
	}
	if r := teamOf(t, rep, "research"); r["max_budget"] != nil || !nearJSON(r["cost"], 1.5) {
		t.Errorf("research %v", r)
	}

	// The current month is the default; its forecast adds the daily
	// average of the last days times the days left.
	now := time.Now().UTC()
	cur := e.must(http.StatusOK, http.MethodGet, "/api/v1/chargeback", nil).json
	if cur["period"] != now.Format("2006-01") || cur["complete"] != false {
		t.Fatalf("current month %v", cur)
	}
	g = teamOf(t, cur, "growth")
	days := cur["forecast_days"].(float64)
	left := cur["days_in_month"].(float64) - cur["days_elapsed"].(float64)
	if days != math.Min(7, float64(now.Day())) || !nearJSON(g["cost"], 2.0) || !nearJSON(g["daily_average"], 2.0/days) ||
		!nearJSON(g["forecast"], 2.0+2.0/days*left) {
		t.Errorf("current growth %v over %v days, %v left", g, days, left)
	}
	if r := teamOf(t, cur, "research"); r["cost"] != 0.0 || r["forecast"] != 0.0 {
		t.Errorf("research this month %v", r)
	}

	for _, bad := range []string{"2026-13", "last-month", "2026-1"} {
		wantError(t, e.do(http.MethodGet, "/api/v1/chargeback?period="+bad, nil), http.StatusBadRequest, "invalid_request", "period", "YYYY-MM")
	}
	future := store.MonthOf(now).AddDate(0, 1, 0).Format("2006-01")
	wantError(t, e.do(http.MethodGet, "/api/v1/chargeback?period="+future, nil), http.StatusBadRequest, "invalid_request", "period")
	wantError(t, e.do(http.MethodGet, "/api/v1/chargeback?format=xml", nil), http.StatusBadRequest, "invalid_request", "format")
}

func TestChargebackCSV(t *testing.T) {
	e := newEnv(t)
	past, _, _ := chargebackSpend(e)
	period := past.Format("2006-01")
	e.create("/api/v1/keys", obj{"team_id": e.newTeam("spreadsheet"), "alias": "=HYPERLINK(\"x\")"})

	fin, _ := e.roleKeys()
	r := e.doAuth(http.MethodGet, "/api/v1/chargeback?format=csv&period="+period, fin, nil)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
		r.header.Get("Content-Disposition") != `attachment; filename="chargeback-`+period+`.csv"` {
		t.Fatalf("csv: %d %v", r.status, r.header)
	}
	records, err := csv.NewReader(strings.NewReader(r.raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := "period,team,business_unit,model,key,requests,input_tokens,output_tokens,cost,team_budget,team_forecast"
	if strings.Join(records[0], ",") != want {
		t.Errorf("columns %v", records[0])
	}
	rows := map[string][]string{}
	for _, rec := range records[1:] {
		rows[rec[1]+"/"+rec[3]+"/"+rec[4]] = rec
	}
	for key, want := range map[string]string{
		"growth/gpt-4o/web":         period + ",growth,BU-42,gpt-4o,web,1,100,10,3,100,3.75",
		"growth/gpt-4o-mini/web":    period + ",growth,BU-42,gpt-4o-mini,web,2,200,20,0.75,100,3.75",
		"research/gpt-4o/lab":       period + ",research,research,gpt-4o,lab,1,100,10,1.5,,1.5",
		"(no team)/gpt-4o/(no key)": period + ",(no team),,gpt-4o,(no key),1,100,10,0.125,,0.125",
	} {
		if got := strings.Join(rows[key], ","); got != want {
			t.Errorf("row %s: %q, want %q", key, got, want)
		}
	}
	// Teams made since are not on that month's bill.
	if len(records) != 5 {
		t.Errorf("%d rows, want a header and 4", len(records))
	}

	// Text typed by users cannot become a spreadsheet formula.
	now := time.Now().UTC()
	var keyID string
	e.st.DB().Get(&keyID, `SELECT id FROM keys WHERE alias LIKE '=%'`)
	var teamID string
	e.st.DB().Get(&teamID, `SELECT id FROM teams WHERE name = 'spreadsheet'`)
	if _, err := e.st.InsertSpendLogs(context.Background(), []store.SpendLog{{RequestID: "formula", CreatedAt: now, TeamID: &teamID, KeyID: &keyID,
		Model: "gpt-4o", Cost: 1, Status: store.StatusSuccess, StatusCode: 200}}); err != nil {
		t.Fatal(err)
	}
	r = e.do(http.MethodGet, "/api/v1/chargeback?format=csv", nil)
	if r.header.Get("Content-Disposition") != `attachment; filename="chargeback-`+now.Format("2006-01")+`.csv"` {
		t.Errorf("current month csv: %v", r.header)
	}
	if !strings.Contains(r.raw, `,spreadsheet,spreadsheet,gpt-4o,"'=HYPERLINK(""x"")",1,0,0,1,,`) {
		t.Errorf("formula alias not defused:\n%s", r.raw)
	}
	// A team without spend still has its row, with its budget.
	if !strings.Contains(r.raw, now.Format("2006-01")+",members-team,members-team,,,0,0,0,0,,0\n") {
		t.Errorf("no row for a team without spend:\n%s", r.raw)
	}
}
