package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Routing strategies.
var Strategies = []string{"weighted", "least_busy", "lowest_latency", "usage_based"}

// ModelGroup is how one public model name is routed.
type ModelGroup struct {
	ID        string         `db:"id" json:"-"`
	ModelName string         `db:"model_name" json:"model_name"`
	Strategy  string         `db:"strategy" json:"strategy"`
	Fallbacks pq.StringArray `db:"fallbacks" json:"fallbacks"` // model names tried in order when every deployment fails
	CreatedAt time.Time      `db:"created_at" json:"created_at"`
	UpdatedAt time.Time      `db:"updated_at" json:"updated_at"`
}

// ModelAlias is another name callers may use for a model.
type ModelAlias struct {
	ID        string    `db:"id" json:"-"`
	Alias     string    `db:"alias" json:"alias"`
	ModelName string    `db:"model_name" json:"model_name"`
	CreatedAt time.Time `db:"created_at" json:"created_at"`
	UpdatedAt time.Time `db:"updated_at" json:"updated_at"`
}

func (g *ModelGroup) normalize() error {
	g.ModelName = strings.TrimSpace(g.ModelName)
	if g.ModelName == "" {
		return invalid("model_name", "model_name is required")
	}
	if g.Strategy == "" {
		g.Strategy = "weighted"
	}
	if !slices.Contains(Strategies, g.Strategy) {
		return invalid("strategy", "strategy must be one of %s (got %q)", strings.Join(Strategies, ", "), g.Strategy)
	}
	if g.Fallbacks == nil {
		g.Fallbacks = []string{}
	}
	for i, f := range g.Fallbacks {
		g.Fallbacks[i] = strings.TrimSpace(f)
		if g.Fallbacks[i] == "" {
			return invalid("fallbacks", "fallbacks[%d] is empty", i)
		}
		if g.Fallbacks[i] == g.ModelName {
			return invalid("fallbacks", "model %s cannot fall back to itself", g.ModelName)
		}
	}
	return nil
}

// PutModelGroup creates or replaces the routing settings of a model name.
func (s *Store) PutModelGroup(ctx context.Context, actor string, g ModelGroup) (*ModelGroup, error) {
	if err := g.normalize(); err != nil {
		return nil, err
	}
	var out ModelGroup
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var before *ModelGroup
		var old ModelGroup
		if err := tx.GetContext(ctx, &old, `SELECT * FROM model_groups WHERE model_name = $1 FOR UPDATE`, g.ModelName); err == nil {
			before = &old
		}
		err := tx.GetContext(ctx, &out, `
			INSERT INTO model_groups (model_name, strategy, fallbacks) VALUES ($1, $2, $3)
			ON CONFLICT (model_name) DO UPDATE SET strategy = EXCLUDED.strategy, fallbacks = EXCLUDED.fallbacks, updated_at = now()
			RETURNING *`, g.ModelName, g.Strategy, g.Fallbacks)
		if err != nil {
			return mapErr(err, "model group "+g.ModelName)
		}
		if before == nil {
			return audit(ctx, tx, actor, "model_group.create", "model_group", out.ModelName, nil, out)
		}
		return audit(ctx, tx, actor, "model_group.update", "model_group", out.ModelName, before, out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteModelGroup removes a model's routing settings (back to weights, no fallbacks).
func (s *Store) DeleteModelGroup(ctx context.Context, actor, modelName string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var g ModelGroup
		if err := tx.GetContext(ctx, &g, `DELETE FROM model_groups WHERE model_name = $1 RETURNING *`, modelName); err != nil {
			return mapErr(err, "model group "+modelName)
		}
		return audit(ctx, tx, actor, "model_group.delete", "model_group", modelName, g, nil)
	})
}

// AllModelGroups returns every model's routing settings.
func (s *Store) AllModelGroups(ctx context.Context) ([]ModelGroup, error) {
	rows := []ModelGroup{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM model_groups ORDER BY model_name`); err != nil {
		return nil, fmt.Errorf("load model groups: %w", err)
	}
	return rows, nil
}

// PutModelAlias creates or repoints an alias.
func (s *Store) PutModelAlias(ctx context.Context, actor string, a ModelAlias) (*ModelAlias, error) {
	a.Alias, a.ModelName = strings.TrimSpace(a.Alias), strings.TrimSpace(a.ModelName)
	if a.Alias == "" {
		return nil, invalid("alias", "alias is required")
	}
	if a.ModelName == "" {
		return nil, invalid("model_name", "model_name is required")
	}
	if a.Alias == a.ModelName {
		return nil, invalid("model_name", "an alias cannot name itself")
	}
	var out ModelAlias
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var clash bool
		if err := tx.GetContext(ctx, &clash, `SELECT EXISTS (SELECT 1 FROM models WHERE model_name = $1)`, a.Alias); err != nil {
			return fmt.Errorf("check alias: %w", err)
		}
		if clash {
			return invalid("alias", "%q is already a model name; an alias must be a new name", a.Alias)
		}
		err := tx.GetContext(ctx, &out, `
			INSERT INTO model_aliases (alias, model_name) VALUES ($1, $2)
			ON CONFLICT (alias) DO UPDATE SET model_name = EXCLUDED.model_name, updated_at = now()
			RETURNING *`, a.Alias, a.ModelName)
		if err != nil {
			return mapErr(err, "alias "+a.Alias)
		}
		return audit(ctx, tx, actor, "model_alias.put", "model_alias", out.Alias, nil, out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteModelAlias removes an alias.
func (s *Store) DeleteModelAlias(ctx context.Context, actor, alias string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var a ModelAlias
		if err := tx.GetContext(ctx, &a, `DELETE FROM model_aliases WHERE alias = $1 RETURNING *`, alias); err != nil {
			return mapErr(err, "alias "+alias)
		}
		return audit(ctx, tx, actor, "model_alias.delete", "model_alias", alias, a, nil)
	})
}

// AllModelAliases returns every alias.
func (s *Store) AllModelAliases(ctx context.Context) ([]ModelAlias, error) {
	rows := []ModelAlias{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM model_aliases ORDER BY alias`); err != nil {
		return nil, fmt.Errorf("load model aliases: %w", err)
	}
	return rows, nil
}
