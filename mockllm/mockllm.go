// Package mockllm is a fake LLM provider that speaks the wire formats the
// gateway reaches: OpenAI, Anthropic Messages, Google's generateContent
// (Gemini API and Vertex AI) and AWS Bedrock's Converse. It lets the gateway
// and every provider adapter be exercised end to end over HTTP in trials,
// tests and benchmarks without provider keys, cost or nondeterministic
// answers.
//
// OpenAI endpoints (each also served without the /v1 prefix):
//
//	POST /v1/chat/completions  chat; "stream": true gives server-sent events
//	POST /v1/completions       legacy text completions
//	POST /v1/embeddings        deterministic unit-length vectors
//	GET  /v1/models            a fixed model list (also /v1/models/{id})
//	GET  /health               200 "ok", never authenticated
//
// Anthropic Messages (needs anthropic-version and max_tokens; "stream":
// true gives Anthropic's named events):
//
//	POST /v1/messages
//
// Google generateContent, on the Gemini API and on Vertex AI; the stream
// method gives server-sent events with ?alt=sse, otherwise a JSON array
// streamed element by element:
//
//	POST /v1beta/models/{model}:generateContent
//	POST /v1beta/models/{model}:streamGenerateContent
//	POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent
//	POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:streamGenerateContent
//
// AWS Bedrock Converse (any model id, escaped as the SDKs do); the stream
// answers AWS event stream messages (application/vnd.amazon.eventstream):
//
//	POST /model/{modelId}/converse
//	POST /model/{modelId}/converse-stream
//
// Each format answers errors in its own envelope. When Options.APIKey is set,
// OpenAI wants "Authorization: Bearer <key>", Anthropic the key in x-api-key
// (else 401 authentication_error), the Gemini API the key in x-goog-api-key
// or ?key= (none: 403 PERMISSION_DENIED; wrong: 400 API_KEY_INVALID), and
// Vertex AI any non-empty bearer token (else 401 UNAUTHENTICATED), since the
// mock cannot check tokens minted for a service account. Bedrock wants a
// SigV4 Authorization header for the bedrock service whose access key id is
// the key (none: 403 MissingAuthenticationTokenException; wrong: 403
// UnrecognizedClientException); the signature is not checked, as the mock
// knows no secret. Bedrock errors are {"message": …} with the exception's
// name in x-amzn-ErrorType.
//
// Answers depend only on the request, so identical requests get identical
// content and usage; EstimateTokens documents how usage is counted. Any
// model name is accepted and echoed back. Every format reduces a request to
// the same turns (a system prompt or systemInstruction is a leading system
// turn, Gemini's model role is assistant; text parts and tool results are
// joined by newlines), so a chat request and its translation into another
// format get the same answer text and usage. Gemini's candidateCount gives
// that many candidates, each a different answer; the first is the shared one.
//
// Tool rule (Anthropic, Gemini and Bedrock): when the request declares tools
// and its last user turn mentions "weather" (any case) and holds no tool
// result, the answer text is followed by a call to the first tool with input
// {}: a tool_use block and stop_reason tool_use, a functionCall part with
// finishReason STOP, or a toolUse block and stopReason tool_use. An answer
// cut by max tokens never calls a tool.
//
// Test hooks, read from request headers on the POST endpoints of every
// format:
//
//	x-mock-latency-ms: N  use exactly N ms of latency for this request
//	                      (replaces Options.Latency and Options.Jitter)
//	x-mock-status: S      answer with HTTP status S (400-599) in the format's
//	                      error envelope, e.g. 429, 500, 503 or Anthropic's 529
//
// Forced (x-mock-status) and injected (Options.ErrorRate) errors are answered
// at once, without latency, and before the body is validated.
package mockllm

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options tunes the fake provider's timing, failures and authentication.
type Options struct {
	Latency   time.Duration // added before the answer; streams send the first chunk after Latency/2 and spread the rest
	Jitter    time.Duration // uniform random extra 0..Jitter on top of Latency
	ErrorRate float64       // 0..1: fraction of requests answered with HTTP 500 in the format's error envelope
	APIKey    string        // when non-empty, requests must carry it as their format does (see the package doc)
	Seed      int64         // seeds the random source used for jitter and errors (0 = time-based)
}

// server holds per-handler state; nothing is global so handlers with
// different options can run side by side in one test binary.
type server struct {
	opts Options
	mu   sync.Mutex // guards rng: rand.Rand is not safe for concurrent use
	rng  *rand.Rand
}

// NewHandler returns the mock provider as an http.Handler.
func NewHandler(opts Options) http.Handler {
	seed := uint64(opts.Seed)
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	s := &server{opts: opts, rng: rand.New(rand.NewPCG(seed, seed^0x6d6f636b))}

	mux := http.NewServeMux()
	for _, prefix := range []string{"/v1", ""} {
		mux.Handle("POST "+prefix+"/chat/completions", s.generation(s.chat))
		mux.Handle("POST "+prefix+"/completions", s.generation(s.completions))
		mux.Handle("POST "+prefix+"/embeddings", s.generation(s.embeddings))
		mux.Handle("GET "+prefix+"/models", s.authed(http.HandlerFunc(listModels)))
		mux.Handle("GET "+prefix+"/models/{id}", s.authed(http.HandlerFunc(getModel)))
	}
	mux.Handle("POST /v1/messages", s.anthropicAuthed(s.hooked(writeAnthropicError, s.messages)))
	mux.Handle("POST /v1beta/models/{call}", s.googleKeyAuthed(s.hooked(writeGoogleError, s.generateContent)))
	mux.Handle("POST /v1/projects/{project}/locations/{location}/publishers/google/models/{call}",
		s.vertexAuthed(s.hooked(writeGoogleError, s.generateContent)))
	mux.Handle("POST /model/{modelId}/converse", s.bedrock(s.converse))
	mux.Handle("POST /model/{modelId}/converse-stream", s.bedrock(s.converseStream))
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	// OpenAI answers unknown routes (and wrong methods) with a 404 envelope.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{
			Status:  http.StatusNotFound,
			Message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path),
			Type:    typeInvalidRequest,
		})
	})
	return mux
}

// Serve listens on addr and serves NewHandler until ctx is cancelled, then
// shuts down gracefully, giving in-flight requests 5 s to finish.
func Serve(ctx context.Context, addr string, opts Options, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mockllm: listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           NewHandler(opts),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("mock LLM listening", "addr", ln.Addr().String())

	select {
	case err := <-served:
		return fmt.Errorf("mockllm: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("mockllm: shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("mockllm: serve: %w", err)
	}
	log.Info("mock LLM stopped")
	return nil
}

// genHandler answers a model endpoint after waiting (or streaming over) delay.
type genHandler func(w http.ResponseWriter, r *http.Request, delay time.Duration)

// authed enforces Options.APIKey the way OpenAI does.
func (s *server) authed(next http.Handler) http.Handler {
	if s.opts.APIKey == "" {
		return next
	}
	want := []byte("Bearer " + s.opts.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, &apiError{
				Status:  http.StatusUnauthorized,
				Message: "Incorrect API key provided",
				Type:    typeInvalidRequest,
				Code:    "invalid_api_key",
			})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// generation wraps an OpenAI model endpoint with auth, the test hooks and
// failure injection, and hands it the latency to apply.
func (s *server) generation(h genHandler) http.Handler {
	return s.authed(s.hooked(writeError, h))
}

// errorWriter renders an error in one wire format's envelope.
type errorWriter func(w http.ResponseWriter, e *apiError)

// hooked applies the test hooks and failure injection of every wire format,
// answering errors in that format's envelope.
func (s *server) hooked(fail errorWriter, h genHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := forcedError(r.Header.Get("x-mock-status")); e != nil {
			fail(w, e)
			return
		}
		delay, e := s.delay(r.Header.Get("x-mock-latency-ms"))
		if e != nil {
			fail(w, e)
			return
		}
		if s.fail() {
			fail(w, &apiError{
				Status:  http.StatusInternalServerError,
				Message: "mock-llm injected failure",
				Type:    typeServerError,
			})
			return
		}
		h(w, r, delay)
	})
}

// forcedError turns an x-mock-status header into the error to answer with;
// nil means the header is absent.
func forcedError(header string) *apiError {
	if header == "" {
		return nil
	}
	status, err := strconv.Atoi(header)
	if err != nil || status < 400 || status > 599 {
		return badRequest("", "", "x-mock-status must be an HTTP error status (400-599)")
	}
	e := &apiError{
		Status:  status,
		Message: fmt.Sprintf("mock-llm forced status %d", status),
		Type:    typeInvalidRequest,
	}
	switch {
	case status == http.StatusUnauthorized:
		e.Code = "invalid_api_key"
	case status == http.StatusTooManyRequests:
		e.Type, e.Code = "requests", "rate_limit_exceeded"
	case status >= 500:
		e.Type = typeServerError
	}
	return e
}

// delay is the latency for one request: the header override if present,
// otherwise Latency plus random jitter.
func (s *server) delay(header string) (time.Duration, *apiError) {
	if header != "" {
		ms, err := strconv.Atoi(header)
		if err != nil || ms < 0 {
			return 0, badRequest("", "", "x-mock-latency-ms must be a non-negative integer")
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d := s.opts.Latency
	if s.opts.Jitter > 0 {
		s.mu.Lock()
		d += time.Duration(s.rng.Int64N(int64(s.opts.Jitter) + 1))
		s.mu.Unlock()
	}
	return d, nil
}

// fail decides whether this request gets an injected 500. ErrorRate 0 never
// draws, so it can never fail.
func (s *server) fail() bool {
	if s.opts.ErrorRate <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < s.opts.ErrorRate
}

// sleep waits d unless ctx ends first; it reports whether to carry on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// newID returns a unique response id. It deliberately uses the global
// source, not the seeded one, so ids never affect the jitter/error sequence.
func newID(prefix string) string {
	return fmt.Sprintf("%s%016x", prefix, rand.Uint64())
}
