package store_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"tollgate/store"
)

func auditRows(t *testing.T, st *store.Store, f store.AuditFilter) []store.AuditEntry {
	t.Helper()
	rows, _, err := st.ListAudit(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func decodeJSON(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("audit JSON %q: %v", raw, err)
	}
	return m
}

func TestCreateTeamConflictLeavesNoAudit(t *testing.T) {
	st, ctx := newStore(t)
	first := mustTeam(t, st, "platform")
	if n := count(t, st, `SELECT count(*) FROM audit_logs`); n != 1 {
		t.Fatalf("%d audit rows after one create, want 1", n)
	}
	rows := auditRows(t, st, store.AuditFilter{})
	if r := rows[0]; r.Actor != testActor || r.Action != "team.create" || r.ResourceType != "team" || r.ResourceID != first.ID || r.Before != nil {
		t.Errorf("create audit row = %+v", r)
	}
	if after := decodeJSON(t, rows[0].After); after["name"] != "platform" || after["id"] != first.ID {
		t.Errorf("create audit after = %v", after)
	}

	for _, name := range []string{"platform", "  platform  "} { // Normalize trims, so both clash
		team, err := st.CreateTeam(ctx, testActor, store.TeamSpec{Name: name})
		if err == nil {
			t.Fatalf("duplicate team %q created: %+v", name, team)
		}
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate team %q: err %v is not ErrConflict", name, err)
		}
		var ce *store.ConflictError
		if !errors.As(err, &ce) || !strings.Contains(ce.Message, "already exists") {
			t.Errorf("duplicate team: %T %v, want a ConflictError saying it already exists", err, err)
		}
	}
	if n := count(t, st, `SELECT count(*) FROM audit_logs`); n != 1 {
		t.Errorf("%d audit rows after failed creates, want 1", n)
	}
	if n := count(t, st, `SELECT count(*) FROM teams`); n != 1 {
		t.Errorf("%d teams, want 1", n)
	}

	// A create rejected by validation writes nothing either.
	if _, err := st.CreateTeam(ctx, testActor, store.TeamSpec{Name: "-bad-"}); err == nil {
		t.Fatal("invalid team created")
	}
	if n := count(t, st, `SELECT count(*) FROM audit_logs`); n != 1 {
		t.Errorf("%d audit rows after an invalid create, want 1", n)
	}
}

func TestUpdateTeamAuditsBeforeAndAfter(t *testing.T) {
	st, ctx := newStore(t)
	team := mustTeam(t, st, "data-eng")

	updated, err := st.UpdateTeam(ctx, "alice@example.com", team.ID, func(s *store.TeamSpec) error {
		s.MaxBudget = ptr(100.0)
		s.Models = []string{"gpt-4o", "gpt-4o-mini"}
		s.BudgetDuration = ptr("30d")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.MaxBudget == nil || *updated.MaxBudget != 100 {
		t.Fatalf("updated team max_budget = %v", updated.MaxBudget)
	}

	rows := auditRows(t, st, store.AuditFilter{Action: "team.update"})
	if len(rows) != 1 {
		t.Fatalf("%d team.update rows, want 1", len(rows))
	}
	r := rows[0]
	if r.Actor != "alice@example.com" || r.ResourceType != "team" || r.ResourceID != team.ID {
		t.Errorf("audit row = %+v", r)
	}
	before, after := decodeJSON(t, r.Before), decodeJSON(t, r.After)
	if before["max_budget"] != nil || after["max_budget"] != 100.0 {
		t.Errorf("max_budget before %v after %v, want nil then 100", before["max_budget"], after["max_budget"])
	}
	if bm, _ := before["models"].([]any); len(bm) != 0 {
		t.Errorf("models before = %v, want []", before["models"])
	}
	if am, _ := after["models"].([]any); len(am) != 2 || am[0] != "gpt-4o" || am[1] != "gpt-4o-mini" {
		t.Errorf("models after = %v", after["models"])
	}
	if before["budget_duration"] != nil || after["budget_duration"] != "30d" {
		t.Errorf("budget_duration before %v after %v", before["budget_duration"], after["budget_duration"])
	}
	if before["name"] != "data-eng" || after["name"] != "data-eng" || after["id"] != team.ID {
		t.Errorf("identity changed in audit: before %v after %v", before, after)
	}

	// An update rejected by its change function or by validation is not
	// saved and not audited.
	boom := errors.New("boom")
	if _, err := st.UpdateTeam(ctx, testActor, team.ID, func(s *store.TeamSpec) error { s.MaxBudget = ptr(1.0); return boom }); !errors.Is(err, boom) {
		t.Fatalf("change error: got %v", err)
	}
	if _, err := st.UpdateTeam(ctx, testActor, team.ID, func(s *store.TeamSpec) error { s.MaxBudget = ptr(-1.0); return nil }); err == nil {
		t.Fatal("negative budget accepted")
	} else if ve := asValidation(t, err); ve.Field != "max_budget" {
		t.Errorf("Field = %q, want max_budget", ve.Field)
	}
	if got, _ := st.GetTeam(ctx, team.ID); got.MaxBudget == nil || *got.MaxBudget != 100 {
		t.Errorf("max_budget = %v after rejected updates, want 100", got.MaxBudget)
	}
	if n := count(t, st, `SELECT count(*) FROM audit_logs WHERE action = 'team.update'`); n != 1 {
		t.Errorf("%d team.update rows after rejected updates, want 1", n)
	}

	// Renaming onto another team's name is a conflict and is not audited.
	mustTeam(t, st, "taken")
	if _, err := st.UpdateTeam(ctx, testActor, team.ID, func(s *store.TeamSpec) error { s.Name = "taken"; return nil }); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rename onto taken name: %v, want ErrConflict", err)
	}
	if n := count(t, st, `SELECT count(*) FROM audit_logs WHERE action = 'team.update'`); n != 1 {
		t.Errorf("%d team.update rows after a conflicting rename, want 1", n)
	}
}

func TestDeleteProviderInUseIsConflict(t *testing.T) {
	st, ctx := newStore(t)
	const apiKey = "sk-upstream-secret-value-9876"
	prov := mustProvider(t, st, "openai-main", apiKey)
	model := mustModel(t, st, "gpt-4o", prov.ID)

	err := st.DeleteProvider(ctx, testActor, prov.ID)
	var ce *store.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("DeleteProvider in use: %T %v, want *store.ConflictError", err, err)
	}
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(ce.Message, "used by 1 model") {
		t.Errorf("conflict message %q", ce.Message)
	}
	if _, err := st.GetProvider(ctx, prov.ID); err != nil {
		t.Errorf("provider gone after refused delete: %v", err)
	}
	if _, err := st.GetModel(ctx, model.ID); err != nil {
		t.Errorf("model gone after refused delete: %v", err)
	}
	if n := count(t, st, `SELECT count(*) FROM audit_logs WHERE action = 'provider.delete'`); n != 0 {
		t.Errorf("%d provider.delete audit rows after a refused delete", n)
	}

	// Once unused it goes, with an audit row that holds no secret.
	if err := st.DeleteModel(ctx, testActor, model.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteProvider(ctx, testActor, prov.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetProvider(ctx, prov.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetProvider after delete: %v, want ErrNotFound", err)
	}
	if err := st.DeleteProvider(ctx, testActor, prov.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteProvider: %v, want ErrNotFound", err)
	}
	rows := auditRows(t, st, store.AuditFilter{Action: "provider.delete"})
	if len(rows) != 1 || rows[0].ResourceID != prov.ID || rows[0].After != nil {
		t.Fatalf("provider.delete rows = %+v", rows)
	}
	if before := decodeJSON(t, rows[0].Before); before["name"] != "openai-main" || before["has_api_key"] != true {
		t.Errorf("provider.delete before = %v", before)
	}
}

// Audit rows are readable by finance users: they must never hold secrets.
func TestAuditHoldsNoSecrets(t *testing.T) {
	st, ctx := newStore(t)
	const apiKey = "sk-upstream-secret-value-4242"
	prov := mustProvider(t, st, "secretive", apiKey)
	newKey := "sk-rotated-upstream-value-1717"
	if _, err := st.UpdateProvider(ctx, testActor, prov.ID, func(in *store.ProviderInput) error { in.APIKey = &newKey; return nil }); err != nil {
		t.Fatal(err)
	}
	team := mustTeam(t, st, "keys-team")
	key, secret := mustKey(t, st, store.KeySpec{TeamID: &team.ID})
	_, rotated, err := st.RegenerateKey(ctx, testActor, key.ID)
	if err != nil {
		t.Fatal(err)
	}

	var dump string
	if err := st.DB().Get(&dump, `SELECT string_agg(coalesce(before::text, '') || coalesce(after::text, ''), ' ') FROM audit_logs`); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{apiKey, newKey, secret, rotated, store.HashKey(secret), store.HashKey(rotated), "api_key_enc", "key_hash"} {
		if strings.Contains(dump, s) {
			t.Errorf("audit log contains %q", s)
		}
	}
	if !strings.Contains(dump, store.SecretHint(newKey)) {
		t.Errorf("audit log lacks the provider key hint %q; is the dump empty? %q", store.SecretHint(newKey), dump)
	}
}
