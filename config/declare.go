package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"tollgate/store"
)

// Declared is the optional config/tollgate.yaml: providers, models and
// teams kept as code. ${VAR} in the file is replaced from the environment,
// so credentials stay out of it.
type Declared struct {
	Providers []DeclaredProvider `yaml:"providers"`
	Models    []DeclaredModel    `yaml:"models"`
	Teams     []DeclaredTeam     `yaml:"teams"`
}

// DeclaredProvider is a provider credential in the file.
type DeclaredProvider struct {
	Name    string         `yaml:"name"`
	Type    string         `yaml:"type"`
	APIBase string         `yaml:"api_base"`
	APIKey  string         `yaml:"api_key"`
	Config  map[string]any `yaml:"config"`
}

// DeclaredModel is a deployment in the file; provider is the provider's name.
type DeclaredModel struct {
	ModelName            string         `yaml:"model_name"`
	Provider             string         `yaml:"provider"`
	UpstreamModel        string         `yaml:"upstream_model"`
	InputCostPerMillion  *float64       `yaml:"input_cost_per_million"` // both unset: the list price (prices.yaml)
	OutputCostPerMillion *float64       `yaml:"output_cost_per_million"`
	RPMLimit             *int64         `yaml:"rpm_limit"`
	TPMLimit             *int64         `yaml:"tpm_limit"`
	Weight               int            `yaml:"weight"`
	ContextWindow        *int64         `yaml:"context_window"`
	MaxOutputTokens      *int64         `yaml:"max_output_tokens"`
	ConnectTimeoutMS     *int64         `yaml:"connect_timeout_ms"`
	FirstByteTimeoutMS   *int64         `yaml:"first_byte_timeout_ms"`
	TimeoutMS            *int64         `yaml:"timeout_ms"`
	Params               map[string]any `yaml:"params"`
	Enabled              *bool          `yaml:"enabled"`
}

// DeclaredTeam is a team in the file.
type DeclaredTeam struct {
	Name           string   `yaml:"name"`
	Models         []string `yaml:"models"`
	MaxBudget      *float64 `yaml:"max_budget"`
	SoftBudget     *float64 `yaml:"soft_budget"`
	BudgetDuration *string  `yaml:"budget_duration"`
	RPMLimit       *int64   `yaml:"rpm_limit"`
	TPMLimit       *int64   `yaml:"tpm_limit"`
	MaxParallel    *int64   `yaml:"max_parallel_requests"`
	// MemberKeyCaps bound members' own keys; left out, the caps set in
	// the dashboard or API stay.
	MemberKeyCaps *DeclaredKeyCaps `yaml:"member_key_caps"`
}

// DeclaredKeyCaps are a team's caps on its members' keys.
type DeclaredKeyCaps struct {
	MaxBudget      *float64 `yaml:"max_budget"`
	BudgetDuration *string  `yaml:"budget_duration"`
	RPMLimit       *int64   `yaml:"rpm_limit"`
	TPMLimit       *int64   `yaml:"tpm_limit"`
	MaxParallel    *int64   `yaml:"max_parallel_requests"`
}

// ReadDeclared parses the file at path.
func ReadDeclared(path string) (*Declared, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	// Only ${NAME} is replaced, so a "$" anywhere else (a price in a
	// comment, a password) stays as written.
	var missing []string
	expanded := envRef.ReplaceAllStringFunc(string(raw), func(ref string) string {
		name := ref[2 : len(ref)-1]
		v, ok := os.LookupEnv(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s refers to unset environment variables: %v", path, missing)
	}
	var d Declared
	dec := yaml.NewDecoder(strings.NewReader(expanded))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &d, nil
}

var envRef = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

const actor = "config-file"

// Apply makes the store hold what the file declares. Existing rows with the
// same identity are updated only when they differ, so applying the same file
// at every start writes nothing and leaves no audit noise.
func (d *Declared) Apply(ctx context.Context, st *store.Store, log *slog.Logger) error {
	// Replicas starting together would otherwise create the same rows twice.
	return st.Exclusive(ctx, "declared-config", func() error { return d.apply(ctx, st, log) })
}

func (d *Declared) apply(ctx context.Context, st *store.Store, log *slog.Logger) error {
	providerIDs := map[string]string{}
	for _, p := range d.Providers {
		id, err := applyProvider(ctx, st, p)
		if err != nil {
			return fmt.Errorf("provider %q: %w", p.Name, err)
		}
		providerIDs[p.Name] = id
	}
	for _, m := range d.Models {
		if err := applyModel(ctx, st, m, providerIDs); err != nil {
			return fmt.Errorf("model %q: %w", m.ModelName, err)
		}
	}
	for _, t := range d.Teams {
		if err := applyTeam(ctx, st, t); err != nil {
			return fmt.Errorf("team %q: %w", t.Name, err)
		}
	}
	log.Info("applied declared configuration", "providers", len(d.Providers), "models", len(d.Models), "teams", len(d.Teams))
	return nil
}

func toJSON(m map[string]any) (store.JSON, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	return store.JSON(b), err
}

func applyProvider(ctx context.Context, st *store.Store, p DeclaredProvider) (string, error) {
	cfg, err := toJSON(p.Config)
	if err != nil {
		return "", err
	}
	want := store.ProviderSpec{Name: p.Name, Type: p.Type, APIBase: p.APIBase, Config: cfg}
	if err := want.Normalize(); err != nil {
		return "", err
	}
	// No api_key in the file leaves the stored one alone (it may have been
	// set through the API).
	var apiKey *string
	if p.APIKey != "" {
		apiKey = &p.APIKey
	}
	existing, err := st.ProviderByName(ctx, p.Name)
	if errors.Is(err, store.ErrNotFound) {
		created, err := st.CreateProvider(ctx, actor, store.ProviderInput{ProviderSpec: want, APIKey: apiKey})
		if err != nil {
			return "", err
		}
		return created.ID, nil
	}
	if err != nil {
		return "", err
	}
	keySame := apiKey == nil
	if !keySame {
		// A key sealed under an older TOLLGATE_SECRET_KEY cannot be read:
		// the file's key replaces it.
		stored, err := st.ProviderAPIKey(existing)
		keySame = err == nil && stored == *apiKey
	}
	if keySame && jsonEqual(existing.ProviderSpec, want) {
		return existing.ID, nil
	}
	_, err = st.UpdateProvider(ctx, actor, existing.ID, func(in *store.ProviderInput) error {
		in.ProviderSpec, in.APIKey = want, apiKey
		return nil
	})
	return existing.ID, err
}

func applyModel(ctx context.Context, st *store.Store, m DeclaredModel, providerIDs map[string]string) error {
	providerID, ok := providerIDs[m.Provider]
	if !ok {
		p, err := st.ProviderByName(ctx, m.Provider)
		if err != nil {
			return fmt.Errorf("provider %q is neither declared in the file nor stored", m.Provider)
		}
		providerID = p.ID
	}
	params, err := toJSON(m.Params)
	if err != nil {
		return err
	}
	want := store.ModelSpec{
		ModelName: m.ModelName, ProviderID: providerID, UpstreamModel: m.UpstreamModel,
		RPMLimit: m.RPMLimit, TPMLimit: m.TPMLimit, Weight: m.Weight, ContextWindow: m.ContextWindow, MaxOutputTokens: m.MaxOutputTokens,
		ConnectTimeoutMS: m.ConnectTimeoutMS, FirstByteTimeoutMS: m.FirstByteTimeoutMS, TimeoutMS: m.TimeoutMS,
		Params: params, Enabled: m.Enabled == nil || *m.Enabled,
	}
	if err := want.Normalize(); err != nil {
		return err
	}
	FillPrices(&want, m.InputCostPerMillion, m.OutputCostPerMillion)
	existing, _, err := st.ListModels(ctx, store.ModelFilter{ModelName: want.ModelName, ProviderID: providerID, Page: store.Page{Limit: 1000}})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(existing, func(e store.Model) bool { return e.UpstreamModel == want.UpstreamModel })
	if i < 0 {
		_, err := st.CreateModel(ctx, actor, want)
		return err
	}
	if jsonEqual(existing[i].ModelSpec, want) {
		return nil
	}
	_, err = st.UpdateModel(ctx, actor, existing[i].ID, func(s *store.ModelSpec) error { *s = want; return nil })
	return err
}

func applyTeam(ctx context.Context, st *store.Store, t DeclaredTeam) error {
	existing, err := st.TeamByName(ctx, t.Name)
	if errors.Is(err, store.ErrNotFound) {
		_, err := st.CreateTeam(ctx, actor, teamSpec(t, store.TeamSpec{}))
		return err
	}
	if err != nil {
		return err
	}
	want := teamSpec(t, existing.TeamSpec)
	if err := want.Normalize(); err != nil {
		return err
	}
	if jsonEqual(existing.TeamSpec, want) {
		return nil
	}
	_, err = st.UpdateTeam(ctx, actor, existing.ID, func(s *store.TeamSpec) error { *s = want; return nil })
	return err
}

// teamSpec lays the file's fields over base, keeping what the file does
// not manage (blocked, metadata).
func teamSpec(t DeclaredTeam, base store.TeamSpec) store.TeamSpec {
	base.Name, base.Models = t.Name, t.Models
	base.MaxBudget, base.SoftBudget, base.BudgetDuration = t.MaxBudget, t.SoftBudget, t.BudgetDuration
	base.RPMLimit, base.TPMLimit, base.MaxParallelRequests = t.RPMLimit, t.TPMLimit, t.MaxParallel
	if c := t.MemberKeyCaps; c != nil {
		base.MemberKeyCaps = store.KeyCaps{MaxBudget: c.MaxBudget, BudgetDuration: c.BudgetDuration, RPMLimit: c.RPMLimit,
			TPMLimit: c.TPMLimit, MaxParallelRequests: c.MaxParallel}
	}
	return base
}

// jsonEqual compares two specs as the API would show them, so that
// equivalent JSON objects and nil-versus-empty lists count as equal.
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		return false
	}
	var va, vb any
	if json.Unmarshal(ja, &va) != nil || json.Unmarshal(jb, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(normalizeEmpty(va), normalizeEmpty(vb))
}

func normalizeEmpty(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeEmpty(e)
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
	}
	return v
}
