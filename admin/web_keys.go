package admin

import (
	"net/http"
	"strconv"
	"strings"
	"time"

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
	names := map[string]string{}
	// Members manage their own keys; finance users only read.
	v := views.KeysView{Form: form, CanWrite: p.Role != store.RoleFinance}
	for _, t := range teams {
		names[t.ID] = t.Name
		v.Teams = append(v.Teams, views.Option{Value: t.ID, Label: t.Name})
	}
	for i := range keys {
		v.Rows = append(v.Rows, keyRow(&keys[i], names))
	}
	return v, nil
}

func keyRow(k *store.Key, teamNames map[string]string) views.KeyRow {
	row := views.KeyRow{ID: k.ID, Alias: k.Alias, Hint: k.Hint, Type: k.KeyType, Spend: views.Money(k.Spend),
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

// createKeyForm handles the new-key form: errors go back inline, success
// shows the secret once.
func (s *Server) createKeyForm(w http.ResponseWriter, r *http.Request) {
	f := views.KeyForm{Alias: r.PostFormValue("alias"), TeamID: r.PostFormValue("team_id"), Models: r.PostFormValue("models"),
		KeyType: r.PostFormValue("key_type"), MaxBudget: r.PostFormValue("max_budget"), Duration: r.PostFormValue("duration"),
		RPM: r.PostFormValue("rpm_limit"), TPM: r.PostFormValue("tpm_limit"), Parallel: r.PostFormValue("max_parallel_requests")}
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
		render(w, r, http.StatusOK, views.KeyFormView(v.Form, v.Teams))
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
	var err error
	if spec.MaxBudget, err = optionalFloat("max_budget", f.MaxBudget); err != nil {
		return spec, err
	}
	if spec.RPMLimit, err = optionalInt("rpm_limit", f.RPM); err != nil {
		return spec, err
	}
	if spec.TPMLimit, err = optionalInt("tpm_limit", f.TPM); err != nil {
		return spec, err
	}
	if spec.MaxParallelRequests, err = optionalInt("max_parallel_requests", f.Parallel); err != nil {
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
	if err != nil {
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
	render(w, r, http.StatusOK, views.KeyRowView(keyRow(k, names), true))
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
