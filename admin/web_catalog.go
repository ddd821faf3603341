package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"tollgate/store"
	"tollgate/views"
)

// formDone answers a create form: on a validation error the form comes
// back with messages next to its fields; on success a fresh form, the
// refreshed list and a toast.
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
		msg, err := userMessage(err)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		refuse(w, msg)
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
		s.page(w, r, "Teams", "teams", views.TeamsPage(views.TeamsView{Rows: rows, CanWrite: s.viewSession(r.Context()).CanWrite}))
	}).Methods(http.MethodGet)
	r.HandleFunc("/teams", s.createTeamForm).Methods(http.MethodPost)
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
		msg, err := userMessage(err)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		refuse(w, msg)
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
	rows := []views.TeamRow{}
	for _, t := range teams {
		row := views.TeamRow{ID: t.ID, Name: t.Name, Models: listOrAll(t.Models), Spend: views.Money(t.Spend), BudgetPercent: -1,
			Duration: "never", Limits: limits(t.RPMLimit, t.TPMLimit)}
		if t.BudgetDuration != nil {
			row.Duration = *t.BudgetDuration
		}
		if t.MaxBudget != nil {
			row.Budget = views.Money(*t.MaxBudget)
			row.BudgetPercent = 100
			if *t.MaxBudget > 0 {
				row.BudgetPercent = min(100, int(t.Spend / *t.MaxBudget * 100))
			}
		}
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

func limits(rpm, tpm *int64) string {
	var parts []string
	if rpm != nil {
		parts = append(parts, fmt.Sprintf("%s RPM", views.Count(*rpm)))
	}
	if tpm != nil {
		parts = append(parts, fmt.Sprintf("%s TPM", views.Count(*tpm)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (s *Server) createTeamForm(w http.ResponseWriter, r *http.Request) {
	f := views.TeamForm{Name: r.PostFormValue("name"), Models: r.PostFormValue("models"), MaxBudget: r.PostFormValue("max_budget"),
		Duration: r.PostFormValue("budget_duration"), RPM: r.PostFormValue("rpm_limit"), TPM: r.PostFormValue("tpm_limit")}
	spec := store.TeamSpec{Name: f.Name, Models: splitList(f.Models)}
	if f.Duration != "" {
		spec.BudgetDuration = &f.Duration
	}
	var err error
	spec.MaxBudget, err = optionalFloat("max_budget", f.MaxBudget)
	if err == nil {
		spec.RPMLimit, err = optionalInt("rpm_limit", f.RPM)
	}
	if err == nil {
		spec.TPMLimit, err = optionalInt("tpm_limit", f.TPM)
	}
	if err == nil {
		_, err = s.st.CreateTeam(r.Context(), principalFrom(r.Context()).Actor, spec)
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component { f.Errors = errs; return views.TeamFormView(f) },
		func() (templ.Component, error) {
			rows, err := s.teamRows(r)
			return both(views.TeamFormView(views.TeamForm{}), views.TeamsList(rows, true, true)), err
		}, "Team "+f.Name+" created")
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
	for _, m := range models {
		v.Rows = append(v.Rows, views.ModelRow{ID: m.ID, Name: m.ModelName, Provider: names[m.ProviderID], Upstream: m.UpstreamModel,
			Usage: usage[m.ModelName], Health: healthText(health[m.ID]), HealthClass: healthClass(health[m.ID]),
			Prices:  fmt.Sprintf("$%g / $%g", m.InputCostPerMillion, m.OutputCostPerMillion),
			Limits:  limits(m.RPMLimit, m.TPMLimit) + fmt.Sprintf(", weight %d", m.Weight),
			Enabled: m.Enabled})
	}
	return v, nil
}

// createModelsForm adds one deployment per upstream model id given.
func (s *Server) createModelsForm(w http.ResponseWriter, r *http.Request) {
	f := views.ModelForm{Name: r.PostFormValue("model_name"), ProviderID: r.PostFormValue("provider_id"), Upstream: r.PostFormValue("upstream_model"),
		InPrice: r.PostFormValue("input_cost_per_million"), OutPrice: r.PostFormValue("output_cost_per_million"),
		RPM: r.PostFormValue("rpm_limit"), TPM: r.PostFormValue("tpm_limit"), Weight: r.PostFormValue("weight")}
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
		for _, id := range ids {
			spec.UpstreamModel, spec.ModelName = id, strings.TrimSpace(f.Name)
			if spec.ModelName == "" {
				spec.ModelName = id
			}
			if _, err = s.st.CreateModel(r.Context(), principalFrom(r.Context()).Actor, spec); err != nil {
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
	weight, err := optionalInt("weight", f.Weight)
	if weight != nil {
		spec.Weight = int(*weight)
	}
	return err
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
	for _, u := range users {
		var teamNames []string
		for _, id := range u.Teams {
			teamNames = append(teamNames, names[id])
		}
		v.Rows = append(v.Rows, views.UserRow{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, Teams: strings.Join(teamNames, ", ")})
	}
	return v, nil
}

func (s *Server) createUserForm(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.writeErr(w, r, &badInput{err.Error()})
		return
	}
	f := views.UserForm{Email: r.PostFormValue("email"), Name: r.PostFormValue("name"), Role: r.PostFormValue("role"), TeamIDs: r.PostForm["team_id"]}
	teams := append([]string{}, f.TeamIDs...)
	_, err := s.st.CreateUser(r.Context(), principalFrom(r.Context()).Actor,
		store.UserInput{UserSpec: store.UserSpec{Email: f.Email, Name: f.Name, Role: f.Role}, Teams: &teams})
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
