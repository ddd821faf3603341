package store_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"tollgate/store"
)

// spendLog builds a successful log; callers adjust the rest.
func spendLog(id string, at time.Time, cost float64) store.SpendLog {
	return store.SpendLog{
		RequestID: id, CreatedAt: at, Model: "gpt-test", Provider: "fake", Endpoint: "/v1/chat/completions",
		InputTokens: 100, OutputTokens: 20, Cost: cost, LatencyMS: 42, Status: store.StatusSuccess, StatusCode: 200,
	}
}

func partitionName(ts time.Time) string {
	return "spend_logs_" + ts.UTC().Format("2006_01")
}

func partitionExists(t *testing.T, st *store.Store, name string) bool {
	t.Helper()
	return count(t, st, `SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'spend_logs'::regclass AND c.relname = $1`, name) == 1
}

// sumSpend adds the costs of the logs that match.
func sumSpend(logs []store.SpendLog, match func(store.SpendLog) bool) float64 {
	var sum float64
	for _, l := range logs {
		if match(l) {
			sum += l.Cost
		}
	}
	return sum
}

func TestInsertSpendLogsAccumulatesSpendOnce(t *testing.T) {
	st, ctx := newStore(t)
	teamA, teamB := mustTeam(t, st, "team-a"), mustTeam(t, st, "team-b")
	keyA1, _ := mustKey(t, st, store.KeySpec{TeamID: &teamA.ID})
	keyA2, _ := mustKey(t, st, store.KeySpec{TeamID: &teamA.ID})
	keyB, _ := mustKey(t, st, store.KeySpec{TeamID: &teamB.ID})
	lonely, _ := mustKey(t, st, store.KeySpec{}) // a key without spend

	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	withKey := func(l store.SpendLog, k *store.Key) store.SpendLog {
		l.KeyID, l.TeamID = &k.ID, k.TeamID
		return l
	}
	batch := []store.SpendLog{
		withKey(spendLog("r1", at(1), 0.25), keyA1),
		withKey(spendLog("r2", at(5), 0.125), keyA1),
		withKey(spendLog("r3", at(3), 1.5), keyA2),
		withKey(spendLog("r4", at(2), 0.1), keyB),
		withKey(spendLog("r5", at(4), 0.2), keyB),
		spendLog("r6", at(6), 9.75), // no key, team or user
	}

	check := func(when string) {
		t.Helper()
		for _, k := range []*store.Key{keyA1, keyA2, keyB, lonely} {
			got, err := st.GetKey(ctx, k.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := sumSpend(batch, func(l store.SpendLog) bool { return l.KeyID != nil && *l.KeyID == k.ID })
			if !approxEqual(got.Spend, want) {
				t.Errorf("%s: key %s spend = %v, want %v", when, k.ID, got.Spend, want)
			}
		}
		for _, team := range []*store.Team{teamA, teamB} {
			got, err := st.GetTeam(ctx, team.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := sumSpend(batch, func(l store.SpendLog) bool { return l.TeamID != nil && *l.TeamID == team.ID })
			if !approxEqual(got.Spend, want) {
				t.Errorf("%s: team %s spend = %v, want %v", when, team.Name, got.Spend, want)
			}
		}
	}

	n, err := st.InsertSpendLogs(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(batch) {
		t.Fatalf("inserted %d, want %d", n, len(batch))
	}
	check("first insert")

	// last_used_at is the newest request of each key.
	for k, want := range map[*store.Key]*time.Time{keyA1: ptr(at(5)), keyA2: ptr(at(3)), keyB: ptr(at(4)), lonely: nil} {
		got, err := st.GetKey(ctx, k.ID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case want == nil && got.LastUsedAt != nil:
			t.Errorf("key without requests has last_used_at %v", got.LastUsedAt)
		case want != nil && (got.LastUsedAt == nil || !got.LastUsedAt.Equal(*want)):
			t.Errorf("key %s last_used_at = %v, want %v", k.ID, got.LastUsedAt, *want)
		}
	}

	// A retried batch is skipped entirely and adds nothing.
	for i := range 2 {
		n, err = st.InsertSpendLogs(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("retry %d inserted %d rows, want 0", i+1, n)
		}
		check(fmt.Sprintf("retry %d", i+1))
	}
	if got := count(t, st, `SELECT count(*) FROM spend_logs`); got != len(batch) {
		t.Fatalf("spend_logs holds %d rows, want %d", got, len(batch))
	}

	// A batch mixing written and new requests (and a duplicate within
	// itself) adds only the new ones, once.
	fresh := withKey(spendLog("r7", at(7), 2), keyA1)
	n, err = st.InsertSpendLogs(ctx, []store.SpendLog{batch[0], fresh, batch[3], fresh})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("mixed batch inserted %d rows, want 1", n)
	}
	batch = append(batch, fresh)
	check("mixed batch")

	// An older request does not move last_used_at back.
	old := withKey(spendLog("r0", at(-30), 0.5), keyA1)
	if _, err := st.InsertSpendLogs(ctx, []store.SpendLog{old}); err != nil {
		t.Fatal(err)
	}
	batch = append(batch, old)
	check("older request")
	if got, _ := st.GetKey(ctx, keyA1.ID); got.LastUsedAt == nil || !got.LastUsedAt.Equal(at(7)) {
		t.Errorf("last_used_at = %v after an older request, want %v", got.LastUsedAt, at(7))
	}

	if n, err := st.InsertSpendLogs(ctx, nil); n != 0 || err != nil {
		t.Errorf("empty batch: %d, %v", n, err)
	}
}

func TestInsertSpendLogsRoundTripAndNullableIDs(t *testing.T) {
	st, ctx := newStore(t)
	team := mustTeam(t, st, "roundtrip")
	user := mustUser(t, st, "dev@example.com")
	key, _ := mustKey(t, st, store.KeySpec{TeamID: &team.ID, UserID: &user.ID})
	deployment := "6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e"
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)

	full := store.SpendLog{
		RequestID: "req-full", CreatedAt: at, KeyID: &key.ID, TeamID: &team.ID, UserID: &user.ID,
		Model: "gpt-4o", Provider: "openai-main", DeploymentID: &deployment, Endpoint: "/v1/embeddings",
		InputTokens: 1234, OutputTokens: 567, Cost: 0.0123456789, LatencyMS: 321,
		Status: store.StatusFailure, StatusCode: 502, Error: "upstream said no", CacheHit: true,
	}
	onlyUser := spendLog("req-user-only", at.Add(-time.Second), 0.5)
	onlyUser.UserID = &user.ID
	bare := spendLog("req-bare", at.Add(-2*time.Second), 0.25)

	if n, err := st.InsertSpendLogs(ctx, []store.SpendLog{full, onlyUser, bare}); err != nil || n != 3 {
		t.Fatalf("InsertSpendLogs = %d, %v; want 3", n, err)
	}
	got, next, err := st.ListSpendLogs(ctx, store.SpendFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if next != "" {
		t.Errorf("next cursor %q on the only page", next)
	}
	want := []store.SpendLog{full, onlyUser, bare}
	if len(got) != len(want) {
		t.Fatalf("listed %d logs, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !g.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("%s created_at = %v, want %v", w.RequestID, g.CreatedAt, w.CreatedAt)
		}
		g.CreatedAt = w.CreatedAt
		if fmt.Sprintf("%+v", derefLog(g)) != fmt.Sprintf("%+v", derefLog(w)) {
			t.Errorf("row %d read back as\n%+v\nwant\n%+v", i, derefLog(g), derefLog(w))
		}
	}

	// The user's own spend is not a column; the nullable-key rows must not
	// have touched any key or team.
	if k, _ := st.GetKey(ctx, key.ID); !approxEqual(k.Spend, full.Cost) {
		t.Errorf("key spend = %v, want %v", k.Spend, full.Cost)
	}
	if tm, _ := st.GetTeam(ctx, team.ID); !approxEqual(tm.Spend, full.Cost) {
		t.Errorf("team spend = %v, want %v", tm.Spend, full.Cost)
	}

	// Filters on the nullable columns.
	for _, tc := range []struct {
		name string
		f    store.SpendFilter
		want []string
	}{
		{"by user", store.SpendFilter{UserID: user.ID}, []string{"req-full", "req-user-only"}},
		{"by key", store.SpendFilter{KeyID: key.ID}, []string{"req-full"}},
		{"by team", store.SpendFilter{TeamID: team.ID}, []string{"req-full"}},
		{"by status", store.SpendFilter{Status: store.StatusSuccess}, []string{"req-user-only", "req-bare"}},
		{"by model", store.SpendFilter{Model: "gpt-4o"}, []string{"req-full"}},
		{"by time", store.SpendFilter{From: at.Add(-1500 * time.Millisecond), To: at}, []string{"req-user-only"}},
	} {
		rows, _, err := st.ListSpendLogs(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ids := requestIDs(rows); !slices.Equal(ids, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, ids, tc.want)
		}
	}
	for _, f := range []store.SpendFilter{{TeamID: "nope"}, {KeyID: "1"}, {UserID: "x"}, {Status: "ok"}} {
		if _, _, err := st.ListSpendLogs(ctx, f); err == nil {
			t.Errorf("filter %+v accepted", f)
		} else {
			asValidation(t, err)
		}
	}
}

// derefLog makes pointer fields printable by value.
func derefLog(l store.SpendLog) any {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	type flat struct {
		store.SpendLog
		KeyID, TeamID, UserID, DeploymentID string
	}
	f := flat{SpendLog: l, KeyID: s(l.KeyID), TeamID: s(l.TeamID), UserID: s(l.UserID), DeploymentID: s(l.DeploymentID)}
	f.SpendLog.KeyID, f.SpendLog.TeamID, f.SpendLog.UserID, f.SpendLog.DeploymentID = nil, nil, nil, nil
	return f
}

func requestIDs(rows []store.SpendLog) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.RequestID
	}
	return ids
}

func TestInsertSpendLogsCreatesMissingPartition(t *testing.T) {
	st, ctx := newStore(t)
	team := mustTeam(t, st, "future")
	key, _ := mustKey(t, st, store.KeySpec{TeamID: &team.ID})

	now := time.Now().UTC()
	future := time.Date(now.Year(), now.Month()+14, 15, 12, 30, 0, 0, time.UTC)
	later := time.Date(now.Year(), now.Month()+15, 1, 0, 0, 0, 0, time.UTC) // first instant of its month
	for _, ts := range []time.Time{future, later} {
		if partitionExists(t, st, partitionName(ts)) {
			t.Fatalf("partition %s already exists; the test cannot show it is created on demand", partitionName(ts))
		}
	}

	a := spendLog("future-1", future, 1.25)
	a.KeyID, a.TeamID = &key.ID, &team.ID
	b := spendLog("future-2", later, 0.75)
	b.KeyID, b.TeamID = &key.ID, &team.ID
	n, err := st.InsertSpendLogs(ctx, []store.SpendLog{a, b})
	if err != nil {
		t.Fatalf("insert into a month without a partition: %v", err)
	}
	if n != 2 {
		t.Fatalf("inserted %d, want 2", n)
	}
	for _, l := range []store.SpendLog{a, b} {
		name := partitionName(l.CreatedAt)
		if !partitionExists(t, st, name) {
			t.Errorf("partition %s was not created", name)
		}
		var holder string
		if err := st.DB().Get(&holder, `SELECT tableoid::regclass::text FROM spend_logs WHERE request_id = $1`, l.RequestID); err != nil {
			t.Fatal(err)
		}
		if holder != name {
			t.Errorf("%s stored in %s, want %s", l.RequestID, holder, name)
		}
	}

	rows, _, err := st.ListSpendLogs(ctx, store.SpendFilter{From: future.Add(-time.Hour), To: later.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if ids := requestIDs(rows); !slices.Equal(ids, []string{"future-2", "future-1"}) {
		t.Fatalf("listed %v, want [future-2 future-1]", ids)
	}
	if !rows[1].CreatedAt.Equal(future) || !approxEqual(rows[1].Cost, 1.25) {
		t.Errorf("future row read back as %+v", rows[1])
	}
	// Spend was added exactly once although the first attempt failed.
	if k, _ := st.GetKey(ctx, key.ID); !approxEqual(k.Spend, 2) {
		t.Errorf("key spend = %v, want 2", k.Spend)
	}
	if tm, _ := st.GetTeam(ctx, team.ID); !approxEqual(tm.Spend, 2) {
		t.Errorf("team spend = %v, want 2", tm.Spend)
	}
	// Retrying now that the partitions exist changes nothing.
	if n, err := st.InsertSpendLogs(ctx, []store.SpendLog{a, b}); err != nil || n != 0 {
		t.Errorf("retry = %d, %v; want 0, nil", n, err)
	}
}

// Two gateway replicas flushing the first requests of a month that has no
// partition yet both try to create it.
func TestInsertSpendLogsConcurrentNewPartition(t *testing.T) {
	st, ctx := newStore(t)
	for i := range 10 {
		month := time.Date(2040+i, time.March, 10, 0, 0, 0, 0, time.UTC)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for g := range errs {
			wg.Go(func() {
				_, errs[g] = st.InsertSpendLogs(ctx, []store.SpendLog{spendLog(fmt.Sprintf("r-%d-%d", i, g), month, 1)})
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("month %s: %v", month.Format("2006-01"), err)
		}
	}
}

func TestListSpendLogsPagination(t *testing.T) {
	st, ctx := newStore(t)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	var logs []store.SpendLog
	for i := range 25 {
		// Groups of five share a timestamp, so the request id breaks ties.
		logs = append(logs, spendLog(fmt.Sprintf("req-%02d", i), base.Add(time.Duration(i/5)*time.Second), 0.01))
	}
	// Insert in an order unrelated to the expected one.
	shuffled := slices.Clone(logs)
	slices.Reverse(shuffled[5:20])
	if n, err := st.InsertSpendLogs(ctx, shuffled); err != nil || n != 25 {
		t.Fatalf("InsertSpendLogs = %d, %v", n, err)
	}
	want := slices.Clone(logs)
	sort.Slice(want, func(i, j int) bool {
		if !want[i].CreatedAt.Equal(want[j].CreatedAt) {
			return want[i].CreatedAt.After(want[j].CreatedAt)
		}
		return want[i].RequestID > want[j].RequestID
	})

	var got []string
	var sizes []int
	cursor := ""
	for page := 0; ; page++ {
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		rows, next, err := st.ListSpendLogs(ctx, store.SpendFilter{Page: store.Page{Limit: 10, Cursor: cursor}})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(rows))
		got = append(got, requestIDs(rows)...)
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Errorf("page sizes %v, want [10 10 5]", sizes)
	}
	if w := requestIDs(want); !slices.Equal(got, w) {
		t.Errorf("visited\n%v\nwant (newest first, each once)\n%v", got, w)
	}

	// Exactly one full page: no cursor to an empty page.
	rows, next, err := st.ListSpendLogs(ctx, store.SpendFilter{Page: store.Page{Limit: 25}})
	if err != nil || len(rows) != 25 || next != "" {
		t.Errorf("limit 25: %d rows, next %q, err %v; want 25 rows and no cursor", len(rows), next, err)
	}
}

func TestListSpendLogsRejectsGarbageCursor(t *testing.T) {
	st, ctx := newStore(t)
	if _, err := st.InsertSpendLogs(ctx, []store.SpendLog{spendLog("r", time.Now(), 1)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{
		"garbage!!",
		base64.RawURLEncoding.EncodeToString([]byte("no separator")),
		base64.RawURLEncoding.EncodeToString([]byte("2026-01-01T00:00:00Z")), // a time but no id
		base64.RawURLEncoding.EncodeToString([]byte("yesterday|req-1")),
		base64.StdEncoding.EncodeToString([]byte("2026-01-01T00:00:00Z|req-1")), // padded: not ours
	} {
		rows, _, err := st.ListSpendLogs(ctx, store.SpendFilter{Page: store.Page{Cursor: c}})
		if err == nil {
			t.Errorf("cursor %q accepted (%d rows)", c, len(rows))
			continue
		}
		if ve := asValidation(t, err); ve.Field != "cursor" {
			t.Errorf("cursor %q: Field = %q, want cursor", c, ve.Field)
		}
	}
}

func TestSpendReport(t *testing.T) {
	st, ctx := newStore(t)
	alpha, beta := mustTeam(t, st, "alpha"), mustTeam(t, st, "beta")
	ann, bob := mustUser(t, st, "ann@example.com"), mustUser(t, st, "bob@example.com")
	k1, _ := mustKey(t, st, store.KeySpec{Alias: "ci-bot", TeamID: &alpha.ID, UserID: &ann.ID})
	k2, _ := mustKey(t, st, store.KeySpec{TeamID: &beta.ID, UserID: &bob.ID}) // no alias: named by hint

	at := time.Now().UTC().Add(-time.Hour)
	type row struct {
		key            *store.Key
		user           *store.User
		model, prov    string
		in, out        int64
		cost           float64
		failed         bool
		minutesFromNow int
	}
	rows := []row{
		{k1, ann, "gpt-a", "openai", 100, 10, 1.5, false, 1},
		{k1, ann, "gpt-b", "azure", 200, 20, 0.5, true, 2},
		{k1, nil, "gpt-a", "openai", 300, 30, 2.25, false, 3},
		{k2, bob, "gpt-a", "azure", 400, 40, 0.75, false, 4},
		{k2, bob, "gpt-c", "anthropic", 500, 50, 4, true, 5},
		{nil, nil, "gpt-c", "anthropic", 600, 60, 0.125, false, 6},
	}
	var logs []store.SpendLog
	for i, r := range rows {
		l := spendLog(fmt.Sprintf("rep-%d", i), at.Add(time.Duration(r.minutesFromNow)*time.Minute), r.cost)
		l.Model, l.Provider, l.InputTokens, l.OutputTokens = r.model, r.prov, r.in, r.out
		if r.key != nil {
			l.KeyID, l.TeamID = &r.key.ID, r.key.TeamID
		}
		if r.user != nil {
			l.UserID = &r.user.ID
		}
		if r.failed {
			l.Status, l.StatusCode = store.StatusFailure, 500
		}
		logs = append(logs, l)
	}
	if _, err := st.InsertSpendLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}

	g := func(group, name string, requests, failures, in, out int64, cost float64) store.SpendGroup {
		return store.SpendGroup{Group: group, Name: name, Requests: requests, Failures: failures, InputTokens: in, OutputTokens: out, Cost: cost}
	}
	for _, tc := range []struct {
		groupBy string
		f       store.SpendFilter
		want    []store.SpendGroup // ordered by cost, highest first
	}{
		{"team", store.SpendFilter{}, []store.SpendGroup{
			g(beta.ID, "beta", 2, 1, 900, 90, 4.75),
			g(alpha.ID, "alpha", 3, 1, 600, 60, 4.25),
			g("", "", 1, 0, 600, 60, 0.125),
		}},
		{"model", store.SpendFilter{}, []store.SpendGroup{
			g("gpt-a", "gpt-a", 3, 0, 800, 80, 4.5),
			g("gpt-c", "gpt-c", 2, 1, 1100, 110, 4.125),
			g("gpt-b", "gpt-b", 1, 1, 200, 20, 0.5),
		}},
		{"provider", store.SpendFilter{}, []store.SpendGroup{
			g("anthropic", "anthropic", 2, 1, 1100, 110, 4.125),
			g("openai", "openai", 2, 0, 400, 40, 3.75),
			g("azure", "azure", 2, 1, 600, 60, 1.25),
		}},
		{"key", store.SpendFilter{}, []store.SpendGroup{
			g(k2.ID, k2.Hint, 2, 1, 900, 90, 4.75),
			g(k1.ID, "ci-bot", 3, 1, 600, 60, 4.25),
			g("", "", 1, 0, 600, 60, 0.125),
		}},
		{"user", store.SpendFilter{}, []store.SpendGroup{
			g(bob.ID, "bob@example.com", 2, 1, 900, 90, 4.75),
			g("", "", 2, 0, 900, 90, 2.375),
			g(ann.ID, "ann@example.com", 2, 1, 300, 30, 2),
		}},
		{"model", store.SpendFilter{TeamID: alpha.ID}, []store.SpendGroup{
			g("gpt-a", "gpt-a", 2, 0, 400, 40, 3.75),
			g("gpt-b", "gpt-b", 1, 1, 200, 20, 0.5),
		}},
		{"provider", store.SpendFilter{Status: store.StatusFailure}, []store.SpendGroup{
			g("anthropic", "anthropic", 1, 1, 500, 50, 4),
			g("azure", "azure", 1, 1, 200, 20, 0.5),
		}},
		{"team", store.SpendFilter{From: at.Add(150 * time.Second), To: at.Add(270 * time.Second)}, []store.SpendGroup{
			g(alpha.ID, "alpha", 1, 0, 300, 30, 2.25),
			g(beta.ID, "beta", 1, 0, 400, 40, 0.75),
		}},
		{"team", store.SpendFilter{Model: "no-such-model"}, []store.SpendGroup{}},
	} {
		t.Run(fmt.Sprintf("%s %+v", tc.groupBy, tc.f), func(t *testing.T) {
			got, err := st.SpendReport(ctx, tc.groupBy, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d groups %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				w := tc.want[i]
				if !approxEqual(got[i].Cost, w.Cost) {
					t.Errorf("group %d cost = %v, want %v", i, got[i].Cost, w.Cost)
				}
				got[i].Cost = w.Cost
				if got[i] != w {
					t.Errorf("group %d = %+v, want %+v", i, got[i], w)
				}
			}
		})
	}

	for _, bad := range []string{"", "teams", "status", "team_id; DROP TABLE spend_logs"} {
		_, err := st.SpendReport(ctx, bad, store.SpendFilter{})
		if err == nil {
			t.Errorf("group_by %q accepted", bad)
			continue
		}
		if ve := asValidation(t, err); ve.Field != "group_by" {
			t.Errorf("group_by %q: Field = %q", bad, ve.Field)
		}
	}
	if _, err := st.SpendReport(ctx, "team", store.SpendFilter{TeamID: "not-a-uuid"}); err == nil {
		t.Error("bad team filter accepted")
	} else {
		asValidation(t, err)
	}
	if n := count(t, st, `SELECT count(*) FROM spend_logs`); n != len(logs) {
		t.Errorf("spend_logs has %d rows after the report, want %d", n, len(logs))
	}
}
