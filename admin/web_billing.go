package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/gorilla/mux"

	"tollgate/store"
	"tollgate/views"
)

// billingPages are Settings → Billing: the sinks, their deliveries and
// their actions. Finance users see them; only admins change them
// (requireSession refuses their other methods).
func (s *Server) billingPages(r *mux.Router) {
	r.HandleFunc("/billing", s.billingPage).Methods(http.MethodGet)
	r.HandleFunc("/billing/sinks", s.createSinkForm).Methods(http.MethodPost)
	r.HandleFunc("/billing/sinks/{id}/edit", s.editSinkDialog).Methods(http.MethodGet)
	r.HandleFunc("/billing/sinks/{id}", s.updateSinkForm).Methods(http.MethodPost)
	r.HandleFunc("/billing/sinks/{id}", func(w http.ResponseWriter, r *http.Request) {
		s.deleteRow(w, r, func() error { return s.st.DeleteSink(r.Context(), principalFrom(r.Context()).Actor, pathID(r)) }, "Billing sink deleted")
	}).Methods(http.MethodDelete)
	r.HandleFunc("/billing/sinks/{id}/test", s.testSinkButton).Methods(http.MethodPost)
	r.HandleFunc("/billing/sinks/{id}/replay", s.replaySinkButton).Methods(http.MethodPost)
}

// sinkTypes describe the types for the form.
func sinkTypes() []views.SinkType {
	labels := map[string]string{"amberflo": "Amberflo", "openmeter": "OpenMeter", "stripe": "Stripe meter events", "webhook": "Webhook (signed JSON)"}
	secrets := map[string]string{
		"amberflo":  "The Amberflo API key, sent as X-API-KEY.",
		"openmeter": "The OpenMeter API token, sent as a bearer token.",
		"stripe":    "A Stripe secret or restricted key (sk_… or rk_…) that may write meter events.",
		"webhook":   "The key of the HMAC-SHA256 signature of each batch; empty sends them unsigned.",
	}
	out := make([]views.SinkType, 0, len(store.SinkTypes))
	for _, t := range store.SinkTypes {
		placeholder := "https://billing.example.com/usage"
		if u := store.DefaultSinkURL[t]; u != "" {
			placeholder = u + " (default)"
		}
		out = append(out, views.SinkType{Name: t, Label: firstOf(labels[t], t), URLPlaceholder: placeholder, SecretHint: secrets[t]})
	}
	return out
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sinkSettings are the config keys the form edits, by type.
var sinkSettings = map[string][]string{
	"amberflo":  {"cost_meter", "region"},
	"openmeter": {"event_type"},
	"stripe":    {"event_name", "value"},
}

func (s *Server) billingPage(w http.ResponseWriter, r *http.Request) {
	rows, err := s.sinkRows(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.page(w, r, "Billing", "billing", views.BillingPage(views.BillingView{Rows: rows, Types: sinkTypes(),
		Form: views.SinkForm{Type: store.SinkTypes[0], Enabled: true}, CanWrite: s.viewSession(r.Context()).CanWrite}))
}

func (s *Server) sinkRows(r *http.Request) ([]views.SinkRow, error) {
	now := time.Now()
	sinks, stats, err := s.sinkStatuses(r.Context(), now)
	if err != nil {
		return nil, err
	}
	rows := make([]views.SinkRow, 0, len(sinks))
	for i, k := range sinks {
		rows = append(rows, sinkRow(&k, stats[i], now))
	}
	return rows, nil
}

func sinkRow(k *store.Sink, st sinkStatus, now time.Time) views.SinkRow {
	row := views.SinkRow{ID: k.ID, Name: k.Name, Type: k.Type, URL: k.URL, SecretHint: "none", Enabled: k.Enabled,
		Config: configText(k.Config), Delivered: views.Count(st.Delivered), Pending: views.Count(st.Pending),
		Failed: views.Count(st.Failed), FailedCount: st.Failed, LastError: st.LastError,
		LastDelivered: "never", LastDeliveredAt: views.When(st.LastDelivered)}
	if k.HasSecret {
		row.SecretHint = k.SecretHint
	}
	if st.OldestPending != nil {
		row.OldestPending, row.OldestPendingAt = views.Age(now.Sub(*st.OldestPending)), views.When(st.OldestPending)
	}
	if st.LastDelivered != nil {
		row.LastDelivered = views.Relative(*st.LastDelivered, now)
	}
	return row
}

// configText shows a sink's settings: "cost_meter: llm_cost · region: eu".
func configText(cfg store.JSON) string {
	var m map[string]any
	if json.Unmarshal(cfg, &m) != nil || len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v, err := json.Marshal(m[k])
		if err != nil {
			continue
		}
		parts = append(parts, k+": "+strings.Trim(string(v), `"`))
	}
	return strings.Join(parts, " · ")
}

// sinkFormFrom reads the sink form as typed.
func sinkFormFrom(r *http.Request) views.SinkForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return views.SinkForm{Name: v("name"), Type: v("type"), URL: v("url"), Enabled: r.PostFormValue("enabled") != "",
		CostMeter: v("cost_meter"), Region: v("region"), EventType: v("event_type"), EventName: v("event_name"), Value: v("value")}
}

// applySinkForm lays the form over a sink: the chosen type's settings are
// set or removed; settings of other types the form knows are dropped;
// settings only the API sets are kept. An empty secret keeps the stored
// one unless "remove" is ticked.
func applySinkForm(r *http.Request, f views.SinkForm, in *store.SinkInput) error {
	if f.Type == "stripe" && f.Value != "" && !slices.Contains(views.StripeValues, f.Value) {
		return &store.ValidationError{Field: "value", Message: "value must be one of " + strings.Join(views.StripeValues, ", ")}
	}
	in.Name, in.Type, in.URL, in.Enabled = f.Name, f.Type, f.URL, f.Enabled
	cfg := map[string]any{}
	json.Unmarshal(in.Config, &cfg)
	typed := map[string]string{"cost_meter": f.CostMeter, "region": f.Region, "event_type": f.EventType, "event_name": f.EventName, "value": f.Value}
	for _, keys := range sinkSettings {
		for _, k := range keys {
			delete(cfg, k)
		}
	}
	for _, k := range sinkSettings[f.Type] {
		if typed[k] != "" {
			cfg[k] = typed[k]
		}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	in.Config = store.JSON(b)
	switch secret := r.PostFormValue("secret"); {
	case secret != "":
		in.Secret = &secret
	case r.PostFormValue("clear_secret") != "":
		in.Secret = new(string)
	}
	return nil
}

func (s *Server) createSinkForm(w http.ResponseWriter, r *http.Request) {
	f := sinkFormFrom(r)
	in := store.SinkInput{}
	err := applySinkForm(r, f, &in)
	if err == nil {
		_, err = s.st.CreateSink(r.Context(), principalFrom(r.Context()).Actor, in)
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			return views.SinkFormView(f, sinkTypes())
		},
		func() (templ.Component, error) {
			rows, err := s.sinkRows(r)
			return both(views.SinkFormView(views.SinkForm{Type: store.SinkTypes[0], Enabled: true}, sinkTypes()), views.SinksList(rows, true, true)), err
		}, "Billing sink "+f.Name+" added")
}

// sinkForm shows a stored sink in the form.
func sinkForm(k *store.Sink) views.SinkForm {
	f := views.SinkForm{ID: k.ID, Name: k.Name, Type: k.Type, URL: k.URL, Enabled: k.Enabled}
	if k.HasSecret {
		f.SecretHint = k.SecretHint
	}
	var cfg map[string]any
	json.Unmarshal(k.Config, &cfg)
	str := func(key string) string { v, _ := cfg[key].(string); return v }
	f.CostMeter, f.Region, f.EventType, f.EventName, f.Value = str("cost_meter"), str("region"), str("event_type"), str("event_name"), str("value")
	return f
}

func (s *Server) editSinkDialog(w http.ResponseWriter, r *http.Request) {
	if principalFrom(r.Context()).Role != store.RoleAdmin {
		http.Error(w, "Only admins change billing sinks.", http.StatusForbidden)
		return
	}
	k, err := s.st.GetSink(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	render(w, r, http.StatusOK, views.SinkEditDialog(sinkForm(k), sinkTypes()))
}

func (s *Server) updateSinkForm(w http.ResponseWriter, r *http.Request) {
	f := sinkFormFrom(r)
	f.ID = pathID(r)
	_, err := s.st.UpdateSink(r.Context(), principalFrom(r.Context()).Actor, f.ID, func(in *store.SinkInput) error {
		return applySinkForm(r, f, in)
	})
	if err != nil { // the dialog comes back: it shows the stored secret's hint
		if k, gerr := s.st.GetSink(r.Context(), f.ID); gerr == nil && k.HasSecret {
			f.SecretHint = k.SecretHint
		}
	}
	s.formDone(w, r, err,
		func(errs map[string]string) templ.Component {
			f.Errors = errs
			return views.SinkEditDialog(f, sinkTypes())
		},
		func() (templ.Component, error) {
			rows, err := s.sinkRows(r)
			return views.SinksList(rows, true, true), err // the dialog area empties: the dialog closes
		}, "Billing sink "+f.Name+" saved")
}

// testSinkButton sends a test event and says how it went, next to the
// button and in a toast.
func (s *Server) testSinkButton(w http.ResponseWriter, r *http.Request) {
	sink, msg, err := s.sendTestEvent(r)
	if err != nil {
		if m, uerr := userMessage(err); uerr == nil && m != "" {
			refuse(w, m)
			return
		}
		s.writeErr(w, r, err)
		return
	}
	res := views.SinkTestResult{SinkID: sink.ID, Sink: sink.Name, OK: msg == "", Message: msg}
	if res.OK {
		toast(w, "ok", "Test event accepted by "+sink.Name)
	} else {
		toast(w, "error", "Test event to "+sink.Name+" failed")
	}
	render(w, r, http.StatusOK, views.SinkTestResultView(res))
}

// replaySinkButton makes the sink's failed events pending again and
// shows the sink's fresh status.
func (s *Server) replaySinkButton(w http.ResponseWriter, r *http.Request) {
	n, err := s.replay(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	now := time.Now()
	sinks, stats, err := s.sinkStatuses(r.Context(), now)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	for i, k := range sinks {
		if k.ID == pathID(r) {
			toast(w, "ok", "Replaying "+plural(int(n), "failed event")+" to "+k.Name)
			render(w, r, http.StatusOK, views.SinkCard(sinkRow(&k, stats[i], now), true))
			return
		}
	}
	s.writeErr(w, r, store.ErrNotFound)
}
