// Package gateway is the OpenAI-compatible hot path: authenticate the
// virtual key, authorize the model, route to a deployment, stream the
// answer through, price it and queue the spend log.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"tollgate/gateway/limits"
	"tollgate/gateway/tokens"
	"tollgate/store"
)

// Options tune the hot path.
type Options struct {
	MaxBodyBytes    int64
	UpstreamTimeout time.Duration
	Limits          limits.Options
	Retry           RetryOptions
	// DefaultFallbacks are tried, in order, after a model's own fallbacks.
	DefaultFallbacks []string
}

// Server serves the gateway API.
type Server struct {
	st        *store.Store
	rdb       *redis.Client
	cache     *Cache
	spend     *SpendWriter
	guard     *limits.Guard
	cooldowns *cooldowns
	stats     routeStats
	metrics   *Metrics
	client    *http.Client
	opts      Options
	log       *slog.Logger
}

// New wires a gateway server from its parts.
func New(st *store.Store, rdb *redis.Client, cache *Cache, spend *SpendWriter, opts Options, log *slog.Logger) *Server {
	if opts.Limits.Log == nil {
		opts.Limits.Log = log
	}
	if opts.Limits.SlotTTL == 0 {
		// A slot or reservation outlives any request that is still running.
		opts.Limits.SlotTTL = opts.UpstreamTimeout + time.Minute
	}
	guard := limits.New(rdb, opts.Limits)
	opts.Retry.defaults()
	return &Server{
		st: st, rdb: rdb, cache: cache, spend: spend, guard: guard, cooldowns: newCooldowns(opts.Retry), opts: opts, log: log,
		metrics: NewMetrics(func() float64 { return float64(spend.Queued()) }, func() float64 { return float64(spend.Spooled()) }, guard.RedisUp),
		client:  &http.Client{Transport: newTransport()},
	}
}

// Registry is the gateway's Prometheus registry, for series of the jobs
// that run in this process.
func (s *Server) Registry() prometheus.Registerer { return s.metrics.Registry }

// Run keeps watch on Redis until ctx ends, so limits fall back to this
// process's counters while it is away.
func (s *Server) Run(ctx context.Context) {
	// Load the tokenizer's vocabulary now rather than on the first
	// budgeted request.
	go tokens.Text("gpt-4o", "warm up")
	s.guard.Run(ctx)
}

// newTransport keeps many warm connections per provider host: the gateway
// talks to few hosts, very often.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}),
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// Handler returns the gateway's routes.
func (s *Server) Handler() http.Handler {
	r := mux.NewRouter()
	for _, prefix := range []string{"/v1", ""} {
		r.Handle(prefix+"/chat/completions", s.llmHandler(endpointChat)).Methods(http.MethodPost)
		r.Handle(prefix+"/completions", s.llmHandler(endpointCompletions)).Methods(http.MethodPost)
		r.Handle(prefix+"/embeddings", s.llmHandler(endpointEmbeddings)).Methods(http.MethodPost)
		r.HandleFunc(prefix+"/models", s.listModels).Methods(http.MethodGet)
	}
	r.HandleFunc("/health/liveliness", s.liveliness).Methods(http.MethodGet)
	r.HandleFunc("/health/liveness", s.liveliness).Methods(http.MethodGet)
	r.HandleFunc("/health/readiness", s.readiness).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
			Message: "Unknown path " + r.URL.Path + "; the gateway serves /v1/chat/completions, /v1/completions, /v1/embeddings and /v1/models."})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Code: "method_not_allowed",
			Message: r.Method + " is not allowed on " + r.URL.Path})
	})
	return withRequestID(r)
}

type ctxKey struct{}

// withRequestID gives every response an x-request-id. The gateway always
// mints its own: the id keys the spend log, so callers must not choose it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

func (s *Server) liveliness(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness reports whether PostgreSQL and Redis answer. The gateway keeps
// serving without either (cached keys, local limits, spooled spend logs),
// so it stays ready and says it is degraded.
func (s *Server) readiness(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := map[string]any{"status": "ok", "postgres": "ok", "redis": "ok"}
	if err := s.st.Ping(ctx); err != nil {
		body["status"], body["postgres"] = "degraded", "unreachable"
	}
	if !s.guard.RedisUp() {
		body["status"], body["redis"] = "degraded", "unreachable"
		body["limits"] = "per-process fallback"
	}
	if n := s.spend.Queued(); n > 0 {
		body["spend_logs_queued"] = n
	}
	writeJSON(w, http.StatusOK, body)
}
