package jobs

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"tollgate/jobs/sinks"
	"tollgate/store"
)

// Meter pushes the meter-event outbox to every enabled billing sink. An
// event is marked delivered for a sink only after the sink acknowledged
// it; a crash in between only sends it again, and every sink dedups by the
// request id, so nothing is lost or counted twice.
type Meter struct {
	St          *store.Store
	Client      *http.Client
	MaxAttempts int           // tries before an event is failed for a sink (default 12)
	Lease       time.Duration // how long a batch is held while being sent (default 2m)
	Backoff     time.Duration // first retry delay, doubling (default 10s)
	MaxBackoff  time.Duration // (default 1h)
	Workers     int           // batches in flight per sink (default 4)
	MaxRun      time.Duration // one run stops taking new batches after this (default 5m)
	Metrics     *MeterMetrics
	Log         *slog.Logger
}

// MeterJob runs m on its own interval.
func MeterJob(m *Meter, interval time.Duration) Job {
	return Job{Name: "meter-push", Schedule: "@every " + interval.String(), Run: m.Run}
}

func (m *Meter) defaults() {
	if m.MaxAttempts <= 0 {
		m.MaxAttempts = 12
	}
	if m.Lease <= 0 {
		m.Lease = 2 * time.Minute
	}
	if m.Backoff <= 0 {
		m.Backoff = 10 * time.Second
	}
	if m.MaxBackoff <= 0 {
		m.MaxBackoff = time.Hour
	}
	if m.Workers <= 0 {
		m.Workers = 4
	}
	if m.MaxRun <= 0 {
		m.MaxRun = 5 * time.Minute
	}
	if m.Metrics == nil {
		m.Metrics = NewMeterMetrics(m.St)
	}
	if m.Client == nil {
		m.Client = &http.Client{Timeout: 30 * time.Second}
	}
}

// Run pushes every due event to every enabled sink, sinks side by side.
func (m *Meter) Run(ctx context.Context) error {
	m.defaults()
	all, err := m.St.AllSinks(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.MaxRun)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(all))
	for i, s := range all {
		if !s.Enabled {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.push(ctx, s)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// push drains one sink's due events until none are left or it fails.
func (m *Meter) push(ctx context.Context, s store.Sink) error {
	secret, err := m.St.SinkSecret(&s)
	if err != nil {
		return err
	}
	sender, err := sinks.New(s, secret, m.Client)
	if err != nil {
		return err
	}
	defer func() {
		if n := sinks.Skipped(sender); n > 0 {
			m.Metrics.skipped.WithLabelValues(s.Name).Add(float64(n))
		}
	}()
	per := sender.MaxEvents()
	for ctx.Err() == nil {
		batch, err := m.St.LeaseDeliveries(ctx, s.ID, per*m.Workers, m.Lease)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			sendErr error
		)
		for start := 0; start < len(batch); start += per {
			chunk := batch[start:min(start+per, len(batch))]
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := m.send(ctx, s, sender, chunk); err != nil {
					mu.Lock()
					sendErr = err
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if sendErr != nil {
			// The sink is failing: leave the rest for the next run rather
			// than hammer it.
			return sendErr
		}
	}
	return nil
}

// send delivers one chunk and records the outcome.
func (m *Meter) send(ctx context.Context, s store.Sink, sender sinks.Sender, chunk []store.MeterEvent) error {
	ids := make([]string, len(chunk))
	for i, e := range chunk {
		ids[i] = e.ID
	}
	start := time.Now()
	err := sender.Send(ctx, chunk)
	m.Metrics.duration.WithLabelValues(s.Name).Observe(time.Since(start).Seconds())
	// The outcome is recorded even if the run is being cancelled: the sink
	// has answered.
	rctx := context.WithoutCancel(ctx)
	if err == nil {
		if err := m.St.MarkDelivered(rctx, s.ID, ids); err != nil {
			return err
		}
		m.Metrics.delivered.WithLabelValues(s.Name).Add(float64(len(ids)))
		return nil
	}
	m.Metrics.errors.WithLabelValues(s.Name).Inc()
	failed, merr := m.St.MarkAttemptFailed(rctx, s.ID, ids, err.Error(), m.Backoff, m.MaxBackoff, m.MaxAttempts)
	if merr != nil {
		return errors.Join(err, merr)
	}
	if failed > 0 {
		m.Metrics.failed.WithLabelValues(s.Name).Add(float64(failed))
		m.Log.Error("meter events failed for good; replay them from Settings → Billing once the sink works", "sink", s.Name, "events", failed, "err", err)
	}
	m.Log.Warn("push meter events; will retry", "sink", s.Name, "events", len(ids), "err", err)
	return err
}

// MeterMetrics are the push job's Prometheus series. Counters count what
// this process pushed; the gauges are read from PostgreSQL at each scrape,
// so every replica reports the same backlog.
type MeterMetrics struct {
	st        *store.Store
	delivered *prometheus.CounterVec
	failed    *prometheus.CounterVec
	errors    *prometheus.CounterVec
	skipped   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	pending   *prometheus.Desc
	failedNow *prometheus.Desc
	lag       *prometheus.Desc
}

// NewMeterMetrics makes the series; Register them with each registry.
func NewMeterMetrics(st *store.Store) *MeterMetrics {
	return &MeterMetrics{
		st: st,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_meter_events_delivered_total", Help: "Meter events a billing sink acknowledged, pushed by this process.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_meter_events_failed_total", Help: "Meter events given up on after the last attempt (replayable).",
		}, []string{"sink"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_meter_push_errors_total", Help: "Failed pushes of a batch to a billing sink.",
		}, []string{"sink"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_meter_events_skipped_total", Help: "Meter events a sink cannot take by design (a Stripe event of a team without a billing customer), acknowledged unsent.",
		}, []string{"sink"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_meter_push_duration_seconds", Help: "Time a billing sink took to answer one batch.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"sink"}),
		pending:   prometheus.NewDesc("tollgate_meter_events_pending", "Meter events waiting to be delivered to a billing sink.", []string{"sink"}, nil),
		failedNow: prometheus.NewDesc("tollgate_meter_events_failed", "Meter events failed for good at a billing sink, until replayed.", []string{"sink"}, nil),
		lag:       prometheus.NewDesc("tollgate_meter_lag_seconds", "Age of the oldest meter event not yet delivered to a billing sink (0 when none).", []string{"sink"}, nil),
	}
}

// Register adds the series to a registry.
func (mm *MeterMetrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{mm.delivered, mm.failed, mm.errors, mm.skipped, mm.duration, backlog{mm}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// backlog reads the per-sink backlog from PostgreSQL when scraped.
type backlog struct{ mm *MeterMetrics }

func (b backlog) Describe(ch chan<- *prometheus.Desc) {
	ch <- b.mm.pending
	ch <- b.mm.failedNow
	ch <- b.mm.lag
}

func (b backlog) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	backlogs, err := b.mm.st.SinkBacklogs(ctx)
	if err != nil {
		return
	}
	for _, bl := range backlogs {
		lag := 0.0
		if bl.OldestPending != nil {
			lag = time.Since(*bl.OldestPending).Seconds()
		}
		name := bl.Name
		ch <- prometheus.MustNewConstMetric(b.mm.pending, prometheus.GaugeValue, float64(bl.Pending), name)
		ch <- prometheus.MustNewConstMetric(b.mm.failedNow, prometheus.GaugeValue, float64(bl.Failed), name)
		ch <- prometheus.MustNewConstMetric(b.mm.lag, prometheus.GaugeValue, lag, name)
	}
}
