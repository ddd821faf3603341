// Package admin serves the management side of Tollgate on port 8080: the
// JSON API under /api/v1 (and, later, the dashboard).
package admin

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"tollgate/gateway"
	"tollgate/store"
)

// Server is the admin app.
type Server struct {
	st        *store.Store
	rdb       *redis.Client
	masterKey string
	log       *slog.Logger
	registry  *prometheus.Registry
}

// New builds the admin app. With an empty master key the API refuses every
// call: there is no way in without one.
func New(st *store.Store, rdb *redis.Client, masterKey string, log *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{st: st, rdb: rdb, masterKey: masterKey, log: log, registry: reg}
}

// Handler returns the admin routes.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/health/liveliness", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet)
	r.HandleFunc("/health/readiness", gateway.Readiness(s.st, s.rdb)).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	api := r.PathPrefix("/api/v1").Subrouter()
	api.Use(s.requireMasterKey)
	s.providerRoutes(api)
	s.modelRoutes(api)
	s.teamRoutes(api)
	s.userRoutes(api)
	s.keyRoutes(api)
	api.HandleFunc("/spend/logs", s.spendLogs).Methods(http.MethodGet)
	api.HandleFunc("/spend/report", s.spendReport).Methods(http.MethodGet)
	api.HandleFunc("/audit-logs", s.auditLogs).Methods(http.MethodGet)
	api.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "not_found", "Unknown API path "+r.URL.Path+"; see docs/openapi.yaml.")
	})
	api.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
	})
	return r
}

// actor names who made a change, for the audit log.
const masterActor = "master-key"

// requireMasterKey lets through callers bearing the master key.
func (s *Server) requireMasterKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if token == "" || !strings.EqualFold(scheme, "Bearer") {
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "Missing credentials: send 'Authorization: Bearer <master key>'.")
			return
		}
		if s.masterKey == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.masterKey)) != 1 {
			writeProblem(w, http.StatusUnauthorized, "unauthorized", "Invalid credentials for the management API.")
			return
		}
		next.ServeHTTP(w, r)
	})
}
