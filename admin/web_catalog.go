package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"tollgate/config"
	"tollgate/store"
	"tollgate/views"
)

// formDone answers a create form or an edit dialog: on a validation error
// it comes back with messages next to its fields; on success the fresh
// content (a new form and the list, or the list out of band and an empty
// dialog area, which closes the dialog) and a toast.
func (s *Server) formDone(w http.ResponseWriter, r *http.Request, err error, withErrors func(map[string]string) templ.Component, fresh func() (templ.Component, error), msg string) {
	if err != nil {
		errs, err := fieldErrors(err)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		render(w, r, http.StatusOK, withErrors(errs))
		return
	}
	c, err := fresh()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	toast(w, "ok", msg)
	render(w, r, http.StatusOK, c)
}

// deleteRow removes a row; a refusal (still in use) leaves it and says why.
func (s *Server) deleteRow(w http.ResponseWriter, r *http.Request, del func() error, msg string) {
	if err := del(); err != nil {
		s.refuseErr(w, r, err)
		return
	}
	toast(w, "ok", msg)
	w.WriteHeader(http.StatusOK)
}

func both(a, b templ.Component) templ.Component { return templ.Join(a, b) }

func (s *Server) teamPages(r *mux.Router) {
	r.HandleFunc("/teams", func(w http.ResponseWriter, r *http.Request) {
		rows, err := s.teamRows(r)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		profiles, err := s.loadProfiles(r)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.page(w, r, "Teams", "teams", views.TeamsPage(views.TeamsView{Rows: rows, Profiles: profiles.options, CanWrite: s.viewSession(r.Context()).CanWrite}))
	}).Methods(http.MethodGet)
	r.HandleFunc("/teams", s.createTeamForm).Methods(http.MethodPost)
	r.HandleFunc("/teams/{id}/edit", s.editTeamDialog).Methods(http.MethodGet)
	r.HandleFunc("/teams/{id}", s.updateTeamForm).Methods(http.MethodPost)
	r.HandleFunc("/teams/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.deleteRow(w, r, func() error { return s.st.DeleteTeam(r.Context(), principalFrom(r.Context()).Actor, pathID(r)) }, "Team deleted")
	}).Methods(http.MethodDelete)
	r.HandleFunc("/teams/{id}/members", func(w http.ResponseWriter, r *http.Request) {
		s.teamMembersChanged(w, r, s.st.AddTeamMember(r.Context(), principalFrom(r.Context()).Actor, pathID(r), r.PostFormValue("user_id")), "Member added")
	}).Methods(http.MethodPost)
	r.HandleFunc("/teams/{id}/members/{user_id}", func(w http.ResponseWriter, r *http.Request) {
		s.teamMembersChanged(w, r, s.st.RemoveTeamMember(r.Context(), principalFrom(r.Context()).Actor, pathID(r), mux.Vars(r)["user_id"]), "Member removed")
	}).Methods(http.MethodDelete)
}

// teamMembersChanged answers a membership change with the refreshed list.
func (s *Server) teamMembersChanged(w http.ResponseWriter, r *http.Request, err error, msg string) {
	if err != nil {
		s.refuseErr(w, r, err)
		return
	}
	rows, err := s.teamRows(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	toast(w, "ok", msg)
	render(w, r, http.StatusOK, views.TeamsList(rows, true, false))
}

func (s *Server) teamRows(r *http.Request) ([]views.TeamRow, error) {
	teams, _, err := s.st.ListTeams(r.Context(), store.TeamFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		return nil, err
	}
	users, _, err := s.st.ListUsers(r.Context(), store.Page{Limit: 1000})
	if err != nil {
		return nil, err
	}
	profiles, err := s.loadProfiles(r)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := []views.TeamRow{}
	for _, t := range teams {
		l := t.Limits(profiles.of(t.BudgetID))
		row := views.TeamRow{ID: t.ID, Name: t.Name, Models: listOrAll(t.Models), Usage: usageOf(t.Spend, l, t.BudgetResetAt, now),
			Limits: limitsText(l, 0, profiles.name(t.BudgetID)), MemberCaps: capsText(t.MemberKeyCaps)}
		for _, u := range users {
			opt := views.Option{Value: u.ID, Label: u.Email}
			if slices.Contains(u.Teams, t.ID) {
				row.Members = append(row.Members, opt)
			} else {
				row.Candidates = append(row.Candidates, opt)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func listOrAll(models []string) string {
	if store.Unrestricted(models) {
		return "all"
	}
	return strings.Join(models, ", ")
}

// teamFormFrom reads the team form as typed.
func teamFormFrom(r *http.Request) views.TeamForm {
	return views.TeamForm{Name: r.PostFormValue("name"), Models: r.PostFormValue("models"), BudgetFields: budgetFieldsFrom(r), Caps: capsFieldsFrom(r)}
}

// applyTeamForm sets what the team form edits.
func applyTeamForm(f views.TeamForm, spec *store.TeamSpec) error {
	spec.Name, spec.Models = f.Name, splitList(f.Models)
	in, err := parseBudgetFields(f.BudgetFields)
	if err != nil {
		return err
	}
	spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, spec.BudgetID = in.MaxBudget, in.SoftBudget, in.BudgetDuration, in.BudgetID
	spec.RPMLimit, spec.TPMLimit, spec.MaxParallelRequests = in.RPMLimit, in.TPMLimit, in.MaxParallelRequests
	spec.MemberKeyCaps, err = parseCapsFields(f.Caps)
	return err
}

func (s *Server) createTeamForm(w http.ResponseWriter, r *http.Request) {
	f := teamFormFrom(r)
	var spec store.TeamSpec
	err := applyTeamForm(f, &spec)
	if err == nil {
		_, err = s.st.CreateTeam(r.Context(), principalFrom(r.Context()).Actor, spec)
	}
	profiles, perr := s.loadProfiles(r)
	if perr != nil {
		s.writeErr(w, r, perr)
		return
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			return views.TeamFormView(f, profiles.options)
		},
		func() (templ.Component, error) {
			rows, err := s.teamRows(r)
			return both(views.TeamFormView(views.TeamForm{}, profiles.options), views.TeamsList(rows, true, true)), err
		}, "Team "+f.Name+" created")
}

func (s *Server) editTeamDialog(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "teams") {
		return
	}
	t, err := s.st.GetTeam(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	profiles, err := s.loadProfiles(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	f := views.TeamForm{ID: t.ID, Name: t.Name, Models: strings.Join(t.Models, ", "),
		BudgetFields: budgetFieldsOf(t.MaxBudget, t.SoftBudget, t.BudgetDuration, t.BudgetID, t.RPMLimit, t.TPMLimit, t.MaxParallelRequests),
		Caps:         capsFieldsOf(t.MemberKeyCaps)}
	render(w, r, http.StatusOK, views.TeamEditDialog(f, profiles.options))
}

func (s *Server) updateTeamForm(w http.ResponseWriter, r *http.Request) {
	f := teamFormFrom(r)
	f.ID = pathID(r)
	_, err := s.st.UpdateTeam(r.Context(), principalFrom(r.Context()).Actor, f.ID, func(spec *store.TeamSpec) error {
		return applyTeamForm(f, spec)
	})
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			profiles, _ := s.loadProfiles(r)
			return views.TeamEditDialog(f, profiles.options)
		},
		func() (templ.Component, error) {
			rows, err := s.teamRows(r)
			return views.TeamsList(rows, true, true), err
		}, "Team "+strings.TrimSpace(f.Name)+" saved")
}

func (s *Server) providerPages(r *mux.Router) {
	r.HandleFunc("/providers", func(w http.ResponseWriter, r *http.Request) {
		rows, err := s.providerRows(r)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.page(w, r, "Providers", "providers", views.ProvidersPage(views.ProvidersView{Rows: rows, Types: store.ProviderTypes,
			Form: views.ProviderForm{Type: "openai"}, CanWrite: s.viewSession(r.Context()).CanWrite}))
	}).Methods(http.MethodGet)
	r.HandleFunc("/providers", s.createProviderForm).Methods(http.MethodPost)
	r.HandleFunc("/providers/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.deleteRow(w, r, func() error { return s.st.DeleteProvider(r.Context(), principalFrom(r.Context()).Actor, pathID(r)) }, "Provider deleted")
	}).Methods(http.MethodDelete)
	r.HandleFunc("/providers/{id}/edit", s.editProviderDialog).Methods(http.MethodGet)
	r.HandleFunc("/providers/{id}", s.updateProviderForm).Methods(http.MethodPost)
}

// providerExtras are the per-type settings the form edits, as stored in
// the provider's config.
var providerExtras = []string{"region", "api_version", "project", "organization"}

func (s *Server) editProviderDialog(w http.ResponseWriter, r *http.Request) {
	p, err := s.st.GetProvider(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	f := views.ProviderForm{ID: p.ID, Name: p.Name, Type: p.Type, APIBase: p.APIBase, KeyHint: p.APIKeyHint}
	var cfg map[string]any
	json.Unmarshal(p.Config, &cfg)
	str := func(k string) string { v, _ := cfg[k].(string); return v }
	f.Region, f.APIVersion, f.Project, f.Organization = str("region"), str("api_version"), str("project"), str("organization")
	if !p.HasAPIKey {
		f.KeyHint = "none"
	}
	render(w, r, http.StatusOK, views.ProviderEditDialog(f))
}

// updateProviderForm saves the edit dialog: an empty API key keeps the
// stored one; extra settings are merged into the config.
func (s *Server) updateProviderForm(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.writeErr(w, r, &badInput{err.Error()})
		return
	}
	f := views.ProviderForm{ID: pathID(r), Name: r.PostFormValue("name"), APIBase: r.PostFormValue("api_base"),
		Region: r.PostFormValue("region"), APIVersion: r.PostFormValue("api_version"), Project: r.PostFormValue("project"),
		Organization: r.PostFormValue("organization")}
	p, err := s.st.UpdateProvider(r.Context(), principalFrom(r.Context()).Actor, f.ID, func(in *store.ProviderInput) error {
		f.Type, f.KeyHint = in.Type, "unchanged"
		in.Name, in.APIBase = f.Name, f.APIBase
		if key := r.PostFormValue("api_key"); key != "" {
			in.APIKey = &key
		}
		cfg := map[string]any{}
		json.Unmarshal(in.Config, &cfg)
		for _, k := range providerExtras {
			if _, sent := r.PostForm[k]; !sent {
				continue
			}
			if v := strings.TrimSpace(r.PostFormValue(k)); v != "" {
				cfg[k] = v
			} else {
				delete(cfg, k)
			}
		}
		b, err := json.Marshal(cfg)
		in.Config = store.JSON(b)
		return err
	})
	if err != nil {
		errs, ferr := fieldErrors(err)
		if ferr != nil {
			s.writeErr(w, r, ferr)
			return
		}
		f.Errors = errs
		render(w, r, http.StatusOK, views.ProviderEditDialog(f))
		return
	}
	rows, err := s.providerRows(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	toast(w, "ok", "Provider "+p.Name+" saved")
	render(w, r, http.StatusOK, views.ProvidersList(rows, true, true)) // the dialog area empties: the dialog closes
}

func (s *Server) providerRows(r *http.Request) ([]views.ProviderRow, error) {
	providers, _, err := s.st.ListProviders(r.Context(), store.Page{Limit: 1000})
	if err != nil {
		return nil, err
	}
	rows := []views.ProviderRow{}
	for _, p := range providers {
		hint := p.APIKeyHint
		if !p.HasAPIKey {
			hint = "none"
		}
		rows = append(rows, views.ProviderRow{ID: p.ID, Name: p.Name, Type: p.Type, APIBase: p.APIBase, KeyHint: hint})
	}
	return rows, nil
}

func (s *Server) createProviderForm(w http.ResponseWriter, r *http.Request) {
	f := views.ProviderForm{Name: r.PostFormValue("name"), Type: r.PostFormValue("type"), APIBase: r.PostFormValue("api_base"),
		Region: r.PostFormValue("region"), APIVersion: r.PostFormValue("api_version"), Project: r.PostFormValue("project"),
		Organization: r.PostFormValue("organization")}
	cfg := map[string]string{}
	for k, v := range map[string]string{"region": f.Region, "api_version": f.APIVersion, "project": f.Project, "organization": f.Organization} {
		if v = strings.TrimSpace(v); v != "" {
			cfg[k] = v
		}
	}
	cfgJSON, _ := json.Marshal(cfg)
	in := store.ProviderInput{ProviderSpec: store.ProviderSpec{Name: f.Name, Type: f.Type, APIBase: f.APIBase, Config: store.JSON(cfgJSON)}}
	if key := r.PostFormValue("api_key"); key != "" {
		in.APIKey = &key
	}
	_, err := s.st.CreateProvider(r.Context(), principalFrom(r.Context()).Actor, in)
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			return views.ProviderFormView(f, store.ProviderTypes)
		},
		func() (templ.Component, error) {
			rows, err := s.providerRows(r)
			return both(views.ProviderFormView(views.ProviderForm{Type: "openai"}, store.ProviderTypes), views.ProvidersList(rows, true, true)), err
		}, "Provider "+f.Name+" added")
}

func (s *Server) modelPages(r *mux.Router) {
	r.HandleFunc("/models", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.modelsView(r, views.ModelForm{})
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.page(w, r, "Models", "models", views.ModelsPage(v))
	}).Methods(http.MethodGet)
	r.HandleFunc("/models", s.createModelsForm).Methods(http.MethodPost)
	r.HandleFunc("/models/suggest", s.suggestModels).Methods(http.MethodGet)
	r.HandleFunc("/models/{id}/edit", s.editModelDialog).Methods(http.MethodGet)
	r.HandleFunc("/models/{id}", s.updateModelForm).Methods(http.MethodPost)
	r.HandleFunc("/models/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.deleteRow(w, r, func() error { return s.st.DeleteModel(r.Context(), principalFrom(r.Context()).Actor, pathID(r)) }, "Deployment deleted")
	}).Methods(http.MethodDelete)
}

func (s *Server) modelsView(r *http.Request, f views.ModelForm) (views.ModelsView, error) {
	v := views.ModelsView{Form: f, CanWrite: s.viewSession(r.Context()).CanWrite}
	providers, _, err := s.st.ListProviders(r.Context(), store.Page{Limit: 1000})
	if err != nil {
		return v, err
	}
	names := map[string]string{}
	for _, p := range providers {
		names[p.ID] = p.Name
		v.Providers = append(v.Providers, views.Option{Value: p.ID, Label: p.Name + " (" + p.Type + ")"})
	}
	models, _, err := s.st.ListModels(r.Context(), store.ModelFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		return v, err
	}
	usage, err := s.modelUsage(r)
	if err != nil {
		return v, err
	}
	health, err := s.st.RecentDeploymentHealth(r.Context(), time.Now().Add(-15*time.Minute))
	if err != nil {
		return v, err
	}
	probes, err := s.st.AllHealth(r.Context())
	if err != nil {
		return v, err
	}
	now := time.Now()
	for _, m := range models {
		row := views.ModelRow{ID: m.ID, Name: m.ModelName, Provider: names[m.ProviderID], Upstream: m.UpstreamModel,
			Usage: usage[m.ModelName], Health: healthText(health[m.ID]), HealthClass: healthClass(health[m.ID]),
			Prices:  fmt.Sprintf("$%g / $%g", m.InputCostPerMillion, m.OutputCostPerMillion),
			Limits:  modelLimits(&m.ModelSpec),
			Enabled: m.Enabled}
		p, probed := probes[m.ID]
		row.Probe = probeOf(p, probed, m.Enabled, now)
		v.Rows = append(v.Rows, row)
	}
	return v, nil
}

// probeOf is a deployment's last health probe as the list shows it. The
// job probes enabled deployments only; its error text is stored redacted.
func probeOf(p store.ProbeResult, probed, enabled bool, now time.Time) views.Probe {
	switch {
	case !probed && !enabled:
		return views.Probe{Status: "not checked: disabled"}
	case !probed:
		return views.Probe{Status: "not checked yet"}
	}
	out := views.Probe{Status: "healthy", Class: "ok", Error: p.Error, CheckedAt: views.When(&p.CheckedAt),
		Detail: fmt.Sprintf("%s ms · checked %s", views.Count(p.LatencyMS), checkedAgo(p.CheckedAt, now))}
	if !p.Healthy {
		out.Status, out.Class = "unhealthy", "blocked"
	}
	return out
}

// checkedAgo is how long ago a probe ran, in seconds under a minute:
// probes run about every minute, so "just now" would say too little.
func checkedAgo(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	}
	return views.Relative(t, now)
}

// createModelsForm adds one deployment per upstream model id given.
func (s *Server) createModelsForm(w http.ResponseWriter, r *http.Request) {
	f := modelFormFrom(r)
	ids := splitList(f.Upstream)
	for _, id := range r.PostForm["upstream_pick"] {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	err := modelFormErrors(f, ids)
	spec := store.ModelSpec{ProviderID: f.ProviderID, Enabled: true}
	if err == nil {
		err = parseModelNumbers(f, &spec)
	}
	if err == nil {
		// One transaction per deployment; the form is checked first so a
		// bad value fails before anything is written.
		priced := strings.TrimSpace(f.InPrice) != "" || strings.TrimSpace(f.OutPrice) != ""
		for _, id := range ids {
			one := spec
			one.UpstreamModel, one.ModelName = id, strings.TrimSpace(f.Name)
			if one.ModelName == "" {
				one.ModelName = id
			}
			// Unpriced models take the list price, when the table knows it.
			if priced {
				config.FillPrices(&one, &one.InputCostPerMillion, &one.OutputCostPerMillion)
			} else {
				config.FillPrices(&one, nil, nil)
			}
			if _, err = s.st.CreateModel(r.Context(), principalFrom(r.Context()).Actor, one); err != nil {
				break
			}
		}
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			v, _ := s.modelsView(r, f)
			v.Form.Errors = errs
			return views.ModelFormView(v.Form, v.Providers)
		},
		func() (templ.Component, error) {
			v, err := s.modelsView(r, views.ModelForm{})
			return both(views.ModelFormView(v.Form, v.Providers), views.ModelsList(v.Rows, true, true)), err
		}, fmt.Sprintf("%d deployment(s) added", len(ids)))
}

func modelFormErrors(f views.ModelForm, ids []string) error {
	if f.ProviderID == "" {
		return &store.ValidationError{Field: "provider_id", Message: "choose a provider credential"}
	}
	if len(ids) == 0 {
		return &store.ValidationError{Field: "upstream_model", Message: "give at least one upstream model id"}
	}
	return nil
}

func parseModelNumbers(f views.ModelForm, spec *store.ModelSpec) error {
	in, err := optionalFloat("input_cost_per_million", f.InPrice)
	if err != nil {
		return err
	}
	out, err := optionalFloat("output_cost_per_million", f.OutPrice)
	if err != nil {
		return err
	}
	if in != nil {
		spec.InputCostPerMillion = *in
	}
	if out != nil {
		spec.OutputCostPerMillion = *out
	}
	if spec.RPMLimit, err = optionalInt("rpm_limit", f.RPM); err != nil {
		return err
	}
	if spec.TPMLimit, err = optionalInt("tpm_limit", f.TPM); err != nil {
		return err
	}
	if spec.MaxOutputTokens, err = optionalInt("max_output_tokens", f.MaxOutput); err != nil {
		return err
	}
	if spec.ConnectTimeoutMS, err = optionalInt("connect_timeout_ms", f.ConnectTimeout); err != nil {
		return err
	}
	if spec.FirstByteTimeoutMS, err = optionalInt("first_byte_timeout_ms", f.FirstByteTimeout); err != nil {
		return err
	}
	if spec.TimeoutMS, err = optionalInt("timeout_ms", f.Timeout); err != nil {
		return err
	}
	weight, err := optionalInt("weight", f.Weight)
	if weight != nil {
		spec.Weight = int(*weight)
	}
	return err
}

// modelFormFrom reads the model form as typed.
func modelFormFrom(r *http.Request) views.ModelForm {
	return views.ModelForm{Name: r.PostFormValue("model_name"), ProviderID: r.PostFormValue("provider_id"), Upstream: r.PostFormValue("upstream_model"),
		InPrice: r.PostFormValue("input_cost_per_million"), OutPrice: r.PostFormValue("output_cost_per_million"),
		RPM: r.PostFormValue("rpm_limit"), TPM: r.PostFormValue("tpm_limit"), Weight: r.PostFormValue("weight"),
		MaxOutput: r.PostFormValue("max_output_tokens"), Enabled: r.PostFormValue("enabled") == "true",
		ConnectTimeout: r.PostFormValue("connect_timeout_ms"), FirstByteTimeout: r.PostFormValue("first_byte_timeout_ms"), Timeout: r.PostFormValue("timeout_ms")}
}

// modelLimits describes a deployment's limits: "60 rpm · 100k tpm · weight 1 · max 4,096 out".
func modelLimits(m *store.ModelSpec) string {
	var parts []string
	if m.RPMLimit != nil {
		parts = append(parts, views.Compact(*m.RPMLimit)+" rpm")
	}
	if m.TPMLimit != nil {
		parts = append(parts, views.Compact(*m.TPMLimit)+" tpm")
	}
	parts = append(parts, fmt.Sprintf("weight %d", m.Weight))
	if m.MaxOutputTokens != nil {
		parts = append(parts, "max "+views.Count(*m.MaxOutputTokens)+" out")
	}
	for _, t := range []struct {
		name string
		ms   *int64
	}{{"connect", m.ConnectTimeoutMS}, {"first byte", m.FirstByteTimeoutMS}, {"timeout", m.TimeoutMS}} {
		if t.ms != nil {
			parts = append(parts, t.name+" "+(time.Duration(*t.ms)*time.Millisecond).String())
		}
	}
	return strings.Join(parts, " · ")
}

func (s *Server) editModelDialog(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "models") {
		return
	}
	m, err := s.st.GetModel(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	render(w, r, http.StatusOK, views.ModelEditDialog(views.ModelForm{ID: m.ID, Name: m.ModelName, Upstream: m.UpstreamModel,
		InPrice: strconv.FormatFloat(m.InputCostPerMillion, 'f', -1, 64), OutPrice: strconv.FormatFloat(m.OutputCostPerMillion, 'f', -1, 64),
		RPM: intText(m.RPMLimit), TPM: intText(m.TPMLimit), Weight: strconv.Itoa(m.Weight), MaxOutput: intText(m.MaxOutputTokens), Enabled: m.Enabled,
		ConnectTimeout: intText(m.ConnectTimeoutMS), FirstByteTimeout: intText(m.FirstByteTimeoutMS), Timeout: intText(m.TimeoutMS)}))
}

// updateModelForm saves the edit dialog; an empty price is zero.
func (s *Server) updateModelForm(w http.ResponseWriter, r *http.Request) {
	f := modelFormFrom(r)
	f.ID = pathID(r)
	_, err := s.st.UpdateModel(r.Context(), principalFrom(r.Context()).Actor, f.ID, func(spec *store.ModelSpec) error {
		spec.ModelName, spec.UpstreamModel, spec.Enabled = f.Name, f.Upstream, f.Enabled
		spec.InputCostPerMillion, spec.OutputCostPerMillion, spec.Weight = 0, 0, 0
		return parseModelNumbers(f, spec)
	})
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component { f.Errors = errs; return views.ModelEditDialog(f) },
		func() (templ.Component, error) {
			v, err := s.modelsView(r, views.ModelForm{})
			return views.ModelsList(v.Rows, true, true), err
		}, "Deployment "+strings.TrimSpace(f.Name)+" saved")
}

func (s *Server) userPages(r *mux.Router) {
	r.HandleFunc("/users", func(w http.ResponseWriter, r *http.Request) {
		v, err := s.usersView(r, views.UserForm{})
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.page(w, r, "Users", "users", views.UsersPage(v))
	}).Methods(http.MethodGet)
	r.HandleFunc("/users", s.createUserForm).Methods(http.MethodPost)
	r.HandleFunc("/users/{id}/edit", s.editUserDialog).Methods(http.MethodGet)
	r.HandleFunc("/users/{id}", s.updateUserForm).Methods(http.MethodPost)
	r.HandleFunc("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.deleteRow(w, r, func() error { return s.st.DeleteUser(r.Context(), principalFrom(r.Context()).Actor, pathID(r)) }, "User removed")
	}).Methods(http.MethodDelete)
}

func (s *Server) usersView(r *http.Request, f views.UserForm) (views.UsersView, error) {
	v := views.UsersView{Form: f, CanWrite: s.viewSession(r.Context()).CanWrite}
	teams, _, err := s.st.ListTeams(r.Context(), store.TeamFilter{Page: store.Page{Limit: 1000}})
	if err != nil {
		return v, err
	}
	names := map[string]string{}
	for _, t := range teams {
		names[t.ID] = t.Name
		v.Teams = append(v.Teams, views.Option{Value: t.ID, Label: t.Name})
	}
	users, _, err := s.st.ListUsers(r.Context(), store.Page{Limit: 1000})
	if err != nil {
		return v, err
	}
	now := time.Now()
	for _, u := range users {
		var teamNames []string
		for _, id := range u.Teams {
			teamNames = append(teamNames, names[id])
		}
		l := u.Limits()
		v.Rows = append(v.Rows, views.UserRow{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, Teams: strings.Join(teamNames, ", "),
			Usage: usageOf(u.Spend, l, u.BudgetResetAt, now), Limits: limitsText(l, 0, ""),
			Blocked: u.Blocked, RoleFromSSO: u.RoleSource == store.RoleFromSSO, SSO: u.OIDCSubject != nil, LastSignIn: views.When(u.LastSignInAt)})
	}
	return v, nil
}

// userFormFrom reads the user form as typed; users have no budget profile.
func userFormFrom(r *http.Request) (views.UserForm, error) {
	if err := r.ParseForm(); err != nil {
		return views.UserForm{}, &badInput{err.Error()}
	}
	f := views.UserForm{Email: r.PostFormValue("email"), Name: r.PostFormValue("name"), Role: r.PostFormValue("role"),
		RoleSource: r.PostFormValue("role_source"), TeamIDs: r.PostForm["team_id"], BudgetFields: budgetFieldsFrom(r)}
	f.BudgetID = ""
	return f, nil
}

// applyUserForm sets what the user form edits.
func applyUserForm(f views.UserForm, in *store.UserInput) error {
	teams := append([]string{}, f.TeamIDs...)
	in.Email, in.Name, in.Role, in.Teams = f.Email, f.Name, f.Role, &teams
	if f.RoleSource != "" {
		in.RoleSource = &f.RoleSource
	}
	b, err := parseBudgetFields(f.BudgetFields)
	if err != nil {
		return err
	}
	in.MaxBudget, in.SoftBudget, in.BudgetDuration, in.RPMLimit, in.TPMLimit = b.MaxBudget, b.SoftBudget, b.BudgetDuration, b.RPMLimit, b.TPMLimit
	return nil
}

func (s *Server) createUserForm(w http.ResponseWriter, r *http.Request) {
	f, err := userFormFrom(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	var in store.UserInput
	if err = applyUserForm(f, &in); err == nil {
		_, err = s.st.CreateUser(r.Context(), principalFrom(r.Context()).Actor, in)
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			v, _ := s.usersView(r, f)
			v.Form.Errors = errs
			return views.UserFormView(v.Form, v.Teams)
		},
		func() (templ.Component, error) {
			v, err := s.usersView(r, views.UserForm{})
			return both(views.UserFormView(v.Form, v.Teams), views.UsersList(v.Rows, true, true)), err
		}, "User "+f.Email+" added")
}

func (s *Server) editUserDialog(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "users") {
		return
	}
	u, err := s.st.GetUser(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	f := views.UserForm{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, RoleSource: u.RoleSource, TeamIDs: u.Teams,
		BudgetFields: budgetFieldsOf(u.MaxBudget, u.SoftBudget, u.BudgetDuration, nil, u.RPMLimit, u.TPMLimit, nil)}
	v, err := s.usersView(r, f)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	render(w, r, http.StatusOK, views.UserEditDialog(v.Form, v.Teams))
}

// updateUserForm saves the edit dialog; the teams checked replace the
// user's teams.
func (s *Server) updateUserForm(w http.ResponseWriter, r *http.Request) {
	f, err := userFormFrom(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	f.ID = pathID(r)
	_, err = s.st.UpdateUser(r.Context(), principalFrom(r.Context()).Actor, f.ID, func(in *store.UserInput) error {
		return applyUserForm(f, in)
	})
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			v, _ := s.usersView(r, f)
			v.Form.Errors = errs
			return views.UserEditDialog(v.Form, v.Teams)
		},
		func() (templ.Component, error) {
			v, err := s.usersView(r, views.UserForm{})
			return views.UsersList(v.Rows, true, true), err
		}, "User "+strings.TrimSpace(f.Email)+" saved")
}

// modelUsage is each public model's spend and requests over 30 days, from
// the daily rollups.
func (s *Server) modelUsage(r *http.Request) (map[string]string, error) {
	now := time.Now().UTC()
	to := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	points, err := s.st.DailySpend(r.Context(), "model", to.AddDate(0, 0, -30), to, store.RollupFilter{})
	if err != nil {
		return nil, err
	}
	cost, requests := map[string]float64{}, map[string]int64{}
	for _, p := range points {
		cost[p.Key] += p.Cost
		requests[p.Key] += p.Requests
	}
	out := map[string]string{}
	for name := range cost {
		out[name] = views.Money(cost[name]) + " · " + views.Count(requests[name]) + " req"
	}
	return out, nil
}

// openAIListing are the provider types whose API lists models at
// GET {api_base}/models in OpenAI's shape.
var openAIListing = []string{"openai", "openai_compatible", "mock", "mistral", "groq", "ollama"}

// suggestModels asks the chosen provider which model ids it serves, so the
// form can offer them.
func (s *Server) suggestModels(w http.ResponseWriter, r *http.Request) {
	p, err := s.st.GetProvider(r.Context(), r.URL.Query().Get("provider_id"))
	if err != nil {
		render(w, r, http.StatusOK, views.ModelSuggestions(nil, ""))
		return
	}
	if !slices.Contains(openAIListing, p.Type) {
		render(w, r, http.StatusOK, views.ModelSuggestions(nil, "Providers of type "+p.Type+" do not list their models here: type the ids."))
		return
	}
	ids, err := s.listProviderModels(r, p)
	if err != nil {
		s.log.Warn("list provider models", "provider", p.Name, "err", err)
		render(w, r, http.StatusOK, views.ModelSuggestions(nil, "Could not list "+p.Name+"'s models ("+err.Error()+"): type the ids."))
		return
	}
	render(w, r, http.StatusOK, views.ModelSuggestions(ids, ""))
}

func (s *Server) listProviderModels(r *http.Request, p *store.Provider) ([]string, error) {
	key, err := s.st.ProviderAPIKey(p)
	if err != nil {
		return nil, errors.New("its key cannot be decrypted")
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(p.APIBase, "/")+"/models", nil)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, errors.New("no answer")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&list); err != nil {
		return nil, errors.New("not an OpenAI model list")
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

// healthText and healthClass describe recent traffic: no traffic, healthy,
// or failing (more than one request in ten failed).
func healthText(h store.DeploymentHealth) string {
	if h.Requests == 0 {
		return "no traffic"
	}
	return fmt.Sprintf("%s of %s failed", views.Count(h.Failures), views.Count(h.Requests))
}

func healthClass(h store.DeploymentHealth) string {
	switch {
	case h.Requests == 0:
		return ""
	case h.Failures*10 > h.Requests:
		return "blocked"
	}
	return "ok"
}
