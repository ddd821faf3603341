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

func (s *Server) spendPages(r *mux.Router) {
	r.HandleFunc("/spend", s.spendPage).Methods(http.MethodGet)
}

func (s *Server) auditPages(r *mux.Router) {
	r.HandleFunc("/audit", s.auditPage).Methods(http.MethodGet)
	// Exports reuse the API's handler, behind the session instead of a bearer.
	r.HandleFunc("/audit/export", s.auditLogs).Methods(http.MethodGet)
}

// dashboardPage reads only the daily rollups, so it stays fast however
// many spend logs there are.
func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := time.Now().UTC()
	var f store.RollupFilter
	totals, err := s.st.SpendTotals(ctx, now, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from, to := today.AddDate(0, 0, -29), today.AddDate(0, 0, 1)
	byTeam, err := s.st.DailySpend(ctx, "team", from, to, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	byModel, err := s.st.DailySpend(ctx, "model", from, to, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	top, err := s.st.TopKeys(ctx, from, to, 10, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	alerts, err := s.alertRows(r, 5)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	v := views.DashboardView{
		Alerts: alerts,
		Stats: []views.Stat{
			{Label: "Spend today", Value: views.Money(totals.Today.Cost), Detail: views.Count(totals.Today.Requests) + " requests"},
			{Label: "This week", Value: views.Money(totals.Week.Cost), Detail: views.Count(totals.Week.Requests) + " requests"},
			{Label: "This month", Value: views.Money(totals.Month.Cost), Detail: views.Count(totals.Month.Requests) + " requests"},
			{Label: "Tokens this month", Value: views.Count(totals.Month.InputTokens + totals.Month.OutputTokens),
				Detail: views.Count(totals.Month.InputTokens) + " in · " + views.Count(totals.Month.OutputTokens) + " out"},
			{Label: "Error rate this month", Value: views.Percent(totals.MonthErrorRate), Detail: views.Count(totals.Month.Failures) + " failed"},
		},
		ByTeam:  views.NewChart("Spend per day by team", from, today, chartPoints(byTeam)),
		ByModel: views.NewChart("Spend per day by model", from, today, chartPoints(byModel)),
	}
	for _, k := range top {
		name := k.Alias
		if name == "" {
			name = k.Hint
		}
		if name == "" {
			name = "(deleted key)"
		}
		v.TopKeys = append(v.TopKeys, views.TopKey{Name: name, Team: k.TeamName, Cost: views.Money(k.Cost), Requests: views.Count(k.Requests)})
	}
	s.page(w, r, "Dashboard", "dashboard", views.DashboardPage(v))
}

func chartPoints(points []store.DailySpendPoint) []views.SeriesPoint {
	out := make([]views.SeriesPoint, len(points))
	for i, p := range points {
		out[i] = views.SeriesPoint{Day: p.Day, Key: p.Key, Name: p.Name, Value: p.Cost}
	}
	return out
}

func (s *Server) spendPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := views.SpendView{Filters: views.SpendFilters{TeamID: q.Get("team_id"), KeyID: q.Get("key_id"), Model: q.Get("model"),
		Status: q.Get("status"), From: q.Get("from"), To: q.Get("to")}}
	teams, _, err := s.st.ListTeams(r.Context(), store.TeamFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	teamNames := map[string]string{}
	for _, t := range teams {
		teamNames[t.ID] = t.Name
		v.Teams = append(v.Teams, views.Option{Value: t.ID, Label: t.Name})
	}
	keys, _, err := s.st.ListKeys(r.Context(), store.KeyFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	keyNames := map[string]string{}
	for _, k := range keys {
		name := k.Hint
		if k.Alias != "" {
			name = k.Alias + " (" + k.Hint + ")"
		}
		keyNames[k.ID] = name
		v.Keys = append(v.Keys, views.Option{Value: k.ID, Label: name})
	}
	if models, err := s.st.AllModels(r.Context()); err == nil {
		seen := map[string]bool{}
		for _, m := range models {
			if !seen[m.ModelName] {
				seen[m.ModelName] = true
				v.Models = append(v.Models, m.ModelName)
			}
		}
	}
	f, err := spendFilter(r)
	if err == nil {
		f.Page.Limit = 50
		var logs []store.SpendLog
		var next string
		if logs, next, err = s.st.ListSpendLogs(r.Context(), f); err == nil {
			for _, l := range logs {
				v.Rows = append(v.Rows, spendRow(l, keyNames, teamNames))
			}
			if next != "" {
				q.Set("cursor", next)
				v.NextPage = q.Encode()
			}
		}
	}
	if err != nil {
		if v.Error, err = userMessage(err); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	s.page(w, r, "Spend logs", "spend", views.SpendPage(v))
}

func spendRow(l store.SpendLog, keyNames, teamNames map[string]string) views.SpendRow {
	row := views.SpendRow{When: l.CreatedAt.UTC().Format("2006-01-02 15:04:05"), RequestID: l.RequestID, Model: l.Model, Provider: l.Provider,
		Tokens: views.Count(l.InputTokens) + " / " + views.Count(l.OutputTokens), Cost: views.Money(l.Cost),
		Latency: fmt.Sprintf("%d ms", l.LatencyMS), Status: fmt.Sprintf("%s %d", l.Status, l.StatusCode), Error: l.Error,
		Failed: l.Status == store.StatusFailure, Guardrails: guardrailHitsText(l.Guardrails)}
	if l.KeyID != nil {
		row.Key = keyNames[*l.KeyID]
	}
	if l.TeamID != nil {
		row.Team = teamNames[*l.TeamID]
	}
	return row
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := views.AuditView{Actor: q.Get("actor"), Action: q.Get("action"), Resource: q.Get("resource"), From: q.Get("from"), To: q.Get("to")}
	export := url.Values{}
	for _, k := range []string{"actor", "action", "resource", "from", "to"} {
		if q.Get(k) != "" {
			export.Set(k, q.Get(k))
		}
	}
	export.Set("limit", "1000")
	export.Set("format", "csv")
	v.ExportCSV = "/audit/export?" + export.Encode()
	export.Set("format", "json")
	v.ExportJSON = "/audit/export?" + export.Encode()

	f := store.AuditFilter{Actor: v.Actor, Action: v.Action, Resource: v.Resource, Page: store.Page{Limit: 50, Cursor: q.Get("cursor")}}
	var err error
	if f.From, err = timeParam(r, "from"); err == nil {
		f.To, err = timeParam(r, "to")
	}
	var rows []store.AuditEntry
	var next string
	if err == nil {
		rows, next, err = s.st.ListAudit(r.Context(), f)
	}
	if err != nil {
		if v.Error, err = userMessage(err); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	for _, a := range rows {
		before, _ := a.Before.MarshalJSON()
		after, _ := a.After.MarshalJSON()
		v.Rows = append(v.Rows, views.AuditRow{When: a.CreatedAt.UTC().Format("2006-01-02 15:04:05"), Actor: a.Actor, Action: a.Action,
			Resource: a.ResourceType + " " + a.ResourceID, Before: string(before), After: string(after)})
	}
	if next != "" {
		q.Set("cursor", next)
		v.NextPage = q.Encode()
	}
	s.page(w, r, "Audit log", "audit", views.AuditPage(v))
}
