package store

import (
	"context"
	"fmt"
)

// alertQueries find, per subject type, budgets whose spend reached the soft
// or hard threshold; $1 picks the kind.
var alertQueries = map[string]string{
	SubjectKey: `SELECT 'key', k.id::text, k.alias, k.budget_reset_at, k.spend,
			CASE WHEN $1 = 'soft' THEN COALESCE(k.soft_budget, b.soft_budget) ELSE COALESCE(k.max_budget, b.max_budget) END AS threshold
		FROM keys k LEFT JOIN budgets b ON b.id = k.budget_id`,
	SubjectTeam: `SELECT 'team', t.id::text, t.name, t.budget_reset_at, t.spend,
			CASE WHEN $1 = 'soft' THEN COALESCE(t.soft_budget, b.soft_budget) ELSE COALESCE(t.max_budget, b.max_budget) END
		FROM teams t LEFT JOIN budgets b ON b.id = t.budget_id`,
	SubjectUser: `SELECT 'user', u.id::text, u.email, u.budget_reset_at, u.spend,
			CASE WHEN $1 = 'soft' THEN u.soft_budget ELSE u.max_budget END FROM users u`,
	SubjectGlobal: `SELECT 'global', 'global', 'global', g.budget_reset_at, g.spend,
			CASE WHEN $1 = 'soft' THEN g.soft_budget ELSE g.max_budget END FROM global_budget g`,
}

// RecordBudgetAlerts adds an alert for every budget whose written spend
// reached its soft or hard threshold, once per subject, kind and period,
// and returns the new ones.
func (s *Store) RecordBudgetAlerts(ctx context.Context) ([]BudgetAlert, error) {
	var out []BudgetAlert
	for _, kind := range []string{AlertSoft, AlertHard} {
		for _, subject := range []string{SubjectKey, SubjectTeam, SubjectUser, SubjectGlobal} {
			var rows []BudgetAlert
			err := s.db.SelectContext(ctx, &rows, `
				INSERT INTO budget_alerts (subject_type, subject_id, subject_name, kind, period, spend, threshold)
				SELECT subject_type, subject_id, subject_name, $1, COALESCE(to_char(reset_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'none'), spend, threshold
				FROM (`+alertQueries[subject]+`) AS a (subject_type, subject_id, subject_name, reset_at, spend, threshold)
				WHERE threshold IS NOT NULL AND spend >= threshold
				ON CONFLICT DO NOTHING
				RETURNING *`, kind)
			if err != nil {
				return out, fmt.Errorf("record %s %s budget alerts: %w", kind, subject, err)
			}
			out = append(out, rows...)
		}
	}
	return out, nil
}

// UndeliveredAlerts returns alerts not yet sent to the webhooks, oldest first.
func (s *Store) UndeliveredAlerts(ctx context.Context, maxAttempts, limit int) ([]BudgetAlert, error) {
	rows := []BudgetAlert{}
	err := s.db.SelectContext(ctx, &rows, `SELECT * FROM budget_alerts WHERE delivered_at IS NULL AND attempts < $1 ORDER BY id LIMIT $2`, maxAttempts, limit)
	if err != nil {
		return nil, fmt.Errorf("load undelivered alerts: %w", err)
	}
	return rows, nil
}

// MarkAlert records one delivery attempt; an empty errMsg means delivered.
func (s *Store) MarkAlert(ctx context.Context, id int64, errMsg string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE budget_alerts SET attempts = attempts + 1, last_error = $2,
		delivered_at = CASE WHEN $2 = '' THEN now() END WHERE id = $1`, id, errMsg)
	if err != nil {
		return fmt.Errorf("mark alert: %w", err)
	}
	return nil
}

// RecentAlerts returns the newest alerts, for the dashboard and the API.
func (s *Store) RecentAlerts(ctx context.Context, limit int) ([]BudgetAlert, error) {
	rows := []BudgetAlert{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM budget_alerts ORDER BY id DESC LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	return rows, nil
}
