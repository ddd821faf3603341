package admin

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tollgate/store"
)

// chargebackPeriod reads ?period=YYYY-MM; the current UTC month without one.
func chargebackPeriod(r *http.Request, now time.Time) (time.Time, error) {
	v := r.URL.Query().Get("period")
	if v == "" {
		return store.MonthOf(now), nil
	}
	return store.ParsePeriod("period", v)
}

// chargeback answers GET /api/v1/chargeback?period=YYYY-MM&format=json|csv:
// the month's spend per team, with budgets and forecasts. Admins and
// finance users may read it; members may not (authorize).
func (s *Server) chargeback(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		s.writeErr(w, r, &store.ValidationError{Field: "format", Message: "format must be json or csv"})
		return
	}
	s.writeChargeback(w, r, format == "csv")
}

// chargebackCSV is the dashboard's export: the same file behind the session.
func (s *Server) chargebackCSV(w http.ResponseWriter, r *http.Request) {
	s.writeChargeback(w, r, true)
}

func (s *Server) writeChargeback(w http.ResponseWriter, r *http.Request, asCSV bool) {
	now := time.Now()
	month, err := chargebackPeriod(r, now)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	rep, err := s.st.Chargeback(r.Context(), month, now)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !asCSV {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="chargeback-`+rep.Period+`.csv"`)
	writeChargebackCSV(w, rep)
}

// chargebackColumns head the CSV: one row per team × model × key; the
// team's budget and forecast repeat on each of its rows, for pivot tables.
var chargebackColumns = []string{"period", "team", "business_unit", "model", "key", "requests", "input_tokens", "output_tokens", "cost",
	"team_budget", "team_forecast"}

func writeChargebackCSV(w http.ResponseWriter, rep *store.ChargebackReport) {
	cw := csv.NewWriter(w)
	cw.Write(chargebackColumns)
	for _, t := range rep.Teams {
		budget := ""
		if t.MaxBudget != nil {
			budget = money(*t.MaxBudget)
		}
		row := func(model, key string, u store.ChargebackUsage) {
			cw.Write([]string{rep.Period, cell(t.Team), cell(t.BusinessUnit), cell(model), cell(key), strconv.FormatInt(u.Requests, 10),
				strconv.FormatInt(u.InputTokens, 10), strconv.FormatInt(u.OutputTokens, 10), money(u.Cost), budget, money(t.Forecast)})
		}
		if len(t.Lines) == 0 {
			// A team without spend still has its budget on the bill.
			row("", "", store.ChargebackUsage{})
		}
		for _, l := range t.Lines {
			row(l.Model, l.Key, l.ChargebackUsage)
		}
	}
	cw.Flush()
}

// cell keeps a spreadsheet from reading text as a formula: key aliases
// and business units are typed by users, and finance opens this file.
func cell(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}

// money writes USD as a plain decimal, to the rollups' ten places at most.
func money(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
