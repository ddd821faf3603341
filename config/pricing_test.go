package config_test

import (
	"testing"

	"tollgate/config"
	"tollgate/store"
)

func TestPriceForFindsDatedAndPrefixedNames(t *testing.T) {
	cases := map[string]float64{ // upstream model -> input price
		"gpt-4o":                    2.50,
		"gpt-4o-2024-08-06":         2.50,
		"GPT-4o-mini":               0.15,
		"openai/gpt-4.1":            2.00,
		"claude-3-5-haiku-20241022": 0.80,
		"us.anthropic.claude-3-5-haiku-20241022-v1:0": 0.80,
		"anthropic.claude-sonnet-4-5-20250929-v1:0":   3.00,
		"claude-opus-4-5@20251101":                    5.00,
		"models/gemini-2.5-pro":                       1.25,
		"amazon.nova-lite-v1:0":                       0.06,
		"text-embedding-3-small":                      0.02,
	}
	for model, want := range cases {
		p, ok := config.PriceFor(model)
		if !ok || p.Input != want {
			t.Errorf("PriceFor(%q) = %+v, %v; want input %v", model, p, ok, want)
		}
	}
	for _, unknown := range []string{"mock-gpt", "gpt-4o-audio-preview", "my-finetune", ""} {
		if p, ok := config.PriceFor(unknown); ok {
			t.Errorf("PriceFor(%q) = %+v, want no price", unknown, p)
		}
	}
	if config.PricesAsOf() == "" {
		t.Error("the table does not say when it was checked")
	}
}

func TestFillPricesOnlyFillsWhatIsUnset(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	m := store.ModelSpec{ModelName: "smart", UpstreamModel: "claude-sonnet-4-5-20250929"}
	if !config.FillPrices(&m, nil, nil) || m.InputCostPerMillion != 3 || m.OutputCostPerMillion != 15 ||
		*m.ContextWindow != 200000 || *m.MaxOutputTokens != 64000 {
		t.Fatalf("unpriced model = %+v", m)
	}
	// Given prices win, even 0 (a free local model); a given window stays.
	window := int64(32000)
	m = store.ModelSpec{ModelName: "gpt-4o", UpstreamModel: "gpt-4o", ContextWindow: &window}
	config.FillPrices(&m, f(0), f(0))
	if m.InputCostPerMillion != 0 || m.OutputCostPerMillion != 0 || *m.ContextWindow != 32000 || *m.MaxOutputTokens != 16384 {
		t.Fatalf("priced model = %+v", m)
	}
	// Unknown upstream: the public name is tried; else nothing changes.
	m = store.ModelSpec{ModelName: "gpt-4o-mini", UpstreamModel: "my-deployment"}
	if !config.FillPrices(&m, nil, nil) || m.InputCostPerMillion != 0.15 {
		t.Fatalf("by public name = %+v", m)
	}
	m = store.ModelSpec{ModelName: "mine", UpstreamModel: "mine"}
	if config.FillPrices(&m, nil, nil) || m.InputCostPerMillion != 0 || m.ContextWindow != nil {
		t.Fatalf("unknown model = %+v", m)
	}
}
