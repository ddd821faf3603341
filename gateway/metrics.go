package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the gateway's Prometheus series.
type Metrics struct {
	Registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	tokens    *prometheus.CounterVec
	cost      *prometheus.CounterVec
	queued    prometheus.GaugeFunc
	inFlight  prometheus.Gauge
	refused   *prometheus.CounterVec
	redisUp   prometheus.GaugeFunc
	spooled   prometheus.GaugeFunc
	retries   *prometheus.CounterVec
	cooldowns *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	guardHits *prometheus.CounterVec
}

// NewMetrics registers the series on a fresh registry; queued reports the
// spend logs waiting to be written.
func NewMetrics(queued, spooled func() float64, redisUp func() bool) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_requests_total", Help: "LLM API requests by model, team, endpoint and HTTP status.",
		}, []string{"model", "team", "endpoint", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_request_duration_seconds", Help: "Time from request to the end of the answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"model", "endpoint"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_tokens_total", Help: "Tokens by model, team and direction (input or output).",
		}, []string{"model", "team", "direction"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_cost_usd_total", Help: "Cost in USD by model and team.",
		}, []string{"model", "team"}),
		queued: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_spend_logs_queued", Help: "Spend logs waiting to be written to PostgreSQL.",
		}, queued),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tollgate_requests_in_flight", Help: "LLM API requests being served now.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_requests_refused_total", Help: "Requests refused by governance, by reason (rate_limit, parallel, budget, deployment_limit).",
		}, []string{"reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_upstream_retries_total", Help: "Upstream calls tried again after a 429, a 5xx or a transport failure, by model.",
		}, []string{"model"}),
		cooldowns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_deployment_cooldowns_total", Help: "Deployments taken out of routing after repeated failures, by model.",
		}, []string{"model"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_fallbacks_total", Help: "Requests sent on to a fallback model after the model asked for failed, by the model asked for.",
		}, []string{"model"}),
		guardHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_guardrail_hits_total", Help: "What guardrails found, by guardrail, mode, action taken and matched type (EMAIL, AWS_ACCESS_KEY, a pattern's name …).",
		}, []string{"guardrail", "mode", "action", "type"}),
		spooled: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_spend_logs_spooled", Help: "Spend logs waiting on local disk because PostgreSQL was unreachable (part of tollgate_spend_logs_queued).",
		}, spooled),
		redisUp: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_redis_up", Help: "1 when Redis answers; 0 while limits run on per-process fallback counters.",
		}, func() float64 {
			if redisUp() {
				return 1
			}
			return 0
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.tokens, m.cost, m.queued, m.inFlight, m.refused, m.redisUp, m.spooled, m.retries, m.cooldowns, m.fallbacks, m.guardHits,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
