package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	schema "tollgate/sql"
	"tollgate/store"
)

// rollupFromLogs is spend_daily as it must be: spend_logs grouped directly.
const rollupFromLogs = `
	SELECT (created_at AT TIME ZONE 'UTC')::date AS day, team_id, key_id, user_id, model, provider,
	       count(*) AS requests, count(*) FILTER (WHERE status = 'failure') AS failures,
	       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, sum(cost) AS cost
	FROM spend_logs
	GROUP BY 1, 2, 3, 4, 5, 6`

const rollupRows = `
	SELECT day, team_id, key_id, user_id, model, provider, requests, failures, input_tokens, output_tokens, cost
	FROM spend_daily`

// assertRollupMatchesLogs fails unless spend_daily holds exactly the groups
// of spend_logs, and at least want rows of them.
func assertRollupMatchesLogs(t *testing.T, st *store.Store, want int) {
	t.Helper()
	var diff []string
	err := st.DB().Select(&diff, `
		SELECT side || ' ' || row::text FROM (
			(SELECT 'only in spend_daily' AS side, r AS row FROM (`+rollupRows+` EXCEPT ALL `+rollupFromLogs+`) r)
			UNION ALL
			(SELECT 'only in spend_logs', r FROM (`+rollupFromLogs+` EXCEPT ALL `+rollupRows+`) r)
		) x ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) > 0 {
		t.Errorf("spend_daily differs from spend_logs grouped by day:\n%s", strings.Join(diff, "\n"))
	}
	if n := count(t, st, `SELECT count(*) FROM spend_daily`); n != want {
		t.Errorf("spend_daily has %d rows, want %d", n, want)
	}
}

// rollupSnapshot renders spend_daily in a fixed order.
func rollupSnapshot(t *testing.T, st *store.Store) string {
	t.Helper()
	var rows []string
	if err := st.DB().Select(&rows, `SELECT r::text FROM (`+rollupRows+`) r ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	return strings.Join(rows, "\n")
}

type rollupFixture struct {
	alpha, beta *store.Team
	ann, bob    *store.User
	k1, k2, k3  *store.Key
}

func newRollupFixture(t *testing.T, st *store.Store) rollupFixture {
	f := rollupFixture{alpha: mustTeam(t, st, "alpha"), beta: mustTeam(t, st, "beta"),
		ann: mustUser(t, st, "ann@example.com"), bob: mustUser(t, st, "bob@example.com")}
	f.k1, _ = mustKey(t, st, store.KeySpec{Alias: "ci-bot", TeamID: &f.alpha.ID, UserID: &f.ann.ID})
	f.k2, _ = mustKey(t, st, store.KeySpec{TeamID: &f.alpha.ID, UserID: &f.bob.ID})
	f.k3, _ = mustKey(t, st, store.KeySpec{Alias: "batch", TeamID: &f.beta.ID})
	return f
}

// logsOver spreads n logs an hour apart over three keys and no key, and
// two models; every fifth fails. A (day, key, model) group gets a few rows.
func (f rollupFixture) logsOver(prefix string, start time.Time, n int) []store.SpendLog {
	keys := []*store.Key{f.k1, f.k2, f.k3, nil}
	tokyo := time.FixedZone("JST", 9*3600)
	var logs []store.SpendLog
	for i := range n {
		// Given in Tokyo time, where the date is often a day later than in
		// UTC: the rollup must use the UTC one.
		at := start.Add(time.Duration(i)*time.Hour + time.Duration(i)*time.Second).In(tokyo)
		l := spendLog(fmt.Sprintf("%s-%03d", prefix, i), at, 0.001*float64(i+1))
		l.Model = []string{"gpt-a", "gpt-b"}[i/12%2]
		l.Provider = map[string]string{"gpt-a": "openai", "gpt-b": "azure"}[l.Model]
		l.InputTokens, l.OutputTokens = int64(100+i), int64(10+2*i)
		if k := keys[i%len(keys)]; k != nil {
			l.KeyID, l.TeamID, l.UserID = &k.ID, k.TeamID, k.UserID
		}
		if i%5 == 0 {
			l.Status, l.StatusCode = store.StatusFailure, 502
		}
		logs = append(logs, l)
	}
	return logs
}

// distinctGroups counts the rollup rows logs make.
func distinctGroups(logs []store.SpendLog) int {
	s := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	groups := map[string]bool{}
	for _, l := range logs {
		groups[fmt.Sprint(l.CreatedAt.UTC().Format(time.DateOnly), s(l.TeamID), s(l.KeyID), s(l.UserID), l.Model, l.Provider)] = true
	}
	return len(groups)
}

func TestSpendDailyFollowsInserts(t *testing.T) {
	st, ctx := newStore(t)
	f := newRollupFixture(t, st)
	start := time.Date(2025, time.March, 9, 20, 0, 0, 0, time.UTC)
	logs := f.logsOver("r", start, 48)
	insert := func(batch []store.SpendLog, want int) {
		t.Helper()
		if n, err := st.InsertSpendLogs(ctx, batch); err != nil || n != want {
			t.Fatalf("InsertSpendLogs = %d, %v; want %d", n, err, want)
		}
	}

	// Two batches whose groups overlap: the second updates rows the first
	// created.
	insert(logs[:30], 30)
	insert(logs[30:], 18)
	groups := distinctGroups(logs)
	if groups >= len(logs) {
		t.Fatalf("fixture makes %d groups of %d logs; it must put several logs in a group", groups, len(logs))
	}
	assertRollupMatchesLogs(t, st, groups)

	// Totals checked against the input, not only against spend_logs.
	var total struct {
		Requests int64   `db:"requests"`
		Failures int64   `db:"failures"`
		Cost     float64 `db:"cost"`
	}
	if err := st.DB().Get(&total, `SELECT sum(requests) AS requests, sum(failures) AS failures, sum(cost) AS cost FROM spend_daily`); err != nil {
		t.Fatal(err)
	}
	wantCost := sumSpend(logs, func(store.SpendLog) bool { return true })
	if total.Requests != 48 || total.Failures != 10 || !approxEqual(total.Cost, wantCost) {
		t.Errorf("spend_daily totals = %+v, want 48 requests, 10 failures, cost %v", total, wantCost)
	}
	// The time was given in Tokyo; the day is the UTC one.
	if n := count(t, st, `SELECT count(*) FROM spend_daily WHERE day = '2025-03-09'`); n == 0 {
		t.Error("no rollup for 2025-03-09 UTC; days are not taken in UTC")
	}

	// Retries of the whole batch, or of a part of it, change nothing.
	before := rollupSnapshot(t, st)
	insert(logs, 0)
	insert(logs[10:20], 0)
	if after := rollupSnapshot(t, st); after != before {
		t.Errorf("retrying a batch changed spend_daily:\nbefore\n%s\nafter\n%s", before, after)
	}

	// A batch mixing written and new rows adds only the new ones.
	more := f.logsOver("s", start, 12)
	insert(append(append([]store.SpendLog{}, logs[:12]...), more...), 12)
	assertRollupMatchesLogs(t, st, distinctGroups(append(logs, more...)))
}

func TestSpendDailySameGroupTwiceInBatch(t *testing.T) {
	st, ctx := newStore(t)
	f := newRollupFixture(t, st)
	at := time.Date(2025, time.March, 10, 8, 0, 0, 0, time.UTC)
	var batch []store.SpendLog
	for i, cost := range []float64{0.25, 0.5, 1} {
		l := spendLog(fmt.Sprintf("same-%d", i), at.Add(time.Duration(i)*time.Hour), cost)
		l.KeyID, l.TeamID, l.UserID = &f.k1.ID, f.k1.TeamID, f.k1.UserID
		if i == 1 {
			l.Status = store.StatusFailure
		}
		batch = append(batch, l)
	}
	// And two key-less rows: NULL columns must fold into one group too.
	for i := range 2 {
		batch = append(batch, spendLog(fmt.Sprintf("bare-%d", i), at, 2))
	}
	if n, err := st.InsertSpendLogs(ctx, batch); err != nil || n != 5 {
		t.Fatalf("InsertSpendLogs = %d, %v; want 5", n, err)
	}
	// Again in a second batch, so the upsert adds to the existing rows.
	later := spendLog("same-3", at.Add(10*time.Hour), 4)
	later.KeyID, later.TeamID, later.UserID = &f.k1.ID, f.k1.TeamID, f.k1.UserID
	if _, err := st.InsertSpendLogs(ctx, []store.SpendLog{later, spendLog("bare-2", at, 2)}); err != nil {
		t.Fatal(err)
	}

	type row struct {
		Requests, Failures, InputTokens, OutputTokens int64
		Cost                                          float64
	}
	for _, tc := range []struct {
		name  string
		where string
		want  row
	}{
		{"key k1", fmt.Sprintf("key_id = '%s'", f.k1.ID), row{4, 1, 400, 80, 5.75}},
		{"no key", "key_id IS NULL AND team_id IS NULL AND user_id IS NULL", row{3, 0, 300, 60, 6}},
	} {
		var got []row
		if err := st.DB().Select(&got, `SELECT requests AS "requests", failures AS "failures", input_tokens AS "inputtokens",
			output_tokens AS "outputtokens", cost AS "cost" FROM spend_daily WHERE day = '2025-03-10' AND `+tc.where); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 {
			t.Errorf("%s: %d rollup rows, want 1: %+v", tc.name, len(got), got)
			continue
		}
		if !approxEqual(got[0].Cost, tc.want.Cost) {
			t.Errorf("%s: cost %v, want %v", tc.name, got[0].Cost, tc.want.Cost)
		}
		got[0].Cost = tc.want.Cost
		if got[0] != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got[0], tc.want)
		}
	}
	assertRollupMatchesLogs(t, st, 2)
}

// Gateway replicas flush at the same time; their batches share rollup rows.
func TestSpendDailyConcurrentBatches(t *testing.T) {
	st, ctx := newStore(t)
	f := newRollupFixture(t, st)
	start := time.Date(2025, time.March, 9, 20, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	var all []store.SpendLog
	for g := range errs {
		batch := f.logsOver(fmt.Sprintf("c%d", g), start, 40)
		all = append(all, batch...)
		wg.Go(func() { _, errs[g] = st.InsertSpendLogs(ctx, batch) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	assertRollupMatchesLogs(t, st, distinctGroups(all))
}

// The migration fills spend_daily from the logs already written.
func TestSpendDailyMigrationBackfill(t *testing.T) {
	st, ctx := newStore(t)
	f := newRollupFixture(t, st)
	migrations, err := goose.NewProvider(goose.DialectPostgres, st.DB().DB, schema.Migrations)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.DownTo(ctx, 2); err != nil {
		t.Fatalf("migrate down to 2: %v", err)
	}
	if n := count(t, st, `SELECT count(*) FROM pg_class WHERE relname = 'spend_daily'`); n != 0 {
		t.Fatal("spend_daily survives the down migration")
	}

	// Written as the previous version did: no rollup.
	logs := f.logsOver("old", time.Date(2025, time.March, 9, 20, 0, 0, 0, time.UTC), 40)
	if err := st.EnsureSpendPartition(ctx, logs[0].CreatedAt); err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if _, err := st.DB().ExecContext(ctx, `
			INSERT INTO spend_logs (request_id, created_at, key_id, team_id, user_id, model, provider,
			                        input_tokens, output_tokens, cost, status)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			l.RequestID, l.CreatedAt, l.KeyID, l.TeamID, l.UserID, l.Model, l.Provider,
			l.InputTokens, l.OutputTokens, l.Cost, l.Status); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := migrations.Up(ctx); err != nil {
		t.Fatalf("migrate up again: %v", err)
	}
	assertRollupMatchesLogs(t, st, distinctGroups(logs))

	// And the new path adds to the backfilled rows.
	more := f.logsOver("new", time.Date(2025, time.March, 9, 20, 0, 0, 0, time.UTC), 20)
	if _, err := st.InsertSpendLogs(ctx, more); err != nil {
		t.Fatal(err)
	}
	assertRollupMatchesLogs(t, st, distinctGroups(append(logs, more...)))
}

func TestSpendTotalsPeriods(t *testing.T) {
	type entry struct {
		at     string // RFC 3339
		cost   float64
		failed bool
	}
	total := func(cost float64, requests, failures int64) store.SpendTotal {
		return store.SpendTotal{Cost: cost, Requests: requests, Failures: failures, InputTokens: 100 * requests, OutputTokens: 20 * requests}
	}
	for _, tc := range []struct {
		name                string
		now                 string
		logs                []entry
		today, week, month  store.SpendTotal
		weekStart, monthDay string
		errorRate           float64
	}{
		{
			name: "midweek, mid-month",
			now:  "2025-01-15T10:00:00Z", // a Wednesday
			logs: []entry{
				{"2024-12-31T23:59:59Z", 1, false}, // last instant of last month
				{"2025-01-01T00:00:00Z", 2, false},
				{"2025-01-12T23:59:00Z", 4, true}, // Sunday night: last week
				{"2025-01-13T00:00:00Z", 8, true}, // Monday 00:00: this week
				{"2025-01-15T00:00:00Z", 16, false},
				{"2025-01-15T23:00:00Z", 32, false}, // later today still counts
				{"2025-01-16T00:00:00Z", 64, false}, // tomorrow does not
			},
			today: total(48, 2, 0), week: total(56, 3, 1), month: total(62, 5, 2),
			weekStart: "2025-01-13", monthDay: "2025-01-01", errorRate: 0.4,
		},
		{
			name: "now given in another time zone",
			now:  "2025-01-16T01:00:00+09:00", // Wednesday 2025-01-15 16:00 UTC
			logs: []entry{
				{"2025-01-12T23:59:00Z", 4, false},
				{"2025-01-13T00:00:00Z", 8, false},
				{"2025-01-15T12:00:00Z", 16, false},
				{"2025-01-16T00:00:00Z", 64, false},
			},
			today: total(16, 1, 0), week: total(24, 2, 0), month: total(28, 3, 0),
			weekStart: "2025-01-13", monthDay: "2025-01-01",
		},
		{
			name: "week began last month",
			now:  "2025-08-01T09:00:00Z", // a Friday
			logs: []entry{
				{"2025-07-27T23:59:59Z", 1, false}, // Sunday
				{"2025-07-28T00:00:00Z", 2, false}, // Monday
				{"2025-07-31T23:59:59Z", 4, true},  // last day of July
				{"2025-08-01T00:00:00Z", 8, false},
			},
			today: total(8, 1, 0), week: total(14, 3, 1), month: total(8, 1, 0),
			weekStart: "2025-07-28", monthDay: "2025-08-01",
		},
		{
			name: "Monday the 1st",
			now:  "2025-09-01T00:00:00Z",
			logs: []entry{
				{"2025-08-31T23:59:59Z", 1, false},
				{"2025-09-01T00:00:00Z", 2, true},
			},
			today: total(2, 1, 1), week: total(2, 1, 1), month: total(2, 1, 1),
			weekStart: "2025-09-01", monthDay: "2025-09-01", errorRate: 1,
		},
		{
			name:      "nothing spent",
			now:       "2025-01-15T10:00:00Z",
			logs:      []entry{{"2024-12-31T12:00:00Z", 1, false}},
			weekStart: "2025-01-13", monthDay: "2025-01-01",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ctx := newStore(t)
			var logs []store.SpendLog
			for i, e := range tc.logs {
				at, err := time.Parse(time.RFC3339, e.at)
				if err != nil {
					t.Fatal(err)
				}
				l := spendLog(fmt.Sprintf("p-%d", i), at, e.cost)
				if e.failed {
					l.Status = store.StatusFailure
				}
				logs = append(logs, l)
			}
			if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
				t.Fatal(err)
			}
			now, err := time.Parse(time.RFC3339, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.SpendTotals(ctx, now, store.RollupFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []struct {
				name      string
				got, want store.SpendTotal
			}{{"today", got.Today, tc.today}, {"week", got.Week, tc.week}, {"month", got.Month, tc.month}} {
				if !approxEqual(p.got.Cost, p.want.Cost) {
					t.Errorf("%s cost = %v, want %v", p.name, p.got.Cost, p.want.Cost)
				}
				p.got.Cost = p.want.Cost
				if p.got != p.want {
					t.Errorf("%s = %+v, want %+v", p.name, p.got, p.want)
				}
			}
			if !approxEqual(got.MonthErrorRate, tc.errorRate) {
				t.Errorf("month error rate = %v, want %v", got.MonthErrorRate, tc.errorRate)
			}
			day := now.UTC().Format(time.DateOnly)
			for _, d := range []struct {
				name string
				got  time.Time
				want string
			}{{"day", got.Day, day}, {"week start", got.WeekStart, tc.weekStart}, {"month start", got.MonthStart, tc.monthDay}} {
				if want := d.want + "T00:00:00Z"; d.got.Format(time.RFC3339) != want {
					t.Errorf("%s = %s, want %s", d.name, d.got.Format(time.RFC3339), want)
				}
			}
		})
	}
}

func TestDailySpend(t *testing.T) {
	st, ctx := newStore(t)
	alpha, beta, gone := mustTeam(t, st, "alpha"), mustTeam(t, st, "beta"), mustTeam(t, st, "gone")
	day := func(d, hour int) time.Time { return time.Date(2025, time.March, d, hour, 0, 0, 0, time.UTC) }
	var logs []store.SpendLog
	add := func(at time.Time, team *store.Team, model string, cost float64) {
		l := spendLog(fmt.Sprintf("d-%d", len(logs)), at, cost)
		l.Model = model
		if team != nil {
			l.TeamID = &team.ID
		}
		logs = append(logs, l)
	}
	add(day(10, 1), alpha, "gpt-a", 1)
	add(day(10, 2), alpha, "gpt-b", 0.5)
	add(day(10, 3), beta, "gpt-a", 2)
	add(day(10, 23), nil, "gpt-b", 0.25)
	// Nothing on the 11th.
	add(day(12, 0), gone, "gpt-a", 3)
	add(day(12, 5), alpha, "gpt-a", 0.125)
	add(day(12, 6), alpha, "gpt-a", 0.125)
	add(day(13, 0), beta, "gpt-b", 4)
	if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteTeam(ctx, testActor, gone.ID); err != nil {
		t.Fatal(err)
	}

	p := func(d int, key, name string, cost float64, requests int64) store.DailySpendPoint {
		return store.DailySpendPoint{Day: day(d, 0), Key: key, Name: name, Cost: cost, Requests: requests}
	}
	for _, tc := range []struct {
		name     string
		by       string
		from, to time.Time
		f        store.RollupFilter
		want     []store.DailySpendPoint
	}{
		{"by team", "team", day(10, 0), day(13, 0), store.RollupFilter{}, []store.DailySpendPoint{
			p(10, beta.ID, "beta", 2, 1),
			p(10, alpha.ID, "alpha", 1.5, 2),
			p(10, "", "", 0.25, 1),
			p(12, gone.ID, "", 3, 1), // deleted team: no name
			p(12, alpha.ID, "alpha", 0.25, 2),
		}},
		{"by model", "model", day(10, 0), day(13, 0), store.RollupFilter{}, []store.DailySpendPoint{
			p(10, "gpt-a", "gpt-a", 3, 2),
			p(10, "gpt-b", "gpt-b", 0.75, 2),
			p(12, "gpt-a", "gpt-a", 3.25, 3),
		}},
		{"partial days count whole", "model", day(12, 18), day(13, 1), store.RollupFilter{}, []store.DailySpendPoint{
			p(12, "gpt-a", "gpt-a", 3.25, 3),
			p(13, "gpt-b", "gpt-b", 4, 1),
		}},
		{"open range", "model", time.Time{}, time.Time{}, store.RollupFilter{}, []store.DailySpendPoint{
			p(10, "gpt-a", "gpt-a", 3, 2),
			p(10, "gpt-b", "gpt-b", 0.75, 2),
			p(12, "gpt-a", "gpt-a", 3.25, 3),
			p(13, "gpt-b", "gpt-b", 4, 1),
		}},
		{"one team's models", "model", day(1, 0), day(31, 0), store.RollupFilter{TeamIDs: []string{alpha.ID}}, []store.DailySpendPoint{
			p(10, "gpt-a", "gpt-a", 1, 1),
			p(10, "gpt-b", "gpt-b", 0.5, 1),
			p(12, "gpt-a", "gpt-a", 0.25, 2),
		}},
		{"no spend in range", "team", day(11, 0), day(12, 0), store.RollupFilter{}, []store.DailySpendPoint{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.DailySpend(ctx, tc.by, tc.from, tc.to, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Error("nil slice; want an empty one so JSON says []")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d points %+v\nwant %+v", len(got), got, tc.want)
			}
			for i := range got {
				w := tc.want[i]
				if !approxEqual(got[i].Cost, w.Cost) {
					t.Errorf("point %d cost = %v, want %v", i, got[i].Cost, w.Cost)
				}
				got[i].Cost = w.Cost
				if !got[i].Day.Equal(w.Day) || got[i].Day.Location() != time.UTC {
					t.Errorf("point %d day = %v, want %v", i, got[i].Day, w.Day)
				}
				got[i].Day = w.Day
				if got[i] != w {
					t.Errorf("point %d = %+v, want %+v", i, got[i], w)
				}
			}
		})
	}
}

func TestTopKeys(t *testing.T) {
	st, ctx := newStore(t)
	f := newRollupFixture(t, st)
	doomed, _ := mustKey(t, st, store.KeySpec{Alias: "doomed", TeamID: &f.beta.ID, UserID: &f.bob.ID})
	at := time.Date(2025, time.March, 10, 12, 0, 0, 0, time.UTC)
	var logs []store.SpendLog
	add := func(k *store.Key, days int, cost float64) {
		l := spendLog(fmt.Sprintf("t-%d", len(logs)), at.AddDate(0, 0, days), cost)
		if k != nil {
			l.KeyID, l.TeamID, l.UserID = &k.ID, k.TeamID, k.UserID
		}
		logs = append(logs, l)
	}
	add(f.k1, 0, 1)
	add(f.k1, 1, 1)
	add(f.k2, 0, 5)
	add(f.k3, 0, 0.5)
	add(f.k3, 1, 0.5)
	add(f.k3, 1, 1) // k1 and k3 tie on cost; k3 made more requests
	add(doomed, 1, 3)
	// A key moved from alpha to beta: shown with the team charged most.
	mover, _ := mustKey(t, st, store.KeySpec{Alias: "mover", TeamID: &f.alpha.ID})
	add(mover, 0, 0.1)
	add(mover, 1, 0.2)
	logs[len(logs)-1].TeamID = &f.beta.ID
	add(nil, 0, 100) // no key: not a top key
	add(f.k1, 5, 50) // outside the ranges below
	if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteKey(ctx, testActor, doomed.ID); err != nil {
		t.Fatal(err)
	}

	k := func(key *store.Key, alias, hint string, team *store.Team, cost float64, requests int64) store.KeySpend {
		return store.KeySpend{KeyID: key.ID, Alias: alias, Hint: hint, TeamID: team.ID, TeamName: team.Name, Cost: cost, Requests: requests}
	}
	all := []store.KeySpend{
		k(f.k2, "", f.k2.Hint, f.alpha, 5, 1),
		k(doomed, "", "", f.beta, 3, 1), // deleted: no alias or hint
		k(f.k3, "batch", f.k3.Hint, f.beta, 2, 3),
		k(f.k1, "ci-bot", f.k1.Hint, f.alpha, 2, 2),
		k(mover, "mover", mover.Hint, f.beta, 0.3, 2),
	}
	from, to := at.Add(-12*time.Hour), at.AddDate(0, 0, 2).Add(-12*time.Hour)
	for _, tc := range []struct {
		name  string
		limit int
		f     store.RollupFilter
		want  []store.KeySpend
	}{
		{"all", 10, store.RollupFilter{}, all},
		{"limit", 2, store.RollupFilter{}, all[:2]},
		{"limit cuts a tie", 3, store.RollupFilter{}, all[:3]},
		{"one team", 10, store.RollupFilter{TeamIDs: []string{f.beta.ID}}, []store.KeySpend{all[1], all[2],
			k(mover, "mover", mover.Hint, f.beta, 0.2, 1)}},
		{"one user", 10, store.RollupFilter{UserID: f.bob.ID}, []store.KeySpend{all[0], all[1]}},
		{"team and user", 10, store.RollupFilter{TeamIDs: []string{f.alpha.ID}, UserID: f.bob.ID}, all[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := st.TopKeys(ctx, from, to, tc.limit, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d keys %+v\nwant %+v", len(got), got, tc.want)
			}
			for i := range got {
				w := tc.want[i]
				if !approxEqual(got[i].Cost, w.Cost) {
					t.Errorf("key %d cost = %v, want %v", i, got[i].Cost, w.Cost)
				}
				got[i].Cost = w.Cost
				if got[i] != w {
					t.Errorf("key %d = %+v\nwant %+v", i, got[i], w)
				}
			}
		})
	}
}

func TestRollupFilters(t *testing.T) {
	st, ctx := newStore(t)
	f := newRollupFixture(t, st)
	now := time.Date(2025, time.March, 31, 12, 0, 0, 0, time.UTC)
	logs := f.logsOver("f", time.Date(2025, time.March, 10, 0, 0, 0, 0, time.UTC), 24)
	if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		f     store.RollupFilter
		match func(store.SpendLog) bool
	}{
		{"everything", store.RollupFilter{}, func(store.SpendLog) bool { return true }},
		{"team beta", store.RollupFilter{TeamIDs: []string{f.beta.ID}},
			func(l store.SpendLog) bool { return l.TeamID != nil && *l.TeamID == f.beta.ID }},
		{"both teams", store.RollupFilter{TeamIDs: []string{f.alpha.ID, f.beta.ID}},
			func(l store.SpendLog) bool { return l.TeamID != nil }},
		{"user ann", store.RollupFilter{UserID: f.ann.ID},
			func(l store.SpendLog) bool { return l.UserID != nil && *l.UserID == f.ann.ID }},
		{"user bob in beta", store.RollupFilter{TeamIDs: []string{f.beta.ID}, UserID: f.bob.ID},
			func(store.SpendLog) bool { return false }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := sumSpend(logs, tc.match)
			sum, err := st.SpendTotals(ctx, now, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !approxEqual(sum.Month.Cost, want) {
				t.Errorf("SpendTotals month cost = %v, want %v", sum.Month.Cost, want)
			}
			points, err := st.DailySpend(ctx, "team", time.Time{}, time.Time{}, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var daily float64
			for _, p := range points {
				daily += p.Cost
			}
			if !approxEqual(daily, want) {
				t.Errorf("DailySpend total = %v, want %v", daily, want)
			}
			keys, err := st.TopKeys(ctx, time.Time{}, time.Time{}, store.MaxTopKeys, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var keyed float64
			for _, k := range keys {
				keyed += k.Cost
			}
			wantKeyed := sumSpend(logs, func(l store.SpendLog) bool { return l.KeyID != nil && tc.match(l) })
			if !approxEqual(keyed, wantKeyed) {
				t.Errorf("TopKeys total = %v, want %v", keyed, wantKeyed)
			}
		})
	}
}

func TestRollupValidation(t *testing.T) {
	st, ctx := newStore(t)
	now := time.Now()
	from, to := now.AddDate(0, 0, -30), now
	for _, tc := range []struct {
		name  string
		field string
		call  func() error
	}{
		{"empty group_by", "group_by", func() error { _, err := st.DailySpend(ctx, "", from, to, store.RollupFilter{}); return err }},
		{"group_by key", "group_by", func() error { _, err := st.DailySpend(ctx, "key", from, to, store.RollupFilter{}); return err }},
		{"group_by injection", "group_by", func() error {
			_, err := st.DailySpend(ctx, "team; DROP TABLE spend_daily", from, to, store.RollupFilter{})
			return err
		}},
		{"reversed range", "to", func() error { _, err := st.DailySpend(ctx, "team", to, from, store.RollupFilter{}); return err }},
		{"empty range", "to", func() error { _, err := st.TopKeys(ctx, from, from, 10, store.RollupFilter{}); return err }},
		{"limit 0", "limit", func() error { _, err := st.TopKeys(ctx, from, to, 0, store.RollupFilter{}); return err }},
		{"limit too big", "limit", func() error {
			_, err := st.TopKeys(ctx, from, to, store.MaxTopKeys+1, store.RollupFilter{})
			return err
		}},
		{"bad team id", "team_ids", func() error {
			_, err := st.SpendTotals(ctx, now, store.RollupFilter{TeamIDs: []string{"00000000-0000-0000-0000-000000000000", "x"}})
			return err
		}},
		{"bad user id", "user_id", func() error {
			_, err := st.DailySpend(ctx, "model", from, to, store.RollupFilter{UserID: "bob"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if err == nil {
				t.Fatal("accepted")
			}
			if ve := asValidation(t, err); ve.Field != tc.field {
				t.Errorf("Field = %q, want %q (%v)", ve.Field, tc.field, err)
			}
		})
	}
	if n := count(t, st, `SELECT count(*) FROM pg_class WHERE relname = 'spend_daily'`); n != 1 {
		t.Error("spend_daily is gone")
	}
}
