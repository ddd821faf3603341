package store

import (
	"context"
	"fmt"
	"time"
)

// ProbeResult is the last probe of one deployment.
type ProbeResult struct {
	ModelID   string    `db:"id" json:"model_id"`
	Healthy   bool      `db:"healthy" json:"healthy"`
	LatencyMS int64     `db:"latency_ms" json:"latency_ms"`
	Error     string    `db:"error" json:"error"`
	CheckedAt time.Time `db:"checked_at" json:"checked_at"`
	ChangedAt time.Time `db:"changed_at" json:"changed_at"` // when it last turned healthy or unhealthy
}

// RecordHealth stores a probe's outcome.
func (s *Store) RecordHealth(ctx context.Context, h ProbeResult) error {
	_, err := s.db.ExecContext(ctx, `
		INSERT INTO deployment_health (id, healthy, latency_ms, error, checked_at, changed_at)
		VALUES ($1, $2, $3, $4, $5, $5)
		ON CONFLICT (id) DO UPDATE SET healthy = EXCLUDED.healthy, latency_ms = EXCLUDED.latency_ms, error = EXCLUDED.error,
			checked_at = EXCLUDED.checked_at,
			changed_at = CASE WHEN deployment_health.healthy = EXCLUDED.healthy THEN deployment_health.changed_at ELSE EXCLUDED.checked_at END`,
		h.ModelID, h.Healthy, h.LatencyMS, h.Error, h.CheckedAt)
	if err != nil {
		return fmt.Errorf("record deployment health: %w", err)
	}
	return nil
}

// AllHealth returns every deployment's last probe, by model id.
func (s *Store) AllHealth(ctx context.Context) (map[string]ProbeResult, error) {
	rows := []ProbeResult{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM deployment_health`); err != nil {
		return nil, fmt.Errorf("load deployment health: %w", err)
	}
	out := make(map[string]ProbeResult, len(rows))
	for _, r := range rows {
		out[r.ModelID] = r
	}
	return out, nil
}
