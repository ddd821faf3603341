package admin

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"tollgate/store"
	"tollgate/views"
)

func (s *Server) keyPages(r *mux.Router) {
	r.HandleFunc("/keys", s.keysPage).Methods(http.MethodGet)
	r.HandleFunc("/keys", s.createKeyForm).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}/block", s.setKeyBlockedRow(true)).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}/unblock", s.setKeyBlockedRow(false)).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}/regenerate", s.regenerateKeyDialog).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}/edit", s.editKeyDialog).Methods(http.MethodGet)
	r.HandleFunc("/keys/{id}", s.updateKeyForm).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}", s.deleteKeyRow).Methods(http.MethodDelete)
}

// keysView loads what the keys page shows: every key, or for a member
// their own, with their spend and what their teams allow their keys.
func (s *Server) keysView(r *http.Request, form views.KeyForm) (views.KeysView, error) {
	p := principalFrom(r.Context())
	kf, tf := store.KeyFilter{Page: store.Page{Limit: 1000}}, store.TeamFilter{Page: store.Page{Limit: 1000}}
	if p.Role == store.RoleMember {
		kf.UserID, tf.IDs = p.UserID, append([]string{}, p.TeamIDs...)
	}
	keys, _, err := s.st.ListKeys(r.Context(), kf)
	if err != nil {
		return views.KeysView{}, err
	}
	teams, _, err := s.st.ListTeams(r.Context(), tf)
	if err != nil {
		return views.KeysView{}, err
	}
	profiles, err := s.loadProfiles(r)
	if err != nil {
		return views.KeysView{}, err
	}
	names := map[string]string{}
	// Members manage their own keys; finance users only read; only admins
	// change a key's budget and limits after creation.
	v := views.KeysView{Form: form, CanWrite: p.Role != store.RoleFinance, CanEdit: p.Role == store.RoleAdmin}
	if p.Role == store.RoleAdmin {
		v.Options.Profiles = profiles.options
	}
	for _, t := range teams {
		names[t.ID] = t.Name
		v.Options.Teams = append(v.Options.Teams, views.Option{Value: t.ID, Label: t.Name})
	}
	now := time.Now()
	for i := range keys {
		v.Rows = append(v.Rows, keyRow(&keys[i], names, profiles, now))
	}
	if p.Role == store.RoleMember {
		if err := s.myKeysView(r, &v, teams, now); err != nil {
			return views.KeysView{}, err
		}
	}
	return v, nil
}

// myKeysView adds what a member's own page shows: their spend, and per
// team the models and caps their keys must keep to, also next to the form's
// fields.
func (s *Server) myKeysView(r *http.Request, v *views.KeysView, teams []store.Team, now time.Time) error {
	u, err := s.st.GetUser(r.Context(), principalFrom(r.Context()).UserID)
	if err != nil {
		return err
	}
	v.Mine, v.Options.Member = true, true
	v.Spend = usageOf(u.Spend, u.Limits(), u.BudgetResetAt, now)
	v.SpendNote = "all time, across your keys"
	if u.BudgetDuration != nil {
		v.SpendNote = periodNote(*u.BudgetDuration) + ", across your keys"
	}
	var allowed []string
	for _, t := range teams {
		models := listOrAll(t.Models)
		if models == "all" {
			models = "all models"
		}
		v.Rules = append(v.Rules, views.TeamRules{Team: t.Name, Models: models, Caps: capsText(t.MemberKeyCaps)})
		allowed = append(allowed, t.Name+": "+models)
	}
	if len(teams) == 1 {
		allowed = []string{v.Rules[0].Models}
	}
	v.Options.Models = strings.Join(allowed, "; ")
	v.Options.Hints = capHints(teams)
	return nil
}

// periodNote names the current budget period: "this month", or "this
// 30d period".
func periodNote(d string) string {
	switch d {
	case "daily":
		return "today"
	case "weekly":
		return "this week"
	case "monthly":
		return "this month"
	}
	return "this " + d + " period"
}

// capsText is a team's caps on member keys, compactly: "max $20.00 /
// monthly · 60 rpm · 100k tpm · 4 parallel", or "none".
func capsText(c store.KeyCaps) string {
	var parts []string
	switch {
	case c.MaxBudget != nil && c.BudgetDuration != nil:
		parts = append(parts, "max "+views.Money(*c.MaxBudget)+" / "+*c.BudgetDuration)
	case c.MaxBudget != nil:
		parts = append(parts, "max "+views.Money(*c.MaxBudget))
	case c.BudgetDuration != nil:
		parts = append(parts, "budgets "+*c.BudgetDuration)
	}
	if c.RPMLimit != nil {
		parts = append(parts, views.Compact(*c.RPMLimit)+" rpm")
	}
	if c.TPMLimit != nil {
		parts = append(parts, views.Compact(*c.TPMLimit)+" tpm")
	}
	if c.MaxParallelRequests != nil {
		parts = append(parts, views.Compact(*c.MaxParallelRequests)+" parallel")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " · ")
}

// capHints are the caps next to the key form's fields, by field name:
// "your team's cap: max $20.00 / monthly", or per team when a member is in
// several.
func capHints(teams []store.Team) map[string]string {
	hints := map[string]string{}
	fields := []struct {
		name string
		of   func(c store.KeyCaps) string
	}{
		{"max_budget", func(c store.KeyCaps) string {
			switch {
			case c.MaxBudget == nil:
				return ""
			case c.BudgetDuration != nil:
				return "max " + views.Money(*c.MaxBudget) + " / " + *c.BudgetDuration
			}
			return "max " + views.Money(*c.MaxBudget)
		}},
		{"budget_duration", func(c store.KeyCaps) string { return deref(c.BudgetDuration) }},
		{"rpm_limit", func(c store.KeyCaps) string { return capInt(c.RPMLimit) }},
		{"tpm_limit", func(c store.KeyCaps) string { return capInt(c.TPMLimit) }},
		{"max_parallel_requests", func(c store.KeyCaps) string { return capInt(c.MaxParallelRequests) }},
	}
	for _, f := range fields {
		var per []string
		capped := false
		for _, t := range teams {
			text := f.of(t.MemberKeyCaps)
			capped = capped || text != ""
			if text == "" {
				text = "no cap"
			}
			per = append(per, t.Name+": "+text)
		}
		switch {
		case !capped:
		case len(teams) == 1:
			hints[f.name] = "Your team's cap: " + strings.TrimPrefix(per[0], teams[0].Name+": ")
		default:
			hints[f.name] = "Team caps: " + strings.Join(per, "; ")
		}
	}
	return hints
}

// capsFieldsFrom reads a team form's caps on member keys, as typed.
func capsFieldsFrom(r *http.Request) views.CapsFields {
	return views.CapsFields{MaxBudget: r.PostFormValue("member_key_caps.max_budget"), Period: strings.TrimSpace(r.PostFormValue("member_key_caps.budget_duration")),
		RPM: r.PostFormValue("member_key_caps.rpm_limit"), TPM: r.PostFormValue("member_key_caps.tpm_limit"),
		Parallel: r.PostFormValue("member_key_caps.max_parallel_requests")}
}

// parseCapsFields reads typed caps; the store checks their rules.
func parseCapsFields(f views.CapsFields) (store.KeyCaps, error) {
	var c store.KeyCaps
	var err error
	if c.MaxBudget, err = optionalFloat("member_key_caps.max_budget", f.MaxBudget); err != nil {
		return c, err
	}
	if f.Period != "" {
		c.BudgetDuration = &f.Period
	}
	if c.RPMLimit, err = optionalInt("member_key_caps.rpm_limit", f.RPM); err != nil {
		return c, err
	}
	if c.TPMLimit, err = optionalInt("member_key_caps.tpm_limit", f.TPM); err != nil {
		return c, err
	}
	c.MaxParallelRequests, err = optionalInt("member_key_caps.max_parallel_requests", f.Parallel)
	return c, err
}

// capsFieldsOf shows stored caps in the team form.
func capsFieldsOf(c store.KeyCaps) views.CapsFields {
	return views.CapsFields{MaxBudget: floatText(c.MaxBudget), Period: deref(c.BudgetDuration), RPM: intText(c.RPMLimit),
		TPM: intText(c.TPMLimit), Parallel: intText(c.MaxParallelRequests)}
}

func capInt(v *int64) string {
	if v == nil {
		return ""
	}
	return "max " + views.Compact(*v)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func keyRow(k *store.Key, teamNames map[string]string, profiles budgetProfiles, now time.Time) views.KeyRow {
	l := k.Limits(profiles.of(k.BudgetID))
	row := views.KeyRow{ID: k.ID, Alias: k.Alias, Hint: k.Hint, Type: k.KeyType, Usage: usageOf(k.Spend, l, k.BudgetResetAt, now),
		Limits:   limitsText(l, perModelCount(k.ModelRPMLimit, k.ModelTPMLimit), profiles.name(k.BudgetID)),
		LastUsed: views.When(k.LastUsedAt), Expires: views.When(k.ExpiresAt), Blocked: k.Blocked, Models: "all team models"}
	if !store.Unrestricted(k.Models) {
		row.Models = strings.Join(k.Models, ", ")
	}
	if k.ExpiresAt == nil {
		row.Expires = "never"
	}
	if k.TeamID != nil {
		row.Team = teamNames[*k.TeamID]
	}
	return row
}

func (s *Server) keysPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.keysView(r, views.KeyForm{})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	title := "Virtual keys"
	if v.Mine {
		title = "My keys"
	}
	s.page(w, r, title, "keys", views.KeysPage(v))
}

// keyFormFrom reads the key form as typed. Members do not pick budget
// profiles.
func keyFormFrom(r *http.Request) views.KeyForm {
	f := views.KeyForm{Alias: r.PostFormValue("alias"), TeamID: r.PostFormValue("team_id"), Models: r.PostFormValue("models"),
		KeyType: r.PostFormValue("key_type"), Duration: r.PostFormValue("duration"), BudgetFields: budgetFieldsFrom(r),
		ModelRPM: r.PostFormValue("model_rpm_limit"), ModelTPM: r.PostFormValue("model_tpm_limit")}
	if principalFrom(r.Context()).Role != store.RoleAdmin {
		f.BudgetID = ""
	}
	return f
}

// createKeyForm handles the new-key form: errors go back inline, success
// shows the secret once.
func (s *Server) createKeyForm(w http.ResponseWriter, r *http.Request) {
	f := keyFormFrom(r)
	spec, err := keySpecFromForm(f)
	p := principalFrom(r.Context())
	if err == nil && p.Role == store.RoleMember {
		spec.UserID = &p.UserID
		err = s.vetKey(r.Context(), p, nil, &spec)
	}
	var key *store.Key
	var secret string
	if err == nil {
		key, secret, err = s.st.CreateKey(r.Context(), p.Actor, spec, "")
	}
	if err != nil {
		if f.Errors, err = keyFormErrors(err); err != nil {
			s.writeErr(w, r, err)
			return
		}
		v, err := s.keysView(r, f)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		render(w, r, http.StatusOK, views.KeyFormView(v.Form, v.Options))
		return
	}
	v, err := s.keysView(r, views.KeyForm{})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	toast(w, "ok", "Key "+key.Hint+" created")
	render(w, r, http.StatusOK, views.KeyCreated(v, secret, key.Hint))
}

// keyFormErrors places a refusal next to the field it names, and any other
// refusal over the form, as validation errors are; other errors come back.
func keyFormErrors(err error) (map[string]string, error) {
	var refusal *keyRefusal
	if errors.As(err, &refusal) {
		return map[string]string{refusal.field: refusal.Error()}, nil
	}
	var forbidden *errForbidden
	if errors.As(err, &forbidden) {
		return map[string]string{"form": forbidden.Error()}, nil
	}
	return fieldErrors(err)
}

func keySpecFromForm(f views.KeyForm) (store.KeySpec, error) {
	spec := store.KeySpec{Alias: strings.TrimSpace(f.Alias), KeyType: f.KeyType, Models: splitList(f.Models)}
	if f.TeamID == "" {
		return spec, &store.ValidationError{Field: "team_id", Message: "choose the team the key bills to"}
	}
	spec.TeamID = &f.TeamID
	if err := applyKeyLimits(f, &spec); err != nil {
		return spec, err
	}
	if d := strings.TrimSpace(f.Duration); d != "" && d != "never" {
		dur, err := store.ParseDuration(d)
		if err != nil {
			return spec, &store.ValidationError{Field: "duration", Message: err.Error()}
		}
		at := time.Now().Add(dur).UTC()
		spec.ExpiresAt = &at
	}
	return spec, nil
}

// applyKeyLimits sets the key's budget and limits from the form.
func applyKeyLimits(f views.KeyForm, spec *store.KeySpec) error {
	in, err := parseBudgetFields(f.BudgetFields)
	if err != nil {
		return err
	}
	spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, spec.BudgetID = in.MaxBudget, in.SoftBudget, in.BudgetDuration, in.BudgetID
	spec.RPMLimit, spec.TPMLimit, spec.MaxParallelRequests = in.RPMLimit, in.TPMLimit, in.MaxParallelRequests
	if spec.ModelRPMLimit, err = parseModelLimits("model_rpm_limit", f.ModelRPM); err != nil {
		return err
	}
	spec.ModelTPMLimit, err = parseModelLimits("model_tpm_limit", f.ModelTPM)
	return err
}

// editKeyDialog opens the key's edit dialog; only admins change a key's
// budget and limits.
func (s *Server) editKeyDialog(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "keys") {
		return
	}
	k, err := s.st.GetKey(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	profiles, err := s.loadProfiles(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	f := views.KeyForm{ID: k.ID, Hint: k.Hint, Alias: k.Alias, Models: strings.Join(k.Models, ", "),
		BudgetFields: budgetFieldsOf(k.MaxBudget, k.SoftBudget, k.BudgetDuration, k.BudgetID, k.RPMLimit, k.TPMLimit, k.MaxParallelRequests),
		ModelRPM:     modelLimitsText(k.ModelRPMLimit), ModelTPM: modelLimitsText(k.ModelTPMLimit)}
	render(w, r, http.StatusOK, views.KeyEditDialog(f, profiles.options))
}

func (s *Server) updateKeyForm(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "keys") {
		return
	}
	f := keyFormFrom(r)
	f.ID = pathID(r)
	k, err := s.st.UpdateKey(r.Context(), principalFrom(r.Context()).Actor, f.ID, func(spec *store.KeySpec) error {
		spec.Alias, spec.Models = strings.TrimSpace(f.Alias), splitList(f.Models)
		return applyKeyLimits(f, spec)
	})
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			if k, err := s.st.GetKey(r.Context(), f.ID); err == nil {
				f.Hint = k.Hint
			}
			profiles, _ := s.loadProfiles(r)
			return views.KeyEditDialog(f, profiles.options)
		},
		func() (templ.Component, error) {
			v, err := s.keysView(r, views.KeyForm{})
			return views.KeysList(v.Rows, v.CanWrite, v.CanEdit, true), err
		}, "Key "+hintOf(k)+" saved")
}

func hintOf(k *store.Key) string {
	if k == nil {
		return ""
	}
	return k.Hint
}

// splitList reads a comma-separated list; blanks are dropped.
func splitList(s string) []string {
	out := []string{}
	for _, part := range strings.Split(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func optionalFloat(field, v string) (*float64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, &store.ValidationError{Field: field, Message: field + " must be a number"}
	}
	return &f, nil
}

func optionalInt(field, v string) (*int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, &store.ValidationError{Field: field, Message: field + " must be a whole number"}
	}
	return &n, nil
}

// renderKeyRow answers a row action with the key's new row.
func (s *Server) renderKeyRow(w http.ResponseWriter, r *http.Request, k *store.Key) {
	names := map[string]string{}
	if k.TeamID != nil {
		if t, err := s.st.GetTeam(r.Context(), *k.TeamID); err == nil {
			names[t.ID] = t.Name
		}
	}
	profiles, err := s.loadProfiles(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	render(w, r, http.StatusOK, views.KeyRowView(keyRow(k, names, profiles, time.Now()), true, principalFrom(r.Context()).Role == store.RoleAdmin))
}

func (s *Server) setKeyBlockedRow(blocked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.ownKey(r); err != nil {
			s.writeErr(w, r, err)
			return
		}
		k, err := s.st.SetKeyBlocked(r.Context(), principalFrom(r.Context()).Actor, pathID(r), blocked)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if blocked {
			toast(w, "ok", "Key "+k.Hint+" blocked: its next request is refused")
		} else {
			toast(w, "ok", "Key "+k.Hint+" unblocked")
		}
		s.renderKeyRow(w, r, k)
	}
}

func (s *Server) regenerateKeyDialog(w http.ResponseWriter, r *http.Request) {
	if err := s.ownKey(r); err != nil {
		s.writeErr(w, r, err)
		return
	}
	k, secret, err := s.st.RegenerateKey(r.Context(), principalFrom(r.Context()).Actor, pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	toast(w, "ok", "Key regenerated; the old secret no longer works")
	render(w, r, http.StatusOK, views.SecretDialog(secret, k.Hint))
}

func (s *Server) deleteKeyRow(w http.ResponseWriter, r *http.Request) {
	if err := s.ownKey(r); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.st.DeleteKey(r.Context(), principalFrom(r.Context()).Actor, pathID(r)); err != nil {
		s.writeErr(w, r, err)
		return
	}
	toast(w, "ok", "Key deleted")
	w.WriteHeader(http.StatusOK)
}
