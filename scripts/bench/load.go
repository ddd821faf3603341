package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// target is one way to reach an upstream: directly, through the reverse
// proxy or through the gateway.
type target struct {
	path  string // "direct", "reverse proxy", "gateway"
	url   string // the chat completions endpoint
	model string
	auth  string
	proc  *child // measured process; nil for direct
}

// chatBody is the request every path gets, but for the model's name: a
// system prompt and a question, as a typical chat client sends.
func chatBody(model string, stream bool) []byte {
	extra := ""
	if stream {
		extra = `,"stream":true,"stream_options":{"include_usage":true}`
	}
	return fmt.Appendf(nil, `{"model":%q,"messages":[{"role":"system","content":"You are a helpful assistant. Answer in one short paragraph."},`+
		`{"role":"user","content":"What does an AI gateway add between an application and a model provider?"}],"temperature":0.7,"max_tokens":256%s}`, model, extra)
}

func (t target) vegeta(stream bool) vegeta.Target {
	return vegeta.Target{Method: http.MethodPost, URL: t.url, Body: chatBody(t.model, stream),
		Header: http.Header{"Authorization": {"Bearer " + t.auth}, "Content-Type": {"application/json"}}}
}

// loadClient is the load generator's HTTP client for one cell: as many
// keep-alive connections as workers, and a clock on each answer's first
// body byte.
type loadClient struct {
	transport *http.Transport
	client    *http.Client
	firstByte atomic.Pointer[latencies] // nil: not recording
}

func newLoadClient(conc int) *loadClient {
	lc := &loadClient{transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	lc.client = &http.Client{Transport: firstByteTransport{lc}, Timeout: time.Minute}
	return lc
}

func (lc *loadClient) close() { lc.transport.CloseIdleConnections() }

// firstByteTransport times each request to the first byte of its answer's
// body: for a stream, the first event.
type firstByteTransport struct{ lc *loadClient }

func (t firstByteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.lc.transport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if rec := t.lc.firstByte.Load(); rec != nil {
		resp.Body = &firstByteBody{ReadCloser: resp.Body, start: start, rec: rec}
	}
	return resp, nil
}

type firstByteBody struct {
	io.ReadCloser
	start time.Time
	rec   *latencies
	seen  bool
}

func (b *firstByteBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.seen {
		b.seen = true
		b.rec.add(time.Since(b.start))
	}
	return n, err
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// outcome is what the load generator saw in one run.
type outcome struct {
	ok        []time.Duration // latency of each whole, successful answer
	firstByte []time.Duration
	errors    int
	firstErr  string
	elapsed   time.Duration // from the first request to the last answer
}

var doneEvent = []byte("data: [DONE]\n\n")

// What answers must be: streams, whole JSON answers, or either.
const (
	expectStream = "stream"
	expectWhole  = "whole"
	expectEither = ""
)

// attack keeps conc requests in flight for d (closed loop: each worker
// sends its next request when its last answer is complete), cycling
// through targets, then waits for the answers still coming.
func attack(ctx context.Context, lc *loadClient, targets []vegeta.Target, expect string, conc int, d time.Duration, timeFirstByte bool) outcome {
	var rec *latencies
	if timeFirstByte {
		rec = &latencies{}
	}
	lc.firstByte.Store(rec)
	defer lc.firstByte.Store(nil)
	a := vegeta.NewAttacker(vegeta.Client(lc.client), vegeta.Workers(uint64(conc)), vegeta.MaxWorkers(uint64(conc)))
	stop := context.AfterFunc(ctx, func() { a.Stop() })
	defer stop()

	var out outcome
	start := time.Now()
	// A zero rate is vegeta's "as fast as the workers go".
	for res := range a.Attack(vegeta.NewStaticTargeter(targets...), vegeta.Rate{}, d, "") {
		if msg := failure(res, expect); msg != "" {
			out.errors++
			if out.firstErr == "" {
				out.firstErr = msg
			}
			continue
		}
		out.ok = append(out.ok, res.Latency)
	}
	out.elapsed = time.Since(start)
	if rec != nil {
		out.firstByte = rec.d
	}
	return out
}

// failure says what is wrong with an answer: not a 200, not what was
// expected, or a stream that did not end with [DONE]. Empty means it is
// fine.
func failure(res *vegeta.Result, expect string) string {
	stream := bytes.HasPrefix(res.Body, []byte("data:"))
	switch {
	case res.Error != "" && res.Code == 0:
		return res.Error
	case res.Code != http.StatusOK:
		return fmt.Sprintf("HTTP %d: %.200s", res.Code, res.Body)
	case len(res.Body) == 0:
		return "an empty answer"
	case expect == expectStream && !stream:
		return fmt.Sprintf("not a stream: %.200s", res.Body)
	case expect == expectWhole && stream:
		return "a stream where a whole answer was asked for"
	case stream && !bytes.HasSuffix(res.Body, doneEvent):
		return "a stream ended without [DONE]"
	}
	return ""
}

// quantile of sorted durations, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sorted(d []time.Duration) []time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s
}
