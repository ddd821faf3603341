package bedrock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"tollgate/gateway/openai"
)

var signingTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fixStamps makes ids, timestamps and signatures repeatable.
func fixStamps(t *testing.T) {
	t.Helper()
	oldNow, oldID := now, newID
	now = func() time.Time { return signingTime }
	newID = func() string { return "chatcmpl-test" }
	t.Cleanup(func() { now, newID = oldNow, oldID })
}

const chatBody = `{"model":"claude","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}`

func TestNewChatRequest(t *testing.T) {
	fixStamps(t)
	target := openai.Target{
		APIKey: "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		Model:  "anthropic.claude-3-5-sonnet-20240620-v1:0",
		Config: map[string]string{"region": "us-east-1"},
	}
	for _, stream := range []bool{false, true} {
		req, err := NewChatRequest(context.Background(), target, []byte(chatBody), stream)
		if err != nil {
			t.Fatal(err)
		}
		wantURL, wantAccept := "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1:0/converse", "application/json"
		if stream {
			wantURL, wantAccept = wantURL+"-stream", "application/vnd.amazon.eventstream"
		}
		if req.Method != http.MethodPost || req.URL.String() != wantURL {
			t.Errorf("%s %s, want POST %s", req.Method, req.URL, wantURL)
		}
		if got := req.Header.Get("Accept"); got != wantAccept {
			t.Errorf("Accept %q, want %q", got, wantAccept)
		}
		auth := req.Header.Get("Authorization")
		if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/bedrock/aws4_request, SignedHeaders=") ||
			!strings.Contains(auth, "Signature=") {
			t.Errorf("Authorization %q", auth)
		}
		if got := req.Header.Get("X-Amz-Date"); got != "20250102T030405Z" {
			t.Errorf("X-Amz-Date %q", got)
		}
		if req.Header.Get("X-Amz-Security-Token") != "" {
			t.Error("security token sent without a session token")
		}
		body, _ := io.ReadAll(req.Body)
		if want := `{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}`; string(body) != want {
			t.Errorf("body %s, want %s", body, want)
		}
	}
}

func TestNewChatRequestSessionToken(t *testing.T) {
	fixStamps(t)
	target := openai.Target{APIKey: "ASIAEXAMPLE:secret:FwoGZXIvYXdzEBYaDEXAMPLETOKEN", Model: "m", Config: map[string]string{"region": "eu-west-3"}}
	req, err := NewChatRequest(context.Background(), target, []byte(chatBody), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Header.Get("X-Amz-Security-Token"); got != "FwoGZXIvYXdzEBYaDEXAMPLETOKEN" {
		t.Errorf("X-Amz-Security-Token %q", got)
	}
	auth := req.Header.Get("Authorization")
	if !strings.Contains(auth, "Credential=ASIAEXAMPLE/20250102/eu-west-3/bedrock/aws4_request") || !strings.Contains(auth, "x-amz-security-token") {
		t.Errorf("the token is not signed: %q", auth)
	}
	if req.URL.Host != "bedrock-runtime.eu-west-3.amazonaws.com" {
		t.Errorf("host %q", req.URL.Host)
	}
}

func TestNewChatRequestRefuses(t *testing.T) {
	cases := []struct {
		name   string
		target openai.Target
		body   string
		says   string
	}{
		{"no region", openai.Target{APIKey: "AKID:secret", Model: "m"}, chatBody, "set the provider's region"},
		{"blank region", openai.Target{APIKey: "AKID:secret", Model: "m", Config: map[string]string{"region": " "}}, chatBody, "region"},
		{"no model", openai.Target{APIKey: "AKID:secret", Config: map[string]string{"region": "us-east-1"}}, chatBody, "model"},
		{"key without secret", openai.Target{APIKey: "AKIDONLY", Model: "m", Config: map[string]string{"region": "us-east-1"}}, chatBody, "ACCESS_KEY_ID:SECRET_ACCESS_KEY"},
		{"untranslatable", openai.Target{APIKey: "AKID:secret", Model: "m", Config: map[string]string{"region": "us-east-1"}},
			`{"messages":[{"role":"user","content":"x"}],"n":3}`, "one choice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewChatRequest(context.Background(), c.target, []byte(c.body), false)
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %v, want one saying %q", err, c.says)
			}
			if strings.Contains(err.Error(), "AKIDONLY") {
				t.Error("the error echoes the key")
			}
		})
	}
}

func TestDefaultCredentialChain(t *testing.T) {
	fixStamps(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	t.Setenv("AWS_SESSION_TOKEN", "envtoken")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	defaultChain.provider = nil
	t.Cleanup(func() { defaultChain.provider = nil })

	target := openai.Target{Model: "m", Config: map[string]string{"region": "us-west-2"}}
	req, err := NewChatRequest(context.Background(), target, []byte(chatBody), false)
	if err != nil {
		t.Fatal(err)
	}
	if auth := req.Header.Get("Authorization"); !strings.Contains(auth, "Credential=AKIDFROMENV/20250102/us-west-2/bedrock/aws4_request") {
		t.Errorf("Authorization %q", auth)
	}
	if got := req.Header.Get("X-Amz-Security-Token"); got != "envtoken" {
		t.Errorf("X-Amz-Security-Token %q", got)
	}
}

// verifySignature re-signs what the server received with the same key and
// the request's own X-Amz-Date, over the signed headers only, and compares:
// it fails if the body, path, host or a signed header changed on the wire.
func verifySignature(r *http.Request, body []byte, creds aws.Credentials, region string) error {
	auth := r.Header.Get("Authorization")
	_, signedList, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		return errors.New("no SignedHeaders in " + auth)
	}
	signedList, _, _ = strings.Cut(signedList, ",")
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.RequestURI, bytes.NewReader(body))
	again.Header = http.Header{}
	for _, h := range strings.Split(signedList, ";") {
		if h != "host" && h != "content-length" && h != "x-amz-date" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	if err := signer.SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "bedrock", region, when); err != nil {
		return err
	}
	if again.Header.Get("Authorization") != auth {
		return errors.New("signature does not verify:\n got " + auth + "\nwant " + again.Header.Get("Authorization"))
	}
	return nil
}

// A fake bedrock-runtime that checks every signature and answers in
// Bedrock's real formats, called over HTTP as the gateway will.
func TestOverHTTP(t *testing.T) {
	fixStamps(t)
	creds := aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", SessionToken: "tok"}
	model := "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
	answer := readFile(t, "testdata/answers/tool.json")
	stream := encodeStream(t, "testdata/streams/tool.json")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifySignature(r, body, creds, "us-east-1"); err != nil {
			t.Error(err)
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"message":"The request signature we calculated does not match the signature you provided."}`)
			return
		}
		wantPath := "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-3-5-sonnet-20240620-v1:0/converse"
		switch r.URL.EscapedPath() {
		case wantPath:
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
		case wantPath + "-stream":
			w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
			w.Write(stream)
		default:
			t.Errorf("path %s", r.URL.EscapedPath())
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	target := openai.Target{BaseURL: srv.URL + "/", APIKey: "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY:tok", Model: model,
		Config: map[string]string{"region": "us-east-1"}}
	body := requestFixture(t, "tools_round_trip")

	req, err := NewChatRequest(context.Background(), target, []byte(chatBody), false)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, ErrorMessage(got))
	}
	if _, usage, err := ChatAnswer(got, "claude"); err != nil || usage.TotalTokens != 1398 {
		t.Errorf("answer usage %+v, %v", usage, err)
	}

	req, err = NewChatRequest(context.Background(), target, body, true)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	usage, err := ChatStream(&out, func() {}, resp.Body, "claude", true)
	if err != nil || usage.PromptTokens != 1310 || !strings.HasSuffix(out.String(), "data: [DONE]\n\n") {
		t.Errorf("stream usage %+v, %v, ends %q", usage, err, out.String()[max(0, out.Len()-40):])
	}
}

func TestErrorMessage(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"message":"The provided model identifier is invalid."}`, "The provided model identifier is invalid."},
		{`{"Message":"User: arn:aws:iam::1:user/x is not authorized to perform: bedrock:InvokeModel"}`, "User: arn:aws:iam::1:user/x is not authorized to perform: bedrock:InvokeModel"},
		{"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"},
		{`{"error":{"message":"openai style"}}`, "openai style"},
	}
	for _, c := range cases {
		if got := ErrorMessage([]byte(c.body)); got != c.want {
			t.Errorf("ErrorMessage(%s) = %q, want %q", c.body, got, c.want)
		}
	}
	if got := ErrorMessage([]byte(strings.Repeat("z", 1000))); len(got) > 210 {
		t.Errorf("not cut: %d bytes", len(got))
	}
}
