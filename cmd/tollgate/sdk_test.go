package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tollgate/mockllm"
)

// sdkcheckDir holds scripts/sdkcheck: the official OpenAI Node SDK, pinned
// by its package-lock.json, and check.mjs, which drives it.
var sdkcheckDir = filepath.Join("..", "..", "scripts", "sdkcheck")

// TestOpenAINodeSDKReadsEveryTranslatedStream puts mock-llm behind one
// provider of each type whose wire format the gateway translates or
// reshapes (Anthropic, Gemini, Vertex AI, Bedrock Converse, Azure OpenAI)
// and a plain OpenAI-compatible one, and runs the official OpenAI Node SDK
// against the gateway: whole answers, streams with usage, the SDK's strict
// ChatCompletionStream helper, streamed tool calls, and streams that break
// off, which must raise the SDK's APIError. The Node SDK's stream parser
// follows the same rules as the Python SDK's (data lines are JSON, [DONE]
// ends, an "error" object raises); the Python SDK cannot be installed here.
func TestOpenAINodeSDKReadsEveryTranslatedStream(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH: the OpenAI SDK check needs Node.js 20 or later and npm (Debian: apt-get install nodejs npm)")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatal("npm is not on PATH: the OpenAI SDK check installs the openai package with npm ci (Debian: apt-get install npm)")
	}
	installSDK(t)

	upstream := httptest.NewServer(sdkUpstream(mockllm.NewHandler(mockllm.Options{APIKey: "upstream-key", Latency: 40 * time.Millisecond})))
	t.Cleanup(upstream.Close)

	s := startStack(t)
	deployments := []struct {
		typ, base, key, config, upstream string
		translated                       bool // the gateway rewrites the stream; else it relays OpenAI's events
	}{
		{"anthropic", upstream.URL, "upstream-key", `{}`, "mock-claude", true},
		{"gemini", upstream.URL, "upstream-key", `{}`, "mock-gemini", true},
		{"vertex", upstream.URL, vertexServiceAccount(t), `{"project":"proj","location":"us-central1"}`, "mock-gemini", true},
		{"bedrock", upstream.URL, "upstream-key:mock-secret", `{"region":"us-east-1"}`, "us.anthropic.mock-claude-v1:0", true},
		{"azure", upstream.URL, "upstream-key", `{"api_version":"2025-01-01-preview"}`, "mock-gpt4o", false},
		{"openai_compatible", upstream.URL + "/v1", "upstream-key", `{}`, "mock-gpt", false},
	}
	// Each provider serves a model, the same one cut off halfway ("broken"
	// in the upstream name, see sdkUpstream) and, for the OpenAI format, one
	// torn inside an event ("torn").
	var models, tools, broken, torn []string
	for _, d := range deployments {
		prov := s.api("POST", "/providers", map[string]any{"name": "sdk-" + d.typ, "type": d.typ, "api_base": d.base,
			"api_key": d.key, "config": json.RawMessage(d.config)})
		model := "sdk-" + d.typ
		variants := map[string]string{model: d.upstream, model + "-broken": strings.Replace(d.upstream, "mock", "mock-broken", 1)}
		if !d.translated {
			variants[model+"-torn"] = strings.Replace(d.upstream, "mock", "mock-torn", 1)
			torn = append(torn, model+"-torn")
		} else {
			tools = append(tools, model) // mock-llm's OpenAI endpoint answers tools with text
		}
		for name, up := range variants {
			s.api("POST", "/models", map[string]any{"model_name": name, "provider_id": prov["id"], "upstream_model": up,
				"input_cost_per_million": 1, "output_cost_per_million": 2})
		}
		models, broken = append(models, model), append(broken, model+"-broken")
	}
	team := s.api("POST", "/teams", map[string]any{"name": "sdk-team"})
	key := s.api("POST", "/keys", map[string]any{"team_id": team["id"], "alias": "sdk"})["key"].(string)

	runSDKCheck(t, node, s.gateway, key, append([]string{"--tools", strings.Join(tools, ","), "--broken", strings.Join(broken, ",")}, models...)...)

	t.Run("OpenAI-format stream torn inside an event", func(t *testing.T) {
		// An OpenAI-format upstream that drops the connection inside an
		// event: the gateway drops the torn event, so the SDK sees only
		// whole chunks and then the error event (found by this check).
		runSDKCheck(t, node, s.gateway, key, "--broken", strings.Join(torn, ","))
	})
}

// runSDKCheck runs check.mjs against the gateway and fails with its output.
func runSDKCheck(t *testing.T, node, gateway, key string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"check.mjs"}, args...)...)
	cmd.Dir = sdkcheckDir
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+gateway, "GATEWAY_KEY="+key)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node check.mjs: %v\n%s", err, out)
	}
	t.Logf("node check.mjs:\n%s", out)
}

// installSDK runs npm ci in scripts/sdkcheck unless node_modules already
// holds what package-lock.json pins (a stamp records the lock's hash).
func installSDK(t *testing.T) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(sdkcheckDir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	want := hex.EncodeToString(sum[:])
	stamp := filepath.Join(sdkcheckDir, "node_modules", ".tollgate-lock-sha256")
	if got, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(got)) == want {
		if _, err := os.Stat(filepath.Join(sdkcheckDir, "node_modules", "openai", "package.json")); err == nil {
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = sdkcheckDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in scripts/sdkcheck: %v\n%s", err, out)
	}
	if err := os.WriteFile(stamp, []byte(want+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sdkUpstream is mock-llm as the gateway reaches it: Azure OpenAI's
// deployment URLs are mapped onto mock-llm's OpenAI endpoints, and a
// request whose model (in the path or the body) contains "broken" or
// "torn" gets the first half of its answer and then a dropped connection.
// A broken OpenAI-format stream breaks off between two events (the gateway
// relays those as they are); a torn one, and every other format, anywhere.
func sdkUpstream(mock http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		has := func(word string) bool {
			return strings.Contains(r.URL.Path, word) || bytes.Contains(body, []byte(word))
		}
		broken, torn := has("broken"), has("torn")
		if rest, ok := strings.CutPrefix(r.URL.Path, "/openai/deployments/"); ok {
			_, path, _ := strings.Cut(rest, "/")
			if r.URL.Query().Get("api-version") == "" || r.Header.Get("Api-Key") != "upstream-key" || r.Header.Get("Authorization") != "" {
				http.Error(w, `{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}`, http.StatusUnauthorized)
				return
			}
			r.URL.Path, r.URL.RawPath = "/v1/"+path, ""
			r.Header.Set("Authorization", "Bearer upstream-key")
		}
		if !broken && !torn {
			mock.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		mock.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		full := rec.Body.Bytes()
		cut := len(full) / 2
		if broken && r.URL.Path == "/v1/chat/completions" {
			cut = bytes.LastIndex(full[:cut], []byte("\n\n")) + 2
		}
		w.Write(full[:cut])
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-answer
	})
}

// vertexServiceAccount is a service-account JSON key whose token_uri is a
// fake Google token endpoint on loopback handing out a fixed token.
func vertexServiceAccount(t *testing.T) string {
	t.Helper()
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ParseForm() != nil || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.Form.Get("assertion") == "" {
			http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"ya29.sdk-check","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(tokens.Close)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "proj",
		"private_key_id": "sdk-check-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "sdk-check@proj.iam.gserviceaccount.com",
		"token_uri":      tokens.URL + "/token",
	})
	return string(sa)
}
