package store

import (
	"time"

	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Clone copies the spec deep enough that decoding a change into the copy
// leaves the original alone: encoding/json writes through non-nil pointers
// and adds to existing maps.
func (k *KeySpec) Clone() KeySpec {
	c := *k
	c.TeamID, c.UserID, c.BudgetDuration, c.BudgetID = clonePtr(k.TeamID), clonePtr(k.UserID), clonePtr(k.BudgetDuration), clonePtr(k.BudgetID)
	c.MaxBudget, c.SoftBudget = clonePtr(k.MaxBudget), clonePtr(k.SoftBudget)
	c.RPMLimit, c.TPMLimit, c.MaxParallelRequests = clonePtr(k.RPMLimit), clonePtr(k.TPMLimit), clonePtr(k.MaxParallelRequests)
	c.ExpiresAt = clonePtr(k.ExpiresAt)
	c.Models, c.Metadata = slices.Clone(k.Models), slices.Clone(k.Metadata)
	c.ModelRPMLimit, c.ModelTPMLimit = maps.Clone(k.ModelRPMLimit), maps.Clone(k.ModelTPMLimit)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// KeyFilter selects keys.
type KeyFilter struct {
	TeamID string
	UserID string
	Page
}

// checkKeyRefs makes sure the key's team and user exist and that its
// models stay within the team's.
func checkKeyRefs(ctx context.Context, tx *sqlx.Tx, spec *KeySpec) error {
	if spec.TeamID != nil {
		var t Team
		if err := tx.GetContext(ctx, &t, `SELECT * FROM teams WHERE id = $1`, *spec.TeamID); err != nil {
			if err := mapErr(err, "team"); isNotFound(err) {
				return invalid("team_id", "team_id %s does not name an existing team", *spec.TeamID)
			}
			return mapErr(err, "team")
		}
		if !Unrestricted(t.Models) && !Unrestricted(spec.Models) {
			for _, m := range spec.Models {
				if !slices.Contains(t.Models, m) {
					return invalid("models", "model %q is not among team %s's models (%s)", m, t.Name, strings.Join(t.Models, ", "))
				}
			}
		}
	}
	if spec.UserID != nil {
		var ok bool
		if err := tx.GetContext(ctx, &ok, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, *spec.UserID); err != nil {
			return fmt.Errorf("check user: %w", err)
		}
		if !ok {
			return invalid("user_id", "user_id %s does not name an existing user", *spec.UserID)
		}
	}
	return nil
}

// CreateKey stores a new key and returns it with its secret, which is never
// available again. An empty secret means "generate one".
func (s *Store) CreateKey(ctx context.Context, actor string, spec KeySpec, secret string) (*Key, string, error) {
	if err := spec.Normalize(); err != nil {
		return nil, "", err
	}
	if secret == "" {
		var err error
		if secret, err = NewKeySecret(); err != nil {
			return nil, "", fmt.Errorf("generate key: %w", err)
		}
	}
	var k Key
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := checkKeyRefs(ctx, tx, &spec); err != nil {
			return err
		}
		profile, err := getProfile(ctx, tx, spec.BudgetID)
		if err != nil {
			return err
		}
		resetAt, err := resetAtFor(spec.Limits(profile).BudgetDuration, nil, nil, time.Now())
		if err != nil {
			return err
		}
		err = tx.GetContext(ctx, &k, `
			INSERT INTO keys (key_hash, key_hint, alias, team_id, user_id, models, key_type, max_budget, soft_budget,
			                  budget_duration, rpm_limit, tpm_limit, max_parallel_requests, expires_at, blocked, metadata,
			                  model_rpm_limit, model_tpm_limit, budget_id, budget_reset_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING *`,
			HashKey(secret), SecretHint(secret), spec.Alias, spec.TeamID, spec.UserID, spec.Models, spec.KeyType,
			spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, spec.RPMLimit, spec.TPMLimit, spec.MaxParallelRequests,
			spec.ExpiresAt, spec.Blocked, spec.Metadata, spec.ModelRPMLimit, spec.ModelTPMLimit, spec.BudgetID, resetAt)
		if err != nil {
			return mapErr(err, "key")
		}
		return audit(ctx, tx, actor, "key.create", "key", k.ID, nil, k)
	})
	if err != nil {
		return nil, "", err
	}
	return &k, secret, nil
}

// GetKey reads one key.
func (s *Store) GetKey(ctx context.Context, id string) (*Key, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	var k Key
	if err := s.db.GetContext(ctx, &k, `SELECT * FROM keys WHERE id = $1`, id); err != nil {
		return nil, mapErr(err, "key "+id)
	}
	return &k, nil
}

// KeyByHash finds the key whose secret hashes to hash.
func (s *Store) KeyByHash(ctx context.Context, hash string) (*Key, error) {
	var k Key
	if err := s.db.GetContext(ctx, &k, `SELECT * FROM keys WHERE key_hash = $1`, hash); err != nil {
		return nil, mapErr(err, "key")
	}
	return &k, nil
}

// ListKeys returns a page of keys.
func (s *Store) ListKeys(ctx context.Context, f KeyFilter) ([]Key, string, error) {
	var q query
	if f.TeamID != "" {
		if !isUUID(f.TeamID) {
			return nil, "", invalid("team_id", "team_id must be a UUID")
		}
		q.add("team_id = ?", f.TeamID)
	}
	if f.UserID != "" {
		if !isUUID(f.UserID) {
			return nil, "", invalid("user_id", "user_id must be a UUID")
		}
		q.add("user_id = ?", f.UserID)
	}
	rows, next, err := listPage[Key](ctx, s, `SELECT * FROM keys`, "created_at", "id", q, f.Page)
	if err != nil {
		return nil, "", fmt.Errorf("list keys: %w", err)
	}
	return rows, next, nil
}

// UpdateKey applies change to the stored key and saves it.
func (s *Store) UpdateKey(ctx context.Context, actor, id string, change func(*KeySpec) error) (*Key, error) {
	return s.updateKey(ctx, actor, "key.update", id, "", change)
}

// SetKeyBlocked blocks or unblocks a key.
func (s *Store) SetKeyBlocked(ctx context.Context, actor, id string, blocked bool) (*Key, error) {
	action := "key.unblock"
	if blocked {
		action = "key.block"
	}
	return s.updateKey(ctx, actor, action, id, "", func(k *KeySpec) error {
		k.Blocked = blocked
		return nil
	})
}

// RegenerateKey replaces a key's secret; the old one stops working at once.
func (s *Store) RegenerateKey(ctx context.Context, actor, id string) (*Key, string, error) {
	secret, err := NewKeySecret()
	if err != nil {
		return nil, "", fmt.Errorf("generate key: %w", err)
	}
	k, err := s.updateKey(ctx, actor, "key.regenerate", id, secret, func(*KeySpec) error { return nil })
	if err != nil {
		return nil, "", err
	}
	return k, secret, nil
}

func (s *Store) updateKey(ctx context.Context, actor, action, id, newSecret string, change func(*KeySpec) error) (*Key, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	var k Key
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &k, `SELECT * FROM keys WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "key "+id)
		}
		before := k
		spec := k.KeySpec.Clone() // so that the audit log's before is the key as it was
		if err := change(&spec); err != nil {
			return err
		}
		if err := spec.Normalize(); err != nil {
			return err
		}
		if err := checkKeyRefs(ctx, tx, &spec); err != nil {
			return err
		}
		resetAt, err := periodAfterChange(ctx, tx, budgetPeriod{before.BudgetDuration, before.BudgetID},
			budgetPeriod{spec.BudgetDuration, spec.BudgetID}, before.BudgetResetAt)
		if err != nil {
			return err
		}
		hash, hint := k.Hash, k.Hint
		if newSecret != "" {
			hash, hint = HashKey(newSecret), SecretHint(newSecret)
		}
		err = tx.GetContext(ctx, &k, `
			UPDATE keys SET key_hash = $2, key_hint = $3, alias = $4, team_id = $5, user_id = $6, models = $7, key_type = $8,
			       max_budget = $9, soft_budget = $10, budget_duration = $11, rpm_limit = $12, tpm_limit = $13,
			       max_parallel_requests = $14, expires_at = $15, blocked = $16, metadata = $17, model_rpm_limit = $18,
			       model_tpm_limit = $19, budget_id = $20, budget_reset_at = $21, updated_at = now()
			WHERE id = $1 RETURNING *`,
			id, hash, hint, spec.Alias, spec.TeamID, spec.UserID, spec.Models, spec.KeyType, spec.MaxBudget, spec.SoftBudget,
			spec.BudgetDuration, spec.RPMLimit, spec.TPMLimit, spec.MaxParallelRequests, spec.ExpiresAt, spec.Blocked, spec.Metadata,
			spec.ModelRPMLimit, spec.ModelTPMLimit, spec.BudgetID, resetAt)
		if err != nil {
			return mapErr(err, "key "+id)
		}
		return audit(ctx, tx, actor, action, "key", id, before, k)
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// DeleteKey removes a key; gateways drop it from their caches at once.
func (s *Store) DeleteKey(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("key %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var k Key
		if err := tx.GetContext(ctx, &k, `DELETE FROM keys WHERE id = $1 RETURNING *`, id); err != nil {
			return mapErr(err, "key "+id)
		}
		return audit(ctx, tx, actor, "key.delete", "key", id, k, nil)
	})
}
