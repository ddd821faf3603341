package gateway_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The gateway's added latency is BenchmarkGateway minus BenchmarkDirect:
// the same request to mock-llm (no added latency) straight and through the
// gateway, one at a time, over loopback HTTP with warm connections.
func BenchmarkDirect(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.upstream.URL+"/v1/chat/completions", strings.Replace(chatBody, "gpt-test", "mock-gpt", 1), upstreamKey)
}

func BenchmarkGateway(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.gw.URL+"/v1/chat/completions", chatBody, e.key)
}

func BenchmarkDirectStream(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.upstream.URL+"/v1/chat/completions", strings.Replace(streamBody, "gpt-test", "mock-gpt", 1), upstreamKey)
}

func BenchmarkGatewayStream(b *testing.B) {
	e := newEnv(b, envOptions{})
	benchPost(b, e.gw.URL+"/v1/chat/completions", streamBody, e.key)
}

const streamBody = `{"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"Say hello to the gateway tests"}]}`

func benchPost(b *testing.B, url, body, key string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	do := func() {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	do() // warm the connections and the key cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		do()
	}
}
