package gemini

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

const cloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform"

// maxTokenSources bounds the cache: there are as many entries as Vertex
// credentials, and rotated keys leave stale ones behind.
const maxTokenSources = 256

// tokenClient fetches access tokens; the timeout stands in for the
// request's context, which a shared, cached token source cannot hold.
var tokenClient = &http.Client{Timeout: 30 * time.Second}

// tokenSources holds one reusing token source per service-account key, so
// a token is fetched once and reused by every request until it expires.
var tokenSources = struct {
	sync.Mutex
	byKey map[[sha256.Size]byte]oauth2.TokenSource
}{byKey: map[[sha256.Size]byte]oauth2.TokenSource{}}

// serviceAccountToken returns a bearer token for the service-account JSON
// key. Only keys of type service_account are taken (google.JWTConfigFromJSON
// refuses the others), so a stored credential cannot point the gateway at
// an arbitrary external token exchange.
func serviceAccountToken(keyJSON string) (string, error) {
	ts, err := tokenSourceFor(keyJSON)
	if err != nil {
		return "", err
	}
	tok, err := ts.Token()
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func tokenSourceFor(keyJSON string) (oauth2.TokenSource, error) {
	id := sha256.Sum256([]byte(keyJSON))
	tokenSources.Lock()
	defer tokenSources.Unlock()
	if ts, ok := tokenSources.byKey[id]; ok {
		return ts, nil
	}
	cfg, err := google.JWTConfigFromJSON([]byte(keyJSON), cloudPlatformScope)
	if err != nil {
		return nil, fmt.Errorf("the provider's api_key must be a service account's JSON key: %w", err)
	}
	if len(tokenSources.byKey) >= maxTokenSources {
		clear(tokenSources.byKey)
	}
	// jwt.Config.TokenSource already wraps its source in
	// oauth2.ReuseTokenSource; the context only carries the HTTP client.
	ts := cfg.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient))
	tokenSources.byKey[id] = ts
	return ts, nil
}
