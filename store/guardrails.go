package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Guardrail types, modes and actions the schema accepts, in the order
// forms offer them.
var (
	GuardrailTypes   = []string{GuardrailPII, GuardrailSecrets, GuardrailKeywords, GuardrailRegex, GuardrailPromptInjection, GuardrailMaxPromptSize, GuardrailExternal}
	GuardrailModes   = []string{ModePreCall, ModePostCall, ModeDuringCall}
	GuardrailActions = []string{ActionBlock, ActionMask, ActionLog}
)

// MaxGuardrailNameLen bounds a guardrail's name, as the schema does.
const MaxGuardrailNameLen = 64

// ValidateGuardrailName applies the schema's rule and names the part
// broken: letters, digits and _ . -, starting with a letter or digit, at
// most 64 characters.
func ValidateGuardrailName(name string) error {
	if name == "" {
		return invalid("name", "name is required")
	}
	if n := len([]rune(name)); n > MaxGuardrailNameLen {
		return invalid("name", "name must be at most %d characters (got %d)", MaxGuardrailNameLen, n)
	}
	for i, r := range name {
		if !isAlnum(r) && !strings.ContainsRune("_.-", r) {
			return invalid("name", "name may contain only letters, digits and _ . - (found %q at position %d)", r, i+1)
		}
	}
	if !isAlnum(rune(name[0])) {
		return invalid("name", "name must start with a letter or digit")
	}
	return nil
}

func oneOf(field, got string, allowed []string) error {
	if got == "" {
		return invalid(field, "%s is required: one of %s", field, strings.Join(allowed, ", "))
	}
	if !slices.Contains(allowed, got) {
		return invalid(field, "%s must be one of %s (got %q)", field, strings.Join(allowed, ", "), got)
	}
	return nil
}

// Normalize fills defaults (mode pre_call, action block, config {}) and
// checks what the store can check alone. Whether the config suits the
// type is the guardrail engine's business (gateway/guardrails.Compile);
// whether the teams exist is checked when the guardrail is saved.
func (g *GuardrailSpec) Normalize() error {
	g.Name = strings.TrimSpace(g.Name)
	if g.Mode == "" {
		g.Mode = ModePreCall
	}
	if g.Action == "" {
		g.Action = ActionBlock
	}
	if err := firstErr(
		ValidateGuardrailName(g.Name),
		oneOf("type", g.Type, GuardrailTypes),
		oneOf("mode", g.Mode, GuardrailModes),
		oneOf("action", g.Action, GuardrailActions),
	); err != nil {
		return err
	}
	ids := pq.StringArray{}
	for i, id := range g.TeamIDs {
		id = strings.ToLower(strings.TrimSpace(id))
		if !isUUID(id) {
			return invalid("team_ids", "team_ids[%d] must be a team's id (a UUID), got %q", i, id)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	g.TeamIDs = ids
	if len(g.Config) == 0 {
		g.Config = JSON("{}")
	}
	var obj map[string]any
	if err := json.Unmarshal(g.Config, &obj); err != nil || obj == nil {
		return invalid("config", "config must be a JSON object")
	}
	return nil
}

// checkTeamsExist refuses team ids that name no team.
func checkTeamsExist(ctx context.Context, tx *sqlx.Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	var missing []string
	err := tx.SelectContext(ctx, &missing, `
		SELECT u.id::text FROM unnest($1::uuid[]) AS u(id)
		WHERE NOT EXISTS (SELECT 1 FROM teams t WHERE t.id = u.id) ORDER BY 1`, pq.Array(ids))
	if err != nil {
		return fmt.Errorf("check teams: %w", err)
	}
	if len(missing) > 0 {
		return invalid("team_ids", "team_ids: %s names no team", strings.Join(missing, ", "))
	}
	return nil
}

// CreateGuardrail stores a new guardrail.
func (s *Store) CreateGuardrail(ctx context.Context, actor string, spec GuardrailSpec) (*Guardrail, error) {
	if err := spec.Normalize(); err != nil {
		return nil, err
	}
	var g Guardrail
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := checkTeamsExist(ctx, tx, spec.TeamIDs); err != nil {
			return err
		}
		err := tx.GetContext(ctx, &g, `
			INSERT INTO guardrails (name, type, mode, action, default_on, enabled, team_ids, config)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
			spec.Name, spec.Type, spec.Mode, spec.Action, spec.DefaultOn, spec.Enabled, spec.TeamIDs, spec.Config)
		if err != nil {
			return mapErr(err, fmt.Sprintf("guardrail %q", spec.Name))
		}
		return audit(ctx, tx, actor, "guardrail.create", "guardrail", g.ID, nil, g)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// GetGuardrail reads one guardrail.
func (s *Store) GetGuardrail(ctx context.Context, id string) (*Guardrail, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("guardrail %s: %w", id, ErrNotFound)
	}
	var g Guardrail
	if err := s.db.GetContext(ctx, &g, `SELECT * FROM guardrails WHERE id = $1`, id); err != nil {
		return nil, mapErr(err, "guardrail "+id)
	}
	return &g, nil
}

func (g Guardrail) cursor() (time.Time, string) { return g.CreatedAt, g.ID }

// ListGuardrails returns a page of guardrails, newest first.
func (s *Store) ListGuardrails(ctx context.Context, page Page) ([]Guardrail, string, error) {
	rows, next, err := listPage[Guardrail](ctx, s, `SELECT * FROM guardrails`, "created_at", "id", query{}, page)
	if err != nil {
		return nil, "", fmt.Errorf("list guardrails: %w", err)
	}
	return rows, next, nil
}

// AllGuardrails returns every guardrail, enabled or not, ordered by name,
// for the gateway's cache.
func (s *Store) AllGuardrails(ctx context.Context) ([]Guardrail, error) {
	rows := []Guardrail{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM guardrails ORDER BY name`); err != nil {
		return nil, fmt.Errorf("load guardrails: %w", err)
	}
	return rows, nil
}

// UpdateGuardrail applies change to the stored guardrail and saves it.
func (s *Store) UpdateGuardrail(ctx context.Context, actor, id string, change func(*GuardrailSpec) error) (*Guardrail, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("guardrail %s: %w", id, ErrNotFound)
	}
	var g Guardrail
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &g, `SELECT * FROM guardrails WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "guardrail "+id)
		}
		before := g
		spec := g.GuardrailSpec
		spec.TeamIDs = slices.Clone(spec.TeamIDs)
		spec.Config = JSON(slices.Clone([]byte(spec.Config)))
		if err := change(&spec); err != nil {
			return err
		}
		if err := spec.Normalize(); err != nil {
			return err
		}
		if err := checkTeamsExist(ctx, tx, spec.TeamIDs); err != nil {
			return err
		}
		err := tx.GetContext(ctx, &g, `
			UPDATE guardrails SET name = $2, type = $3, mode = $4, action = $5, default_on = $6, enabled = $7,
			       team_ids = $8, config = $9, updated_at = now()
			WHERE id = $1 RETURNING *`,
			id, spec.Name, spec.Type, spec.Mode, spec.Action, spec.DefaultOn, spec.Enabled, spec.TeamIDs, spec.Config)
		if err != nil {
			return mapErr(err, fmt.Sprintf("guardrail %q", spec.Name))
		}
		return audit(ctx, tx, actor, "guardrail.update", "guardrail", id, before, g)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// DeleteGuardrail removes a guardrail; its hits stay, under its name.
func (s *Store) DeleteGuardrail(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("guardrail %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var g Guardrail
		if err := tx.GetContext(ctx, &g, `DELETE FROM guardrails WHERE id = $1 RETURNING *`, id); err != nil {
			return mapErr(err, "guardrail "+id)
		}
		return audit(ctx, tx, actor, "guardrail.delete", "guardrail", id, g, nil)
	})
}

// GuardrailHitRecord is one row of guardrail_hits: what one guardrail
// found of one type on one request, and what it did. The matched text is
// never stored.
type GuardrailHitRecord struct {
	ID          int64     `db:"id" json:"id"`
	CreatedAt   time.Time `db:"created_at" json:"created_at"`
	RequestID   string    `db:"request_id" json:"request_id"`
	Guardrail   string    `db:"guardrail" json:"guardrail"`
	TeamID      *string   `db:"team_id" json:"team_id"`
	KeyID       *string   `db:"key_id" json:"key_id"`
	Mode        string    `db:"mode" json:"mode"`
	Action      string    `db:"action" json:"action"`
	MatchedType string    `db:"matched_type" json:"matched_type"`
	Count       int       `db:"count" json:"count"`
	// Names as they are now, for people reading the list.
	TeamName string `db:"team_name" json:"team_name"`
	KeyAlias string `db:"key_alias" json:"key_alias"`
	KeyHint  string `db:"key_hint" json:"key_hint"`
}

func (h GuardrailHitRecord) cursor() (time.Time, string) {
	return h.CreatedAt, fmt.Sprintf("%020d", h.ID)
}

// GuardrailHitFilter selects guardrail hits.
type GuardrailHitFilter struct {
	Guardrail string // a guardrail's name
	TeamID    string
	Page
}

// ListGuardrailHits returns guardrail hits, newest first.
func (s *Store) ListGuardrailHits(ctx context.Context, f GuardrailHitFilter) ([]GuardrailHitRecord, string, error) {
	var q query
	if f.Guardrail != "" {
		q.add("guardrail = ?", f.Guardrail)
	}
	if f.TeamID != "" {
		if !isUUID(f.TeamID) {
			return nil, "", invalid("team_id", "team_id must be a UUID")
		}
		q.add("team_id = ?", f.TeamID)
	}
	rows, next, err := listPage[GuardrailHitRecord](ctx, s, `
		SELECT * FROM (
			SELECT h.*, COALESCE(t.name, '') AS team_name, COALESCE(k.alias, '') AS key_alias, COALESCE(k.key_hint, '') AS key_hint
			FROM guardrail_hits h
			LEFT JOIN teams t ON t.id = h.team_id
			LEFT JOIN keys k ON k.id = h.key_id
		) x`, "created_at", "lpad(id::text, 20, '0')", q, f.Page)
	if err != nil {
		return nil, "", fmt.Errorf("list guardrail hits: %w", err)
	}
	return rows, next, nil
}

// GuardrailHitCounts counts, per guardrail name, the requests it found
// something in since since.
func (s *Store) GuardrailHitCounts(ctx context.Context, since time.Time) (map[string]int64, error) {
	var rows []struct {
		Guardrail string `db:"guardrail"`
		Requests  int64  `db:"requests"`
	}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT guardrail, count(DISTINCT request_id) AS requests
		FROM guardrail_hits WHERE created_at >= $1 GROUP BY guardrail`, since)
	if err != nil {
		return nil, fmt.Errorf("count guardrail hits: %w", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Guardrail] = r.Requests
	}
	return out, nil
}
