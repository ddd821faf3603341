package admin

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"tollgate/store"
	"tollgate/views"
)

// strategyHelp explains each routing strategy in a line, as
// gateway/routing.go applies it.
var strategyHelp = map[string]string{
	"weighted":       "spread requests by each deployment's weight (the default)",
	"least_busy":     "the deployment with the fewest requests in flight",
	"lowest_latency": "the deployment with the lowest recent latency; unmeasured ones first",
	"usage_based":    "the deployment that used the least of its TPM limit this minute",
}

// routingPages serve the Routing page: each model's strategy and fallbacks
// (model groups) and the aliases. Model names may hold slashes, so they
// travel in the query or the form, never in the path.
func (s *Server) routingPages(r *mux.Router) {
	r.HandleFunc("/routing", s.routingPage).Methods(http.MethodGet)
	r.HandleFunc("/routing/groups", s.createGroupForm).Methods(http.MethodPost)
	r.HandleFunc("/routing/groups/edit", s.editGroupDialog).Methods(http.MethodGet)
	r.HandleFunc("/routing/groups/edit", s.updateGroupForm).Methods(http.MethodPost)
	r.HandleFunc("/routing/groups", func(w http.ResponseWriter, r *http.Request) {
		model := r.URL.Query().Get("model")
		s.deleteRow(w, r, func() error { return s.st.DeleteModelGroup(r.Context(), principalFrom(r.Context()).Actor, model) },
			"Routing settings of "+model+" removed")
	}).Methods(http.MethodDelete)
	r.HandleFunc("/routing/aliases", s.putAliasForm).Methods(http.MethodPost)
	r.HandleFunc("/routing/aliases", func(w http.ResponseWriter, r *http.Request) {
		alias := r.URL.Query().Get("alias")
		s.deleteRow(w, r, func() error { return s.st.DeleteModelAlias(r.Context(), principalFrom(r.Context()).Actor, alias) },
			"Alias "+alias+" deleted")
	}).Methods(http.MethodDelete)
}

// routing is what the page shows and the forms are checked against.
type routing struct {
	groups      []store.ModelGroup
	aliases     []store.ModelAlias
	deployments map[string][]store.Model // by model name
	providers   map[string]string        // provider names by id
}

func (s *Server) loadRouting(ctx context.Context) (*routing, error) {
	rt := &routing{deployments: map[string][]store.Model{}, providers: map[string]string{}}
	var err error
	if rt.groups, err = s.st.AllModelGroups(ctx); err != nil {
		return nil, err
	}
	if rt.aliases, err = s.st.AllModelAliases(ctx); err != nil {
		return nil, err
	}
	models, err := s.st.AllModels(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range models {
		rt.deployments[m.ModelName] = append(rt.deployments[m.ModelName], m)
	}
	providers, err := s.st.AllProviders(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range providers {
		rt.providers[p.ID] = p.Name
	}
	return rt, nil
}

func (rt *routing) group(model string) *store.ModelGroup {
	for i := range rt.groups {
		if rt.groups[i].ModelName == model {
			return &rt.groups[i]
		}
	}
	return nil
}

func (rt *routing) aliasOf(name string) (string, bool) {
	for _, a := range rt.aliases {
		if a.Alias == name {
			return a.ModelName, true
		}
	}
	return "", false
}

func (rt *routing) choices() views.RoutingChoices {
	c := views.RoutingChoices{Models: []string{}, Unrouted: []string{}}
	for _, name := range store.Strategies {
		c.Strategies = append(c.Strategies, views.Option{Value: name, Label: strategyHelp[name]})
	}
	for name := range rt.deployments {
		c.Models = append(c.Models, name)
		if rt.group(name) == nil {
			c.Unrouted = append(c.Unrouted, name)
		}
	}
	slices.Sort(c.Models)
	slices.Sort(c.Unrouted)
	return c
}

// deploymentsText lists a model's deployments with their weights:
// "2: openai-prod (gpt-4o), weight 3; azure (gpt-4o), weight 1, disabled".
func (rt *routing) deploymentsText(model string) string {
	ds := rt.deployments[model]
	if len(ds) == 0 {
		return ""
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%s (%s), weight %d", rt.providers[d.ProviderID], d.UpstreamModel, d.Weight)
		if !d.Enabled {
			parts[i] += ", disabled"
		}
	}
	return fmt.Sprintf("%d: %s", len(ds), strings.Join(parts, "; "))
}

func (rt *routing) groupRows() []views.GroupRow {
	rows := []views.GroupRow{}
	for _, g := range rt.groups {
		row := views.GroupRow{Model: g.ModelName, Strategy: g.Strategy, StrategyHelp: strategyHelp[g.Strategy], Deployments: rt.deploymentsText(g.ModelName)}
		for _, f := range g.Fallbacks {
			model := f
			if m, alias := rt.aliasOf(f); alias {
				model = m
			}
			row.Fallbacks = append(row.Fallbacks, views.FallbackLink{Name: f, Missing: len(rt.deployments[model]) == 0})
		}
		rows = append(rows, row)
	}
	return rows
}

func (rt *routing) aliasRows() []views.AliasRow {
	rows := []views.AliasRow{}
	for _, a := range rt.aliases {
		rows = append(rows, views.AliasRow{Alias: a.Alias, Model: a.ModelName, Missing: len(rt.deployments[a.ModelName]) == 0})
	}
	return rows
}

// groupFrom checks what the store cannot know on its own: the model and
// its fallbacks must be names deployments serve. The rest (strategy, a
// model falling back to itself) the store checks.
func (rt *routing) groupFrom(f views.GroupForm) (store.ModelGroup, error) {
	g := store.ModelGroup{ModelName: f.Model, Strategy: f.Strategy, Fallbacks: splitList(f.Fallbacks)}
	if !f.Editing && f.Model != "" {
		if rt.group(f.Model) != nil {
			return g, &store.ValidationError{Field: "model_name", Message: f.Model + " already has routing settings; edit them in the list"}
		}
		if len(rt.deployments[f.Model]) == 0 {
			return g, &store.ValidationError{Field: "model_name", Message: fmt.Sprintf("no deployment serves %q; add it on the Models page first", f.Model)}
		}
	}
	for i, name := range g.Fallbacks {
		switch model, alias := rt.aliasOf(name); {
		case name == f.Model:
			// The store says a model cannot fall back to itself.
		case slices.Contains(g.Fallbacks[:i], name):
			return g, &store.ValidationError{Field: "fallbacks", Message: fmt.Sprintf("fallbacks: %s is listed twice", name)}
		case alias && len(rt.deployments[model]) == 0:
			return g, &store.ValidationError{Field: "fallbacks", Message: fmt.Sprintf("fallbacks: %s is an alias of %s, which no deployment serves", name, model)}
		case alias:
			// The gateway resolves an alias in a fallback chain.
		case len(rt.deployments[name]) == 0:
			return g, &store.ValidationError{Field: "fallbacks", Message: fmt.Sprintf("fallbacks: no deployment serves %q; list model names from the Models page", name)}
		}
	}
	return g, nil
}

func (s *Server) routingPage(w http.ResponseWriter, r *http.Request) {
	rt, err := s.loadRouting(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.page(w, r, "Routing", "routing", views.RoutingPage(views.RoutingView{Groups: rt.groupRows(), Aliases: rt.aliasRows(), Defaults: s.routingDefaults(),
		GroupForm: views.GroupForm{Strategy: "weighted"}, Choices: rt.choices(), CanWrite: s.viewSession(r.Context()).CanWrite}))
}

func groupFormFrom(r *http.Request) views.GroupForm {
	return views.GroupForm{Model: strings.TrimSpace(r.PostFormValue("model_name")), Strategy: r.PostFormValue("strategy"),
		Fallbacks: r.PostFormValue("fallbacks")}
}

// saveGroup stores the group form after checking it against what exists.
func (s *Server) saveGroup(r *http.Request, f views.GroupForm) (*routing, error) {
	rt, err := s.loadRouting(r.Context())
	if err != nil {
		return nil, err
	}
	g, err := rt.groupFrom(f)
	if err == nil {
		_, err = s.st.PutModelGroup(r.Context(), principalFrom(r.Context()).Actor, g)
	}
	return rt, err
}

func (s *Server) createGroupForm(w http.ResponseWriter, r *http.Request) {
	s.saveGroupForm(w, r, groupFormFrom(r), views.GroupFormView, func(rt *routing) templ.Component {
		return both(views.GroupFormView(views.GroupForm{Strategy: "weighted"}, rt.choices()), views.GroupsList(rt.groupRows(), true, true))
	})
}

// saveGroupForm stores the group form and answers with form, showing its
// errors, or with done, built from the routing as it now stands.
func (s *Server) saveGroupForm(w http.ResponseWriter, r *http.Request, f views.GroupForm,
	form func(views.GroupForm, views.RoutingChoices) templ.Component, done func(*routing) templ.Component) {
	rt, err := s.saveGroup(r, f)
	if rt == nil {
		s.writeErr(w, r, err)
		return
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			return form(f, rt.choices())
		},
		func() (templ.Component, error) {
			rt, err := s.loadRouting(r.Context())
			if err != nil {
				return nil, err
			}
			return done(rt), nil
		}, "Routing of "+f.Model+" saved")
}

func (s *Server) editGroupDialog(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "routing") {
		return
	}
	rt, err := s.loadRouting(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	model := r.URL.Query().Get("model")
	g := rt.group(model)
	if g == nil {
		s.writeErr(w, r, fmt.Errorf("model group %s: %w", model, store.ErrNotFound))
		return
	}
	render(w, r, http.StatusOK, views.GroupEditDialog(views.GroupForm{Model: g.ModelName, Strategy: g.Strategy,
		Fallbacks: strings.Join(g.Fallbacks, ", "), Editing: true}, rt.choices()))
}

func (s *Server) updateGroupForm(w http.ResponseWriter, r *http.Request) {
	f := groupFormFrom(r)
	f.Editing = true
	s.saveGroupForm(w, r, f, views.GroupEditDialog, func(rt *routing) templ.Component {
		return views.GroupsList(rt.groupRows(), true, true) // the dialog area empties: the dialog closes
	})
}

// putAliasForm adds an alias or points an existing one at another model.
func (s *Server) putAliasForm(w http.ResponseWriter, r *http.Request) {
	f := views.AliasForm{Alias: r.PostFormValue("alias"), Model: strings.TrimSpace(r.PostFormValue("model_name"))}
	rt, err := s.loadRouting(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if model, alias := rt.aliasOf(f.Model); alias {
		err = &store.ValidationError{Field: "model_name", Message: fmt.Sprintf("%s is itself an alias of %s; choose the model name", f.Model, model)}
	} else if f.Model != "" && len(rt.deployments[f.Model]) == 0 {
		err = &store.ValidationError{Field: "model_name", Message: fmt.Sprintf("no deployment serves %q; add it on the Models page first", f.Model)}
	}
	var saved *store.ModelAlias
	if err == nil {
		saved, err = s.st.PutModelAlias(r.Context(), principalFrom(r.Context()).Actor, store.ModelAlias{Alias: f.Alias, ModelName: f.Model})
	}
	msg := ""
	if saved != nil {
		msg = "Alias " + saved.Alias + " now names " + saved.ModelName
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			return views.AliasFormView(f, rt.choices().Models)
		},
		func() (templ.Component, error) {
			rt, err := s.loadRouting(r.Context())
			if err != nil {
				return nil, err
			}
			return both(views.AliasFormView(views.AliasForm{}, rt.choices().Models), views.AliasesList(rt.aliasRows(), true, true)), nil
		}, msg)
}

// routingDefaults lists the environment's routing settings.
func (s *Server) routingDefaults() []views.Setting {
	d := s.routing
	fallbacks, health := "none", "off"
	if len(d.DefaultFallbacks) > 0 {
		fallbacks = strings.Join(d.DefaultFallbacks, " → ")
	}
	if d.HealthInterval > 0 {
		health = "every " + d.HealthInterval.String()
	}
	return []views.Setting{
		{Name: "Retries after a 429, 5xx or timeout", Env: "TOLLGATE_RETRIES", Value: strconv.Itoa(d.Retries)},
		{Name: "Failures that cool a deployment down", Env: "TOLLGATE_COOLDOWN_FAILURES", Value: fmt.Sprintf("%d within %s", d.CooldownFailures, d.CooldownWindow)},
		{Name: "Cooling period", Env: "TOLLGATE_COOLDOWN_PERIOD", Value: d.CooldownPeriod.String()},
		{Name: "Default fallbacks", Env: "TOLLGATE_DEFAULT_FALLBACKS", Value: fallbacks},
		{Name: "Health checks", Env: "TOLLGATE_HEALTH_CHECK_INTERVAL", Value: health},
	}
}
