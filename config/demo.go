package config

import (
	"context"
	"errors"
	"fmt"

	"tollgate/store"
)

// Demo declares what `make run` needs to work offline: the mock provider,
// two models priced like their real namesakes, and a demo team.
func Demo(mockURL string) *Declared {
	return &Declared{
		Providers: []DeclaredProvider{{Name: "mock-llm", Type: "mock", APIBase: mockURL, APIKey: "demo-upstream-key"}},
		Models: []DeclaredModel{
			{ModelName: "gpt-4o-mini", Provider: "mock-llm", UpstreamModel: "mock-gpt", InputCostPerMillion: ptr(0.15), OutputCostPerMillion: ptr(0.60),
				ContextWindow: ptr[int64](128000), MaxOutputTokens: ptr[int64](16384)},
			{ModelName: "text-embedding-3-small", Provider: "mock-llm", UpstreamModel: "mock-embed", InputCostPerMillion: ptr(0.02), OutputCostPerMillion: ptr(0.0)},
		},
		Teams: []DeclaredTeam{{Name: "demo-team", MaxBudget: ptr(100.0), SoftBudget: ptr(80.0), BudgetDuration: ptr("monthly"), RPMLimit: ptr[int64](600)}},
	}
}

// EnsureDemoKey makes sure a key with this secret exists in the demo team.
// An empty secret creates a fresh key each time; the secret is returned.
func EnsureDemoKey(ctx context.Context, st *store.Store, secret string) (string, error) {
	if secret != "" {
		_, err := st.KeyByHash(ctx, store.HashKey(secret))
		if err == nil {
			return secret, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
	}
	team, err := st.TeamByName(ctx, "demo-team")
	if err != nil {
		return "", fmt.Errorf("demo team: %w", err)
	}
	_, secret, err = st.CreateKey(ctx, actor, store.KeySpec{Alias: "demo", TeamID: &team.ID}, secret)
	return secret, err
}

func ptr[T any](v T) *T { return &v }
