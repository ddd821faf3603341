package admin

import (
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

// keysView loads what the keys page shows.
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
		v.Profiles = profiles.options
	}
	for _, t := range teams {
		names[t.ID] = t.Name
		v.Teams = append(v.Teams, views.Option{Value: t.ID, Label: t.Name})
	}
	now := time.Now()
	for i := range keys {
		v.Rows = append(v.Rows, keyRow(&keys[i], names, profiles, now))
	}
	return v, nil
}

func keyRow(k *store.Key, teamNames map[string]string, profiles budgetProfiles, now time.Time) views.KeyRow {
	l := k.Limits(profiles.of(k.BudgetID))
	row := views.KeyRow{ID: k.ID, Alias: k.Alias, Hint: k.Hint, Type: k.KeyType, Usage: usageOf(k.Spend, l, k.BudgetResetAt, now),
		Limits:   limitsText(l, perModelCount(k.ModelRPMLimit, k.ModelTPMLimit), profiles.name(k.BudgetID)),
		LastUsed: views.When(k.LastUsedAt), Expires: views.When(k.ExpiresAt), Blocked: k.Blocked}
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
	s.page(w, r, "Virtual keys", "keys", views.KeysPage(v))
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
		err = memberKeyRules(p, &spec)
	}
	var key *store.Key
	var secret string
	if err == nil {
		key, secret, err = s.st.CreateKey(r.Context(), p.Actor, spec, "")
	}
	if err != nil {
		if f.Errors, err = fieldErrors(err); err != nil {
			s.writeErr(w, r, err)
			return
		}
		v, err := s.keysView(r, f)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		render(w, r, http.StatusOK, views.KeyFormView(v.Form, v.Teams, v.Profiles))
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
	if !adminOnly(w, r) {
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
	if !adminOnly(w, r) {
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
