package store_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"tollgate/store"
	"tollgate/store/storetest"
)

// Dashboard target: a page load stays under 100 ms at the 95th percentile
// with 1,000,000 spend logs.
const (
	benchLogs = 1_000_000
	benchDays = 60
)

// BenchmarkDashboardQueries times what one dashboard load asks of the
// store, over 60 days of 1,000,000 spend logs (20 teams, 200 keys, 8
// models), and reports the 95th percentile of the loads.
func BenchmarkDashboardQueries(b *testing.B) {
	st := storetest.New(b)
	ctx := context.Background()
	now := time.Now().UTC()
	seedDashboard(b, st, now)

	// The last 30 days, today included, as the dashboard asks.
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from, to := today.AddDate(0, 0, -29), today.AddDate(0, 0, 1)
	load := func() {
		sum, err := st.SpendTotals(ctx, now, store.RollupFilter{})
		if err != nil {
			b.Fatal(err)
		}
		byTeam, err := st.DailySpend(ctx, "team", from, to, store.RollupFilter{})
		if err != nil {
			b.Fatal(err)
		}
		byModel, err := st.DailySpend(ctx, "model", from, to, store.RollupFilter{})
		if err != nil {
			b.Fatal(err)
		}
		top, err := st.TopKeys(ctx, from, to, 10, store.RollupFilter{})
		if err != nil {
			b.Fatal(err)
		}
		// Guard against timing empty answers.
		if sum.Month.Requests == 0 || len(byTeam) < 20*30 || len(byModel) < 8*30 || len(top) != 10 {
			b.Fatalf("dashboard saw too little: %d requests this month, %d team points, %d model points, %d keys",
				sum.Month.Requests, len(byTeam), len(byModel), len(top))
		}
	}

	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		load()
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	p95 := took[int(math.Ceil(0.95*float64(len(took))))-1]
	b.ReportMetric(float64(p95.Microseconds())/1000, "p95-ms")
}

// seedDashboard writes benchLogs spend logs ending at now with single
// INSERT ... SELECT statements, and their rollup the way the migration
// backfills it: batches through InsertSpendLogs would take minutes.
func seedDashboard(b *testing.B, st *store.Store, now time.Time) {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	oldest := now.AddDate(0, 0, -benchDays-1)
	for m := time.Date(oldest.Year(), oldest.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(now); m = m.AddDate(0, 1, 0) {
		if err := st.EnsureSpendPartition(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	for _, stmt := range []struct {
		what string
		sql  string
		args []any
	}{
		{"teams", `INSERT INTO teams (name) SELECT 'bench-team-' || g FROM generate_series(0, 19) g`, nil},
		{"users", `INSERT INTO users (email) SELECT 'bench-' || g || '@example.com' FROM generate_series(0, 49) g`, nil},
		{"keys", `
			INSERT INTO keys (key_hash, key_hint, alias, team_id, user_id)
			SELECT 'bench-hash-' || g, 'sk-...' || lpad(g::text, 4, '0'), 'bench-key-' || g,
			       (SELECT id FROM teams WHERE name = 'bench-team-' || g % 20),
			       (SELECT id FROM users WHERE email = 'bench-' || g % 50 || '@example.com')
			FROM generate_series(0, 199) g`, nil},
		// Log g is made g × 5.184 s before now: 1,000,000 logs span 60 days.
		{"spend logs", `
			WITH k AS (SELECT id, team_id, user_id, substr(alias, 11)::int AS n FROM keys WHERE alias LIKE 'bench-key-%')
			INSERT INTO spend_logs (request_id, created_at, key_id, team_id, user_id, model, provider, endpoint,
			                        input_tokens, output_tokens, cost, latency_ms, status, status_code)
			SELECT 'bench-' || g, $1::timestamptz - g * $2::float8 * interval '1 millisecond', k.id, k.team_id, k.user_id,
			       'model-' || (g / 200) % 8, 'provider-' || (g / 200) % 8 % 3, '/v1/chat/completions',
			       100 + g % 900, 10 + g % 300, ((100 + g % 900) * 2.5 + (10 + g % 300) * 10) / 1e6, 50 + g % 500,
			       CASE WHEN g % 37 = 0 THEN 'failure' ELSE 'success' END, CASE WHEN g % 37 = 0 THEN 502 ELSE 200 END
			FROM generate_series(0, $3::int - 1) g JOIN k ON k.n = g % 200`,
			[]any{now, float64(benchDays*24*time.Hour/time.Millisecond) / benchLogs, benchLogs}},
		{"rollup", `
			INSERT INTO spend_daily (day, team_id, key_id, user_id, model, provider,
			                         requests, failures, input_tokens, output_tokens, cost)
			SELECT (created_at AT TIME ZONE 'UTC')::date, team_id, key_id, user_id, model, provider,
			       count(*), count(*) FILTER (WHERE status = 'failure'),
			       sum(input_tokens), sum(output_tokens), sum(cost)
			FROM spend_logs
			GROUP BY 1, 2, 3, 4, 5, 6`, nil},
		{"analyze", `ANALYZE`, nil},
	} {
		if _, err := st.DB().ExecContext(ctx, stmt.sql, stmt.args...); err != nil {
			b.Fatalf("seed %s: %v", stmt.what, err)
		}
	}
	var logs, rollups int
	if err := st.DB().Get(&logs, `SELECT count(*) FROM spend_logs`); err != nil || logs != benchLogs {
		b.Fatalf("seeded %d spend logs (%v), want %d", logs, err, benchLogs)
	}
	if err := st.DB().Get(&rollups, `SELECT count(*) FROM spend_daily`); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d spend logs into %d rollup rows in %s", logs, rollups, time.Since(start).Round(time.Millisecond))
}
