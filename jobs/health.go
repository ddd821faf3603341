package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"tollgate/store"
)

// Prober sends a deployment one cheap request (gateway.Probe).
type Prober func(ctx context.Context, m store.Model, p *store.Provider, apiKey string) (time.Duration, error)

// HealthJob probes every enabled deployment and records the outcome;
// gateways leave out unhealthy ones and take them back once healthy.
func HealthJob(st *store.Store, probe Prober, interval time.Duration, log *slog.Logger) Job {
	return Job{Name: "health-check", Schedule: "@every " + interval.String(), Run: func(ctx context.Context) error {
		return CheckHealth(ctx, st, probe, log)
	}}
}

// CheckHealth runs one round of probes, a few at a time.
func CheckHealth(ctx context.Context, st *store.Store, probe Prober, log *slog.Logger) error {
	providers, err := st.AllProviders(ctx)
	if err != nil {
		return err
	}
	models, err := st.AllModels(ctx)
	if err != nil {
		return err
	}
	byID := map[string]*store.Provider{}
	for i := range providers {
		byID[providers[i].ID] = &providers[i]
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, m := range models {
		p := byID[m.ProviderID]
		if !m.Enabled || p == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			h := store.ProbeResult{ModelID: m.ID, CheckedAt: time.Now()}
			key, err := st.ProviderAPIKey(p)
			if err == nil {
				pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				var took time.Duration
				took, err = probe(pctx, m, p, key)
				cancel()
				h.LatencyMS = took.Milliseconds()
			}
			h.Healthy = err == nil
			if err != nil {
				h.Error = err.Error()
				log.Warn("deployment failed its health check", "model", m.ModelName, "provider", p.Name, "err", err)
			}
			if err := st.RecordHealth(context.WithoutCancel(ctx), h); err != nil {
				log.Error("record health", "err", err)
			}
		}()
	}
	wg.Wait()
	return nil
}
