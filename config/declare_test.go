package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"tollgate/config"
	"tollgate/store"
	"tollgate/store/storetest"
)

const (
	openaiKey = "sk-openai-test-0123456789"
	azureBase = "https://acme-eu.openai.azure.com"
	azureKey  = "azure-key-abcdef987654"
)

var quiet = slog.New(slog.DiscardHandler)

func ptr[T any](v T) *T { return &v }

// setDeclaredEnv sets the variables testdata/tollgate.yaml refers to.
func setDeclaredEnv(t *testing.T) {
	t.Setenv("TG_TEST_OPENAI_KEY", openaiKey)
	t.Setenv("TG_TEST_AZURE_BASE", azureBase)
	t.Setenv("TG_TEST_AZURE_KEY", azureKey)
}

func read(t *testing.T, path string) *config.Declared {
	t.Helper()
	d, err := config.ReadDeclared(path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func apply(t *testing.T, st *store.Store, d *config.Declared) {
	t.Helper()
	if err := d.Apply(context.Background(), st, quiet); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

// writeVariant writes testdata/tollgate.yaml with one edit to a temp file.
func writeVariant(t *testing.T, old, new string) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/tollgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(old)) {
		t.Fatalf("testdata/tollgate.yaml has no %q", old)
	}
	path := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(path, bytes.Replace(raw, []byte(old), []byte(new), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadDeclared(t *testing.T) {
	setDeclaredEnv(t)
	got := read(t, "testdata/tollgate.yaml")
	want := &config.Declared{
		Providers: []config.DeclaredProvider{
			{Name: "openai-main", Type: "openai", APIKey: openaiKey},
			{Name: "azure-eu", Type: "azure", APIBase: azureBase + "/", APIKey: azureKey,
				Config: map[string]any{"api_version": "2024-06-01", "deployment_suffix": "eu"}},
			{Name: "local-ollama", Type: "ollama", APIBase: "http://127.0.0.1:11434"},
		},
		Models: []config.DeclaredModel{
			{ModelName: "gpt-4o", Provider: "openai-main", InputCostPerMillion: ptr(2.5), OutputCostPerMillion: ptr(10.0),
				RPMLimit: ptr(int64(500)), TPMLimit: ptr(int64(2000000)), ContextWindow: ptr(int64(128000))},
			{ModelName: "gpt-4o", Provider: "azure-eu", UpstreamModel: "gpt-4o-2024-08-06", InputCostPerMillion: ptr(2.75),
				OutputCostPerMillion: ptr(11.0), Weight: 3, Params: map[string]any{"temperature": 0.2}},
			{ModelName: "llama3", Provider: "local-ollama", UpstreamModel: "llama3:8b", Enabled: ptr(false)},
		},
		Teams: []config.DeclaredTeam{
			{Name: "data-platform", Models: []string{"gpt-4o"}, MaxBudget: ptr(1500.5), SoftBudget: ptr(1000.0),
				BudgetDuration: ptr("30d"), RPMLimit: ptr(int64(100)), TPMLimit: ptr(int64(100000)),
				MemberKeyCaps: &config.DeclaredKeyCaps{MaxBudget: ptr(50.0), BudgetDuration: ptr("monthly"), RPMLimit: ptr(int64(20))}},
			{Name: "research"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("ReadDeclared =\n%s\nwant\n%s", g, w)
	}
}

func TestReadDeclaredErrors(t *testing.T) {
	for _, name := range []string{"TG_TEST_SURELY_UNSET_KEY", "TG_TEST_SURELY_UNSET_BASE"} {
		t.Setenv(name, "") // restored after the test...
		os.Unsetenv(name)  // ...but unset during it
	}
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badYAML := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badYAML, []byte("providers: [name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongType := filepath.Join(t.TempDir(), "wrongtype.yaml")
	if err := os.WriteFile(wrongType, []byte("models:\n  - model_name: m\n    input_cost_per_million: cheap\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, path string
		wantMsgs   []string
	}{
		{"unset variables", "testdata/unset_var.yaml", []string{"unset environment variables", "TG_TEST_SURELY_UNSET_KEY", "TG_TEST_SURELY_UNSET_BASE"}},
		{"unknown field", "testdata/unknown_field.yaml", []string{"unknown_field.yaml", "organisation"}},
		{"missing file", "testdata/no-such-file.yaml", []string{"no-such-file.yaml"}},
		{"malformed YAML", badYAML, []string{"parse", "bad.yaml"}},
		{"wrong value type", wrongType, []string{"parse", "cheap"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := config.ReadDeclared(tc.path)
			if err == nil {
				t.Fatalf("ReadDeclared(%s) = %+v, want an error", tc.path, d)
			}
			for _, want := range tc.wantMsgs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}

	t.Run("empty file declares nothing", func(t *testing.T) {
		d, err := config.ReadDeclared(empty)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Providers)+len(d.Models)+len(d.Teams) != 0 {
			t.Errorf("empty file declared %+v", d)
		}
	})
}

type row struct {
	ID        string    `db:"id"`
	UpdatedAt time.Time `db:"updated_at"`
}

// snapshot maps every provider, model and team id to its updated_at.
func snapshot(t *testing.T, st *store.Store) map[string]time.Time {
	t.Helper()
	var rows []row
	err := st.DB().Select(&rows, `SELECT id, updated_at FROM providers UNION ALL SELECT id, updated_at FROM models
		UNION ALL SELECT id, updated_at FROM teams`)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]time.Time{}
	for _, r := range rows {
		m[r.ID] = r.UpdatedAt
	}
	return m
}

func auditCount(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	if err := st.DB().Get(&n, `SELECT count(*) FROM audit_logs`); err != nil {
		t.Fatal(err)
	}
	return n
}

func findModel(t *testing.T, st *store.Store, name, providerName string) *store.Model {
	t.Helper()
	p, err := st.ProviderByName(context.Background(), providerName)
	if err != nil {
		t.Fatal(err)
	}
	models, _, err := st.ListModels(context.Background(), store.ModelFilter{ModelName: name, ProviderID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 1 {
		t.Fatalf("%d deployments of %s on %s, want 1", len(models), name, providerName)
	}
	return &models[0]
}

func TestApplyCreatesThenChangesNothing(t *testing.T) {
	setDeclaredEnv(t)
	st := storetest.New(t)
	ctx := context.Background()
	apply(t, st, read(t, "testdata/tollgate.yaml"))

	// Providers, with their credentials sealed.
	providers, err := st.AllProviders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(providers) != 3 {
		t.Fatalf("%d providers, want 3", len(providers))
	}
	for _, tc := range []struct{ name, apiBase, apiKey, config string }{
		{"openai-main", "https://api.openai.com/v1", openaiKey, `{}`},
		{"azure-eu", azureBase, azureKey, `{"api_version":"2024-06-01","deployment_suffix":"eu"}`},
		{"local-ollama", "http://127.0.0.1:11434", "", `{}`},
	} {
		p, err := st.ProviderByName(ctx, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if p.APIBase != tc.apiBase {
			t.Errorf("%s api_base = %q, want %q", tc.name, p.APIBase, tc.apiBase)
		}
		var gotCfg, wantCfg any
		json.Unmarshal(p.Config, &gotCfg)
		json.Unmarshal([]byte(tc.config), &wantCfg)
		if !reflect.DeepEqual(gotCfg, wantCfg) {
			t.Errorf("%s config = %s, want %s", tc.name, p.Config, tc.config)
		}
		var enc []byte
		if err := st.DB().Get(&enc, `SELECT coalesce(api_key_enc, ''::bytea) FROM providers WHERE name = $1`, tc.name); err != nil {
			t.Fatal(err)
		}
		if tc.apiKey == "" {
			if len(enc) != 0 || p.HasAPIKey {
				t.Errorf("%s has a stored key (%d bytes) though the file gives none", tc.name, len(enc))
			}
			continue
		}
		if len(enc) == 0 || bytes.Contains(enc, []byte(tc.apiKey)) || bytes.Contains(enc, []byte(tc.apiKey[len(tc.apiKey)-8:])) {
			t.Errorf("%s api_key_enc is empty or holds the plaintext: %q", tc.name, enc)
		}
		if got, err := st.ProviderAPIKey(p); err != nil || got != tc.apiKey {
			t.Errorf("%s ProviderAPIKey = %q, %v; want %q", tc.name, got, err, tc.apiKey)
		}
		if p.APIKeyHint != store.SecretHint(tc.apiKey) || !p.HasAPIKey {
			t.Errorf("%s hint %q has_api_key %v", tc.name, p.APIKeyHint, p.HasAPIKey)
		}
	}

	// Models, with the file's defaults filled in, and the context window
	// and answer cap the file leaves out taken from the price table.
	openai := findModel(t, st, "gpt-4o", "openai-main")
	if w := (store.ModelSpec{ModelName: "gpt-4o", ProviderID: openai.ProviderID, UpstreamModel: "gpt-4o",
		InputCostPerMillion: 2.5, OutputCostPerMillion: 10, RPMLimit: ptr(int64(500)), TPMLimit: ptr(int64(2000000)),
		Weight: 1, ContextWindow: ptr(int64(128000)), MaxOutputTokens: ptr(int64(16384)), Enabled: true}); !specEqual(openai.ModelSpec, w) {
		t.Errorf("openai gpt-4o = %+v, want %+v", openai.ModelSpec, w)
	}
	azure := findModel(t, st, "gpt-4o", "azure-eu")
	if w := (store.ModelSpec{ModelName: "gpt-4o", ProviderID: azure.ProviderID, UpstreamModel: "gpt-4o-2024-08-06",
		InputCostPerMillion: 2.75, OutputCostPerMillion: 11, Weight: 3, Params: store.JSON(`{"temperature":0.2}`),
		ContextWindow: ptr(int64(128000)), MaxOutputTokens: ptr(int64(16384)), Enabled: true}); !specEqual(azure.ModelSpec, w) {
		t.Errorf("azure gpt-4o = %+v, want %+v", azure.ModelSpec, w)
	}
	llama := findModel(t, st, "llama3", "local-ollama")
	if llama.Enabled || llama.UpstreamModel != "llama3:8b" {
		t.Errorf("llama3 = %+v, want disabled llama3:8b", llama.ModelSpec)
	}

	// Teams.
	dp, err := st.TeamByName(ctx, "data-platform")
	if err != nil {
		t.Fatal(err)
	}
	if w := (store.TeamSpec{Name: "data-platform", Models: []string{"gpt-4o"}, MaxBudget: ptr(1500.5), SoftBudget: ptr(1000.0),
		BudgetDuration: ptr("30d"), RPMLimit: ptr(int64(100)), TPMLimit: ptr(int64(100000)),
		MemberKeyCaps: store.KeyCaps{MaxBudget: ptr(50.0), BudgetDuration: ptr("monthly"), RPMLimit: ptr(int64(20))}}); !specEqual(dp.TeamSpec, w) {
		t.Errorf("data-platform = %+v, want %+v", dp.TeamSpec, w)
	}
	if r, err := st.TeamByName(ctx, "research"); err != nil || r.MaxBudget != nil || len(r.Models) != 0 || r.Blocked {
		t.Errorf("research = %+v, %v", r, err)
	}

	// One audit row per created resource, all by the config file.
	var actions []struct {
		Actor  string `db:"actor"`
		Action string `db:"action"`
		N      int    `db:"n"`
	}
	if err := st.DB().Select(&actions, `SELECT actor, action, count(*) AS n FROM audit_logs GROUP BY actor, action ORDER BY action`); err != nil {
		t.Fatal(err)
	}
	wantActions := "config-file model.create 3; config-file provider.create 3; config-file team.create 2; "
	var gotActions string
	for _, a := range actions {
		gotActions += fmt.Sprintf("%s %s %d; ", a.Actor, a.Action, a.N)
	}
	if gotActions != wantActions {
		t.Errorf("audit rows: %s\nwant: %s", gotActions, wantActions)
	}

	// Applying the same file again, twice, writes nothing.
	before, audits := snapshot(t, st), auditCount(t, st)
	for i := range 2 {
		apply(t, st, read(t, "testdata/tollgate.yaml"))
		if n := auditCount(t, st); n != audits {
			rows, _, _ := st.ListAudit(ctx, store.AuditFilter{})
			t.Fatalf("re-apply %d wrote %d audit rows; newest: %+v", i+1, n-audits, rows[0])
		}
		if after := snapshot(t, st); !reflect.DeepEqual(after, before) {
			t.Errorf("re-apply %d changed rows:\nbefore %v\nafter  %v", i+1, before, after)
		}
	}
}

// specEqual compares specs as JSON objects, as the API shows them.
func specEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var va, vb any
	json.Unmarshal(ja, &va)
	json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

func TestApplyPriceChangeUpdatesOnlyThatModel(t *testing.T) {
	setDeclaredEnv(t)
	st := storetest.New(t)
	ctx := context.Background()
	apply(t, st, read(t, "testdata/tollgate.yaml"))
	azure := findModel(t, st, "gpt-4o", "azure-eu")
	before, audits := snapshot(t, st), auditCount(t, st)

	apply(t, st, read(t, writeVariant(t, "input_cost_per_million: 2.75", "input_cost_per_million: 3.125")))

	rows, _, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if n := auditCount(t, st) - audits; n != 1 {
		t.Fatalf("price change wrote %d audit rows, want 1", n)
	}
	r := rows[0]
	if r.Actor != "config-file" || r.Action != "model.update" || r.ResourceType != "model" || r.ResourceID != azure.ID {
		t.Errorf("audit row = %+v", r)
	}
	var b, a map[string]any
	json.Unmarshal(r.Before, &b)
	json.Unmarshal(r.After, &a)
	if b["input_cost_per_million"] != 2.75 || a["input_cost_per_million"] != 3.125 {
		t.Errorf("audit input cost before %v after %v", b["input_cost_per_million"], a["input_cost_per_million"])
	}

	got := findModel(t, st, "gpt-4o", "azure-eu") // still one deployment, updated in place
	if got.ID != azure.ID || got.InputCostPerMillion != 3.125 || got.OutputCostPerMillion != 11 || got.Weight != 3 {
		t.Errorf("azure gpt-4o after the change = %+v", got)
	}
	after := snapshot(t, st)
	for id, ts := range before {
		changed := !after[id].Equal(ts)
		if changed != (id == azure.ID) {
			t.Errorf("row %s changed = %v (only %s should change)", id, changed, azure.ID)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d rows after the change, want %d", len(after), len(before))
	}
}

func TestApplyRotatesProviderKey(t *testing.T) {
	setDeclaredEnv(t)
	st := storetest.New(t)
	ctx := context.Background()
	apply(t, st, read(t, "testdata/tollgate.yaml"))
	audits := auditCount(t, st)

	const rotated = "sk-openai-rotated-555566667777"
	t.Setenv("TG_TEST_OPENAI_KEY", rotated)
	apply(t, st, read(t, "testdata/tollgate.yaml"))

	p, err := st.ProviderByName(ctx, "openai-main")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st.ProviderAPIKey(p); err != nil || got != rotated {
		t.Errorf("ProviderAPIKey = %q, %v; want the rotated key", got, err)
	}
	if p.APIKeyHint != store.SecretHint(rotated) {
		t.Errorf("hint %q, want %q", p.APIKeyHint, store.SecretHint(rotated))
	}
	rows, _, err := st.ListAudit(ctx, store.AuditFilter{Actor: "config-file", Action: "provider.update"})
	if err != nil {
		t.Fatal(err)
	}
	if n := auditCount(t, st) - audits; n != 1 || len(rows) != 1 || rows[0].ResourceID != p.ID {
		t.Fatalf("rotation wrote %d audit rows (%+v), want one provider.update", n, rows)
	}
	if dump := string(rows[0].Before) + string(rows[0].After); strings.Contains(dump, rotated) || strings.Contains(dump, openaiKey) {
		t.Errorf("audit row holds a provider key: %s", dump)
	}
}

func TestApplyKeepsWhatTheFileDoesNotManage(t *testing.T) {
	setDeclaredEnv(t)
	st := storetest.New(t)
	ctx := context.Background()
	apply(t, st, read(t, "testdata/tollgate.yaml"))
	team, err := st.TeamByName(ctx, "research")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateTeam(ctx, "admin", team.ID, func(s *store.TeamSpec) error {
		s.Blocked, s.Metadata = true, store.JSON(`{"cost_center":"R&D"}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	audits := auditCount(t, st)

	apply(t, st, read(t, "testdata/tollgate.yaml"))
	if n := auditCount(t, st) - audits; n != 0 {
		t.Errorf("re-apply after an admin edit of unmanaged fields wrote %d audit rows", n)
	}

	// A managed change keeps the unmanaged fields.
	apply(t, st, read(t, writeVariant(t, "  - name: research\n", "  - name: research\n    max_budget: 42\n")))
	got, err := st.TeamByName(ctx, "research")
	if err != nil {
		t.Fatal(err)
	}
	if got.MaxBudget == nil || *got.MaxBudget != 42 {
		t.Errorf("max_budget = %v, want 42", got.MaxBudget)
	}
	if !got.Blocked || !specEqual(got.Metadata, store.JSON(`{"cost_center":"R&D"}`)) {
		t.Errorf("unmanaged fields lost: blocked=%v metadata=%s", got.Blocked, got.Metadata)
	}
	if n := auditCount(t, st) - audits; n != 1 {
		t.Errorf("budget change wrote %d audit rows, want 1", n)
	}
}

func TestApplyModelProviderMustExist(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	d := &config.Declared{Models: []config.DeclaredModel{{ModelName: "orphan", Provider: "nowhere"}}}
	err := d.Apply(ctx, st, quiet)
	if err == nil || !strings.Contains(err.Error(), `"nowhere"`) || !strings.Contains(err.Error(), `"orphan"`) {
		t.Fatalf("Apply with an unknown provider: %v", err)
	}
	if n := auditCount(t, st); n != 0 {
		t.Errorf("failed apply wrote %d audit rows", n)
	}

	// A provider created through the API (not in the file) can be used.
	key := "sk-api-created-00001111"
	if _, err := st.CreateProvider(ctx, "admin", store.ProviderInput{
		ProviderSpec: store.ProviderSpec{Name: "nowhere", Type: "openai"}, APIKey: &key}); err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, st, quiet); err != nil {
		t.Fatalf("Apply with a stored provider: %v", err)
	}
	if m := findModel(t, st, "orphan", "nowhere"); m.UpstreamModel != "orphan" || !m.Enabled {
		t.Errorf("model = %+v", m.ModelSpec)
	}

	bad := &config.Declared{Providers: []config.DeclaredProvider{{Name: "weird", Type: "carrier-pigeon"}}}
	if err := bad.Apply(ctx, st, quiet); err == nil || !strings.Contains(err.Error(), `provider "weird"`) {
		t.Errorf("Apply with an unknown provider type: %v", err)
	}
}

// Only ${VAR} is documented as expanded: a "$" elsewhere, even in a YAML
// comment, must survive.
func TestReadDeclaredLiteralDollar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dollar.yaml")
	body := "# gpt-4o costs $5 per million input tokens\nproviders:\n  - name: p\n    type: openai\n    api_key: \"pa$word\"\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := config.ReadDeclared(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Providers[0].APIKey; got != "pa$word" {
		t.Errorf("api_key = %q, want pa$word", got)
	}
}
