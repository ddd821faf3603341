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
	embed := strings.Contains(strings.ToLower(m.UpstreamModel+" "+m.ModelName), "embed")
	var (
		req *http.Request
		err error
	)
	f, translated := formatOf(d)
	switch {
	case p.Type == "azure":
		path, body := endpointChat.path, probeChat(m.UpstreamModel)
		if embed {
			path, body = endpointEmbeddings.path, []byte(`{"input":"ping"}`)
		}
		req, err = azureRequest(ctx, target(d), path, body, false)
	case translated:
		req, err = f.newChat(ctx, target(d), probeChat(m.UpstreamModel), false)
	case embed:
		req, err = openai.NewRequest(ctx, p.APIBase, endpointEmbeddings.path, apiKey, []byte(fmt.Sprintf(`{"model":%q,"input":"ping"}`, m.UpstreamModel)), false)
	default:
		req, err = openai.NewRequest(ctx, p.APIBase, endpointChat.path, apiKey, probeChat(m.UpstreamModel), false)
	}
	if err != nil {
		return 0, fmt.Errorf("cannot build the probe: %s", redact(err))
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("no answer: %s", redact(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	took := time.Since(start)
	if resp.StatusCode >= 300 {
		msg := openai.ErrorMessage
		if translated {
			msg = f.errorMsg
		}
		return took, fmt.Errorf("HTTP %d: %s", resp.StatusCode, secretish.ReplaceAllString(msg(body), "[redacted]"))
	}
	return took, nil
}

func probeChat(model string) []byte {
	return []byte(fmt.Sprintf(`{"model":%q,"max_tokens":1,"messages":[{"role":"user","content":"ping"}]}`, model))
}
