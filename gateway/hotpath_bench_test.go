package gateway

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"tollgate/store"
)

// Micro-benchmarks of hot-path stages that need the package's internals.
// Compare runs with benchstat (docs/performance.md).

// BenchmarkReadRequest parses and checks a typical chat body (a system
// prompt and three turns, ~1 KB), as every chat request does.
func BenchmarkReadRequest(b *testing.B) {
	body := chatRequestFixture(b)
	w := httptest.NewRecorder()
	r := &http.Request{Method: http.MethodPost}
	rd := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		r.Body = io.NopCloser(rd)
		if _, aerr := readRequest(w, r, endpointChat, 10<<20); aerr != nil {
			b.Fatal(aerr.Message)
		}
	}
}

// BenchmarkUpstreamBody re-encodes the parsed body for a deployment, as
// every attempt upstream does.
func BenchmarkUpstreamBody(b *testing.B) {
	body := chatRequestFixture(b)
	req, aerr := readRequest(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body)), endpointChat, 10<<20)
	if aerr != nil {
		b.Fatal(aerr.Message)
	}
	d := &Deployment{Model: store.Model{ModelSpec: store.ModelSpec{UpstreamModel: "gpt-4o-mini-2024-07-18"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := req.upstreamBody(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpendAdd queues one spend log. Every spendBatch rows the queue
// is emptied the way a flush takes it, so the benchmark measures steady
// enqueueing rather than one ever-growing slice.
func BenchmarkSpendAdd(b *testing.B) {
	w := NewSpendWriter(nil, SpendOptions{SpoolDir: b.TempDir()}, slog.New(slog.DiscardHandler))
	l := benchSpendLog()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		w.Add(l)
		if n++; n == spendBatch {
			n = 0
			takeQueued(w)
		}
	}
}

// BenchmarkSpendAddParallel is BenchmarkSpendAdd from many request
// goroutines at once, as under load: they share the writer's lock.
func BenchmarkSpendAddParallel(b *testing.B) {
	w := NewSpendWriter(nil, SpendOptions{SpoolDir: b.TempDir()}, slog.New(slog.DiscardHandler))
	l := benchSpendLog()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			w.Add(l)
			if n++; n == spendBatch {
				n = 0
				takeQueued(w)
			}
		}
	})
}

// takeQueued empties the queue as flushMemory does, without PostgreSQL.
func takeQueued(w *SpendWriter) {
	w.mu.Lock()
	w.pending = nil
	w.mu.Unlock()
}

func benchSpendLog() store.SpendLog {
	key, team, user, dep := "key-0001", "team-0001", "user-0001", "dep-0001"
	return store.SpendLog{RequestID: newRequestID(), CreatedAt: time.Now(), KeyID: &key, TeamID: &team, UserID: &user,
		Model: "gpt-4o-mini", Provider: "openai", DeploymentID: &dep, Endpoint: "chat",
		InputTokens: 212, OutputTokens: 96, Cost: 0.0000894, LatencyMS: 830, Status: store.StatusSuccess, StatusCode: 200}
}

func chatRequestFixture(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile("testdata/chat_request.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}
