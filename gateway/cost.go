package gateway

import (
	"math"
	"strconv"

	"tollgate/gateway/openai"
	"tollgate/store"
)

// Cost prices usage at a deployment's per-million-token prices, in USD,
// rounded to the 10 decimals the spend log keeps, so the header, the
// budget and the bill all hold the same number.
func Cost(u openai.Usage, m *store.ModelSpec) float64 {
	c := (float64(u.PromptTokens)*m.InputCostPerMillion + float64(u.CompletionTokens)*m.OutputCostPerMillion) / 1e6
	return math.Round(c*1e10) / 1e10
}

func formatCost(c float64) string { return strconv.FormatFloat(c, 'f', -1, 64) }

// estimateUsage stands in when a provider reports no usage: about four
// bytes of prompt per token, and one token per streamed content chunk.
func estimateUsage(requestBytes, chunks int) openai.Usage {
	in := int64(requestBytes+3) / 4
	out := int64(chunks)
	return openai.Usage{PromptTokens: in, CompletionTokens: out, TotalTokens: in + out}
}
