// Package bedrock speaks AWS Bedrock's Converse API for deployments of type
// bedrock: it translates an OpenAI chat request into a SigV4-signed Converse
// (or ConverseStream) call, and the answer or event stream back into
// OpenAI's chat.completion JSON or chat.completion.chunk events.
package bedrock

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"

	"tollgate/gateway/openai"
)

// signingService is the SigV4 service name of bedrock-runtime.
const signingService = "bedrock"

// Set apart so tests can fix the clock and the ids.
var (
	now   = time.Now
	newID = func() string { return "chatcmpl-" + rand.Text() }
)

var signer = v4.NewSigner()

// RequestError is a chat request that cannot be expressed in Converse: the
// caller's mistake or a feature Bedrock lacks, not the deployment's.
type RequestError struct {
	Param   string // the request field at fault, e.g. messages[2].content[0].image_url
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

func badRequest(param, format string, args ...any) *RequestError {
	return &RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// NewChatRequest builds the signed POST {base}/model/{modelId}/converse, or
// /converse-stream when stream is set, from an OpenAI chat request body.
// The base defaults to https://bedrock-runtime.{region}.amazonaws.com; the
// region comes from t.Config["region"]. t.APIKey is
// ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]; when it is empty the
// default AWS credential chain is used (environment, shared files, SSO, web
// identity, ECS or EC2 roles). A body that Converse cannot express gives a
// *RequestError.
func NewChatRequest(ctx context.Context, t openai.Target, body []byte, stream bool) (*http.Request, error) {
	region := strings.TrimSpace(t.Config["region"])
	if region == "" {
		return nil, errors.New("bedrock: no region: set the provider's region (for example us-east-1) in its config")
	}
	if t.Model == "" {
		return nil, errors.New("bedrock: no model: set the deployment's upstream model to a Bedrock model ID, inference profile or ARN")
	}
	converse, err := converseBody(body)
	if err != nil {
		return nil, err
	}
	creds, err := credentials(ctx, t.APIKey)
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(t.BaseURL, "/")
	if base == "" {
		base = "https://bedrock-runtime." + region + ".amazonaws.com"
	}
	op := "/converse"
	if stream {
		op = "/converse-stream"
	}
	u, err := url.Parse(base + "/model/" + url.PathEscape(t.Model) + op)
	if err != nil {
		return nil, fmt.Errorf("bedrock: api_base %q: %w", t.BaseURL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(converse))
	if err != nil {
		return nil, fmt.Errorf("bedrock: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "application/vnd.amazon.eventstream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "tollgate")
	sum := sha256.Sum256(converse)
	if err := signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), signingService, region, now()); err != nil {
		return nil, fmt.Errorf("bedrock: sign request: %w", err)
	}
	return req, nil
}

// credentials reads a deployment's key, or falls back to the default chain.
func credentials(ctx context.Context, apiKey string) (aws.Credentials, error) {
	if apiKey == "" {
		return defaultCredentials(ctx)
	}
	parts := strings.SplitN(strings.TrimSpace(apiKey), ":", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		// Never echo the key: it is a secret even when malformed.
		return aws.Credentials{}, errors.New("bedrock: the provider's API key must be ACCESS_KEY_ID:SECRET_ACCESS_KEY or ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN")
	}
	c := aws.Credentials{AccessKeyID: parts[0], SecretAccessKey: parts[1], Source: "tollgate provider key"}
	if len(parts) == 3 {
		c.SessionToken = parts[2]
	}
	return c, nil
}

// defaultChain is loaded once: the SDK's provider caches what it retrieves
// and refreshes it before it expires, so roles are not fetched per request.
var defaultChain struct {
	sync.Mutex
	provider aws.CredentialsProvider
}

func defaultCredentials(ctx context.Context) (aws.Credentials, error) {
	defaultChain.Lock()
	p := defaultChain.provider
	if p == nil {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			defaultChain.Unlock()
			return aws.Credentials{}, fmt.Errorf("bedrock: load the default AWS configuration: %w", err)
		}
		p = cfg.Credentials
		defaultChain.provider = p
	}
	defaultChain.Unlock()
	if p == nil {
		return aws.Credentials{}, errNoCredentials(nil)
	}
	c, err := p.Retrieve(ctx)
	if err != nil {
		return aws.Credentials{}, errNoCredentials(err)
	}
	return c, nil
}

func errNoCredentials(err error) error {
	const msg = "bedrock: no AWS credentials: set the provider's API key to ACCESS_KEY_ID:SECRET_ACCESS_KEY, or give the gateway credentials through the default AWS chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an instance or task role)"
	if err == nil {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// ErrorMessage pulls the message out of a Bedrock error body
// ({"message": "..."}), or returns the start of the body when it is not one.
func ErrorMessage(body []byte) string {
	var v struct {
		Message string `json:"message"` // matches "Message" too, as some AWS errors spell it
	}
	if err := json.Unmarshal(body, &v); err == nil && v.Message != "" {
		return v.Message
	}
	return openai.ErrorMessage(body)
}
