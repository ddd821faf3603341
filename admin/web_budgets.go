package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"tollgate/store"
	"tollgate/views"
)

// budgetFieldsFrom reads the budget and limit inputs forms share, as typed.
// A custom period is typed next to the period select.
func budgetFieldsFrom(r *http.Request) views.BudgetFields {
	period := strings.TrimSpace(r.PostFormValue("budget_duration"))
	if period == "custom" {
		if custom := strings.TrimSpace(r.PostFormValue("budget_duration_custom")); custom != "" {
			period = custom
		}
	}
	return views.BudgetFields{MaxBudget: r.PostFormValue("max_budget"), SoftBudget: r.PostFormValue("soft_budget"), Period: period,
		BudgetID: r.PostFormValue("budget_id"), RPM: r.PostFormValue("rpm_limit"), TPM: r.PostFormValue("tpm_limit"),
		Parallel: r.PostFormValue("max_parallel_requests")}
}

// budgetInput is the shared inputs once parsed; an empty input is nil.
type budgetInput struct {
	store.Limits
	BudgetID *string
}

func parseBudgetFields(f views.BudgetFields) (budgetInput, error) {
	var in budgetInput
	var err error
	if in.MaxBudget, err = optionalFloat("max_budget", f.MaxBudget); err != nil {
		return in, err
	}
	if in.SoftBudget, err = optionalFloat("soft_budget", f.SoftBudget); err != nil {
		return in, err
	}
	switch f.Period {
	case "":
	case "custom":
		return in, &store.ValidationError{Field: "budget_duration", Message: "type the custom budget period, such as 30d or 12h"}
	default:
		period := f.Period
		if err := store.ValidateBudgetDuration("budget_duration", &period); err != nil {
			return in, err
		}
		in.BudgetDuration = &period
	}
	if id := strings.TrimSpace(f.BudgetID); id != "" {
		in.BudgetID = &id
	}
	if in.RPMLimit, err = optionalInt("rpm_limit", f.RPM); err != nil {
		return in, err
	}
	if in.TPMLimit, err = optionalInt("tpm_limit", f.TPM); err != nil {
		return in, err
	}
	in.MaxParallelRequests, err = optionalInt("max_parallel_requests", f.Parallel)
	return in, err
}

// budgetFieldsOf shows stored settings in the shared inputs.
func budgetFieldsOf(max, soft *float64, period, budgetID *string, rpm, tpm, parallel *int64) views.BudgetFields {
	f := views.BudgetFields{MaxBudget: floatText(max), SoftBudget: floatText(soft), RPM: intText(rpm), TPM: intText(tpm), Parallel: intText(parallel)}
	if period != nil {
		f.Period = *period
	}
	if budgetID != nil {
		f.BudgetID = *budgetID
	}
	return f
}

func floatText(v *float64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatFloat(*v, 'f', -1, 64)
}

func intText(v *int64) string {
	if v == nil {
		return ""
	}
	return strconv.FormatInt(*v, 10)
}

// parseModelLimits reads per-model limits typed one model=limit a line.
func parseModelLimits(field, text string) (store.ModelLimits, error) {
	out := store.ModelLimits{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		at := strings.LastIndex(line, "=")
		if at < 0 {
			return nil, &store.ValidationError{Field: field, Message: fmt.Sprintf("line %d (%q) must look like model=limit, e.g. gpt-4o=60", i+1, line)}
		}
		model, limit := strings.TrimSpace(line[:at]), strings.TrimSpace(line[at+1:])
		n, err := strconv.ParseInt(limit, 10, 64)
		switch {
		case model == "" || err != nil:
			return nil, &store.ValidationError{Field: field, Message: fmt.Sprintf("line %d (%q) must look like model=limit, e.g. gpt-4o=60", i+1, line)}
		case n < 0:
			return nil, &store.ValidationError{Field: field, Message: fmt.Sprintf("line %d: the limit of %s must not be negative", i+1, model)}
		}
		if _, twice := out[model]; twice {
			return nil, &store.ValidationError{Field: field, Message: fmt.Sprintf("line %d: %s is listed twice", i+1, model)}
		}
		out[model] = n
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// modelLimitsText writes per-model limits one model=limit a line.
func modelLimitsText(m store.ModelLimits) string {
	models := make([]string, 0, len(m))
	for model := range m {
		models = append(models, model)
	}
	slices.Sort(models)
	lines := make([]string, len(models))
	for i, model := range models {
		lines[i] = model + "=" + strconv.FormatInt(m[model], 10)
	}
	return strings.Join(lines, "\n")
}

// usageOf is spend against the effective budget: amber from the soft
// budget (or 80% of the max without one), red from the max budget.
func usageOf(spend float64, l store.Limits, resetAt *time.Time, now time.Time) views.Usage {
	u := views.Usage{Spend: views.Money(spend), Level: "ok"}
	if l.SoftBudget != nil {
		u.Soft = views.Money(*l.SoftBudget)
	}
	if l.MaxBudget != nil {
		u.Max = views.Money(*l.MaxBudget)
		u.Percent = 100
		if *l.MaxBudget > 0 {
			u.Percent = min(100, int(spend / *l.MaxBudget * 100))
		}
	}
	switch {
	case l.MaxBudget != nil && spend >= *l.MaxBudget:
		u.Level = "over"
	case l.SoftBudget != nil && spend >= *l.SoftBudget:
		u.Level = "warn"
	case l.SoftBudget == nil && l.MaxBudget != nil && spend >= *l.MaxBudget*0.8:
		u.Level = "warn"
	}
	if l.BudgetDuration != nil {
		switch {
		case resetAt == nil:
			u.Resets = *l.BudgetDuration // the reset job sets the time shortly
		case resetAt.After(now):
			u.Resets = views.Relative(*resetAt, now)
			u.ResetsAt = views.When(resetAt) + " (" + *l.BudgetDuration + ")"
		default:
			u.Resets, u.ResetsAt = "shortly", views.When(resetAt)+" ("+*l.BudgetDuration+")"
		}
	}
	return u
}

// limitsText lists rate limits compactly: "60 rpm · 100k tpm · 4 parallel".
func limitsText(l store.Limits, perModel int, profile string) string {
	var parts []string
	if l.RPMLimit != nil {
		parts = append(parts, views.Compact(*l.RPMLimit)+" rpm")
	}
	if l.TPMLimit != nil {
		parts = append(parts, views.Compact(*l.TPMLimit)+" tpm")
	}
	if l.MaxParallelRequests != nil {
		parts = append(parts, views.Compact(*l.MaxParallelRequests)+" parallel")
	}
	switch perModel {
	case 0:
	case 1:
		parts = append(parts, "1 model limit")
	default:
		parts = append(parts, fmt.Sprintf("%d model limits", perModel))
	}
	if profile != "" {
		parts = append(parts, "profile "+profile)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " · ")
}

// perModelCount is how many models have a limit of their own.
func perModelCount(rpm, tpm store.ModelLimits) int {
	n := len(rpm)
	for model := range tpm {
		if _, both := rpm[model]; !both {
			n++
		}
	}
	return n
}

// budgetProfiles are the profiles by id and as choices of a select.
type budgetProfiles struct {
	byID    map[string]*store.Budget
	options []views.Option
}

func (s *Server) loadProfiles(r *http.Request) (budgetProfiles, error) {
	all, err := s.st.AllBudgets(r.Context())
	if err != nil {
		return budgetProfiles{}, err
	}
	p := budgetProfiles{byID: map[string]*store.Budget{}, options: []views.Option{}}
	for i := range all {
		p.byID[all[i].ID] = &all[i]
		p.options = append(p.options, views.Option{Value: all[i].ID, Label: all[i].Name})
	}
	return p, nil
}

// of is the profile id points to (nil without one).
func (p budgetProfiles) of(id *string) *store.Budget {
	if id == nil {
		return nil
	}
	return p.byID[*id]
}

func (p budgetProfiles) name(id *string) string {
	if b := p.of(id); b != nil {
		return b.Name
	}
	return ""
}

// adminOnly refuses anyone but an admin, saying only admins change what;
// it reports whether to go on.
func adminOnly(w http.ResponseWriter, r *http.Request, what string) bool {
	if principalFrom(r.Context()).Role != store.RoleAdmin {
		http.Error(w, "Only admins change "+what+".", http.StatusForbidden)
		return false
	}
	return true
}

func (s *Server) budgetPages(r *mux.Router) {
	r.HandleFunc("/budgets", s.budgetsPage).Methods(http.MethodGet)
	r.HandleFunc("/budgets", s.createProfileForm).Methods(http.MethodPost)
	r.HandleFunc("/budgets/global", s.updateGlobalBudgetForm).Methods(http.MethodPost)
	r.HandleFunc("/budgets/{id}/edit", s.editProfileDialog).Methods(http.MethodGet)
	r.HandleFunc("/budgets/{id}", s.updateProfileForm).Methods(http.MethodPost)
	r.HandleFunc("/budgets/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.deleteRow(w, r, func() error { return s.st.DeleteBudget(r.Context(), principalFrom(r.Context()).Actor, pathID(r)) }, "Budget profile deleted")
	}).Methods(http.MethodDelete)
}

func (s *Server) budgetsPage(w http.ResponseWriter, r *http.Request) {
	canWrite := s.viewSession(r.Context()).CanWrite
	g, err := s.globalBudgetView(r, canWrite)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	profiles, err := s.profileRows(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	alerts, err := s.alertRows(r, 50)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.page(w, r, "Budgets", "budgets", views.BudgetsPage(views.BudgetsView{Global: g, Profiles: profiles, Alerts: alerts, CanWrite: canWrite}))
}

func (s *Server) globalBudgetView(r *http.Request, canWrite bool) (views.GlobalBudgetView, error) {
	g, err := s.st.GetGlobalBudget(r.Context())
	if err != nil {
		return views.GlobalBudgetView{}, err
	}
	l := store.Limits{MaxBudget: g.MaxBudget, SoftBudget: g.SoftBudget, BudgetDuration: g.BudgetDuration}
	return views.GlobalBudgetView{Usage: usageOf(g.Spend, l, g.BudgetResetAt, time.Now()), CanWrite: canWrite,
		Form: budgetFieldsOf(g.MaxBudget, g.SoftBudget, g.BudgetDuration, nil, nil, nil, nil)}, nil
}

func (s *Server) updateGlobalBudgetForm(w http.ResponseWriter, r *http.Request) {
	f := budgetFieldsFrom(r)
	in, err := parseBudgetFields(f)
	if err == nil {
		_, err = s.st.UpdateGlobalBudget(r.Context(), principalFrom(r.Context()).Actor, func(spec *store.GlobalBudgetSpec) error {
			spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration = in.MaxBudget, in.SoftBudget, in.BudgetDuration
			return nil
		})
	}
	if err != nil {
		errs, err := fieldErrors(err)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		g, err := s.globalBudgetView(r, true)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		g.Form, g.Errors = f, errs
		render(w, r, http.StatusOK, views.GlobalBudgetSection(g))
		return
	}
	g, err := s.globalBudgetView(r, true)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	toast(w, "ok", "Global budget saved")
	render(w, r, http.StatusOK, views.GlobalBudgetSection(g))
}

func (s *Server) profileRows(r *http.Request) ([]views.ProfileRow, error) {
	profiles, err := s.st.AllBudgets(r.Context())
	if err != nil {
		return nil, err
	}
	keys, _, err := s.st.ListKeys(r.Context(), store.KeyFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		return nil, err
	}
	teams, err := s.st.AllTeams(r.Context())
	if err != nil {
		return nil, err
	}
	keyUses, teamUses := map[string]int{}, map[string]int{}
	for _, k := range keys {
		if k.BudgetID != nil {
			keyUses[*k.BudgetID]++
		}
	}
	for _, t := range teams {
		if t.BudgetID != nil {
			teamUses[*t.BudgetID]++
		}
	}
	rows := []views.ProfileRow{}
	for _, b := range profiles {
		row := views.ProfileRow{ID: b.ID, Name: b.Name, MaxBudget: "none", SoftBudget: "none", Period: "none",
			Limits: limitsText(store.Limits{RPMLimit: b.RPMLimit, TPMLimit: b.TPMLimit, MaxParallelRequests: b.MaxParallelRequests}, 0, ""),
			UsedBy: usedBy(keyUses[b.ID], teamUses[b.ID])}
		if b.MaxBudget != nil {
			row.MaxBudget = views.Money(*b.MaxBudget)
		}
		if b.SoftBudget != nil {
			row.SoftBudget = views.Money(*b.SoftBudget)
		}
		if b.BudgetDuration != nil {
			row.Period = *b.BudgetDuration
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func usedBy(keys, teams int) string {
	var parts []string
	if keys > 0 {
		parts = append(parts, plural(keys, "key"))
	}
	if teams > 0 {
		parts = append(parts, plural(teams, "team"))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// profileSpec reads the profile form.
func profileSpec(f views.ProfileForm) (store.BudgetSpec, error) {
	in, err := parseBudgetFields(f.BudgetFields)
	return store.BudgetSpec{Name: f.Name, MaxBudget: in.MaxBudget, SoftBudget: in.SoftBudget, BudgetDuration: in.BudgetDuration,
		RPMLimit: in.RPMLimit, TPMLimit: in.TPMLimit, MaxParallelRequests: in.MaxParallelRequests}, err
}

func (s *Server) createProfileForm(w http.ResponseWriter, r *http.Request) {
	f := views.ProfileForm{Name: r.PostFormValue("name"), BudgetFields: budgetFieldsFrom(r)}
	f.BudgetID = ""
	spec, err := profileSpec(f)
	if err == nil {
		_, err = s.st.CreateBudget(r.Context(), principalFrom(r.Context()).Actor, spec)
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component { f.Errors = errs; return views.ProfileFormView(f) },
		func() (templ.Component, error) {
			rows, err := s.profileRows(r)
			return both(views.ProfileFormView(views.ProfileForm{}), views.ProfilesList(rows, true, true)), err
		}, "Budget profile "+strings.TrimSpace(f.Name)+" created")
}

func (s *Server) editProfileDialog(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "budgets and limits") {
		return
	}
	b, err := s.st.GetBudget(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	render(w, r, http.StatusOK, views.ProfileEditDialog(views.ProfileForm{ID: b.ID, Name: b.Name,
		BudgetFields: budgetFieldsOf(b.MaxBudget, b.SoftBudget, b.BudgetDuration, nil, b.RPMLimit, b.TPMLimit, b.MaxParallelRequests)}))
}

func (s *Server) updateProfileForm(w http.ResponseWriter, r *http.Request) {
	f := views.ProfileForm{ID: pathID(r), Name: r.PostFormValue("name"), BudgetFields: budgetFieldsFrom(r)}
	f.BudgetID = ""
	spec, err := profileSpec(f)
	if err == nil {
		_, err = s.st.UpdateBudget(r.Context(), principalFrom(r.Context()).Actor, f.ID, func(b *store.BudgetSpec) error {
			*b = spec
			return nil
		})
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component { f.Errors = errs; return views.ProfileEditDialog(f) },
		func() (templ.Component, error) {
			rows, err := s.profileRows(r)
			return views.ProfilesList(rows, true, true), err
		}, "Budget profile "+strings.TrimSpace(f.Name)+" saved")
}

// alertRows are the newest budget alerts as the tables show them.
func (s *Server) alertRows(r *http.Request, limit int) ([]views.AlertRow, error) {
	alerts, err := s.st.RecentAlerts(r.Context(), limit)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := make([]views.AlertRow, 0, len(alerts))
	for _, a := range alerts {
		row := views.AlertRow{When: views.Relative(a.CreatedAt, now), WhenAt: views.When(&a.CreatedAt), Kind: a.Kind,
			Subject: a.SubjectType + " " + a.SubjectName, Spend: views.Money(a.Spend), Threshold: views.Money(a.Threshold),
			Period: "no period", Delivery: "not sent yet"}
		switch {
		case a.SubjectType == store.SubjectGlobal:
			row.Subject = "global budget"
		case a.SubjectName == "": // a key without an alias
			row.Subject = a.SubjectType + " " + a.SubjectID[:min(8, len(a.SubjectID))] + "…"
		}
		if end, err := time.Parse(time.RFC3339, a.Period); err == nil {
			row.Period = "until " + end.UTC().Format("Jan 2, 15:04 UTC")
		}
		switch {
		case a.DeliveredAt != nil:
			row.Delivered, row.Delivery = true, "delivered "+views.When(a.DeliveredAt)
		case a.LastError != "":
			row.Failed, row.Delivery = true, fmt.Sprintf("%s: %s", plural(a.Attempts, "attempt"), a.LastError)
		}
		rows = append(rows, row)
	}
	return rows, nil
}
