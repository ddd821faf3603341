package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// ModelFilter selects deployments.
type ModelFilter struct {
	ModelName  string
	ProviderID string
	ModelNames []string // when not nil, only these public names
	Page
}

func checkProviderExists(ctx context.Context, tx *sqlx.Tx, id string) error {
	var ok bool
	if err := tx.GetContext(ctx, &ok, `SELECT EXISTS (SELECT 1 FROM providers WHERE id = $1)`, id); err != nil {
		return fmt.Errorf("check provider: %w", err)
	}
	if !ok {
		return invalid("provider_id", "provider_id %s does not name an existing provider", id)
	}
	return nil
}

// CreateModel stores a new deployment.
func (s *Store) CreateModel(ctx context.Context, actor string, spec ModelSpec) (*Model, error) {
	if err := spec.Normalize(); err != nil {
		return nil, err
	}
	var m Model
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := checkProviderExists(ctx, tx, spec.ProviderID); err != nil {
			return err
		}
		err := tx.GetContext(ctx, &m, `
			INSERT INTO models (model_name, provider_id, upstream_model, input_cost_per_million, output_cost_per_million,
			                    rpm_limit, tpm_limit, weight, context_window, params, enabled, max_output_tokens,
			                    connect_timeout_ms, first_byte_timeout_ms, timeout_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING *`,
			spec.ModelName, spec.ProviderID, spec.UpstreamModel, spec.InputCostPerMillion, spec.OutputCostPerMillion,
			spec.RPMLimit, spec.TPMLimit, spec.Weight, spec.ContextWindow, spec.Params, spec.Enabled, spec.MaxOutputTokens,
			spec.ConnectTimeoutMS, spec.FirstByteTimeoutMS, spec.TimeoutMS)
		if err != nil {
			return mapErr(err, fmt.Sprintf("model %q", spec.ModelName))
		}
		return audit(ctx, tx, actor, "model.create", "model", m.ID, nil, m)
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// GetModel reads one deployment.
func (s *Store) GetModel(ctx context.Context, id string) (*Model, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("model %s: %w", id, ErrNotFound)
	}
	var m Model
	if err := s.db.GetContext(ctx, &m, `SELECT * FROM models WHERE id = $1`, id); err != nil {
		return nil, mapErr(err, "model "+id)
	}
	return &m, nil
}

// ListModels returns a page of deployments.
func (s *Store) ListModels(ctx context.Context, f ModelFilter) ([]Model, string, error) {
	var q query
	if f.ModelName != "" {
		q.add("model_name = ?", f.ModelName)
	}
	if f.ProviderID != "" {
		if !isUUID(f.ProviderID) {
			return nil, "", invalid("provider_id", "provider_id must be a UUID")
		}
		q.add("provider_id = ?", f.ProviderID)
	}
	if f.ModelNames != nil {
		q.add("model_name = ANY(?)", pq.Array(f.ModelNames))
	}
	rows, next, err := listPage[Model](ctx, s, `SELECT * FROM models`, "created_at", "id", q, f.Page)
	if err != nil {
		return nil, "", fmt.Errorf("list models: %w", err)
	}
	return rows, next, nil
}

// AllModels returns every deployment, for the gateway's cache.
func (s *Store) AllModels(ctx context.Context) ([]Model, error) {
	rows := []Model{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM models ORDER BY model_name, created_at`); err != nil {
		return nil, fmt.Errorf("load models: %w", err)
	}
	return rows, nil
}

// UpdateModel applies change to the stored deployment and saves it.
func (s *Store) UpdateModel(ctx context.Context, actor, id string, change func(*ModelSpec) error) (*Model, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("model %s: %w", id, ErrNotFound)
	}
	var m Model
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &m, `SELECT * FROM models WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "model "+id)
		}
		before := m
		spec := m.ModelSpec
		if err := change(&spec); err != nil {
			return err
		}
		if err := spec.Normalize(); err != nil {
			return err
		}
		if spec.ProviderID != before.ProviderID {
			if err := checkProviderExists(ctx, tx, spec.ProviderID); err != nil {
				return err
			}
		}
		err := tx.GetContext(ctx, &m, `
			UPDATE models SET model_name = $2, provider_id = $3, upstream_model = $4, input_cost_per_million = $5,
			       output_cost_per_million = $6, rpm_limit = $7, tpm_limit = $8, weight = $9, context_window = $10,
			       params = $11, enabled = $12, max_output_tokens = $13,
			       connect_timeout_ms = $14, first_byte_timeout_ms = $15, timeout_ms = $16, updated_at = now()
			WHERE id = $1 RETURNING *`,
			id, spec.ModelName, spec.ProviderID, spec.UpstreamModel, spec.InputCostPerMillion, spec.OutputCostPerMillion,
			spec.RPMLimit, spec.TPMLimit, spec.Weight, spec.ContextWindow, spec.Params, spec.Enabled, spec.MaxOutputTokens,
			spec.ConnectTimeoutMS, spec.FirstByteTimeoutMS, spec.TimeoutMS)
		if err != nil {
			return mapErr(err, fmt.Sprintf("model %q", spec.ModelName))
		}
		return audit(ctx, tx, actor, "model.update", "model", id, before, m)
	})
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// DeleteModel removes a deployment.
func (s *Store) DeleteModel(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("model %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var m Model
		if err := tx.GetContext(ctx, &m, `DELETE FROM models WHERE id = $1 RETURNING *`, id); err != nil {
			return mapErr(err, "model "+id)
		}
		return audit(ctx, tx, actor, "model.delete", "model", id, m, nil)
	})
}
