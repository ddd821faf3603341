package store_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

func guardrailSpec(name, typ string) store.GuardrailSpec {
	return store.GuardrailSpec{Name: name, Type: typ, Mode: store.ModePreCall, Action: store.ActionLog, Enabled: true}
}

func mustGuardrail(t *testing.T, st *store.Store, spec store.GuardrailSpec) *store.Guardrail {
	t.Helper()
	g, err := st.CreateGuardrail(t.Context(), testActor, spec)
	if err != nil {
		t.Fatalf("create guardrail %q: %v", spec.Name, err)
	}
	return g
}

// The Go rule for names and the schema's CHECK must agree: a name the
// store accepts is stored, and a name it refuses the schema refuses too.
func TestGuardrailNameMatchesTheSchema(t *testing.T) {
	st, ctx := newStore(t)
	for _, tc := range []struct {
		name, wantMsg string // "" means valid
	}{
		{"a", ""},
		{"7", ""},
		{"pii-mask_EU.v2", ""},
		{"a" + strings.Repeat("-", 63), ""},
		{strings.Repeat("x", 64), ""},
		{"", "name is required"},
		{strings.Repeat("x", 65), "at most 64 characters (got 65)"},
		{"-pii", "start with a letter or digit"},
		{"_pii", "start with a letter or digit"},
		{".pii", "start with a letter or digit"},
		{"pii mask", `found ' ' at position 4`},
		{"pii+mask", `found '+' at position 4`},
		{"pii@corp", `found '@' at position 4`},
		{"pïi", `found 'ï' at position 2`},
	} {
		err := store.ValidateGuardrailName(tc.name)
		switch {
		case tc.wantMsg == "" && err != nil:
			t.Errorf("%q refused: %v", tc.name, err)
		case tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)):
			t.Errorf("%q: error %v, want one mentioning %q", tc.name, err, tc.wantMsg)
		}
		if err != nil && asValidation(t, err).Field != "name" {
			t.Errorf("%q: error names field %q", tc.name, asValidation(t, err).Field)
		}
		_, dbErr := st.DB().ExecContext(ctx, `INSERT INTO guardrails (name, type, mode, action) VALUES ($1, 'pii', 'pre_call', 'log')`, tc.name)
		if (dbErr == nil) != (err == nil) {
			t.Errorf("%q: the store says %v, the schema says %v", tc.name, err, dbErr)
		}
		st.DB().ExecContext(ctx, `DELETE FROM guardrails`)
	}
}

func TestGuardrailSpecNormalize(t *testing.T) {
	team := "6B1F0C35-0A4E-4C59-9B8E-6F7F1F0A1D2E"
	for _, tc := range []struct {
		name        string
		change      func(*store.GuardrailSpec)
		field, want string // "" means valid
	}{
		{"valid", func(g *store.GuardrailSpec) {}, "", ""},
		{"every type", func(g *store.GuardrailSpec) { g.Type = store.GuardrailExternal }, "", ""},
		{"no type", func(g *store.GuardrailSpec) { g.Type = "" }, "type", "type is required: one of pii, secrets, keywords, regex, prompt_injection, max_prompt_size, external"},
		{"unknown type", func(g *store.GuardrailSpec) { g.Type = "toxicity" }, "type", `type must be one of pii, secrets`},
		{"unknown mode", func(g *store.GuardrailSpec) { g.Mode = "post" }, "mode", `mode must be one of pre_call, post_call, during_call (got "post")`},
		{"unknown action", func(g *store.GuardrailSpec) { g.Action = "redact" }, "action", `action must be one of block, mask, log (got "redact")`},
		{"team not a UUID", func(g *store.GuardrailSpec) { g.TeamIDs = []string{team, "finance"} }, "team_ids", `team_ids[1] must be a team's id (a UUID), got "finance"`},
		{"config an array", func(g *store.GuardrailSpec) { g.Config = store.JSON(`["EMAIL"]`) }, "config", "config must be a JSON object"},
		{"config null", func(g *store.GuardrailSpec) { g.Config = store.JSON(`null`) }, "config", "config must be a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := guardrailSpec(" pii ", store.GuardrailPII)
			tc.change(&g)
			err := g.Normalize()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			ve := asValidation(t, err)
			if ve.Field != tc.field || !strings.Contains(ve.Message, tc.want) {
				t.Errorf("error %s: %q, want %s: %q", ve.Field, ve.Message, tc.field, tc.want)
			}
		})
	}

	// Defaults and tidying.
	g := store.GuardrailSpec{Name: " pii ", Type: store.GuardrailPII, TeamIDs: []string{team, " " + strings.ToLower(team) + " "}}
	if err := g.Normalize(); err != nil {
		t.Fatal(err)
	}
	if g.Name != "pii" || g.Mode != store.ModePreCall || g.Action != store.ActionBlock || string(g.Config) != "{}" ||
		!slices.Equal(g.TeamIDs, []string{strings.ToLower(team)}) {
		t.Errorf("normalized to %+v", g)
	}
}

func TestGuardrailCRUD(t *testing.T) {
	st, ctx := newStore(t)
	finance, eng := mustTeam(t, st, "finance"), mustTeam(t, st, "eng")

	spec := guardrailSpec("pii-mask", store.GuardrailPII)
	spec.Action, spec.DefaultOn = store.ActionMask, true
	spec.TeamIDs = []string{finance.ID}
	spec.Config = store.JSON(`{"entities": ["EMAIL", "CREDIT_CARD"]}`)
	g := mustGuardrail(t, st, spec)
	if g.ID == "" || g.Name != "pii-mask" || g.Action != store.ActionMask || !g.DefaultOn || !g.Enabled ||
		!slices.Equal(g.TeamIDs, []string{finance.ID}) || !strings.Contains(string(g.Config), `"CREDIT_CARD"`) {
		t.Fatalf("created %+v", g)
	}
	got, err := st.GetGuardrail(ctx, g.ID)
	if err != nil || got.Name != g.Name || string(got.Config) != string(g.Config) {
		t.Fatalf("get: %+v %v", got, err)
	}
	for _, id := range []string{"nope", "6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e"} {
		if _, err := st.GetGuardrail(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("get %s: %v, want not found", id, err)
		}
	}

	// Names are unique; teams must exist.
	if _, err := st.CreateGuardrail(ctx, testActor, guardrailSpec("pii-mask", store.GuardrailSecrets)); !errors.Is(err, store.ErrConflict) ||
		!strings.Contains(err.Error(), `guardrail "pii-mask" already exists`) {
		t.Errorf("duplicate name: %v", err)
	}
	ghost := guardrailSpec("ghost", store.GuardrailSecrets)
	ghost.TeamIDs = []string{eng.ID, "6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e"}
	if ve := asValidation(t, func() error { _, err := st.CreateGuardrail(ctx, testActor, ghost); return err }()); ve.Field != "team_ids" ||
		ve.Message != "team_ids: 6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e names no team" {
		t.Errorf("unknown team: %+v", ve)
	}

	mustGuardrail(t, st, guardrailSpec("secrets", store.GuardrailSecrets))
	mustGuardrail(t, st, guardrailSpec("banned-words", store.GuardrailKeywords))

	all, err := st.AllGuardrails(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if names := guardrailNames(all); !slices.Equal(names, []string{"banned-words", "pii-mask", "secrets"}) {
		t.Errorf("AllGuardrails = %v, want by name", names)
	}
	page1, next, err := st.ListGuardrails(ctx, store.Page{Limit: 2})
	if err != nil || next == "" || len(page1) != 2 {
		t.Fatalf("page 1: %d rows, next %q, %v", len(page1), next, err)
	}
	page2, next2, err := st.ListGuardrails(ctx, store.Page{Limit: 2, Cursor: next})
	if err != nil || next2 != "" || len(page2) != 1 {
		t.Fatalf("page 2: %d rows, next %q, %v", len(page2), next2, err)
	}
	if names := guardrailNames(append(page1, page2...)); !slices.Equal(names, []string{"banned-words", "secrets", "pii-mask"}) {
		t.Errorf("pages, newest first: %v", names)
	}

	// Update: the change sees the stored spec; the rules apply again.
	up, err := st.UpdateGuardrail(ctx, testActor, g.ID, func(s *store.GuardrailSpec) error {
		if s.Name != "pii-mask" || !slices.Equal(s.TeamIDs, []string{finance.ID}) {
			t.Errorf("change got %+v", s)
		}
		s.Enabled, s.TeamIDs = false, append(s.TeamIDs, eng.ID)
		return nil
	})
	if err != nil || up.Enabled || !slices.Equal(up.TeamIDs, []string{finance.ID, eng.ID}) || !up.UpdatedAt.After(g.UpdatedAt) {
		t.Fatalf("update: %+v %v", up, err)
	}
	for _, tc := range []struct {
		change func(*store.GuardrailSpec)
		check  func(error) bool
	}{
		{func(s *store.GuardrailSpec) { s.Name = "secrets" }, func(err error) bool { return errors.Is(err, store.ErrConflict) }},
		{func(s *store.GuardrailSpec) { s.Action = "redact" }, func(err error) bool { return asValidation(t, err).Field == "action" }},
		{func(s *store.GuardrailSpec) { s.TeamIDs = []string{"6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e"} }, func(err error) bool { return asValidation(t, err).Field == "team_ids" }},
	} {
		if _, err := st.UpdateGuardrail(ctx, testActor, g.ID, func(s *store.GuardrailSpec) error { tc.change(s); return nil }); !tc.check(err) {
			t.Errorf("refused update: %v", err)
		}
	}
	if now, _ := st.GetGuardrail(ctx, g.ID); now.Name != "pii-mask" || now.Action != store.ActionMask || len(now.TeamIDs) != 2 {
		t.Errorf("refused updates changed the guardrail: %+v", now)
	}
	if _, err := st.UpdateGuardrail(ctx, testActor, "6b1f0c35-0a4e-4c59-9b8e-6f7f1f0a1d2e", func(*store.GuardrailSpec) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of no guardrail: %v", err)
	}

	if err := st.DeleteGuardrail(ctx, testActor, g.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteGuardrail(ctx, testActor, g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}

	// Every change is audited once, with before and after.
	for action, want := range map[string][2]bool{"guardrail.create": {false, true}, "guardrail.update": {true, true}, "guardrail.delete": {true, false}} {
		rows := auditRows(t, st, store.AuditFilter{Action: action, Resource: "guardrail"})
		if action == "guardrail.create" {
			rows = slices.DeleteFunc(rows, func(a store.AuditEntry) bool { return a.ResourceID != g.ID })
		}
		if len(rows) != 1 || rows[0].ResourceID != g.ID || rows[0].Actor != testActor || (rows[0].Before != nil) != want[0] || (rows[0].After != nil) != want[1] {
			t.Errorf("audit of %s: %+v", action, rows)
		}
	}
	if after := decodeJSON(t, auditRows(t, st, store.AuditFilter{Action: "guardrail.update"})[0].After); after["enabled"] != false || after["name"] != "pii-mask" {
		t.Errorf("update audit after = %v", after)
	}
}

func guardrailNames(gs []store.Guardrail) []string {
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = g.Name
	}
	return names
}

func TestDeleteTeamRemovesItFromGuardrails(t *testing.T) {
	st, ctx := newStore(t)
	gone, stays := mustTeam(t, st, "gone"), mustTeam(t, st, "stays")
	both := guardrailSpec("both", store.GuardrailSecrets)
	both.TeamIDs = []string{gone.ID, stays.ID}
	only := guardrailSpec("only", store.GuardrailPII)
	only.TeamIDs = []string{gone.ID}
	other := guardrailSpec("other", store.GuardrailPII)
	other.TeamIDs = []string{stays.ID}
	gb, go1, gother := mustGuardrail(t, st, both), mustGuardrail(t, st, only), mustGuardrail(t, st, other)

	if err := st.DeleteTeam(ctx, testActor, gone.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		g    *store.Guardrail
		want []string
	}{{gb, []string{stays.ID}}, {go1, []string{}}, {gother, []string{stays.ID}}} {
		now, err := st.GetGuardrail(ctx, c.g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(now.TeamIDs, c.want) {
			t.Errorf("%s teams after delete = %v, want %v", now.Name, now.TeamIDs, c.want)
		}
		if changed := now.UpdatedAt.After(c.g.UpdatedAt); changed != (c.g != gother) {
			t.Errorf("%s updated_at moved: %v", now.Name, changed)
		}
	}
}

func TestInsertSpendLogsWritesGuardrailHitsOnce(t *testing.T) {
	st, ctx := newStore(t)
	team := mustTeam(t, st, "hits")
	key, _ := mustKey(t, st, store.KeySpec{TeamID: &team.ID, Alias: "billing-bot"})
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond)

	masked := spendLog("req-masked", at, 0.01)
	masked.KeyID, masked.TeamID = &key.ID, &team.ID
	masked.Guardrails = store.GuardrailHits{
		{Guardrail: "pii", Mode: store.ModePreCall, Action: store.ActionMask, Type: "EMAIL", Count: 2},
		{Guardrail: "pii", Mode: store.ModePreCall, Action: store.ActionMask, Type: "CREDIT_CARD", Count: 1},
	}
	blocked := spendLog("req-blocked", at.Add(time.Second), 0)
	blocked.Status, blocked.StatusCode = store.StatusFailure, 400
	blocked.KeyID, blocked.TeamID = &key.ID, &team.ID
	blocked.Guardrails = store.GuardrailHits{{Guardrail: "secrets", Mode: store.ModePreCall, Action: store.ActionBlock, Type: "AWS_ACCESS_KEY", Count: 1}}
	clean := spendLog("req-clean", at.Add(2*time.Second), 0.02)

	if n, err := st.InsertSpendLogs(ctx, []store.SpendLog{masked, blocked, clean}); err != nil || n != 3 {
		t.Fatalf("insert: %d, %v", n, err)
	}
	// A retried batch, with one new log: only the new log's hits are added.
	late := spendLog("req-late", at.Add(3*time.Second), 0.01)
	late.Guardrails = store.GuardrailHits{{Guardrail: "pii", Mode: store.ModePostCall, Action: store.ActionLog, Type: "EMAIL", Count: 1}}
	if n, err := st.InsertSpendLogs(ctx, []store.SpendLog{masked, blocked, clean, late}); err != nil || n != 1 {
		t.Fatalf("retry: %d, %v", n, err)
	}
	if n := count(t, st, `SELECT count(*) FROM guardrail_hits`); n != 4 {
		t.Fatalf("%d hit rows after a retried batch, want 4", n)
	}
	if n := count(t, st, `SELECT sum(count) FROM guardrail_hits WHERE request_id = 'req-masked'`); n != 3 {
		t.Errorf("req-masked counts sum to %d, want 3", n)
	}

	// The spend log carries its hits; a log without any has none.
	logs, _, err := st.ListSpendLogs(ctx, store.SpendFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]store.SpendLog{}
	for _, l := range logs {
		byID[l.RequestID] = l
	}
	if got := byID["req-masked"].Guardrails; !slices.Equal(got, masked.Guardrails) {
		t.Errorf("req-masked guardrails = %+v", got)
	}
	if got := byID["req-clean"].Guardrails; got != nil {
		t.Errorf("req-clean guardrails = %+v, want none", got)
	}
	if n := count(t, st, `SELECT count(*) FROM spend_logs WHERE guardrails IS NULL`); n != 1 {
		t.Errorf("%d logs with NULL guardrails, want 1 (no empty arrays stored)", n)
	}

	// Hits, newest first, with the names people read.
	hits, next, err := st.ListGuardrailHits(ctx, store.GuardrailHitFilter{})
	if err != nil || next != "" || len(hits) != 4 {
		t.Fatalf("hits: %d, %q, %v", len(hits), next, err)
	}
	if h := hits[0]; h.RequestID != "req-late" || h.TeamID != nil || h.KeyID != nil || h.Mode != store.ModePostCall || h.Action != store.ActionLog || !h.CreatedAt.Equal(late.CreatedAt) {
		t.Errorf("newest hit %+v", h)
	}
	if h := hits[1]; h.RequestID != "req-blocked" || h.Guardrail != "secrets" || h.MatchedType != "AWS_ACCESS_KEY" || h.Action != store.ActionBlock ||
		*h.TeamID != team.ID || *h.KeyID != key.ID || h.TeamName != "hits" || h.KeyAlias != "billing-bot" || h.KeyHint != key.Hint || h.Count != 1 {
		t.Errorf("blocked hit %+v", h)
	}
	for _, tc := range []struct {
		name string
		f    store.GuardrailHitFilter
		want []string
	}{
		{"by guardrail", store.GuardrailHitFilter{Guardrail: "pii"}, []string{"req-late", "req-masked", "req-masked"}},
		{"by team", store.GuardrailHitFilter{TeamID: team.ID}, []string{"req-blocked", "req-masked", "req-masked"}},
		{"both", store.GuardrailHitFilter{Guardrail: "secrets", TeamID: team.ID}, []string{"req-blocked"}},
		{"none", store.GuardrailHitFilter{Guardrail: "keywords"}, []string{}},
	} {
		rows, _, err := st.ListGuardrailHits(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ids := []string{}
		for _, r := range rows {
			ids = append(ids, r.RequestID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids, tc.want)
		}
	}
	if _, _, err := st.ListGuardrailHits(ctx, store.GuardrailHitFilter{TeamID: "finance"}); asValidation(t, err).Field != "team_id" {
		t.Errorf("team_id filter not a UUID: %v", err)
	}
	// Pages of one, through every row.
	var seen []int64
	cursor := ""
	for range 5 {
		rows, next, err := st.ListGuardrailHits(ctx, store.GuardrailHitFilter{Page: store.Page{Limit: 1, Cursor: cursor}})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			seen = append(seen, r.ID)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if len(seen) != 4 || len(slices.Compact(slices.Sorted(slices.Values(seen)))) != 4 {
		t.Errorf("paging saw %v", seen)
	}

	// Counts are of requests, since a time.
	counts, err := st.GuardrailHitCounts(ctx, at.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if counts["pii"] != 2 || counts["secrets"] != 1 || len(counts) != 2 {
		t.Errorf("counts = %v, want pii 2 (requests, not types), secrets 1", counts)
	}
	if counts, _ := st.GuardrailHitCounts(ctx, at.Add(time.Second)); counts["pii"] != 1 || counts["secrets"] != 1 {
		t.Errorf("counts since the second log = %v", counts)
	}
}
