package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"tollgate/gateway/openai"
	"tollgate/store"
)

// Probe sends a deployment one cheap request — a one-token chat, or a
// one-word embedding for embedding models — in its own wire format, and
// reports how long the answer took or why it failed.
func Probe(ctx context.Context, client *http.Client, m store.Model, p *store.Provider, apiKey string) (time.Duration, error) {
	d := &Deployment{Model: m, Provider: p, APIKey: apiKey}
	ep, body := endpointChat, probeChat(m.UpstreamModel)
	f, translated := formatOf(d) // translated formats serve chat only
	if !translated && strings.Contains(strings.ToLower(m.UpstreamModel+" "+m.ModelName), "embed") {
		ep, body = endpointEmbeddings, []byte(fmt.Sprintf(`{"model":%q,"input":"ping"}`, m.UpstreamModel))
	}
	req, err := requestFor(ctx, d, ep, body, false)
	if err != nil {
		return 0, fmt.Errorf("cannot build the probe: %s", redact(err))
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("no answer: %s", redact(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	took := time.Since(start)
	if resp.StatusCode >= 300 {
		msg := openai.ErrorMessage
		if translated {
			msg = f.errorMsg
		}
		return took, fmt.Errorf("HTTP %d: %s", resp.StatusCode, secretish.ReplaceAllString(msg(answer), "[redacted]"))
	}
	return took, nil
}

func probeChat(model string) []byte {
	return []byte(fmt.Sprintf(`{"model":%q,"max_tokens":1,"messages":[{"role":"user","content":"ping"}]}`, model))
}
