package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"tollgate/store"
	"tollgate/views"
)

func (s *Server) chargebackPages(r *mux.Router) {
	r.HandleFunc("/chargeback", s.chargebackPage).Methods(http.MethodGet)
	// The export is the API's CSV, behind the session instead of a bearer.
	r.HandleFunc("/chargeback.csv", s.chargebackCSV).Methods(http.MethodGet)
}

// chargebackPage shows one month's cost per team; a bad period typed into
// the address shows the current month and says what was wrong.
func (s *Server) chargebackPage(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	var msg string
	month, err := chargebackPeriod(r, now)
	if err != nil {
		if msg, err = userMessage(err); err != nil {
			s.writeErr(w, r, err)
			return
		}
		month = store.MonthOf(now)
	}
	rep, err := s.st.Chargeback(r.Context(), month, now)
	if err != nil {
		if msg, err = userMessage(err); err != nil {
			s.writeErr(w, r, err)
			return
		}
		if rep, err = s.st.Chargeback(r.Context(), store.MonthOf(now), now); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	s.page(w, r, "Chargeback", "chargeback", views.ChargebackPage(chargebackView(rep, now, msg)))
}

func chargebackView(rep *store.ChargebackReport, now time.Time, errMsg string) views.ChargebackView {
	latest := store.MonthOf(now)
	v := views.ChargebackView{Period: rep.Period, Label: rep.From.Format("January 2006"), Latest: latest.Format("2006-01"),
		Prev: rep.From.AddDate(0, -1, 0).Format("2006-01"), PrevLabel: rep.From.AddDate(0, -1, 0).Format("Jan 2006"), Current: !rep.Complete, Error: errMsg,
		Cost: views.Money(rep.Cost), Forecast: views.Money(rep.Forecast), Requests: views.Count(rep.Requests),
		Tokens: views.Count(rep.InputTokens + rep.OutputTokens), TokensSplit: tokensText(rep.InputTokens, rep.OutputTokens),
		ExportCSV: "/chargeback.csv?" + url.Values{"period": {rep.Period}}.Encode(), HasAnySpend: rep.Cost > 0 || rep.Requests > 0}
	if rep.From.Before(latest) {
		next := rep.From.AddDate(0, 1, 0)
		v.Next, v.NextLabel = next.Format("2006-01"), next.Format("Jan 2006")
	}
	if rep.Complete {
		v.Note = "The month is closed: the forecast is the cost."
	} else {
		left := rep.DaysInMonth - rep.DaysElapsed
		v.Note = fmt.Sprintf("Cost so far + the average of the last %s × %s left.", plural(rep.ForecastDays, "day"), plural(left, "day"))
	}
	bars := make([]views.TeamCost, 0, len(rep.Teams))
	for _, t := range rep.Teams {
		row := views.ChargebackTeamRow{ID: "none", Team: t.Team, Cost: views.Money(t.Cost), Requests: views.Count(t.Requests),
			Tokens: tokensText(t.InputTokens, t.OutputTokens), Forecast: views.Money(t.Forecast), Level: "ok"}
		if t.TeamID != nil {
			row.ID = *t.TeamID
		}
		if t.BusinessUnit != t.Team {
			row.BusinessUnit = t.BusinessUnit
		}
		if t.MaxBudget != nil {
			row.Budget = views.Money(*t.MaxBudget)
			if t.BudgetDuration != nil {
				row.BudgetPeriod = *t.BudgetDuration
			}
			row.Percent, row.ForecastPercent = budgetShare(t.Cost, *t.MaxBudget), budgetShare(t.Forecast, *t.MaxBudget)
			switch {
			case t.Cost >= *t.MaxBudget && t.Cost > 0:
				row.Level = "over"
			case t.Forecast > *t.MaxBudget:
				row.Level = "warn"
			}
		}
		for _, m := range t.Models {
			row.Models = append(row.Models, breakdownRow(m.Model, m.ChargebackUsage))
		}
		for _, k := range t.Keys {
			row.Keys = append(row.Keys, breakdownRow(k.Key, k.ChargebackUsage))
		}
		v.Teams = append(v.Teams, row)
		if t.Cost > 0 || t.Forecast > 0 {
			bars = append(bars, views.TeamCost{Name: t.Team, Cost: t.Cost, Forecast: t.Forecast})
		}
	}
	title := "Cost per team, " + v.Label
	if v.Current {
		title += ", with the forecast to month end"
	}
	v.Chart = views.NewCostChart(title, bars)
	return v
}

func breakdownRow(name string, u store.ChargebackUsage) views.BreakdownRow {
	return views.BreakdownRow{Name: name, Cost: views.Money(u.Cost), Requests: views.Count(u.Requests), Tokens: tokensText(u.InputTokens, u.OutputTokens)}
}

func tokensText(in, out int64) string {
	return views.Count(in) + " in · " + views.Count(out) + " out"
}

// budgetShare is spend as a percentage of a budget; a zero budget is
// spent by anything.
func budgetShare(spend, budget float64) string {
	if budget <= 0 {
		if spend > 0 {
			return "over 100%"
		}
		return "0%"
	}
	return fmt.Sprintf("%.0f%%", spend/budget*100)
}
