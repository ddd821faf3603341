package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// audit writes one audit row inside the mutation's transaction, so a
// change and its record commit together. Secrets never reach it: the
// domain types do not marshal them.
func audit(ctx context.Context, tx *sqlx.Tx, actor, action, resourceType, resourceID string, before, after any) error {
	b, err := marshalAudit(before)
	if err != nil {
		return err
	}
	a, err := marshalAudit(after)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO audit_logs (actor, action, resource_type, resource_id, before, after) VALUES ($1, $2, $3, $4, $5, $6)`,
		actor, action, resourceType, resourceID, b, a)
	if err != nil {
		return fmt.Errorf("write audit log: %w", err)
	}
	return nil
}

func marshalAudit(v any) (NullJSON, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("marshal audit value: %w", err)
	}
	return b, nil
}

// AuditFilter selects audit rows.
type AuditFilter struct {
	Actor, Action, Resource string
	From, To                time.Time
	Page
}

// ListAudit returns audit rows, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, string, error) {
	var q query
	if f.Actor != "" {
		q.add("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q.add("action = ?", f.Action)
	}
	if f.Resource != "" {
		q.add("resource_type = ?", f.Resource)
	}
	if !f.From.IsZero() {
		q.add("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		q.add("created_at < ?", f.To)
	}
	rows, next, err := listPage[AuditEntry](ctx, s, `SELECT * FROM audit_logs`, "created_at", "lpad(id::text, 20, '0')", q, f.Page)
	if err != nil {
		return nil, "", fmt.Errorf("list audit logs: %w", err)
	}
	return rows, next, nil
}
