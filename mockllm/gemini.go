package mockllm

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const (
	maxCandidates = 8
	// wordsPerChunk is how many words each streamed Gemini chunk carries.
	wordsPerChunk = 4
)

// geminiRequest holds the fields of a generateContent request that the mock
// reads; the rest (safetySettings, toolConfig, temperature …) is accepted
// and ignored.
type geminiRequest struct {
	Contents          []geminiContent `json:"contents"`
	SystemInstruction *geminiContent  `json:"systemInstruction"`
	GenerationConfig  *struct {
		MaxOutputTokens *int `json:"maxOutputTokens"`
		CandidateCount  *int `json:"candidateCount"`
	} `json:"generationConfig"`
	Tools []struct {
		FunctionDeclarations []struct {
			Name string `json:"name"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
}

type geminiContent struct {
	Role  string       `json:"role"`
	Parts []geminiPart `json:"parts"`
}

// geminiPart holds one of text, functionCall, functionResponse or
// inlineData; only text and function responses carry text the mock reads.
type geminiPart struct {
	Text             *string `json:"text"`
	FunctionResponse *struct {
		Name     string          `json:"name"`
		Response json.RawMessage `json:"response"`
	} `json:"functionResponse"`
}

type geminiResponse struct {
	Candidates    []geminiCandidate `json:"candidates"`
	UsageMetadata *geminiUsage      `json:"usageMetadata,omitempty"`
	ModelVersion  string            `json:"modelVersion"`
	ResponseID    string            `json:"responseId"`
}

type geminiCandidate struct {
	Content      *geminiContentOut `json:"content,omitempty"`
	FinishReason string            `json:"finishReason,omitempty"`
	Index        int               `json:"index"`
}

type geminiContentOut struct {
	Role  string          `json:"role"`
	Parts []geminiPartOut `json:"parts"`
}

type geminiPartOut struct {
	Text         string      `json:"text,omitempty"`
	FunctionCall *geminiCall `json:"functionCall,omitempty"`
}

type geminiCall struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args"`
}

type geminiUsage struct {
	PromptTokenCount     int `json:"promptTokenCount"`
	CandidatesTokenCount int `json:"candidatesTokenCount"`
	TotalTokenCount      int `json:"totalTokenCount"`
}

// geminiReply is one candidate with the function call the rule adds.
type geminiReply struct {
	gen  generation
	tool string // the function called, or ""
}

func (c geminiReply) finishReason() string {
	if c.gen.finish == "length" {
		return "MAX_TOKENS"
	}
	return "STOP"
}

// googleKeyAuthed enforces Options.APIKey the way the Gemini API does: the
// key in x-goog-api-key (or the key query parameter); none is 403, a wrong
// one 400 API_KEY_INVALID.
func (s *server) googleKeyAuthed(next http.Handler) http.Handler {
	if s.opts.APIKey == "" {
		return next
	}
	want := []byte(s.opts.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("x-goog-api-key")
		if key == "" {
			key = r.URL.Query().Get("key")
		}
		switch {
		case key == "":
			writeGoogleErrorReason(w, http.StatusForbidden,
				"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
				"")
		case subtle.ConstantTimeCompare([]byte(key), want) != 1:
			writeGoogleErrorReason(w, http.StatusBadRequest, "API key not valid. Please pass a valid API key.", "API_KEY_INVALID")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// vertexAuthed stands in for Google's OAuth check when Options.APIKey is
// set: any non-empty bearer token is taken, since the mock cannot verify
// tokens issued for a service account.
func (s *server) vertexAuthed(next http.Handler) http.Handler {
	if s.opts.APIKey == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.TrimSpace(token) == "" {
			writeGoogleErrorReason(w, http.StatusUnauthorized,
				"Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
				"CREDENTIALS_MISSING")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// generateContent serves {model}:generateContent and
// {model}:streamGenerateContent, on the Gemini API and on Vertex AI alike.
func (s *server) generateContent(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	call := r.PathValue("call")
	cut := strings.LastIndexByte(call, ':')
	if cut <= 0 {
		writeGoogleError(w, &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("models/%s is not found, or is not supported for this method.", call)})
		return
	}
	model, method := call[:cut], call[cut+1:]
	if method != "generateContent" && method != "streamGenerateContent" {
		writeGoogleError(w, &apiError{Status: http.StatusNotFound, Message: fmt.Sprintf("Method %q is not supported: use generateContent or streamGenerateContent.", method)})
		return
	}
	var req geminiRequest
	if e := decodeBody(w, r, &req); e != nil {
		if e.Status == http.StatusBadRequest {
			e.Message = "Invalid JSON payload received. " + e.Message
		}
		writeGoogleError(w, e)
		return
	}
	replies, u, e := req.generate()
	if e != nil {
		writeGoogleError(w, e)
		return
	}
	base := geminiResponse{ModelVersion: model, ResponseID: newID("mock")}
	if method == "streamGenerateContent" {
		chunks := geminiChunks(base, replies, u)
		if r.URL.Query().Get("alt") == "sse" {
			frames := make([][]byte, len(chunks))
			for i, c := range chunks {
				frames[i] = fmt.Appendf(nil, "data: %s\r\n\r\n", c)
			}
			streamFrames(w, r, "text/event-stream", delay, frames, nil)
			return
		}
		// Without alt=sse Google streams one JSON array, element by element.
		frames := make([][]byte, len(chunks))
		for i, c := range chunks {
			sep := ",\r\n"
			if i == 0 {
				sep = "["
			}
			frames[i] = append([]byte(sep), c...)
		}
		frames[len(frames)-1] = append(frames[len(frames)-1], ']')
		streamFrames(w, r, "application/json; charset=UTF-8", delay, frames, nil)
		return
	}
	if !sleep(r.Context(), delay) {
		return
	}
	for i, c := range replies {
		parts := []geminiPartOut{{Text: c.gen.text()}}
		if c.tool != "" {
			parts = append(parts, geminiPartOut{FunctionCall: &geminiCall{Name: c.tool, Args: toolInput}})
		}
		base.Candidates = append(base.Candidates, geminiCandidate{
			Content:      &geminiContentOut{Role: "model", Parts: parts},
			FinishReason: c.finishReason(),
			Index:        i,
		})
	}
	base.UsageMetadata = &u
	writeJSON(w, http.StatusOK, base)
}

// generate validates the request and produces one deterministic reply per
// candidate. A systemInstruction counts as a leading system turn and role
// model as assistant, so a chat request gets the same first candidate and
// usage as its generateContent translation.
func (req *geminiRequest) generate() ([]geminiReply, geminiUsage, *apiError) {
	if len(req.Contents) == 0 {
		return nil, geminiUsage{}, invalid("* GenerateContentRequest.contents: contents is not specified")
	}
	maxTokens, candidates := 0, 1
	if gc := req.GenerationConfig; gc != nil {
		if v := gc.MaxOutputTokens; v != nil {
			if *v < 1 {
				return nil, geminiUsage{}, invalid("* GenerateContentRequest.generation_config.max_output_tokens: must be positive")
			}
			maxTokens = *v
		}
		if v := gc.CandidateCount; v != nil {
			if *v < 1 || *v > maxCandidates {
				return nil, geminiUsage{}, invalid("* GenerateContentRequest.generation_config.candidate_count: must be between 1 and %d", maxCandidates)
			}
			candidates = *v
		}
	}
	var turns []turn
	if si := req.SystemInstruction; si != nil {
		if text, _ := geminiText(si.Parts); text != "" {
			turns = append(turns, turn{role: "system", text: text})
		}
	}
	var lastUser string
	var lastHasResult bool
	for i, c := range req.Contents {
		role := c.Role
		switch role {
		case "", "user":
			role = "user"
		case "model":
			role = "assistant"
		default:
			return nil, geminiUsage{}, invalid("Please use a valid role: user, model.")
		}
		if len(c.Parts) == 0 {
			return nil, geminiUsage{}, invalid("* GenerateContentRequest.contents[%d].parts: contents.parts must not be empty.", i)
		}
		text, hasResult := geminiText(c.Parts)
		turns = append(turns, turn{role: role, text: text})
		if role == "user" {
			lastUser, lastHasResult = text, hasResult
		}
	}
	var tool string
	for _, t := range req.Tools {
		if len(t.FunctionDeclarations) > 0 {
			tool = t.FunctionDeclarations[0].Name
			break
		}
	}
	conv := newConversation(turns)
	replies := make([]geminiReply, candidates)
	u := geminiUsage{PromptTokenCount: conv.promptTokens}
	for i := range replies {
		g := conv.alternative(i, maxTokens)
		replies[i].gen = g
		if callsTool(tool != "", lastUser, lastHasResult, g) {
			replies[i].tool = tool
		}
		u.CandidatesTokenCount += g.usage.CompletionTokens
	}
	u.TotalTokenCount = u.PromptTokenCount + u.CandidatesTokenCount
	return replies, u, nil
}

// geminiText joins the text parts and function responses (as compact JSON)
// of a content by newlines; inline data and function calls are ignored.
func geminiText(parts []geminiPart) (text string, hasResult bool) {
	var texts []string
	for _, p := range parts {
		switch {
		case p.Text != nil:
			texts = append(texts, *p.Text)
		case p.FunctionResponse != nil:
			hasResult = true
			var b bytes.Buffer
			if json.Compact(&b, p.FunctionResponse.Response) == nil {
				texts = append(texts, b.String())
			}
		}
	}
	return strings.Join(texts, "\n"), hasResult
}

// geminiChunks lays out a streamed answer as Gemini does: every chunk is a
// whole GenerateContentResponse carrying the next few words of each
// candidate; the last one also carries the function call, the finish
// reasons and the usage.
func geminiChunks(base geminiResponse, replies []geminiReply, u geminiUsage) [][]byte {
	n := 0
	for _, c := range replies {
		n = max(n, (len(c.gen.words)+wordsPerChunk-1)/wordsPerChunk)
	}
	chunks := make([][]byte, n)
	for k := range n {
		chunk := base
		chunk.Candidates = nil
		last := k == n-1
		for i, c := range replies {
			cand := geminiCandidate{Index: i}
			var parts []geminiPartOut
			if from := k * wordsPerChunk; from < len(c.gen.words) {
				text := strings.Join(c.gen.words[from:min(from+wordsPerChunk, len(c.gen.words))], " ")
				if k > 0 {
					text = " " + text
				}
				parts = append(parts, geminiPartOut{Text: text})
			}
			if last {
				if c.tool != "" {
					parts = append(parts, geminiPartOut{FunctionCall: &geminiCall{Name: c.tool, Args: toolInput}})
				}
				cand.FinishReason = c.finishReason()
			}
			if len(parts) == 0 && !last {
				continue
			}
			if len(parts) > 0 {
				cand.Content = &geminiContentOut{Role: "model", Parts: parts}
			}
			chunk.Candidates = append(chunk.Candidates, cand)
		}
		if last {
			chunk.UsageMetadata = &u
		}
		chunks[k], _ = json.Marshal(chunk) // plain structs cannot fail to marshal
	}
	return chunks
}

// writeGoogleError answers in Google's error envelope.
func writeGoogleError(w http.ResponseWriter, e *apiError) {
	writeGoogleErrorReason(w, e.Status, e.Message, "")
}

// writeGoogleErrorReason answers in Google's error envelope; a reason adds
// the google.rpc.ErrorInfo detail Google sends with auth errors.
func writeGoogleErrorReason(w http.ResponseWriter, status int, message, reason string) {
	type errorInfo struct {
		Type   string `json:"@type"`
		Reason string `json:"reason"`
		Domain string `json:"domain"`
	}
	type body struct {
		Code    int         `json:"code"`
		Message string      `json:"message"`
		Status  string      `json:"status"`
		Details []errorInfo `json:"details,omitempty"`
	}
	b := body{Code: status, Message: message, Status: googleStatus(status)}
	if reason != "" {
		b.Details = []errorInfo{{Type: "type.googleapis.com/google.rpc.ErrorInfo", Reason: reason, Domain: "googleapis.com"}}
	}
	writeJSON(w, status, map[string]body{"error": b})
}

// googleStatus is the google.rpc.Code name Google sends with an HTTP status.
func googleStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "NOT_FOUND"
	case http.StatusConflict:
		return "ABORTED"
	case http.StatusTooManyRequests:
		return "RESOURCE_EXHAUSTED"
	case 499:
		return "CANCELLED"
	case http.StatusNotImplemented:
		return "UNIMPLEMENTED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	}
	if status >= 500 {
		return "INTERNAL"
	}
	return "FAILED_PRECONDITION"
}
