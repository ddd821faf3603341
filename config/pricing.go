package config

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"tollgate/store"
)

// Price is one model's published list price, per million tokens in USD.
type Price struct {
	Input           float64 `yaml:"input"`
	Output          float64 `yaml:"output"`
	CacheRead       float64 `yaml:"cache_read"`
	CacheWrite      float64 `yaml:"cache_write"`
	ContextWindow   int64   `yaml:"context_window"`
	MaxOutputTokens int64   `yaml:"max_output_tokens"`
}

//go:embed prices.yaml
var pricesYAML []byte

type priceTable struct {
	AsOf   string           `yaml:"as_of"`
	Models map[string]Price `yaml:"models"`
}

var prices = mustPrices()

func mustPrices() priceTable {
	var t priceTable
	if err := yaml.Unmarshal(pricesYAML, &t); err != nil {
		panic(fmt.Sprintf("config/prices.yaml: %v", err))
	}
	return t
}

// PricesAsOf is when the price table was last checked.
func PricesAsOf() string { return prices.AsOf }

var (
	// Provider prefixes: "openai/gpt-4o", "models/gemini-2.5-pro",
	// Bedrock's "us.anthropic.claude…" and "anthropic.claude…".
	pricePrefix = regexp.MustCompile(`^([a-z0-9-]+/|(us|eu|apac|global)\.)+`)
	// Bedrock version suffixes such as "-v1:0" or ":0".
	priceVersion = regexp.MustCompile(`(-v\d+(:\d+)?|:\d+)$`)
	// Release dates: "-20241022", "-2024-08-06", "@20240620".
	priceDate = regexp.MustCompile(`[-@](20\d{6}|20\d{2}-\d{2}-\d{2})$`)
)

// PriceFor finds the list price of an upstream model name.
func PriceFor(model string) (Price, bool) {
	name := strings.ToLower(strings.TrimSpace(model))
	name = pricePrefix.ReplaceAllString(name, "")
	name = priceVersion.ReplaceAllString(name, "")
	for {
		if p, ok := prices.Models[name]; ok {
			return p, true
		}
		// Bedrock names the vendor first: anthropic.claude-3-haiku.
		if vendor, rest, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(vendor, "amazon") {
			if p, ok := prices.Models[rest]; ok {
				return p, true
			}
		}
		undated := priceDate.ReplaceAllString(name, "")
		if undated == name {
			return Price{}, false
		}
		name = undated
	}
}

// FillPrices completes a model the admin left unpriced from the table:
// prices only when neither was given (nil), and the context window and
// answer cap when unset. It reports whether the table knew the model.
func FillPrices(m *store.ModelSpec, input, output *float64) bool {
	p, ok := PriceFor(m.UpstreamModel)
	if !ok && m.UpstreamModel != m.ModelName {
		p, ok = PriceFor(m.ModelName)
	}
	if input != nil {
		m.InputCostPerMillion = *input
	}
	if output != nil {
		m.OutputCostPerMillion = *output
	}
	if !ok {
		return false
	}
	if input == nil && output == nil {
		m.InputCostPerMillion, m.OutputCostPerMillion = p.Input, p.Output
	}
	if m.ContextWindow == nil && p.ContextWindow > 0 {
		m.ContextWindow = &p.ContextWindow
	}
	if m.MaxOutputTokens == nil && p.MaxOutputTokens > 0 {
		m.MaxOutputTokens = &p.MaxOutputTokens
	}
	return true
}
