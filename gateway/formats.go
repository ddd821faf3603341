package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"tollgate/gateway/anthropic"
	"tollgate/gateway/bedrock"
	"tollgate/gateway/gemini"
	"tollgate/gateway/openai"
)

// wireFormat is how the gateway speaks to providers that do not take the
// OpenAI format: chat requests, answers and streams are translated both
// ways by the format's package.
type wireFormat struct {
	newChat  func(ctx context.Context, t openai.Target, body []byte, stream bool) (*http.Request, error)
	answer   func(body []byte, model string) ([]byte, openai.Usage, error)
	stream   func(w io.Writer, flush func(), upstream io.Reader, model string, includeUsage bool) (openai.Usage, error)
	errorMsg func(body []byte) string
}

// formats by provider type; every other type speaks the OpenAI format.
var formats = map[string]wireFormat{
	"anthropic": {anthropic.NewChatRequest, anthropic.ChatAnswer, anthropic.ChatStream, anthropic.ErrorMessage},
	"bedrock":   {bedrock.NewChatRequest, bedrock.ChatAnswer, bedrock.ChatStream, bedrock.ErrorMessage},
	"gemini":    {gemini.NewChatRequest, gemini.ChatAnswer, gemini.ChatStream, gemini.ErrorMessage},
	"vertex":    {vertexChat, gemini.ChatAnswer, gemini.ChatStream, gemini.ErrorMessage},
}

// vertexChat is Gemini's format on Vertex AI's URLs and credentials.
func vertexChat(ctx context.Context, t openai.Target, body []byte, stream bool) (*http.Request, error) {
	cfg := map[string]string{"platform": "vertex"}
	for k, v := range t.Config {
		cfg[k] = v
	}
	t.Config = cfg
	return gemini.NewChatRequest(ctx, t, body, stream)
}

// formatOf is the deployment's wire format; ok is false for the OpenAI format.
func formatOf(d *Deployment) (wireFormat, bool) {
	f, ok := formats[d.Provider.Type]
	return f, ok
}

// target is where a deployment is called.
func target(d *Deployment) openai.Target {
	cfg := map[string]string{}
	var raw map[string]any
	if json.Unmarshal(d.Provider.Config, &raw) == nil {
		for k, v := range raw {
			if s, ok := v.(string); ok {
				cfg[k] = s
			} else if v != nil {
				cfg[k] = fmt.Sprint(v)
			}
		}
	}
	return openai.Target{BaseURL: d.Provider.APIBase, APIKey: d.APIKey, Model: d.UpstreamModel, Config: cfg}
}

// errNotChat is asking a translated provider for anything but chat.
var errNotChat = errors.New("only chat completions")

// requestFor builds the HTTP call of ep to a deployment in its wire
// format; the proxy and the health probe both use it.
func requestFor(ctx context.Context, d *Deployment, ep endpoint, body []byte, stream bool) (*http.Request, error) {
	if d.Provider.Type == "azure" {
		return azureRequest(ctx, target(d), ep.path, body, stream)
	}
	f, translated := formatOf(d)
	if !translated {
		return openai.NewRequest(ctx, d.Provider.APIBase, ep.path, d.APIKey, body, stream)
	}
	if ep != endpointChat {
		return nil, errNotChat
	}
	return f.newChat(ctx, target(d), body, stream)
}

// upstreamRequest builds the call to the chosen deployment, turning what
// goes wrong into the caller's error: their request, or the provider's setup.
func (s *Server) upstreamRequest(ctx context.Context, c *call, body []byte) (*http.Request, *apiError) {
	req, err := requestFor(ctx, c.dep, c.ep, body, c.req.stream)
	if err == nil {
		return req, nil
	}
	if errors.Is(err, errNotChat) {
		return nil, badRequest("model", fmt.Sprintf("Model %q is served by a %s provider, which takes only chat completions through the gateway.", c.req.model, c.dep.Provider.Type))
	}
	if param, msg, ok := requestError(err); ok {
		return nil, badRequest(param, fmt.Sprintf("Provider %s (%s) cannot take this request: %s", c.dep.Provider.Name, c.dep.Provider.Type, msg))
	}
	s.log.Error("build upstream request", "request_id", c.id, "provider", c.dep.Provider.Name, "err", redact(err))
	return nil, upstreamFailed(http.StatusBadGateway, fmt.Sprintf("Provider %s is not set up correctly: %s", c.dep.Provider.Name, redact(err)))
}

// requestError recognizes a translation's complaint about the request.
func requestError(err error) (param, msg string, ok bool) {
	var a *anthropic.RequestError
	var b *bedrock.RequestError
	var g *gemini.RequestError
	switch {
	case errors.As(err, &a):
		return a.Param, a.Message, true
	case errors.As(err, &b):
		return b.Param, b.Message, true
	case errors.As(err, &g):
		return g.Param, g.Message, true
	}
	return "", "", false
}

// relayTranslated answers a non-OpenAI provider's whole answer in the
// OpenAI format.
func (s *Server) relayTranslated(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response, f wireFormat) *apiError {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return s.transportError(r, c, err)
	}
	body, usage, err := f.answer(raw, c.dep.UpstreamModel)
	if err != nil {
		return upstreamFailed(http.StatusBadGateway, fmt.Sprintf("Provider %s answered in a shape the gateway cannot read: %v", c.dep.Provider.Name, err))
	}
	c.usage, c.cost = usage, Cost(usage, &c.dep.ModelSpec)
	body, aerr := s.postCall(r.Context(), c, body)
	if aerr != nil {
		w.Header().Set("X-Tollgate-Cost", formatCost(c.cost))
		return aerr
	}
	s.answer(w, c, "application/json", http.StatusOK, body)
	return nil
}

// streamTranslated turns a non-OpenAI provider's stream into OpenAI chunks.
// A stream that breaks off ends with an error event; what it used so far
// is still priced.
func (s *Server) streamTranslated(w http.ResponseWriter, r *http.Request, c *call, resp *http.Response, f wireFormat) *apiError {
	rc := startStream(w, s, c)
	out, end := s.guardStream(r.Context(), c, w, func() { rc.Flush() })
	usage, err := f.stream(out, func() { rc.Flush() }, resp.Body, c.dep.UpstreamModel, c.req.includeUsage)
	err = end(err)
	c.usage = usage
	s.endStream(w, r, c, rc, err)
	return nil
}

// writeStreamError ends a stream with an upstream_error event, as OpenAI does.
func writeStreamError(w io.Writer, msg string) {
	writeStreamEvent(w, &apiError{Message: msg, Type: "upstream_error", Code: "upstream_error"})
}

// writeStreamEvent writes an error as a server-sent event.
func writeStreamEvent(w io.Writer, e *apiError) error {
	var env errorEnvelope
	env.Error.Message, env.Error.Type, env.Error.Code = e.Message, e.Type, e.Code
	b, _ := json.Marshal(env)
	_, err := fmt.Fprintf(w, "data: %s\n\n", b)
	return err
}

// azureAPIVersion is the Azure OpenAI data-plane version used when the
// provider's config names none.
const azureAPIVersion = "2024-10-21"

// azureRequest calls an Azure OpenAI deployment: the OpenAI body goes to
// {api_base}/openai/deployments/{deployment}{path}?api-version=…, with the
// key in an api-key header. The deployment is the model's upstream name.
func azureRequest(ctx context.Context, t openai.Target, path string, body []byte, stream bool) (*http.Request, error) {
	if t.BaseURL == "" {
		return nil, errors.New("api_base must be the resource URL, like https://my-resource.openai.azure.com")
	}
	version := t.Config["api_version"]
	if version == "" {
		version = azureAPIVersion
	}
	u := strings.TrimRight(t.BaseURL, "/") + "/openai/deployments/" + url.PathEscape(t.Model) + path + "?api-version=" + url.QueryEscape(version)
	req, err := openai.NewRequest(ctx, u, "", "", body, stream)
	if err != nil {
		return nil, err
	}
	req.Header.Set("api-key", t.APIKey)
	return req, nil
}
