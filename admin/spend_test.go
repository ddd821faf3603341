package admin_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"testing"
	"time"

	"tollgate/store"
)

// spendFixture is a set of spend logs over two teams, two keys and two
// models, and one log with neither team nor key.
type spendFixture struct {
	teamA, teamB, keyA, keyB, keyBHint string
	logs                               []store.SpendLog
	base                               time.Time
}

func newSpendFixture(e *env) *spendFixture {
	e.t.Helper()
	f := &spendFixture{}
	f.teamA, f.teamB = e.newTeam("bu-alpha"), e.newTeam("bu-beta")
	f.keyA, _ = e.create("/api/v1/keys", obj{"team_id": f.teamA, "alias": "alpha-key"})
	var kb obj
	f.keyB, kb = e.create("/api/v1/keys", obj{"team_id": f.teamB})
	f.keyBHint = kb["key_hint"].(string)

	// Two hours ago, to the microsecond PostgreSQL keeps.
	f.base = time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Microsecond)
	type row struct {
		min            int // minutes after base
		team, key      string
		model, status  string
		in, out        int64
		cost           float64
		provider, user string
	}
	rows := []row{
		{0, "A", "A", "gpt-4o", "success", 100, 50, 0.0125, "openai", ""},
		{1, "A", "A", "gpt-4o", "success", 200, 80, 0.02, "openai", ""},
		{1, "A", "A", "claude", "failure", 10, 0, 0, "anthropic", ""}, // same instant as the row before
		{1, "B", "B", "claude", "success", 300, 120, 0.3333333333, "anthropic", ""},
		{5, "B", "B", "gpt-4o", "success", 1000, 500, 1.5, "openai", ""},
		{6, "B", "B", "gpt-4o", "failure", 5, 0, 0, "openai", ""},
		{10, "A", "A", "claude", "success", 40, 40, 0.004, "anthropic", ""},
		{20, "", "", "gpt-4o", "success", 7, 3, 0.0001, "openai", ""},
		{30, "A", "A", "gpt-4o", "success", 123, 456, 0.789, "openai", ""},
		{30, "B", "B", "claude", "success", 1, 1, 0.0000000001, "anthropic", ""},
		{30, "B", "B", "claude", "success", 2, 2, 0.5, "anthropic", ""},
		{45, "A", "A", "gpt-4o", "success", 9, 9, 0.09, "openai", ""},
	}
	ids := map[string]string{"A": f.teamA, "B": f.teamB}
	keys := map[string]string{"A": f.keyA, "B": f.keyB}
	for i, r := range rows {
		l := store.SpendLog{
			RequestID: fmt.Sprintf("req-%02d", i), CreatedAt: f.base.Add(time.Duration(r.min) * time.Minute),
			Model: r.model, Provider: r.provider, Endpoint: "/v1/chat/completions",
			InputTokens: r.in, OutputTokens: r.out, Cost: r.cost, LatencyMS: 42, Status: r.status, StatusCode: 200,
		}
		if r.status == "failure" {
			l.StatusCode, l.Error = 502, "upstream error"
		}
		if r.team != "" {
			t, k := ids[r.team], keys[r.key]
			l.TeamID, l.KeyID = &t, &k
		}
		f.logs = append(f.logs, l)
	}
	n, err := e.st.InsertSpendLogs(context.Background(), f.logs)
	if err != nil || n != len(f.logs) {
		e.t.Fatalf("InsertSpendLogs: %d, %v", n, err)
	}
	return f
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSpendLogsFilters(t *testing.T) {
	e := newEnv(t)
	f := newSpendFixture(e)
	at := func(min int) string {
		return url.QueryEscape(f.base.Add(time.Duration(min) * time.Minute).Format(time.RFC3339Nano))
	}
	cases := []struct {
		query string
		keep  func(store.SpendLog) bool
	}{
		{"", func(store.SpendLog) bool { return true }},
		{"team_id=" + f.teamA, func(l store.SpendLog) bool { return deref(l.TeamID) == f.teamA }},
		{"team_id=" + f.teamB, func(l store.SpendLog) bool { return deref(l.TeamID) == f.teamB }},
		{"key_id=" + f.keyB, func(l store.SpendLog) bool { return deref(l.KeyID) == f.keyB }},
		{"model=claude", func(l store.SpendLog) bool { return l.Model == "claude" }},
		{"model=gpt", func(store.SpendLog) bool { return false }},
		{"status=failure", func(l store.SpendLog) bool { return l.Status == "failure" }},
		{"status=success&model=gpt-4o&team_id=" + f.teamA, func(l store.SpendLog) bool {
			return l.Status == "success" && l.Model == "gpt-4o" && deref(l.TeamID) == f.teamA
		}},
		{"from=" + at(5), func(l store.SpendLog) bool { return !l.CreatedAt.Before(f.base.Add(5 * time.Minute)) }},
		{"to=" + at(5), func(l store.SpendLog) bool { return l.CreatedAt.Before(f.base.Add(5 * time.Minute)) }},
		{"from=" + at(1) + "&to=" + at(30), func(l store.SpendLog) bool {
			return !l.CreatedAt.Before(f.base.Add(time.Minute)) && l.CreatedAt.Before(f.base.Add(30*time.Minute))
		}},
		{"from=" + time.Now().UTC().Add(48*time.Hour).Format("2006-01-02"), func(store.SpendLog) bool { return false }},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			e := e.at(t)
			want := map[string]store.SpendLog{}
			for _, l := range f.logs {
				if c.keep(l) {
					want[l.RequestID] = l
				}
			}
			rows, _ := e.list("/api/v1/spend/logs?" + c.query)
			if len(rows) != len(want) {
				t.Errorf("%d rows, want %d", len(rows), len(want))
			}
			var prev time.Time
			for i, r := range rows {
				l, ok := want[r["request_id"].(string)]
				if !ok {
					t.Errorf("unexpected row %v", r)
					continue
				}
				at, _ := time.Parse(time.RFC3339Nano, r["created_at"].(string))
				if !at.Equal(l.CreatedAt) || r["model"] != l.Model || r["status"] != l.Status ||
					!near(r["cost"].(float64), l.Cost) || r["input_tokens"] != float64(l.InputTokens) || r["output_tokens"] != float64(l.OutputTokens) {
					t.Errorf("row %v, inserted %+v", r, l)
				}
				if i > 0 && at.After(prev) {
					t.Errorf("rows not newest first at %d", i)
				}
				prev = at
			}
		})
	}

	bad := []struct{ query, param string }{
		{"from=yesterday", "from"},
		{"to=2026-13-01", "to"},
		{"status=ok", "status"},
		{"team_id=bu-alpha", "team_id"},
		{"limit=-1", "limit"},
		{"limit=ten", "limit"},
		{"cursor=not-a-cursor", "cursor"},
	}
	for _, b := range bad {
		wantError(t, e.do(http.MethodGet, "/api/v1/spend/logs?"+b.query, nil), 400, "invalid_request", b.param)
	}
}

func TestSpendLogsPagination(t *testing.T) {
	e := newEnv(t)
	f := newSpendFixture(e)
	for _, c := range []struct {
		query string
		want  int
	}{
		{"limit=1", len(f.logs)},
		{"limit=2", len(f.logs)},
		{"limit=5", len(f.logs)},
		{"limit=12", len(f.logs)},
		{"limit=1000", len(f.logs)},
		{"limit=2&team_id=" + f.teamB, 5},
		{"limit=3&model=claude", 5},
	} {
		t.Run(c.query, func(t *testing.T) {
			e := e.at(t)
			seen := map[string]int{}
			cursor, pages := "", 0
			for {
				pages++
				if pages > len(f.logs)+1 {
					t.Fatal("pagination does not end")
				}
				q := "/api/v1/spend/logs?" + c.query
				if cursor != "" {
					q += "&cursor=" + url.QueryEscape(cursor)
				}
				rows, r := e.list(q)
				for _, row := range rows {
					seen[row["request_id"].(string)]++
				}
				next, _ := r.json["next_cursor"].(string)
				if next == "" {
					if r.json["next_cursor"] != nil {
						t.Errorf("last page: next_cursor %v, want null", r.json["next_cursor"])
					}
					break
				}
				if len(rows) == 0 {
					t.Fatal("an empty page with a next_cursor")
				}
				cursor = next
			}
			if len(seen) != c.want {
				t.Errorf("visited %d rows, want %d", len(seen), c.want)
			}
			for id, n := range seen {
				if n != 1 {
					t.Errorf("%s visited %d times", id, n)
				}
			}
		})
	}
}

func TestSpendReport(t *testing.T) {
	e := newEnv(t)
	f := newSpendFixture(e)

	type sums struct {
		requests, failures, in, out float64
		cost                        float64
	}
	groupOf := map[string]func(store.SpendLog) string{
		"team":     func(l store.SpendLog) string { return deref(l.TeamID) },
		"key":      func(l store.SpendLog) string { return deref(l.KeyID) },
		"model":    func(l store.SpendLog) string { return l.Model },
		"provider": func(l store.SpendLog) string { return l.Provider },
	}
	names := map[string]map[string]string{
		"team":  {f.teamA: "bu-alpha", f.teamB: "bu-beta", "": ""},
		"key":   {f.keyA: "alpha-key", f.keyB: f.keyBHint, "": ""},
		"model": {"gpt-4o": "gpt-4o", "claude": "claude"},
	}
	check := func(t *testing.T, groupBy, query string, keep func(store.SpendLog) bool) {
		t.Helper()
		path := "/api/v1/spend/report?" + query
		if groupBy != "" {
			path += "&group_by=" + groupBy
		} else {
			groupBy = "team"
		}
		r := e.at(t).must(http.StatusOK, http.MethodGet, path, nil)
		if r.json["group_by"] != groupBy {
			t.Errorf("group_by = %v, want %s", r.json["group_by"], groupBy)
		}
		want := map[string]*sums{}
		var total sums
		for _, l := range f.logs {
			if !keep(l) {
				continue
			}
			g := groupOf[groupBy](l)
			if want[g] == nil {
				want[g] = &sums{}
			}
			for _, s := range []*sums{want[g], &total} {
				s.requests++
				s.in += float64(l.InputTokens)
				s.out += float64(l.OutputTokens)
				s.cost += l.Cost
				if l.Status == "failure" {
					s.failures++
				}
			}
		}
		data, _ := r.json["data"].([]any)
		if len(data) != len(want) {
			t.Fatalf("%d groups, want %d: %s", len(data), len(want), r.raw)
		}
		var got sums
		prevCost := math.Inf(1)
		for _, d := range data {
			row := d.(obj)
			g, _ := row["group"].(string)
			w := want[g]
			if w == nil {
				t.Errorf("unexpected group %q", g)
				continue
			}
			if row["requests"] != w.requests || row["failures"] != w.failures || row["input_tokens"] != w.in ||
				row["output_tokens"] != w.out || !near(row["cost"].(float64), w.cost) {
				t.Errorf("group %q = %v, want %+v", g, row, *w)
			}
			if n, ok := names[groupBy]; ok && row["name"] != n[g] {
				t.Errorf("group %q name %v, want %q", g, row["name"], n[g])
			}
			if c := row["cost"].(float64); c > prevCost {
				t.Errorf("groups not ordered by cost descending")
			} else {
				prevCost = c
			}
			got.requests += row["requests"].(float64)
			got.in += row["input_tokens"].(float64)
			got.out += row["output_tokens"].(float64)
			got.cost += row["cost"].(float64)
		}
		if got.requests != total.requests || got.in != total.in || got.out != total.out || !near(got.cost, total.cost) {
			t.Errorf("totals %+v, want %+v", got, total)
		}
	}

	all := func(store.SpendLog) bool { return true }
	for _, g := range []string{"", "team", "model", "key", "provider"} {
		t.Run("all/"+g, func(t *testing.T) { check(t, g, "", all) })
	}
	from := f.base.Add(5 * time.Minute)
	t.Run("from", func(t *testing.T) {
		check(t, "model", "from="+url.QueryEscape(from.Format(time.RFC3339Nano)), func(l store.SpendLog) bool { return !l.CreatedAt.Before(from) })
	})
	t.Run("team filter", func(t *testing.T) {
		check(t, "model", "team_id="+f.teamB, func(l store.SpendLog) bool { return deref(l.TeamID) == f.teamB })
	})
	t.Run("status filter", func(t *testing.T) {
		check(t, "team", "status=success", func(l store.SpendLog) bool { return l.Status == "success" })
	})

	// Running spend on teams and keys matches the logs, and a retried batch
	// does not count twice.
	if n, err := e.st.InsertSpendLogs(context.Background(), f.logs); err != nil || n != 0 {
		t.Fatalf("re-insert: %d, %v", n, err)
	}
	t.Run("after retry", func(t *testing.T) { check(t, "team", "", all) })
	for _, c := range []struct{ path, id string }{{"/api/v1/teams/", f.teamA}, {"/api/v1/teams/", f.teamB}, {"/api/v1/keys/", f.keyA}} {
		var want float64
		for _, l := range f.logs {
			if deref(l.TeamID) == c.id || deref(l.KeyID) == c.id {
				want += l.Cost
			}
		}
		r := e.must(http.StatusOK, http.MethodGet, c.path+c.id, nil)
		if got, _ := r.json["spend"].(float64); !near(got, want) {
			t.Errorf("%s%s spend = %v, want %v", c.path, c.id, r.json["spend"], want)
		}
	}

	bad := []struct{ query, param, msg string }{
		{"group_by=colour", "group_by", "colour"},
		{"group_by=team&from=last-week", "from", "last-week"},
		{"to=31/01/2026", "to", "31/01/2026"},
		{"status=pending", "status", "pending"},
		{"key_id=xyz", "key_id", ""},
	}
	for _, b := range bad {
		wantError(t, e.do(http.MethodGet, "/api/v1/spend/report?"+b.query, nil), 400, "invalid_request", b.param, b.msg)
	}
}
