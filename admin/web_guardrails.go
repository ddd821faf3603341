package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"tollgate/gateway/guardrails"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"tollgate/store"
	"tollgate/views"
)

// What each type, mode and action does, in a line, for the form and the
// list's tooltips (docs/guardrails.md says more).
var (
	guardrailTypeHelp = map[string]string{
		store.GuardrailPII:             "personal data such as emails, phone and card numbers",
		store.GuardrailSecrets:         "API keys, tokens and private keys",
		store.GuardrailKeywords:        "words or phrases you list",
		store.GuardrailRegex:           "your own regular expressions",
		store.GuardrailPromptInjection: "attempts to override the instructions",
		store.GuardrailMaxPromptSize:   "prompts over a size",
		store.GuardrailExternal:        "your own HTTP service decides",
	}
	guardrailModeHelp = map[string]string{
		store.ModePreCall:    "the prompt, before the provider sees it",
		store.ModePostCall:   "the answer, streamed or not",
		store.ModeDuringCall: "the prompt, alongside the call, which a hit cancels",
	}
	guardrailActionHelp = map[string]string{
		store.ActionBlock: "refuse the request (400 content_policy_violation)",
		store.ActionMask:  "replace matches with [TYPE] placeholders",
		store.ActionLog:   "record the hit only",
	}
)

func (s *Server) guardrailPages(r *mux.Router) {
	r.HandleFunc("/guardrails", s.guardrailsPage).Methods(http.MethodGet)
	r.HandleFunc("/guardrails", s.createGuardrailForm).Methods(http.MethodPost)
	r.HandleFunc("/guardrails/{id}/edit", s.editGuardrailDialog).Methods(http.MethodGet)
	r.HandleFunc("/guardrails/{id}", s.updateGuardrailForm).Methods(http.MethodPost)
	r.HandleFunc("/guardrails/{id}/enable", s.setGuardrailEnabledRow(true)).Methods(http.MethodPost)
	r.HandleFunc("/guardrails/{id}/disable", s.setGuardrailEnabledRow(false)).Methods(http.MethodPost)
	r.HandleFunc("/guardrails/{id}", func(w http.ResponseWriter, r *http.Request) {
		name := pathID(r)
		if g, err := s.st.GetGuardrail(r.Context(), pathID(r)); err == nil {
			name = g.Name
		}
		s.deleteRow(w, r, func() error { return s.st.DeleteGuardrail(r.Context(), principalFrom(r.Context()).Actor, pathID(r)) },
			"Guardrail "+name+" deleted")
	}).Methods(http.MethodDelete)
}

// guardrailData is what the list and the forms are made from.
type guardrailData struct {
	guardrails []store.Guardrail
	teams      []store.Team
	teamNames  map[string]string
	hits       map[string]int64 // requests with hits in the last 24 h, by guardrail name
}

func (s *Server) loadGuardrails(ctx context.Context) (*guardrailData, error) {
	d := &guardrailData{teamNames: map[string]string{}}
	var err error
	if d.guardrails, err = s.st.AllGuardrails(ctx); err != nil {
		return nil, err
	}
	if d.teams, err = s.st.AllTeams(ctx); err != nil {
		return nil, err
	}
	for _, t := range d.teams {
		d.teamNames[t.ID] = t.Name
	}
	if d.hits, err = s.st.GuardrailHitCounts(ctx, time.Now().Add(-24*time.Hour)); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *guardrailData) choices() views.GuardrailChoices {
	c := views.GuardrailChoices{Entities: guardrails.PIIEntities} // offered as checkboxes
	for _, t := range store.GuardrailTypes {
		c.Types = append(c.Types, views.Option{Value: t, Label: guardrailTypeHelp[t]})
	}
	for _, m := range store.GuardrailModes {
		c.Modes = append(c.Modes, views.Option{Value: m, Label: guardrailModeHelp[m]})
	}
	for _, a := range store.GuardrailActions {
		c.Actions = append(c.Actions, views.Option{Value: a, Label: guardrailActionHelp[a]})
	}
	for _, t := range d.teams {
		c.Teams = append(c.Teams, views.Option{Value: t.ID, Label: t.Name})
	}
	slices.SortFunc(c.Teams, func(a, b views.Option) int { return strings.Compare(a.Label, b.Label) })
	return c
}

func (d *guardrailData) row(g store.Guardrail) views.GuardrailRow {
	row := views.GuardrailRow{ID: g.ID, Name: g.Name, Type: g.Type, TypeHelp: guardrailTypeHelp[g.Type], Mode: g.Mode, ModeHelp: guardrailModeHelp[g.Mode],
		Action: g.Action, ActionHelp: guardrailActionHelp[g.Action], DefaultOn: g.DefaultOn, Enabled: g.Enabled,
		Config: configSummary(g), Hits: views.Count(d.hits[g.Name])}
	for _, id := range g.TeamIDs {
		if name, ok := d.teamNames[id]; ok {
			row.Teams = append(row.Teams, name)
		}
	}
	return row
}

func (d *guardrailData) rows() []views.GuardrailRow {
	rows := []views.GuardrailRow{}
	for _, g := range d.guardrails {
		rows = append(rows, d.row(g))
	}
	return rows
}

// guardrailConfig is the part of a guardrail's config the dashboard edits,
// as docs/guardrails.md describes it per type.
type guardrailConfig struct {
	Entities      []string           `json:"entities,omitempty"`
	Keywords      []string           `json:"keywords,omitempty"`
	CaseSensitive bool               `json:"case_sensitive,omitempty"`
	Patterns      []guardrailPattern `json:"patterns,omitempty"`
	MaxTokens     int64              `json:"max_tokens,omitempty"`
	MaxChars      int64              `json:"max_chars,omitempty"`
	URL           string             `json:"url,omitempty"`
	TimeoutMS     int64              `json:"timeout_ms,omitempty"`
	FailOpen      bool               `json:"fail_open,omitempty"`
}

type guardrailPattern struct {
	Name    string `json:"name"`
	Pattern string `json:"pattern"`
}

func decodeConfig(raw store.JSON) guardrailConfig {
	var c guardrailConfig
	if len(raw) > 0 {
		json.Unmarshal(raw, &c) // a config the API wrote oddly shows as empty fields
	}
	return c
}

// configSummary says in a few words what a guardrail looks for.
func configSummary(g store.Guardrail) string {
	c := decodeConfig(g.Config)
	switch g.Type {
	case store.GuardrailPII:
		if len(c.Entities) == 0 {
			return "every entity"
		}
		return strings.Join(c.Entities, ", ")
	case store.GuardrailKeywords:
		s := fmt.Sprintf("%d keyword(s)", len(c.Keywords))
		if c.CaseSensitive {
			s += ", case sensitive"
		}
		return s
	case store.GuardrailRegex:
		names := make([]string, len(c.Patterns))
		for i, p := range c.Patterns {
			names[i] = p.Name
		}
		return strings.Join(names, ", ")
	case store.GuardrailMaxPromptSize:
		var parts []string
		if c.MaxTokens > 0 {
			parts = append(parts, views.Count(c.MaxTokens)+" tokens")
		}
		if c.MaxChars > 0 {
			parts = append(parts, views.Count(c.MaxChars)+" characters")
		}
		return "at most " + strings.Join(parts, " or ")
	case store.GuardrailExternal:
		s := c.URL
		if c.TimeoutMS > 0 {
			s += fmt.Sprintf(" · %d ms", c.TimeoutMS)
		}
		if c.FailOpen {
			s += " · fails open"
		} else {
			s += " · fails closed"
		}
		return s
	}
	return ""
}

// formOf shows a stored guardrail in the edit dialog.
func formOf(g store.Guardrail) views.GuardrailForm {
	c := decodeConfig(g.Config)
	f := views.GuardrailForm{ID: g.ID, Name: g.Name, Type: g.Type, Mode: g.Mode, Action: g.Action, DefaultOn: g.DefaultOn, Enabled: g.Enabled,
		TeamIDs: g.TeamIDs, Entities: c.Entities, Keywords: strings.Join(c.Keywords, "\n"), CaseSensitive: c.CaseSensitive,
		URL: c.URL, FailOpen: c.FailOpen}
	lines := make([]string, len(c.Patterns))
	for i, p := range c.Patterns {
		lines[i] = p.Name + "=" + p.Pattern
	}
	f.Patterns = strings.Join(lines, "\n")
	if c.MaxTokens > 0 {
		f.MaxTokens = strconv.FormatInt(c.MaxTokens, 10)
	}
	if c.MaxChars > 0 {
		f.MaxChars = strconv.FormatInt(c.MaxChars, 10)
	}
	if c.TimeoutMS > 0 {
		f.TimeoutMS = strconv.FormatInt(c.TimeoutMS, 10)
	}
	return f
}

func guardrailFormFrom(r *http.Request) views.GuardrailForm {
	r.ParseForm()
	on := func(name string) bool { return r.PostFormValue(name) == "true" }
	return views.GuardrailForm{
		Name: strings.TrimSpace(r.PostFormValue("name")), Type: r.PostFormValue("type"), Mode: r.PostFormValue("mode"), Action: r.PostFormValue("action"),
		DefaultOn: on("default_on"), Enabled: on("enabled"), TeamIDs: r.PostForm["team_id"],
		Entities: r.PostForm["entity"], Keywords: r.PostFormValue("keywords"), CaseSensitive: on("case_sensitive"),
		Patterns: r.PostFormValue("patterns"), MaxTokens: strings.TrimSpace(r.PostFormValue("max_tokens")), MaxChars: strings.TrimSpace(r.PostFormValue("max_chars")),
		URL: strings.TrimSpace(r.PostFormValue("url")), TimeoutMS: strings.TrimSpace(r.PostFormValue("timeout_ms")), FailOpen: on("fail_open"),
	}
}

func lines(s string) []string {
	out := []string{}
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func positiveField(field, label, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, &store.ValidationError{Field: field, Message: fmt.Sprintf("%s must be a positive whole number (got %q)", label, v)}
	}
	return n, nil
}

// specFrom turns the form into a guardrail. The config keys the form edits
// are set from the chosen type's inputs; any other keys of base (written
// through the API) are kept while the type stays the same.
func specFrom(f views.GuardrailForm, base *store.Guardrail) (store.GuardrailSpec, error) {
	spec := store.GuardrailSpec{Name: f.Name, Type: f.Type, Mode: f.Mode, Action: f.Action, DefaultOn: f.DefaultOn, Enabled: f.Enabled,
		TeamIDs: append([]string{}, f.TeamIDs...)}
	cfg := map[string]any{}
	if base != nil && base.Type == f.Type && len(base.Config) > 0 {
		json.Unmarshal(base.Config, &cfg)
	}
	for _, k := range []string{"entities", "keywords", "case_sensitive", "patterns", "max_tokens", "max_chars", "url", "timeout_ms", "fail_open"} {
		delete(cfg, k)
	}
	set := func(k string, v any, keep bool) {
		if keep {
			cfg[k] = v
		}
	}
	switch f.Type {
	case store.GuardrailPII:
		set("entities", f.Entities, len(f.Entities) > 0)
	case store.GuardrailKeywords:
		set("keywords", lines(f.Keywords), true)
		set("case_sensitive", true, f.CaseSensitive)
	case store.GuardrailRegex:
		patterns := []guardrailPattern{}
		for i, l := range lines(f.Patterns) {
			name, pattern, ok := strings.Cut(l, "=")
			name, pattern = strings.TrimSpace(name), strings.TrimSpace(pattern)
			if !ok || name == "" || pattern == "" {
				return spec, &store.ValidationError{Field: "config.patterns", Message: fmt.Sprintf("patterns: line %d must be NAME=pattern (got %q)", i+1, l)}
			}
			patterns = append(patterns, guardrailPattern{Name: name, Pattern: pattern})
		}
		set("patterns", patterns, true)
	case store.GuardrailMaxPromptSize:
		tokens, err := positiveField("config.max_tokens", "max tokens", f.MaxTokens)
		if err != nil {
			return spec, err
		}
		chars, err := positiveField("config.max_chars", "max characters", f.MaxChars)
		if err != nil {
			return spec, err
		}
		set("max_tokens", tokens, tokens > 0)
		set("max_chars", chars, chars > 0)
	case store.GuardrailExternal:
		timeout, err := positiveField("config.timeout_ms", "timeout", f.TimeoutMS)
		if err != nil {
			return spec, err
		}
		set("url", f.URL, f.URL != "")
		set("timeout_ms", timeout, timeout > 0)
		set("fail_open", true, f.FailOpen)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return spec, fmt.Errorf("encode guardrail config: %w", err)
	}
	spec.Config = raw
	return spec, nil
}

func (s *Server) guardrailsPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.loadGuardrails(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	v := views.GuardrailsView{Rows: d.rows(), Form: newGuardrailForm(), Choices: d.choices(), CanWrite: s.viewSession(r.Context()).CanWrite}
	for _, g := range d.guardrails {
		v.Names = append(v.Names, g.Name)
	}
	q := r.URL.Query()
	v.HitsFilter = q.Get("hits_guardrail")
	hits, next, err := s.st.ListGuardrailHits(r.Context(), store.GuardrailHitFilter{Guardrail: v.HitsFilter, Page: store.Page{Limit: 50, Cursor: q.Get("hits_cursor")}})
	if err != nil {
		if _, err := userMessage(err); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	for _, h := range hits {
		v.Hits = append(v.Hits, hitRow(h))
	}
	if next != "" {
		v.HitsNext = url.Values{"hits_guardrail": {v.HitsFilter}, "hits_cursor": {next}}.Encode()
	}
	s.page(w, r, "Guardrails", "guardrails", views.GuardrailsPage(v))
}

func hitRow(h store.GuardrailHitRecord) views.GuardrailHitRow {
	row := views.GuardrailHitRow{When: h.CreatedAt.UTC().Format("2006-01-02 15:04:05"), Guardrail: h.Guardrail, Team: h.TeamName,
		Key: h.KeyAlias, RequestID: h.RequestID, Mode: h.Mode, Action: h.Action, MatchedType: h.MatchedType, Count: h.Count}
	if row.Team == "" && h.TeamID != nil {
		row.Team = *h.TeamID // a team since deleted
	}
	if row.Key == "" {
		row.Key = h.KeyHint
	}
	if row.Key == "" && h.KeyID != nil {
		row.Key = *h.KeyID
	}
	return row
}

func newGuardrailForm() views.GuardrailForm {
	return views.GuardrailForm{Type: store.GuardrailPII, Mode: store.ModePreCall, Action: store.ActionMask, Enabled: true}
}

func (s *Server) createGuardrailForm(w http.ResponseWriter, r *http.Request) {
	f := guardrailFormFrom(r)
	spec, err := specFrom(f, nil)
	var saved *store.Guardrail
	if err == nil {
		if err = checkGuardrail(&spec); err == nil {
			saved, err = s.st.CreateGuardrail(r.Context(), principalFrom(r.Context()).Actor, spec)
		}
	}
	s.guardrailFormDone(w, r, f, saved, err, "added", views.GuardrailFormView, func(d *guardrailData) templ.Component {
		return both(views.GuardrailFormView(newGuardrailForm(), d.choices()), views.GuardrailsList(d.rows(), true, true))
	})
}

// guardrailFormDone answers a guardrail form saved (saved, err) with form,
// showing its errors, or with done, built from the guardrails as they now stand.
func (s *Server) guardrailFormDone(w http.ResponseWriter, r *http.Request, f views.GuardrailForm, saved *store.Guardrail, err error, verb string,
	form func(views.GuardrailForm, views.GuardrailChoices) templ.Component, done func(*guardrailData) templ.Component) {
	d, lerr := s.loadGuardrails(r.Context())
	if lerr != nil {
		s.writeErr(w, r, lerr)
		return
	}
	msg := ""
	if saved != nil {
		msg = "Guardrail " + saved.Name + " " + verb
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			return form(f, d.choices())
		},
		func() (templ.Component, error) { return done(d), nil }, msg)
}

func (s *Server) editGuardrailDialog(w http.ResponseWriter, r *http.Request) {
	if !adminOnly(w, r, "guardrails") {
		return
	}
	g, err := s.st.GetGuardrail(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	d, err := s.loadGuardrails(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	render(w, r, http.StatusOK, views.GuardrailEditDialog(formOf(*g), d.choices()))
}

func (s *Server) updateGuardrailForm(w http.ResponseWriter, r *http.Request) {
	f := guardrailFormFrom(r)
	f.ID = pathID(r)
	saved, err := s.st.UpdateGuardrail(r.Context(), principalFrom(r.Context()).Actor, pathID(r), func(spec *store.GuardrailSpec) error {
		next, err := specFrom(f, &store.Guardrail{GuardrailSpec: *spec})
		if err != nil {
			return err
		}
		*spec = next
		return checkGuardrail(spec)
	})
	s.guardrailFormDone(w, r, f, saved, err, "saved", views.GuardrailEditDialog, func(d *guardrailData) templ.Component {
		return views.GuardrailsList(d.rows(), true, true) // the dialog area empties: the dialog closes
	})
}

// setGuardrailEnabledRow turns a guardrail on or off and answers its row.
func (s *Server) setGuardrailEnabledRow(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		g, err := s.st.UpdateGuardrail(r.Context(), principalFrom(r.Context()).Actor, pathID(r), func(spec *store.GuardrailSpec) error {
			spec.Enabled = enabled
			if !enabled {
				return nil
			}
			return checkGuardrail(spec)
		})
		if err != nil {
			s.refuseErr(w, r, err)
			return
		}
		d, err := s.loadGuardrails(r.Context())
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		state := "disabled"
		if enabled {
			state = "enabled"
		}
		toast(w, "ok", "Guardrail "+g.Name+" "+state)
		render(w, r, http.StatusOK, views.GuardrailRowView(d.row(*g), true))
	}
}

// guardrailHitsText sums up a spend log's guardrail hits in a line:
// "pii mask EMAIL×2 CREDIT_CARD; secrets block AWS_ACCESS_KEY".
func guardrailHitsText(hits store.GuardrailHits) string {
	type group struct{ guardrail, action string }
	var order []group
	types := map[group][]string{}
	for _, h := range hits {
		g := group{h.Guardrail, h.Action}
		if _, seen := types[g]; !seen {
			order = append(order, g)
		}
		t := h.Type
		if h.Count > 1 {
			t += "×" + strconv.Itoa(h.Count)
		}
		types[g] = append(types[g], t)
	}
	parts := make([]string, 0, len(order))
	for _, g := range order {
		parts = append(parts, strings.Join(append([]string{g.guardrail, g.action}, types[g]...), " "))
	}
	return strings.Join(parts, "; ")
}
