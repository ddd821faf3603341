package admin

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"tollgate/store"
)

// budgetRoutes serve budget profiles, the global budget and budget alerts.
func (s *Server) budgetRoutes(r *mux.Router) {
	register(s, r, "/budgets", resource[store.BudgetSpec, store.Budget]{
		defaults: func() store.BudgetSpec { return store.BudgetSpec{} },
		create:   s.st.CreateBudget,
		get:      s.st.GetBudget,
		list: func(r *http.Request, page store.Page) ([]store.Budget, string, error) {
			return s.st.ListBudgets(r.Context(), page)
		},
		update: s.st.UpdateBudget,
		remove: s.st.DeleteBudget,
	})
	r.HandleFunc("/global-budget", s.getGlobalBudget).Methods(http.MethodGet).Name("global-budget.get")
	r.HandleFunc("/global-budget", s.updateGlobalBudget).Methods(http.MethodPatch).Name("global-budget.update")
	r.HandleFunc("/budget-alerts", s.budgetAlerts).Methods(http.MethodGet).Name("budget-alerts.list")
}

func (s *Server) getGlobalBudget(w http.ResponseWriter, r *http.Request) {
	g, err := s.st.GetGlobalBudget(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) updateGlobalBudget(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	g, err := s.st.UpdateGlobalBudget(r.Context(), principalFrom(r.Context()).Actor, func(spec *store.GlobalBudgetSpec) error {
		return decodeInto(body, spec)
	})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// budgetAlerts lists the newest alerts (limit, default 100, at most 1000).
func (s *Server) budgetAlerts(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.writeErr(w, r, &store.ValidationError{Field: "limit", Message: "limit must be a number from 1 to 1000"})
			return
		}
		limit = n
	}
	alerts, err := s.st.RecentAlerts(r.Context(), limit)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeList(w, alerts, "")
}
