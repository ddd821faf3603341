package gemini

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"tollgate/gateway/openai"
)

const chatBody = `{"model": "x", "messages": [{"role": "user", "content": "Hello"}]}`

func TestGeminiRequestURLAndHeaders(t *testing.T) {
	cases := []struct {
		name, base, model string
		stream            bool
		want              string
	}{
		{"default base", "", "gemini-2.5-flash", false, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"},
		{"stream", "", "gemini-2.5-flash", true, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
		{"own base", "http://127.0.0.1:9090/", "gemini-2.0-flash", false, "http://127.0.0.1:9090/v1beta/models/gemini-2.0-flash:generateContent"},
		{"base given with version", "https://generativelanguage.googleapis.com/v1beta", "models/gemini-2.5-pro", true, "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := openai.Target{BaseURL: c.base, APIKey: "AIza-test", Model: c.model, Config: map[string]string{"platform": "gemini"}}
			req, err := NewChatRequest(context.Background(), tg, []byte(chatBody), c.stream)
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != http.MethodPost || req.URL.String() != c.want {
				t.Errorf("%s %s, want POST %s", req.Method, req.URL, c.want)
			}
			accept := "application/json"
			if c.stream {
				accept = "text/event-stream"
			}
			h := req.Header
			if h.Get("x-goog-api-key") != "AIza-test" || h.Get("Authorization") != "" ||
				h.Get("Content-Type") != "application/json" || h.Get("Accept") != accept {
				t.Errorf("headers %v", h)
			}
			body, _ := io.ReadAll(req.Body)
			sameJSON(t, string(body), `{"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}`)
		})
	}
	// No platform at all means the Gemini API.
	req, err := NewChatRequest(context.Background(), openai.Target{APIKey: "k", Model: "m"}, []byte(chatBody), false)
	if err != nil || req.URL.Host != "generativelanguage.googleapis.com" {
		t.Errorf("no platform: %v %v", req, err)
	}
	if _, err := NewChatRequest(context.Background(), openai.Target{Model: "m", Config: map[string]string{"platform": "palm"}}, []byte(chatBody), false); err == nil {
		t.Error("an unknown platform was accepted")
	}
}

// tokenServer is a fake Google token endpoint: it checks the signed JWT
// grant against the service account's public key and hands out numbered
// tokens.
type tokenServer struct {
	*httptest.Server
	key       *rsa.PrivateKey
	expiresIn int
	hits      atomic.Int32
	refuse    atomic.Bool // answer as Google does to a revoked key
	failures  []string
	mu        sync.Mutex
}

func newTokenServer(t *testing.T, expiresIn int) *tokenServer {
	t.Helper()
	ts := &tokenServer{key: testKey(t), expiresIn: expiresIn}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)
	t.Cleanup(func() {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, f := range ts.failures {
			t.Error("token endpoint: " + f)
		}
	})
	return ts
}

func (ts *tokenServer) fail(w http.ResponseWriter, msg string) {
	ts.mu.Lock()
	ts.failures = append(ts.failures, msg)
	ts.mu.Unlock()
	http.Error(w, `{"error": "invalid_grant"}`, http.StatusBadRequest)
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	if ts.refuse.Load() {
		http.Error(w, `{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}`, http.StatusBadRequest)
		return
	}
	if r.ParseForm() != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		ts.fail(w, "not a JWT bearer grant: "+r.Form.Encode())
		return
	}
	parts := strings.Split(r.Form.Get("assertion"), ".")
	if len(parts) != 3 {
		ts.fail(w, "assertion is not a JWT")
		return
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&ts.key.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		ts.fail(w, "signature does not verify: "+err.Error())
		return
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
	}
	json.Unmarshal(payload, &claims)
	if !strings.HasSuffix(claims.Iss, "@tollgate-test.iam.gserviceaccount.com") ||
		claims.Scope != "https://www.googleapis.com/auth/cloud-platform" || claims.Aud != ts.URL+"/token" {
		ts.fail(w, fmt.Sprintf("claims %+v", claims))
		return
	}
	n := ts.hits.Add(1)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token": "ya29.test-%d", "token_type": "Bearer", "expires_in": %d}`, n, ts.expiresIn)
}

var (
	sharedKey     *rsa.PrivateKey
	sharedKeyOnce sync.Once
)

// testKey is one RSA key made for this test run (2048 bits takes a
// moment, so the tests share it).
func testKey(t *testing.T) *rsa.PrivateKey {
	sharedKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		sharedKey = k
	})
	return sharedKey
}

// serviceAccount is a service-account JSON key whose token_uri is the fake
// endpoint; the account name keeps each test's credential (and cache
// entry) its own.
func (ts *tokenServer) serviceAccount(t *testing.T, account string) string {
	der, err := x509.MarshalPKCS8PrivateKey(ts.key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "tollgate-test",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   account + "@tollgate-test.iam.gserviceaccount.com",
		"client_id":      "1234567890",
		"token_uri":      ts.URL + "/token",
	})
	return string(b)
}

func TestVertexRequestURLAndToken(t *testing.T) {
	ts := newTokenServer(t, 3600)
	key := ts.serviceAccount(t, "url-test")
	cases := []struct {
		name   string
		base   string
		config map[string]string
		stream bool
		want   string
	}{
		{"default location", "", map[string]string{"project": "acme-prod"}, false,
			"https://us-central1-aiplatform.googleapis.com/v1/projects/acme-prod/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"},
		{"location, streaming", "", map[string]string{"project": "acme-prod", "location": "europe-west4"}, true,
			"https://europe-west4-aiplatform.googleapis.com/v1/projects/acme-prod/locations/europe-west4/publishers/google/models/gemini-2.5-pro:streamGenerateContent?alt=sse"},
		{"the dashboard's region field", "", map[string]string{"project": "acme-prod", "region": "asia-northeast1"}, false,
			"https://asia-northeast1-aiplatform.googleapis.com/v1/projects/acme-prod/locations/asia-northeast1/publishers/google/models/gemini-2.5-pro:generateContent"},
		{"global endpoint", "", map[string]string{"project": "acme-prod", "location": "global"}, false,
			"https://aiplatform.googleapis.com/v1/projects/acme-prod/locations/global/publishers/google/models/gemini-2.5-pro:generateContent"},
		{"own base", "http://127.0.0.1:9090/v1", map[string]string{"project": "acme-prod"}, false,
			"http://127.0.0.1:9090/v1/projects/acme-prod/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.config["platform"] = "vertex"
			tg := openai.Target{BaseURL: c.base, APIKey: key, Model: "gemini-2.5-pro", Config: c.config}
			req, err := NewChatRequest(context.Background(), tg, []byte(chatBody), c.stream)
			if err != nil {
				t.Fatal(err)
			}
			if req.URL.String() != c.want {
				t.Errorf("URL %s\nwant %s", req.URL, c.want)
			}
			// One token for the whole table: the first request fetched it,
			// every later one reuses it.
			if got := req.Header.Get("Authorization"); got != "Bearer ya29.test-1" {
				t.Errorf("Authorization %q", got)
			}
			if req.Header.Get("x-goog-api-key") != "" {
				t.Error("the service-account JSON leaked into x-goog-api-key")
			}
		})
	}
	if n := ts.hits.Load(); n != 1 {
		t.Errorf("token endpoint called %d times, want once", n)
	}
}

// A token about to expire is not reused: oauth2 refreshes it ahead of
// time.
func TestVertexTokenRefreshedAtExpiry(t *testing.T) {
	ts := newTokenServer(t, 5) // within oauth2's 10 s early-expiry window
	tg := openai.Target{APIKey: ts.serviceAccount(t, "expiry-test"), Model: "gemini-2.5-flash",
		Config: map[string]string{"platform": "vertex", "project": "p"}}
	for i := 1; i <= 2; i++ {
		req, err := NewChatRequest(context.Background(), tg, []byte(chatBody), false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := req.Header.Get("Authorization"), fmt.Sprintf("Bearer ya29.test-%d", i); got != want {
			t.Errorf("request %d: %q, want %q", i, got, want)
		}
	}
}

func TestVertexRequestErrors(t *testing.T) {
	ts := newTokenServer(t, 3600)
	good := ts.serviceAccount(t, "errors-test")
	external := `{"type": "external_account", "audience": "x", "subject_token_type": "y", "token_url": "` + ts.URL + `/token", "credential_source": {"executable": {"command": "/bin/true"}}}`
	broken := newTokenServer(t, 3600)
	broken.refuse.Store(true)
	cases := []struct {
		name, key string
		config    map[string]string
		want      string
	}{
		{"no project", good, map[string]string{}, "config.project"},
		{"location that is not one", good, map[string]string{"project": "p", "location": "evil.example/x?"}, "not a Google Cloud location"},
		{"not JSON", "AIza-plain-api-key", map[string]string{"project": "p"}, "service account's JSON key"},
		{"not a service account", external, map[string]string{"project": "p"}, `'type' field is "external_account"`},
		{"token refused", broken.serviceAccount(t, "refused-test"), map[string]string{"project": "p"}, "Invalid JWT Signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.config["platform"] = "vertex"
			_, err := NewChatRequest(context.Background(), openai.Target{APIKey: c.key, Model: "m", Config: c.config}, []byte(chatBody), false)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "AIza-plain") {
				t.Errorf("the error shows the credential: %v", err)
			}
		})
	}
	if ts.hits.Load() != 0 {
		t.Error("a token was fetched for a request that could not be built")
	}
}
