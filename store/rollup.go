package store

import (
	"context"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// The dashboard reads spend_daily, never spend_logs: a month of rollups is
// a few thousand rows per team where the logs hold millions. Days are UTC
// calendar days.

// RollupFilter restricts the dashboard figures to some teams and/or one
// user. Empty fields mean everything, so a member's view must pass the
// member's teams (or user id): an empty TeamIDs shows every team. When both
// are set a row must match both.
type RollupFilter struct {
	TeamIDs []string
	UserID  string
}

func (f RollupFilter) add(q *query) error {
	for i, id := range f.TeamIDs {
		if !isUUID(id) {
			return invalid("team_ids", "team_ids[%d] must be a team's id (a UUID)", i)
		}
	}
	if f.UserID != "" && !isUUID(f.UserID) {
		return invalid("user_id", "user_id must be a user's id (a UUID)")
	}
	if len(f.TeamIDs) > 0 {
		q.add("d.team_id = ANY(?::uuid[])", pq.Array(f.TeamIDs))
	}
	if f.UserID != "" {
		q.add("d.user_id = ?", f.UserID)
	}
	return nil
}

// dayRange adds the UTC days that overlap [from, to); a zero bound is open.
// Rollups have no time of day, so a partial day counts whole.
func dayRange(q *query, from, to time.Time) error {
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		return invalid("to", "to must be after from (got from %s, to %s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if !from.IsZero() {
		q.add("d.day >= ?::date", utcDay(from).Format(time.DateOnly))
	}
	if !to.IsZero() {
		end := utcDay(to)
		if end.Before(to) {
			end = end.AddDate(0, 0, 1)
		}
		q.add("d.day < ?::date", end.Format(time.DateOnly))
	}
	return nil
}

// utcDay is the start of t's UTC calendar day.
func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// SpendTotal sums spend over a period.
type SpendTotal struct {
	Cost         float64 `db:"cost" json:"cost"`
	Requests     int64   `db:"requests" json:"requests"`
	Failures     int64   `db:"failures" json:"failures"`
	InputTokens  int64   `db:"input_tokens" json:"input_tokens"`
	OutputTokens int64   `db:"output_tokens" json:"output_tokens"`
}

// SpendSummary is the dashboard's headline: spend today, this week (since
// Monday) and this month (since the 1st), in UTC, up to and including today.
type SpendSummary struct {
	Today      SpendTotal `json:"today"`
	Week       SpendTotal `json:"week"`
	Month      SpendTotal `json:"month"`
	Day        time.Time  `json:"day"`        // today, 00:00 UTC
	WeekStart  time.Time  `json:"week_start"` // this Monday, 00:00 UTC
	MonthStart time.Time  `json:"month_start"`
	// MonthErrorRate is this month's failures over its requests, 0 when
	// there were none.
	MonthErrorRate float64 `json:"month_error_rate"`
}

// SpendTotals sums spend for the day, week and month holding now.
func (s *Store) SpendTotals(ctx context.Context, now time.Time, f RollupFilter) (SpendSummary, error) {
	today := utcDay(now)
	sum := SpendSummary{
		Day:        today,
		WeekStart:  today.AddDate(0, 0, -(int(today.Weekday())+6)%7),
		MonthStart: time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC),
	}
	since := sum.MonthStart
	if sum.WeekStart.Before(since) {
		since = sum.WeekStart
	}
	var q query
	q.add("d.day >= ?::date", since.Format(time.DateOnly))
	q.add("d.day <= ?::date", today.Format(time.DateOnly))
	if err := f.add(&q); err != nil {
		return SpendSummary{}, err
	}
	n := len(q.args)
	q.args = append(q.args, today.Format(time.DateOnly), sum.WeekStart.Format(time.DateOnly), sum.MonthStart.Format(time.DateOnly))
	// Sum per day first (a few dozen rows), then per period.
	rows := []struct {
		Period int `db:"period"`
		SpendTotal
	}{}
	err := s.db.SelectContext(ctx, &rows, fmt.Sprintf(`
		WITH days AS (
			SELECT d.day, sum(d.cost) AS cost, sum(d.requests) AS requests, sum(d.failures) AS failures,
			       sum(d.input_tokens) AS input_tokens, sum(d.output_tokens) AS output_tokens
			FROM spend_daily d%s
			GROUP BY d.day
		)
		SELECT p.period, COALESCE(sum(days.cost), 0) AS cost, COALESCE(sum(days.requests), 0) AS requests,
		       COALESCE(sum(days.failures), 0) AS failures, COALESCE(sum(days.input_tokens), 0) AS input_tokens,
		       COALESCE(sum(days.output_tokens), 0) AS output_tokens
		FROM (VALUES (0, $%d::date), (1, $%d::date), (2, $%d::date)) p (period, since)
		LEFT JOIN days ON days.day >= p.since
		GROUP BY p.period
		ORDER BY p.period`, q.where(), n+1, n+2, n+3), q.args...)
	if err != nil {
		return SpendSummary{}, fmt.Errorf("spend totals: %w", err)
	}
	if len(rows) != 3 {
		return SpendSummary{}, fmt.Errorf("spend totals: got %d periods, want 3", len(rows))
	}
	sum.Today, sum.Week, sum.Month = rows[0].SpendTotal, rows[1].SpendTotal, rows[2].SpendTotal
	if sum.Month.Requests > 0 {
		sum.MonthErrorRate = float64(sum.Month.Failures) / float64(sum.Month.Requests)
	}
	return sum, nil
}

// DailySpendPoint is one group's spend on one day.
type DailySpendPoint struct {
	Day      time.Time `db:"day" json:"day"` // 00:00 UTC
	Key      string    `db:"key" json:"key"` // team id ("" for no team) or model
	Name     string    `db:"name" json:"name"`
	Cost     float64   `db:"cost" json:"cost"`
	Requests int64     `db:"requests" json:"requests"`
}

// dailyGroupings are DailySpend's statements by group_by; %s is the WHERE
// clause. Names are looked up after grouping, on a few rows.
var dailyGroupings = map[string]string{
	"team": `
		SELECT g.day, COALESCE(g.team_id::text, '') AS key, COALESCE(t.name, '') AS name, g.cost, g.requests
		FROM (SELECT d.day, d.team_id, sum(d.cost) AS cost, sum(d.requests) AS requests
		      FROM spend_daily d%s
		      GROUP BY d.day, d.team_id) g
		LEFT JOIN teams t ON t.id = g.team_id
		ORDER BY g.day, g.cost DESC, key`,
	"model": `
		SELECT d.day, d.model AS key, d.model AS name, sum(d.cost) AS cost, sum(d.requests) AS requests
		FROM spend_daily d%s
		GROUP BY d.day, d.model
		ORDER BY d.day, cost DESC, key`,
}

// DailySpend sums spend per UTC day by team or model over the days that
// overlap [from, to), oldest first and, within a day, highest cost first.
// Days without spend are absent; a deleted team's name is "".
func (s *Store) DailySpend(ctx context.Context, by string, from, to time.Time, f RollupFilter) ([]DailySpendPoint, error) {
	stmt, ok := dailyGroupings[by]
	if !ok {
		return nil, invalid("group_by", "group_by must be team or model (got %q)", by)
	}
	var q query
	if err := dayRange(&q, from, to); err != nil {
		return nil, err
	}
	if err := f.add(&q); err != nil {
		return nil, err
	}
	points := []DailySpendPoint{}
	if err := s.db.SelectContext(ctx, &points, fmt.Sprintf(stmt, q.where()), q.args...); err != nil {
		return nil, fmt.Errorf("daily spend by %s: %w", by, err)
	}
	for i := range points {
		points[i].Day = utcDay(points[i].Day)
	}
	return points, nil
}

// KeySpend is one key's spend over a period.
type KeySpend struct {
	KeyID    string  `db:"key_id" json:"key_id"`
	Alias    string  `db:"alias" json:"alias"`       // "" if the key was deleted
	Hint     string  `db:"key_hint" json:"key_hint"` // "" if the key was deleted
	TeamID   string  `db:"team_id" json:"team_id"`   // "" for no team
	TeamName string  `db:"team_name" json:"team_name"`
	Cost     float64 `db:"cost" json:"cost"`
	Requests int64   `db:"requests" json:"requests"`
}

// MaxTopKeys bounds TopKeys' limit.
const MaxTopKeys = 100

// TopKeys returns the keys that spent most over the days that overlap
// [from, to), highest cost first. Requests made without a key are left out.
// The team is the one the key's spend was charged to; if the key moved
// between teams during the period, the one charged most.
func (s *Store) TopKeys(ctx context.Context, from, to time.Time, limit int, f RollupFilter) ([]KeySpend, error) {
	if limit < 1 || limit > MaxTopKeys {
		return nil, invalid("limit", "limit must be between 1 and %d (got %d)", MaxTopKeys, limit)
	}
	var q query
	q.conds = append(q.conds, "d.key_id IS NOT NULL")
	if err := dayRange(&q, from, to); err != nil {
		return nil, err
	}
	if err := f.add(&q); err != nil {
		return nil, err
	}
	q.args = append(q.args, limit)
	keys := []KeySpend{}
	err := s.db.SelectContext(ctx, &keys, fmt.Sprintf(`
		SELECT g.key_id::text AS key_id, COALESCE(k.alias, '') AS alias, COALESCE(k.key_hint, '') AS key_hint,
		       COALESCE(g.team_id::text, '') AS team_id, COALESCE(t.name, '') AS team_name, g.cost, g.requests
		FROM (SELECT kt.key_id, (array_agg(kt.team_id ORDER BY kt.cost DESC, kt.team_id))[1] AS team_id,
		             sum(kt.cost) AS cost, sum(kt.requests) AS requests
		      FROM (SELECT d.key_id, d.team_id, sum(d.cost) AS cost, sum(d.requests) AS requests
		            FROM spend_daily d%s
		            GROUP BY d.key_id, d.team_id) kt
		      GROUP BY kt.key_id
		      ORDER BY cost DESC, requests DESC, kt.key_id
		      LIMIT $%d) g
		LEFT JOIN keys k ON k.id = g.key_id
		LEFT JOIN teams t ON t.id = g.team_id
		ORDER BY g.cost DESC, g.requests DESC, g.key_id`, q.where(), len(q.args)), q.args...)
	if err != nil {
		return nil, fmt.Errorf("top keys: %w", err)
	}
	return keys, nil
}
