package store

import (
	"context"
	"fmt"
)

// AllGuardrails returns every guardrail, enabled or not, ordered by name,
// for the gateway's cache.
func (s *Store) AllGuardrails(ctx context.Context) ([]Guardrail, error) {
	rows := []Guardrail{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM guardrails ORDER BY name`); err != nil {
		return nil, fmt.Errorf("load guardrails: %w", err)
	}
	return rows, nil
}
