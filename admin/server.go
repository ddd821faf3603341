// Package admin serves the management side of Tollgate on port 8080: the
// JSON API under /api/v1 and the dashboard (templ pages from views/).
package admin

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"tollgate/store"
)

// Server is the admin app.
type Server struct {
	st        *store.Store
	rdb       *redis.Client
	masterKey string
	log       *slog.Logger
	registry  *prometheus.Registry
	sessions  *scs.SessionManager
	// gatewayURL is where the playground sends its calls.
	gatewayURL string
	// oidc is single sign-on; nil when not configured.
	oidc *oidcAuth
	// keySignIn shows the dashboard's master/management-key form.
	keySignIn bool
	// routing is the gateway-wide routing settings, for the Routing page.
	routing RoutingDefaults
}

// RoutingDefaults are the routing settings the environment gives the
// gateway; the admin app only shows them.
type RoutingDefaults struct {
	Retries          int
	CooldownFailures int
	CooldownWindow   time.Duration
	CooldownPeriod   time.Duration
	DefaultFallbacks []string
	HealthInterval   time.Duration
}

// SetRoutingDefaults tells the Routing page what the environment sets.
func (s *Server) SetRoutingDefaults(d RoutingDefaults) { s.routing = d }

// New builds the admin app. With an empty master key the API refuses every
// call: there is no way in without one.
func New(st *store.Store, rdb *redis.Client, masterKey string, log *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{st: st, rdb: rdb, masterKey: masterKey, log: log, registry: reg, sessions: newSessions(st),
		gatewayURL: "http://127.0.0.1:4000", keySignIn: true}
}

// Handler returns the admin routes.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/health/liveliness", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet)
	r.HandleFunc("/health/readiness", s.readiness).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	api := r.PathPrefix("/api/v1").Subrouter()
	api.Use(s.requireAuth)
	s.providerRoutes(api)
	s.modelRoutes(api)
	s.teamRoutes(api)
	s.userRoutes(api)
	s.keyRoutes(api)
	s.budgetRoutes(api)
	s.routingRoutes(api)
	s.guardrailRoutes(api)
	s.billingRoutes(api)
	api.HandleFunc("/spend/logs", s.spendLogs).Methods(http.MethodGet).Name("spend.logs")
	api.HandleFunc("/spend/report", s.spendReport).Methods(http.MethodGet).Name("spend.report")
	api.HandleFunc("/audit-logs", s.auditLogs).Methods(http.MethodGet).Name("audit.list")
	// Unmatched requests are authenticated too, so the API's shape is not
	// revealed to strangers.
	api.NotFoundHandler = s.requireIdentity(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowed := allowedMethods(api, r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.Join(allowed, " or "))
			return
		}
		writeProblem(w, http.StatusNotFound, "not_found", "Unknown API path "+r.URL.Path+"; see docs/openapi.yaml.")
	}))
	api.MethodNotAllowedHandler = api.NotFoundHandler
	s.webRoutes(r)
	return r
}

// allowedMethods lists the methods a path does answer to. gorilla/mux
// reports wrong methods on subrouters as not found, so we ask it again.
func allowedMethods(router *mux.Router, r *http.Request) []string {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		var match mux.RouteMatch
		if m != r.Method && router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, m)
		}
	}
	return allowed
}

// readiness reports whether PostgreSQL and Redis answer.
func (s *Server) readiness(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, body := http.StatusOK, map[string]string{"status": "ok", "postgres": "ok", "redis": "ok"}
	if err := s.st.Ping(ctx); err != nil {
		status, body["status"], body["postgres"] = http.StatusServiceUnavailable, "unavailable", "unreachable"
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		status, body["status"], body["redis"] = http.StatusServiceUnavailable, "unavailable", "unreachable"
	}
	writeJSON(w, status, body)
}

// actor names who made a change, for the audit log.
const masterActor = "master-key"

// requireIdentity only authenticates: for answers about paths that match
// no route.
func (s *Server) requireIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.authenticate(r); err != nil {
			s.writeErr(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}
