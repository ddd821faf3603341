package admin_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

func TestDashboardChargeback(t *testing.T) {
	e := newEnv(t)
	past, _, research := chargebackSpend(e)
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/teams/"+research, obj{"max_budget": 1})
	now := time.Now().UTC()
	period, current := past.Format("2006-01"), now.Format("2006-01")
	b := e.browser()
	b.signIn()

	resp, body := b.send("GET", "/chargeback", nil, false)
	wantPage(t, resp, body, "/chargeback")
	for _, want := range []string{
		`href="/chargeback" aria-current="page"`, now.Format("January 2006"), "business unit BU-42", `<rect class="bar series-1"`,
		"Forecast to month end", "Breakdown of growth by model and key", `href="/chargeback.csv?period=` + current + `"`,
		`href="/chargeback?period=` + store.MonthOf(now).AddDate(0, -1, 0).Format("2006-01") + `"`, `max="` + current + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("current month page lacks %q", want)
		}
	}
	if strings.Contains(body, "Next month") {
		t.Error("the current month links to the next")
	}

	_, body = b.send("GET", "/chargeback?period="+period, nil, false)
	for _, want := range []string{past.Format("January 2006"), "The month is closed", "Next month", "$3.75", "$5.38", "(no team)",
		`<span data-level="over" class="budget-share">150%</span>`, "over budget"} {
		if !strings.Contains(body, want) {
			t.Errorf("past month page lacks %q", want)
		}
	}

	// A bad period is explained; the page shows the current month.
	for bad, msg := range map[string]string{
		"2026-13": "period must be a month as YYYY-MM",
		store.MonthOf(now).AddDate(0, 2, 0).Format("2006-01"): "has not started yet",
	} {
		resp, body := b.send("GET", "/chargeback?period="+bad, nil, false)
		if resp.StatusCode != 200 || !strings.Contains(body, msg) || !strings.Contains(body, `aria-invalid="true"`) ||
			!strings.Contains(body, now.Format("January 2006")) {
			t.Errorf("period %s: %d", bad, resp.StatusCode)
		}
	}

	// The export streams the API's CSV behind the session.
	resp, body = b.send("GET", "/chargeback.csv?period="+period, nil, false)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != `attachment; filename="chargeback-`+period+`.csv"` ||
		!strings.HasPrefix(body, "period,team,business_unit,model,key,") || !strings.Contains(body, period+",growth,BU-42,gpt-4o,web,1,100,10,3,100,3.75") {
		t.Errorf("export: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	if resp, _ := b.send("GET", "/chargeback.csv?period=nope", nil, false); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("export of a bad period: %d", resp.StatusCode)
	}

	// Finance reads and exports it.
	fin, _ := e.roleKeys()
	b = e.browser()
	b.signInAs(fin)
	resp, body = b.send("GET", "/chargeback?period="+period, nil, false)
	wantPage(t, resp, body, "/chargeback")
	if !strings.Contains(body, "$3.75") || !strings.Contains(body, `href="/billing"`) {
		t.Error("finance chargeback page")
	}
	if resp, body := b.send("GET", "/chargeback.csv?period="+period, nil, false); resp.StatusCode != 200 || !strings.Contains(body, "growth") {
		t.Errorf("finance export: %d", resp.StatusCode)
	}
}

func TestDashboardChargebackEmpty(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.signIn()
	resp, body := b.send("GET", "/chargeback", nil, false)
	wantPage(t, resp, body, "/chargeback")
	if !strings.Contains(body, "No spend in") || strings.Contains(body, "<svg") || strings.Contains(body, `id="chargeback"`) {
		t.Errorf("empty chargeback page: %s", body)
	}
}
