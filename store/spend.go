package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// InsertSpendLogs writes a batch of spend logs, adds their cost to the
// keys' and teams' running spend and adds them to the daily rollup
// (spend_daily) and records its guardrail hits (guardrail_hits), in one
// statement. A request id already written is skipped, and neither its cost,
// its counts nor its hits are added again, so a retried batch never double
// counts.
func (s *Store) InsertSpendLogs(ctx context.Context, logs []SpendLog) (int, error) {
	if len(logs) == 0 {
		return 0, nil
	}
	n, err := s.insertSpendLogs(ctx, logs)
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23514" && pqErr.Table == "spend_logs" {
		// No partition for some month: create what the batch needs and retry.
		if err := s.ensureSpendPartitions(ctx, logs); err != nil {
			return 0, err
		}
		n, err = s.insertSpendLogs(ctx, logs)
	}
	if err != nil {
		return 0, fmt.Errorf("insert spend logs: %w", err)
	}
	return n, nil
}

func (s *Store) insertSpendLogs(ctx context.Context, logs []SpendLog) (int, error) {
	n := len(logs)
	var (
		requestIDs, models, providers = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		endpoints, statuses, errs     = make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
		keyIDs, teamIDs, userIDs      = make([]sql.NullString, 0, n), make([]sql.NullString, 0, n), make([]sql.NullString, 0, n)
		deploymentIDs, guardrails     = make([]sql.NullString, 0, n), make([]sql.NullString, 0, n)
		createdAt                     = make([]time.Time, 0, n)
		inTok, outTok                 = make([]int64, 0, n), make([]int64, 0, n)
		latency, codes                = make([]int64, 0, n), make([]int64, 0, n)
		costs                         = make([]float64, 0, n)
		cacheHits                     = make([]bool, 0, n)
	)
	for _, l := range logs {
		requestIDs = append(requestIDs, l.RequestID)
		createdAt = append(createdAt, l.CreatedAt)
		keyIDs = append(keyIDs, nullString(l.KeyID))
		teamIDs = append(teamIDs, nullString(l.TeamID))
		userIDs = append(userIDs, nullString(l.UserID))
		models = append(models, l.Model)
		providers = append(providers, l.Provider)
		deploymentIDs = append(deploymentIDs, nullString(l.DeploymentID))
		endpoints = append(endpoints, l.Endpoint)
		inTok = append(inTok, l.InputTokens)
		outTok = append(outTok, l.OutputTokens)
		costs = append(costs, l.Cost)
		latency = append(latency, l.LatencyMS)
		statuses = append(statuses, l.Status)
		codes = append(codes, int64(l.StatusCode))
		errs = append(errs, l.Error)
		cacheHits = append(cacheHits, l.CacheHit)
		hits, err := l.Guardrails.Value()
		if err != nil {
			return 0, fmt.Errorf("encode guardrail hits of %s: %w", l.RequestID, err)
		}
		if b, ok := hits.([]byte); ok {
			guardrails = append(guardrails, sql.NullString{String: string(b), Valid: true})
		} else {
			guardrails = append(guardrails, sql.NullString{})
		}
	}
	var inserted int
	err := s.db.GetContext(ctx, &inserted, `
		WITH ins AS (
			INSERT INTO spend_logs (request_id, created_at, key_id, team_id, user_id, model, provider, deployment_id, endpoint,
			                        input_tokens, output_tokens, cost, latency_ms, status, status_code, error, cache_hit, guardrails)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
			                     $8::uuid[], $9::text[], $10::int[], $11::int[], $12::numeric[], $13::int[], $14::text[],
			                     $15::int[], $16::text[], $17::bool[], $18::jsonb[])
			ON CONFLICT DO NOTHING
			RETURNING request_id, created_at, key_id, team_id, user_id, model, provider, endpoint, input_tokens, output_tokens,
			          cost, latency_ms, status, status_code, error, guardrails
		), hits AS (
			-- One row per guardrail and matched type of each request
			-- written now: a retried batch inserts no spend log, so no hits.
			-- A malformed hit is stored as best it can be rather than fail
			-- the batch.
			INSERT INTO guardrail_hits (created_at, request_id, guardrail, team_id, key_id, mode, action, matched_type, count)
			SELECT i.created_at, i.request_id, COALESCE(h.guardrail, ''), i.team_id, i.key_id, COALESCE(h.mode, ''),
			       COALESCE(h.action, ''), COALESCE(h.type, ''), COALESCE(h.count, 1)
			FROM ins i
			CROSS JOIN LATERAL jsonb_to_recordset(CASE WHEN jsonb_typeof(i.guardrails) = 'array' THEN i.guardrails ELSE '[]' END)
			     AS h(guardrail text, mode text, action text, type text, count int)
			ON CONFLICT DO NOTHING
		), meter AS (
			-- The outbox: what the billing systems are sent, written with
			-- the spend log so that neither exists without the other.
			INSERT INTO meter_events (id, kind, created_at, team_id, team_name, business_unit, customer_id, key_id, key_alias,
			                          user_id, user_email, model, provider, endpoint, input_tokens, output_tokens, cost,
			                          latency_ms, status_code, error)
			SELECT i.request_id, 'usage', i.created_at, i.team_id, COALESCE(t.name, ''),
			       COALESCE(NULLIF(k.metadata->>'business_unit_id', ''), NULLIF(t.metadata->>'business_unit_id', ''), t.name, ''),
			       COALESCE(t.metadata->>'billing_customer_id', ''), i.key_id, COALESCE(k.alias, ''), i.user_id,
			       COALESCE(u.email, ''), i.model, i.provider, i.endpoint, i.input_tokens, i.output_tokens, i.cost,
			       i.latency_ms, i.status_code, i.error
			FROM ins i
			LEFT JOIN teams t ON t.id = i.team_id
			LEFT JOIN keys k ON k.id = i.key_id
			LEFT JOIN users u ON u.id = i.user_id
			WHERE i.status = 'success' OR i.cost > 0
			ON CONFLICT DO NOTHING
			RETURNING id
		), deliveries AS (
			INSERT INTO meter_deliveries (event_id, sink_id)
			SELECT m.id, s.id FROM meter m CROSS JOIN billing_sinks s WHERE s.enabled
		), key_spend AS (
			UPDATE keys SET spend = keys.spend + s.cost,
			       last_used_at = GREATEST(COALESCE(keys.last_used_at, s.last), s.last)
			FROM (SELECT key_id, sum(cost) AS cost, max(created_at) AS last FROM ins WHERE key_id IS NOT NULL GROUP BY key_id) s
			WHERE keys.id = s.key_id
		), team_spend AS (
			UPDATE teams SET spend = teams.spend + s.cost
			FROM (SELECT team_id, sum(cost) AS cost FROM ins WHERE team_id IS NOT NULL GROUP BY team_id) s
			WHERE teams.id = s.team_id
		), user_spend AS (
			UPDATE users SET spend = users.spend + s.cost
			FROM (SELECT user_id, sum(cost) AS cost FROM ins WHERE user_id IS NOT NULL GROUP BY user_id) s
			WHERE users.id = s.user_id
		), global_spend AS (
			UPDATE global_budget SET spend = global_budget.spend + s.cost
			FROM (SELECT sum(cost) AS cost FROM ins HAVING count(*) > 0) s
		), daily AS (
			-- One upsert may not touch a row twice, hence GROUP BY. The
			-- ORDER BY makes concurrent batches lock rollup rows in the
			-- same order, so they cannot deadlock on them.
			INSERT INTO spend_daily AS d (day, team_id, key_id, user_id, model, provider,
			                              requests, failures, input_tokens, output_tokens, cost)
			SELECT (created_at AT TIME ZONE 'UTC')::date, team_id, key_id, user_id, model, provider,
			       count(*), count(*) FILTER (WHERE status = 'failure'),
			       sum(input_tokens), sum(output_tokens), sum(cost)
			FROM ins
			GROUP BY 1, 2, 3, 4, 5, 6
			ORDER BY 1, 2, 3, 4, 5, 6
			ON CONFLICT (day, team_id, key_id, user_id, model, provider) DO UPDATE SET
				requests = d.requests + EXCLUDED.requests,
				failures = d.failures + EXCLUDED.failures,
				input_tokens = d.input_tokens + EXCLUDED.input_tokens,
				output_tokens = d.output_tokens + EXCLUDED.output_tokens,
				cost = d.cost + EXCLUDED.cost
		)
		SELECT count(*) FROM ins`,
		pq.Array(requestIDs), pq.Array(createdAt), pq.Array(keyIDs), pq.Array(teamIDs), pq.Array(userIDs),
		pq.Array(models), pq.Array(providers), pq.Array(deploymentIDs), pq.Array(endpoints), pq.Array(inTok),
		pq.Array(outTok), pq.Array(costs), pq.Array(latency), pq.Array(statuses), pq.Array(codes), pq.Array(errs),
		pq.Array(cacheHits), pq.Array(guardrails))
	return inserted, err
}

func nullString(s *string) sql.NullString {
	if s == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *s, Valid: true}
}

func (s *Store) ensureSpendPartitions(ctx context.Context, logs []SpendLog) error {
	months := map[time.Time]bool{}
	for _, l := range logs {
		t := l.CreatedAt.UTC()
		months[time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)] = true
	}
	for m := range months {
		if err := s.EnsureSpendPartition(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// EnsureSpendPartition creates the monthly spend-log partition holding ts.
func (s *Store) EnsureSpendPartition(ctx context.Context, ts time.Time) error {
	if _, err := s.db.ExecContext(ctx, `SELECT tollgate_ensure_spend_partition($1)`, ts); err != nil {
		return fmt.Errorf("create spend partition for %s: %w", ts.Format("2006-01"), err)
	}
	return nil
}

// SpendFilter selects spend logs.
type SpendFilter struct {
	TeamID, KeyID, UserID, Model, Status string
	From, To                             time.Time
	Page
}

func (f SpendFilter) query() (query, error) {
	var q query
	for _, c := range []struct{ col, val string }{{"team_id", f.TeamID}, {"key_id", f.KeyID}, {"user_id", f.UserID}} {
		if c.val == "" {
			continue
		}
		if !isUUID(c.val) {
			return q, invalid(c.col, "%s must be a UUID", c.col)
		}
		q.add(c.col+" = ?", c.val)
	}
	if f.Model != "" {
		q.add("model = ?", f.Model)
	}
	if f.Status != "" {
		if f.Status != StatusSuccess && f.Status != StatusFailure {
			return q, invalid("status", "status must be success or failure (got %q)", f.Status)
		}
		q.add("status = ?", f.Status)
	}
	if !f.From.IsZero() {
		q.add("created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		q.add("created_at < ?", f.To)
	}
	return q, nil
}

// ListSpendLogs returns spend logs, newest first.
func (s *Store) ListSpendLogs(ctx context.Context, f SpendFilter) ([]SpendLog, string, error) {
	q, err := f.query()
	if err != nil {
		return nil, "", err
	}
	rows, next, err := listPage[SpendLog](ctx, s, `SELECT * FROM spend_logs`, "created_at", "request_id", q, f.Page)
	if err != nil {
		return nil, "", fmt.Errorf("list spend logs: %w", err)
	}
	return rows, next, nil
}

// SpendGroup is one row of a spend report.
type SpendGroup struct {
	Group        string  `db:"grp" json:"group"`
	Name         string  `db:"name" json:"name"`
	Requests     int64   `db:"requests" json:"requests"`
	Failures     int64   `db:"failures" json:"failures"`
	InputTokens  int64   `db:"input_tokens" json:"input_tokens"`
	OutputTokens int64   `db:"output_tokens" json:"output_tokens"`
	Cost         float64 `db:"cost" json:"cost"`
}

// spendGroupings maps a group_by value to its column and a display name.
var spendGroupings = map[string]struct{ col, name string }{
	"team":     {"l.team_id::text", "COALESCE((SELECT name FROM teams WHERE id = l.team_id), '')"},
	"key":      {"l.key_id::text", "COALESCE((SELECT CASE WHEN alias <> '' THEN alias ELSE key_hint END FROM keys WHERE id = l.key_id), '')"},
	"model":    {"l.model", "l.model"},
	"provider": {"l.provider", "l.provider"},
	"user":     {"l.user_id::text", "COALESCE((SELECT email FROM users WHERE id = l.user_id), '')"},
}

// SpendReport sums spend by team, key, model, provider or user.
func (s *Store) SpendReport(ctx context.Context, groupBy string, f SpendFilter) ([]SpendGroup, error) {
	g, ok := spendGroupings[groupBy]
	if !ok {
		return nil, invalid("group_by", "group_by must be one of team, key, model, provider, user (got %q)", groupBy)
	}
	q, err := f.query()
	if err != nil {
		return nil, err
	}
	rows := []SpendGroup{}
	sqlText := fmt.Sprintf(`
		SELECT COALESCE(grp, '') AS grp, MAX(name) AS name, count(*) AS requests,
		       count(*) FILTER (WHERE status = 'failure') AS failures,
		       COALESCE(sum(input_tokens), 0) AS input_tokens, COALESCE(sum(output_tokens), 0) AS output_tokens,
		       COALESCE(sum(cost), 0) AS cost
		FROM (SELECT %s AS grp, %s AS name, l.* FROM spend_logs l) l%s
		GROUP BY grp ORDER BY cost DESC, grp`, g.col, g.name, q.where())
	if err := s.db.SelectContext(ctx, &rows, sqlText, q.args...); err != nil {
		return nil, fmt.Errorf("spend report: %w", err)
	}
	return rows, nil
}

// DeploymentHealth is what recent traffic says about one deployment.
type DeploymentHealth struct {
	DeploymentID string `db:"deployment_id"`
	Requests     int64  `db:"requests"`
	Failures     int64  `db:"failures"`
}

// RecentDeploymentHealth counts each deployment's requests and failures
// since since: a passive health signal from real traffic.
func (s *Store) RecentDeploymentHealth(ctx context.Context, since time.Time) (map[string]DeploymentHealth, error) {
	rows := []DeploymentHealth{}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT deployment_id::text AS deployment_id, count(*) AS requests,
		       count(*) FILTER (WHERE status = 'failure') AS failures
		FROM spend_logs WHERE created_at >= $1 AND deployment_id IS NOT NULL
		GROUP BY deployment_id`, since)
	if err != nil {
		return nil, fmt.Errorf("deployment health: %w", err)
	}
	out := make(map[string]DeploymentHealth, len(rows))
	for _, r := range rows {
		out[r.DeploymentID] = r
	}
	return out, nil
}
