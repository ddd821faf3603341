package gemini

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"tollgate/gateway/openai"
)

const (
	defaultGeminiBase = "https://generativelanguage.googleapis.com"
	defaultLocation   = "us-central1"
)

// RequestError is a request the caller must fix: it names the field.
type RequestError struct {
	Param   string // the OpenAI request field, such as messages[2].content
	Message string
}

func (e *RequestError) Error() string {
	if e.Param == "" {
		return e.Message
	}
	return e.Param + ": " + e.Message
}

func invalid(param, format string, args ...any) *RequestError {
	return &RequestError{Param: param, Message: fmt.Sprintf(format, args...)}
}

// NewChatRequest builds the upstream POST for an OpenAI chat completions
// body. t.Config["platform"] chooses the Gemini API ("" or "gemini": an API
// key in x-goog-api-key) or Vertex AI ("vertex": a service-account JSON key
// in t.APIKey, exchanged for a bearer token; project and location from
// t.Config). A *RequestError means the body itself cannot be translated.
func NewChatRequest(ctx context.Context, t openai.Target, body []byte, stream bool) (*http.Request, error) {
	gr, err := translateRequest(body)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(gr)
	if err != nil {
		return nil, fmt.Errorf("encode the Gemini request: %w", err)
	}
	method := ":generateContent"
	if stream {
		method = ":streamGenerateContent?alt=sse"
	}
	model := url.PathEscape(strings.TrimPrefix(t.Model, "models/"))

	var target, bearer string
	switch platform := t.Config["platform"]; platform {
	case "", "gemini":
		base := strings.TrimSuffix(strings.TrimRight(t.BaseURL, "/"), "/v1beta")
		if base == "" {
			base = defaultGeminiBase
		}
		target = base + "/v1beta/models/" + model + method
	case "vertex":
		project := t.Config["project"]
		if project == "" {
			return nil, fmt.Errorf("vertex: the provider has no project in its config; set config.project to the Google Cloud project id")
		}
		location := t.Config["location"]
		if location == "" {
			location = t.Config["region"] // the dashboard's Location field is stored as region
		}
		if location == "" {
			location = defaultLocation
		}
		if !validLocation(location) {
			// It becomes part of the host name the bearer token is sent to.
			return nil, fmt.Errorf("vertex: location %q is not a Google Cloud location such as us-central1 or global", location)
		}
		base := strings.TrimSuffix(strings.TrimRight(t.BaseURL, "/"), "/v1")
		if base == "" {
			base = vertexBase(location)
		}
		target = base + "/v1/projects/" + url.PathEscape(project) + "/locations/" + url.PathEscape(location) +
			"/publishers/google/models/" + model + method
		if bearer, err = serviceAccountToken(t.APIKey); err != nil {
			return nil, fmt.Errorf("vertex: get an access token for the service account: %w", err)
		}
	default:
		return nil, fmt.Errorf("gemini: unknown platform %q in the provider's config; use gemini or vertex", platform)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "tollgate")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	} else if t.APIKey != "" {
		req.Header.Set("x-goog-api-key", t.APIKey)
	}
	return req, nil
}

// vertexBase is the regional endpoint, or the global one for location
// "global", which has no region prefix.
func vertexBase(location string) string {
	if location == "global" {
		return "https://aiplatform.googleapis.com"
	}
	return "https://" + location + "-aiplatform.googleapis.com"
}

func validLocation(l string) bool {
	for _, r := range l {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return l != ""
}

// The OpenAI chat completions request, as far as Gemini can honour it.
type chatRequest struct {
	Messages            []message       `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	N                   *int            `json:"n"`
	Stop                json.RawMessage `json:"stop"`
	Seed                *int64          `json:"seed"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	ResponseFormat      *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	Tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
		} `json:"function"`
	} `json:"tools"`
	ToolChoice json.RawMessage `json:"tool_choice"`
}

type message struct {
	Role         string          `json:"role"`
	Content      json.RawMessage `json:"content"`
	Name         string          `json:"name"`
	ToolCalls    []toolCall      `json:"tool_calls"`
	ToolCallID   string          `json:"tool_call_id"`
	FunctionCall *functionText   `json:"function_call"` // the legacy single call
}

type toolCall struct {
	ID           string        `json:"id"`
	Function     functionText  `json:"function"`
	ExtraContent *extraContent `json:"extra_content,omitempty"`
}

type functionText struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// extraContent carries Gemini's thought signature on a tool call, the way
// Google's own OpenAI-compatible endpoint does, so that a client echoing
// the assistant message back returns it.
type extraContent struct {
	Google struct {
		ThoughtSignature string `json:"thought_signature"`
	} `json:"google"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Refusal  string `json:"refusal"`
	ImageURL struct {
		URL string `json:"url"`
	} `json:"image_url"`
	InputAudio struct {
		Data   string `json:"data"`
		Format string `json:"format"`
	} `json:"input_audio"`
	File struct {
		FileData string `json:"file_data"`
		FileID   string `json:"file_id"`
	} `json:"file"`
}

// foreignSignature is the value Google documents for function calls that
// the model did not produce in this form (history from another model, or a
// client that dropped extra_content): without any signature, Gemini 3
// answers 400 to a replayed function call.
const foreignSignature = "skip_thought_signature_validator"

func translateRequest(body []byte) (*generateRequest, error) {
	var in chatRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, invalid("", "the body is not a valid chat completions request: %v", err)
	}
	b := contentBuilder{toolNames: map[string]string{}}
	var system []part
	for i, m := range in.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case "system", "developer":
			texts, err := textsOf(param, m.Content)
			if err != nil {
				return nil, err
			}
			for _, s := range texts {
				system = append(system, part{Text: s})
			}
		case "user":
			parts, err := userParts(param, m.Content)
			if err != nil {
				return nil, err
			}
			b.add("user", parts)
		case "assistant":
			parts, err := b.modelParts(param, m)
			if err != nil {
				return nil, err
			}
			b.add("model", parts)
		case "tool", "function":
			p, err := b.functionResult(param, m)
			if err != nil {
				return nil, err
			}
			b.add("user", []part{p})
		default:
			return nil, invalid(param+".role", "role %q is not one of system, developer, user, assistant, tool", m.Role)
		}
	}

	out := &generateRequest{Contents: b.contents}
	switch {
	case len(out.Contents) == 0 && len(system) > 0:
		// Gemini needs at least one turn; a system-only prompt becomes it.
		out.Contents = []content{{Role: "user", Parts: system}}
	case len(system) > 0:
		out.SystemInstruction = &content{Parts: system}
	case out.Contents == nil:
		out.Contents = []content{}
	}
	var err error
	if out.GenerationConfig, err = generation(&in); err != nil {
		return nil, err
	}
	if out.Tools, err = tools(&in); err != nil {
		return nil, err
	}
	if len(out.Tools) > 0 {
		if out.ToolConfig, err = toolChoice(in.ToolChoice); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// contentBuilder collects the conversation; Gemini wants turns to
// alternate, so consecutive messages of one role become one content.
type contentBuilder struct {
	contents  []content
	toolNames map[string]string // tool call id → function name, from earlier assistant turns
}

func (b *contentBuilder) add(role string, parts []part) {
	if len(parts) == 0 {
		return
	}
	if n := len(b.contents); n > 0 && b.contents[n-1].Role == role {
		b.contents[n-1].Parts = append(b.contents[n-1].Parts, parts...)
		return
	}
	b.contents = append(b.contents, content{Role: role, Parts: parts})
}

func (b *contentBuilder) modelParts(param string, m message) ([]part, error) {
	texts, err := textsOf(param, m.Content)
	if err != nil {
		return nil, err
	}
	var parts []part
	for _, s := range texts {
		parts = append(parts, part{Text: s})
	}
	calls := m.ToolCalls
	if m.FunctionCall != nil && len(calls) == 0 {
		calls = []toolCall{{Function: *m.FunctionCall}}
	}
	first, signed := -1, false
	for j, c := range calls {
		cparam := fmt.Sprintf("%s.tool_calls[%d].function", param, j)
		if c.Function.Name == "" {
			return nil, invalid(cparam+".name", "a tool call needs the function's name")
		}
		args, err := callArguments(cparam+".arguments", c.Function.Arguments)
		if err != nil {
			return nil, err
		}
		p := part{FunctionCall: &functionCall{Name: c.Function.Name, Args: args}}
		if c.ExtraContent != nil && c.ExtraContent.Google.ThoughtSignature != "" {
			p.ThoughtSignature = c.ExtraContent.Google.ThoughtSignature
			signed = true
		}
		if first < 0 {
			first = len(parts)
		}
		parts = append(parts, p)
		if c.ID != "" {
			b.toolNames[c.ID] = c.Function.Name
		}
	}
	if first >= 0 && !signed {
		parts[first].ThoughtSignature = foreignSignature
	}
	return parts, nil
}

// callArguments turns the OpenAI arguments string into Gemini's args
// object.
func callArguments(param, s string) (json.RawMessage, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid([]byte(s)) || s[0] != '{' {
		return nil, invalid(param, "the arguments must be a JSON object")
	}
	return json.RawMessage(s), nil
}

func (b *contentBuilder) functionResult(param string, m message) (part, error) {
	name := b.toolNames[m.ToolCallID]
	if m.Role == "function" || name == "" {
		name = m.Name
	}
	if name == "" {
		return part{}, invalid(param+".tool_call_id", "tool_call_id %q matches no tool call of an earlier assistant message", m.ToolCallID)
	}
	texts, err := textsOf(param, m.Content)
	if err != nil {
		return part{}, err
	}
	text := strings.Join(texts, "")
	var result any = text
	if v, err := decodeOrdered([]byte(text)); err == nil {
		result = v
	}
	return part{FunctionResponse: &functionResponse{Name: name, Response: functionResultBody{Content: result}}}, nil
}

// textsOf reads content that may only hold text: a string, or text (and
// refusal) parts.
func textsOf(param string, raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid(param+".content", "%v", err)
		}
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, invalid(param+".content", "content must be a string or an array of content parts")
	}
	var texts []string
	for j, p := range parts {
		switch p.Type {
		case "text":
			if p.Text != "" {
				texts = append(texts, p.Text)
			}
		case "refusal":
			if p.Refusal != "" {
				texts = append(texts, p.Refusal)
			}
		default:
			return nil, invalid(fmt.Sprintf("%s.content[%d].type", param, j), "only text parts are allowed here, not %q", p.Type)
		}
	}
	return texts, nil
}

func userParts(param string, raw json.RawMessage) ([]part, error) {
	if len(raw) > 0 && raw[0] != '[' {
		texts, err := textsOf(param, raw)
		if err != nil {
			return nil, err
		}
		var parts []part
		for _, s := range texts {
			parts = append(parts, part{Text: s})
		}
		return parts, nil
	}
	var items []contentPart
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalid(param+".content", "content must be a string or an array of content parts")
	}
	var parts []part
	for j, p := range items {
		pparam := fmt.Sprintf("%s.content[%d]", param, j)
		switch p.Type {
		case "text":
			if p.Text != "" {
				parts = append(parts, part{Text: p.Text})
			}
		case "image_url":
			img, err := imagePart(pparam+".image_url.url", p.ImageURL.URL)
			if err != nil {
				return nil, err
			}
			parts = append(parts, img)
		case "input_audio":
			if p.InputAudio.Data == "" {
				return nil, invalid(pparam+".input_audio.data", "the audio data is missing")
			}
			parts = append(parts, part{InlineData: &blob{MimeType: "audio/" + p.InputAudio.Format, Data: p.InputAudio.Data}})
		case "file":
			if p.File.FileData == "" {
				return nil, invalid(pparam+".file", "only inline file_data (a data: URL) can be sent to Gemini, not file_id")
			}
			mime, data, ok := parseDataURL(p.File.FileData)
			if !ok {
				return nil, invalid(pparam+".file.file_data", "file_data must be a base64 data: URL")
			}
			parts = append(parts, part{InlineData: &blob{MimeType: mime, Data: data}})
		default:
			return nil, invalid(pparam+".type", "content part type %q is not supported; use text, image_url, input_audio or file", p.Type)
		}
	}
	return parts, nil
}

// imagePart sends a data: URL inline and points Gemini at any other URL.
func imagePart(param, u string) (part, error) {
	if strings.HasPrefix(u, "data:") {
		mime, data, ok := parseDataURL(u)
		if !ok {
			return part{}, invalid(param, "an image data: URL must be base64 encoded, as data:image/png;base64,…")
		}
		return part{InlineData: &blob{MimeType: mime, Data: data}}, nil
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme == "" {
		return part{}, invalid(param, "the image URL must be an http(s) URL or a data: URL")
	}
	return part{FileData: &fileData{MimeType: imageMimeType(parsed.Path), FileURI: u}}, nil
}

var imageTypes = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
	".gif": "image/gif", ".heic": "image/heic", ".heif": "image/heif",
}

func imageMimeType(p string) string {
	if t, ok := imageTypes[strings.ToLower(path.Ext(p))]; ok {
		return t
	}
	return "image/jpeg"
}

// parseDataURL splits data:<mime>;base64,<data>.
func parseDataURL(u string) (mime, data string, ok bool) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return "", "", false
	}
	meta, data, ok := strings.Cut(rest, ",")
	if !ok {
		return "", "", false
	}
	mime, ok = strings.CutSuffix(meta, ";base64")
	if !ok || mime == "" {
		return "", "", false
	}
	if i := strings.IndexByte(mime, ';'); i >= 0 {
		mime = mime[:i] // drop parameters such as charset
	}
	return mime, data, true
}

func generation(in *chatRequest) (*generationConfig, error) {
	g := generationConfig{
		MaxOutputTokens:  in.MaxTokens,
		Temperature:      in.Temperature,
		TopP:             in.TopP,
		Seed:             in.Seed,
		PresencePenalty:  in.PresencePenalty,
		FrequencyPenalty: in.FrequencyPenalty,
	}
	if in.MaxCompletionTokens != nil {
		g.MaxOutputTokens = in.MaxCompletionTokens
	}
	if in.N != nil && *in.N > 1 {
		g.CandidateCount = in.N
	}
	if len(in.Stop) > 0 && string(in.Stop) != "null" {
		var one string
		if err := json.Unmarshal(in.Stop, &one); err == nil {
			g.StopSequences = []string{one}
		} else if err := json.Unmarshal(in.Stop, &g.StopSequences); err != nil {
			return nil, invalid("stop", "stop must be a string or an array of strings")
		}
	}
	if rf := in.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			g.ResponseMimeType = "application/json"
		case "json_schema":
			g.ResponseMimeType = "application/json"
			if rf.JSONSchema != nil && len(rf.JSONSchema.Schema) > 0 {
				s, err := geminiSchema(rf.JSONSchema.Schema, true)
				if err != nil {
					return nil, invalid("response_format.json_schema.schema", "%v", err)
				}
				g.ResponseSchema = s
			}
		default:
			return nil, invalid("response_format.type", "%q is not one of text, json_object, json_schema", rf.Type)
		}
	}
	if g.MaxOutputTokens == nil && g.Temperature == nil && g.TopP == nil && g.Seed == nil &&
		g.PresencePenalty == nil && g.FrequencyPenalty == nil && g.CandidateCount == nil &&
		g.StopSequences == nil && g.ResponseMimeType == "" {
		return nil, nil // nothing set: Gemini's defaults apply
	}
	return &g, nil
}

func tools(in *chatRequest) ([]tool, error) {
	var decls []functionDeclaration
	for i, t := range in.Tools {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" {
			return nil, invalid(param+".type", "only function tools can be sent to Gemini, not %q", t.Type)
		}
		if t.Function.Name == "" {
			return nil, invalid(param+".function.name", "a function needs a name")
		}
		d := functionDeclaration{Name: t.Function.Name, Description: t.Function.Description}
		if len(t.Function.Parameters) > 0 && string(t.Function.Parameters) != "null" {
			s, err := geminiSchema(t.Function.Parameters, false)
			if err != nil {
				return nil, invalid(param+".function.parameters", "%v", err)
			}
			if hasProperties(s) {
				if _, ok := s.get("type"); !ok {
					s = append(object{{"type", "object"}}, s...)
				}
				d.Parameters = s
			}
		}
		decls = append(decls, d)
	}
	if len(decls) == 0 {
		return nil, nil
	}
	return []tool{{FunctionDeclarations: decls}}, nil
}

func toolChoice(raw json.RawMessage) (*toolConfig, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var mode string
	if err := json.Unmarshal(raw, &mode); err == nil {
		switch mode {
		case "auto":
			return &toolConfig{functionCallingConfig{Mode: "AUTO"}}, nil
		case "none":
			return &toolConfig{functionCallingConfig{Mode: "NONE"}}, nil
		case "required":
			return &toolConfig{functionCallingConfig{Mode: "ANY"}}, nil
		}
		return nil, invalid("tool_choice", "%q is not one of auto, none, required", mode)
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(raw, &named); err != nil || named.Type != "function" || named.Function.Name == "" {
		return nil, invalid("tool_choice", `use "auto", "none", "required" or {"type": "function", "function": {"name": …}}`)
	}
	return &toolConfig{functionCallingConfig{Mode: "ANY", AllowedFunctionNames: []string{named.Function.Name}}}, nil
}
