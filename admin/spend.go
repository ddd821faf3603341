package admin

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"tollgate/store"
)

func spendFilter(r *http.Request) (store.SpendFilter, error) {
	q := r.URL.Query()
	f := store.SpendFilter{TeamID: q.Get("team_id"), KeyID: q.Get("key_id"), UserID: q.Get("user_id"), Model: q.Get("model"), Status: q.Get("status")}
	if p := principalFrom(r.Context()); p.Role == store.RoleMember {
		f.UserID = p.UserID // members see the spend of their own keys only
	}
	var err error
	if f.Page, err = pageOf(r); err != nil {
		return f, err
	}
	if f.From, err = timeParam(r, "from"); err != nil {
		return f, err
	}
	f.To, err = timeParam(r, "to")
	return f, err
}

func (s *Server) spendLogs(w http.ResponseWriter, r *http.Request) {
	f, err := spendFilter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	rows, next, err := s.st.ListSpendLogs(r.Context(), f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeList(w, rows, next)
}

func (s *Server) spendReport(w http.ResponseWriter, r *http.Request) {
	f, err := spendFilter(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	groupBy := r.URL.Query().Get("group_by")
	if groupBy == "" {
		groupBy = "team"
	}
	rows, err := s.st.SpendReport(r.Context(), groupBy, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"group_by": groupBy, "data": rows})
}

func (s *Server) auditLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Resource: q.Get("resource")}
	var err error
	if f.Page, err = pageOf(r); err == nil {
		if f.From, err = timeParam(r, "from"); err == nil {
			f.To, err = timeParam(r, "to")
		}
	}
	format := q.Get("format")
	if err == nil && format != "" && format != "json" && format != "csv" {
		err = &store.ValidationError{Field: "format", Message: "format must be json or csv"}
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	rows, next, err := s.st.ListAudit(r.Context(), f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if format != "csv" {
		writeList(w, rows, next)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="tollgate-audit.csv"`)
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "created_at", "actor", "action", "resource_type", "resource_id", "before", "after"})
	for _, a := range rows {
		before, _ := a.Before.MarshalJSON()
		after, _ := a.After.MarshalJSON()
		cw.Write([]string{strconv.FormatInt(a.ID, 10), a.CreatedAt.UTC().Format(time.RFC3339Nano), a.Actor, a.Action,
			a.ResourceType, a.ResourceID, string(before), string(after)})
	}
	cw.Flush()
}
