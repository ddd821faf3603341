package admin

import (
	"context"
	"net/http"
	"regexp"

	"github.com/gorilla/mux"

	"tollgate/gateway/guardrails"
	"tollgate/store"
)

// guardrailRoutes serve the guardrails and what they found. Writes are
// checked by the gateway's own engine, so a guardrail the gateway could
// not load (a bad pattern, an unknown entity) is refused here with 400.
func (s *Server) guardrailRoutes(r *mux.Router) {
	// Before register's /guardrails/{id}, which would take "hits" for an id.
	r.HandleFunc("/guardrails/hits", s.guardrailHits).Methods(http.MethodGet).Name("guardrails.hits")
	register(s, r, "/guardrails", resource[store.GuardrailSpec, store.Guardrail]{
		defaults: func() store.GuardrailSpec { return store.GuardrailSpec{Enabled: true} },
		create: func(ctx context.Context, actor string, in store.GuardrailSpec) (*store.Guardrail, error) {
			if err := checkGuardrail(&in); err != nil {
				return nil, err
			}
			return s.st.CreateGuardrail(ctx, actor, in)
		},
		get: s.st.GetGuardrail,
		list: func(r *http.Request, page store.Page) ([]store.Guardrail, string, error) {
			return s.st.ListGuardrails(r.Context(), page)
		},
		update: func(ctx context.Context, actor, id string, change func(*store.GuardrailSpec) error) (*store.Guardrail, error) {
			return s.st.UpdateGuardrail(ctx, actor, id, func(spec *store.GuardrailSpec) error {
				if err := change(spec); err != nil {
					return err
				}
				return checkGuardrail(spec)
			})
		},
		remove: s.st.DeleteGuardrail,
	})
}

// compileField reads the field a compile error starts with
// ("config.patterns[0].pattern: …", "action: …").
var compileField = regexp.MustCompile(`^([a-z_]+(?:\.[a-z_]+|\[[0-9]+\])*):`)

// checkGuardrail applies the store's rules, then compiles the guardrail
// as the gateway will. The engine's message names the field; one that
// names none is the config's.
func checkGuardrail(spec *store.GuardrailSpec) error {
	if err := spec.Normalize(); err != nil {
		return err
	}
	_, err := guardrails.Compile(store.Guardrail{GuardrailSpec: *spec})
	if err == nil {
		return nil
	}
	field := "config"
	if m := compileField.FindStringSubmatch(err.Error()); m != nil {
		field = m[1]
	}
	return &store.ValidationError{Field: field, Message: err.Error()}
}

func (s *Server) guardrailHits(w http.ResponseWriter, r *http.Request) {
	page, err := pageOf(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	q := r.URL.Query()
	rows, next, err := s.st.ListGuardrailHits(r.Context(), store.GuardrailHitFilter{Guardrail: q.Get("guardrail"), TeamID: q.Get("team_id"), Page: page})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeList(w, rows, next)
}
