package mockllm

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// converseRequest holds the fields of a Bedrock Converse request that the
// mock reads; the rest (temperature, topP, stopSequences, toolChoice,
// guardrailConfig …) is accepted and ignored.
type converseRequest struct {
	Messages        []converseMessage `json:"messages"`
	System          []converseBlock   `json:"system"`
	InferenceConfig *struct {
		MaxTokens *int `json:"maxTokens"`
	} `json:"inferenceConfig"`
	ToolConfig *struct {
		Tools []struct {
			ToolSpec *struct {
				Name string `json:"name"`
			} `json:"toolSpec"`
		} `json:"tools"`
	} `json:"toolConfig"`
}

type converseMessage struct {
	Role    string          `json:"role"`
	Content []converseBlock `json:"content"`
}

// converseBlock is one member of Converse's content block union. Only text,
// tool results and (inside a tool result) json carry text the mock reads;
// images, documents, toolUse and cachePoint blocks are ignored.
type converseBlock struct {
	Text       *string         `json:"text"`
	JSON       json.RawMessage `json:"json"`
	ToolUse    json.RawMessage `json:"toolUse"`
	ToolResult *struct {
		Content []converseBlock `json:"content"`
	} `json:"toolResult"`
}

type converseAnswer struct {
	Output struct {
		Message converseMessageOut `json:"message"`
	} `json:"output"`
	StopReason string          `json:"stopReason"`
	Usage      converseUsage   `json:"usage"`
	Metrics    converseMetrics `json:"metrics"`
}

type converseMessageOut struct {
	Role    string             `json:"role"`
	Content []converseBlockOut `json:"content"`
}

type converseBlockOut struct {
	Text    *string          `json:"text,omitempty"`
	ToolUse *converseToolUse `json:"toolUse,omitempty"`
}

type converseToolUse struct {
	ToolUseID string          `json:"toolUseId"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
}

type converseUsage struct {
	InputTokens  int `json:"inputTokens"`
	OutputTokens int `json:"outputTokens"`
	TotalTokens  int `json:"totalTokens"`
}

type converseMetrics struct {
	LatencyMs int64 `json:"latencyMs"`
}

// bedrock wraps a Converse endpoint with SigV4 auth, the test hooks and
// failure injection. Every answer carries a request id, as AWS's do.
func (s *server) bedrock(h genHandler) http.Handler {
	next := s.bedrockAuthed(s.hooked(writeBedrockError, h))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-amzn-RequestId", awsRequestID())
		next.ServeHTTP(w, r)
	})
}

// bedrockAuthed enforces Options.APIKey on SigV4-signed requests: the
// Authorization header must be an AWS4-HMAC-SHA256 signature scoped to the
// bedrock service, and its credential's access key id must be the key. So a
// provider whose key is "<Options.APIKey>:<any secret>" gets in. The
// signature itself is not checked: the mock has one key, not a secret to
// sign with (gateway/bedrock's own tests verify signatures).
func (s *server) bedrockAuthed(next http.Handler) http.Handler {
	if s.opts.APIKey == "" {
		return next
	}
	want := []byte(s.opts.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			writeBedrockErrorType(w, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
			return
		}
		sig, missing := parseSigV4(auth)
		if r.Header.Get("X-Amz-Date") == "" {
			missing = append(missing, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
		}
		switch {
		case len(missing) > 0:
			writeBedrockErrorType(w, http.StatusBadRequest, "IncompleteSignatureException", strings.Join(missing, " "))
		case sig.service != "bedrock":
			writeBedrockErrorType(w, http.StatusForbidden, "InvalidSignatureException",
				fmt.Sprintf("Credential should be scoped to correct service: 'bedrock'. (got %q)", sig.service))
		case subtle.ConstantTimeCompare([]byte(sig.accessKeyID), want) != 1:
			writeBedrockErrorType(w, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// sigV4 is what the mock reads of a SigV4 Authorization header.
type sigV4 struct {
	accessKeyID, service string
}

// parseSigV4 reads "AWS4-HMAC-SHA256 Credential=AKID/date/region/service/
// aws4_request, SignedHeaders=…, Signature=…"; missing lists, in AWS's
// words, each part that is absent or malformed.
func parseSigV4(auth string) (sig sigV4, missing []string) {
	params, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return sig, []string{"Authorization header must start with 'AWS4-HMAC-SHA256'."}
	}
	found := map[string]string{}
	for p := range strings.SplitSeq(params, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok {
			found[k] = v
		}
	}
	scope := strings.Split(found["Credential"], "/")
	if len(scope) != 5 || scope[0] == "" || scope[4] != "aws4_request" {
		missing = append(missing, "Authorization header requires 'Credential' parameter.")
	} else {
		sig = sigV4{accessKeyID: scope[0], service: scope[3]}
	}
	for _, p := range []string{"Signature", "SignedHeaders"} {
		if found[p] == "" {
			missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", p))
		}
	}
	return sig, missing
}

func (s *server) converse(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	reply, ok := readConverse(w, r)
	if !ok || !sleep(r.Context(), delay) {
		return
	}
	var answer converseAnswer
	text := reply.gen.text()
	answer.Output.Message = converseMessageOut{Role: "assistant", Content: []converseBlockOut{{Text: &text}}}
	if reply.tool != "" {
		answer.Output.Message.Content = append(answer.Output.Message.Content, converseBlockOut{ToolUse: &converseToolUse{
			ToolUseID: newID("tooluse_mock"), Name: reply.tool, Input: toolInput,
		}})
	}
	answer.StopReason = reply.stopReason()
	answer.Usage = converseUsageOf(reply.gen)
	answer.Metrics.LatencyMs = delay.Milliseconds()
	writeJSON(w, http.StatusOK, answer)
}

func (s *server) converseStream(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	reply, ok := readConverse(w, r)
	if !ok {
		return
	}
	frames, err := converseEvents(reply, delay)
	if err != nil {
		writeBedrockError(w, &apiError{Status: http.StatusInternalServerError, Message: "mock-llm could not frame the stream: " + err.Error()})
		return
	}
	streamFrames(w, r, "application/vnd.amazon.eventstream", delay, frames, nil)
}

// readConverse decodes and answers a Converse body, or answers its error.
func readConverse(w http.ResponseWriter, r *http.Request) (anthropicReply, bool) {
	var req converseRequest
	if e := decodeBody(w, r, &req); e != nil {
		if e.Status == http.StatusBadRequest {
			e.Message = "Malformed input request, please reformat your input and retry."
		}
		writeBedrockError(w, e)
		return anthropicReply{}, false
	}
	reply, e := req.generate()
	if e != nil {
		writeBedrockError(w, e)
		return anthropicReply{}, false
	}
	return reply, true
}

const startWithUser = "A conversation must start with a user message. Try again with a conversation that starts with a user message."

// generate validates the request as Converse does and produces its
// deterministic answer. Like Converse, it refuses toolUse and toolResult
// blocks in a request that declares no tools. Converse's stop reasons are Anthropic's words
// (end_turn, tool_use, max_tokens), so the answer is an anthropicReply. The
// system blocks count as a leading system turn, so a chat request with one
// system message gets the same answer and usage as its Converse translation.
func (req *converseRequest) generate() (anthropicReply, *apiError) {
	if req.Messages == nil {
		return anthropicReply{}, invalid("1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null")
	}
	if len(req.Messages) == 0 {
		return anthropicReply{}, invalid(startWithUser)
	}
	maxTokens := 0
	if ic := req.InferenceConfig; ic != nil && ic.MaxTokens != nil {
		if *ic.MaxTokens < 1 {
			return anthropicReply{}, invalid("1 validation error detected: Value '%d' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1", *ic.MaxTokens)
		}
		maxTokens = *ic.MaxTokens
	}
	var turns []turn
	if system, _ := converseText(req.System); system != "" {
		turns = append(turns, turn{role: "system", text: system})
	}
	var lastUser string
	var lastHasResult, toolBlocks bool
	for i, m := range req.Messages {
		switch {
		case m.Role != "user" && m.Role != "assistant":
			return anthropicReply{}, invalid("1 validation error detected: Value '%s' at 'messages.%d.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]", m.Role, i+1)
		case i == 0 && m.Role != "user":
			return anthropicReply{}, invalid(startWithUser)
		case i > 0 && m.Role == req.Messages[i-1].Role:
			return anthropicReply{}, invalid("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.")
		case len(m.Content) == 0:
			return anthropicReply{}, invalid("The content field in the Message object at messages.%d is empty. Add a ContentBlock object to the content field and try again.", i)
		}
		text, hasResult := converseText(m.Content)
		toolBlocks = toolBlocks || hasResult || slices.ContainsFunc(m.Content, func(b converseBlock) bool { return len(b.ToolUse) > 0 })
		turns = append(turns, turn{role: m.Role, text: text})
		if m.Role == "user" {
			lastUser, lastHasResult = text, hasResult
		}
	}
	var tool string
	if tc := req.ToolConfig; tc != nil {
		for _, t := range tc.Tools {
			if t.ToolSpec != nil && t.ToolSpec.Name != "" {
				tool = t.ToolSpec.Name
				break
			}
		}
	}
	if toolBlocks && tool == "" {
		return anthropicReply{}, invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
	}
	g := newConversation(turns).answer(maxTokens)
	reply := anthropicReply{gen: g}
	if callsTool(tool != "", lastUser, lastHasResult, g) {
		reply.tool = tool
	}
	return reply, nil
}

// converseText joins the text blocks and tool results of a content list by
// newlines; a tool result's json blocks count as compact JSON, as Gemini's
// function responses do.
func converseText(blocks []converseBlock) (text string, hasResult bool) {
	var texts []string
	for _, b := range blocks {
		switch {
		case b.Text != nil:
			texts = append(texts, *b.Text)
		case len(b.JSON) > 0:
			var c bytes.Buffer
			if json.Compact(&c, b.JSON) == nil {
				texts = append(texts, c.String())
			}
		case b.ToolResult != nil:
			hasResult = true
			if inner, _ := converseText(b.ToolResult.Content); inner != "" {
				texts = append(texts, inner)
			}
		}
	}
	return strings.Join(texts, "\n"), hasResult
}

func converseUsageOf(g generation) converseUsage {
	return converseUsage{InputTokens: g.usage.PromptTokens, OutputTokens: g.usage.CompletionTokens, TotalTokens: g.usage.TotalTokens}
}

// Stream event payloads, each named by its :event-type header.
type (
	converseStart struct {
		Role string `json:"role"`
		P    string `json:"p"`
	}
	converseBlockEvent struct {
		ContentBlockIndex int                `json:"contentBlockIndex"`
		Start             *converseBlockOpen `json:"start,omitempty"`
		Delta             *converseDelta     `json:"delta,omitempty"`
		P                 string             `json:"p"`
	}
	converseBlockOpen struct {
		ToolUse converseToolStart `json:"toolUse"`
	}
	converseToolStart struct {
		ToolUseID string `json:"toolUseId"`
		Name      string `json:"name"`
	}
	converseDelta struct {
		Text    *string            `json:"text,omitempty"`
		ToolUse *converseToolInput `json:"toolUse,omitempty"`
	}
	converseToolInput struct {
		Input string `json:"input"` // a fragment of the input's JSON
	}
	converseStop struct {
		StopReason string `json:"stopReason"`
		P          string `json:"p"`
	}
	converseMetadata struct {
		Usage   converseUsage   `json:"usage"`
		Metrics converseMetrics `json:"metrics"`
	}
)

// converseEvents lays out a streamed answer as ConverseStream does, each
// event an AWS event stream message: messageStart, one contentBlockDelta
// per word of the text block (text blocks open with their first delta,
// without contentBlockStart) and its contentBlockStop, the tool call's
// block when the rule fires (contentBlockStart with the id and name, the
// input as one JSON fragment, contentBlockStop), messageStop with the stop
// reason, and metadata with the usage.
func converseEvents(reply anthropicReply, latency time.Duration) ([][]byte, error) {
	type event struct {
		eventType string
		payload   any
	}
	// Each event but metadata carries padding "p" of a different length, as
	// Bedrock adds against length side channels; clients must ignore it.
	n := 0
	pad := func() string {
		n++
		return padding[:1+(n*23)%len(padding)]
	}
	events := []event{{"messageStart", converseStart{Role: "assistant", P: pad()}}}
	for i, word := range reply.gen.words {
		if i > 0 {
			word = " " + word
		}
		events = append(events, event{"contentBlockDelta", converseBlockEvent{ContentBlockIndex: 0, Delta: &converseDelta{Text: &word}, P: pad()}})
	}
	events = append(events, event{"contentBlockStop", converseBlockEvent{ContentBlockIndex: 0, P: pad()}})
	if reply.tool != "" {
		start := &converseBlockOpen{ToolUse: converseToolStart{ToolUseID: newID("tooluse_mock"), Name: reply.tool}}
		input := &converseDelta{ToolUse: &converseToolInput{Input: string(toolInput)}}
		events = append(events,
			event{"contentBlockStart", converseBlockEvent{ContentBlockIndex: 1, Start: start, P: pad()}},
			event{"contentBlockDelta", converseBlockEvent{ContentBlockIndex: 1, Delta: input, P: pad()}},
			event{"contentBlockStop", converseBlockEvent{ContentBlockIndex: 1, P: pad()}})
	}
	events = append(events,
		event{"messageStop", converseStop{StopReason: reply.stopReason(), P: pad()}},
		event{"metadata", converseMetadata{Usage: converseUsageOf(reply.gen), Metrics: converseMetrics{LatencyMs: latency.Milliseconds()}}})

	enc := eventstream.NewEncoder()
	frames := make([][]byte, 0, len(events))
	for _, ev := range events {
		data, err := json.Marshal(ev.payload)
		if err != nil {
			return nil, fmt.Errorf("encode %s event: %w", ev.eventType, err)
		}
		msg := eventstream.Message{Payload: data}
		msg.Headers.Set(":event-type", eventstream.StringValue(ev.eventType))
		msg.Headers.Set(":content-type", eventstream.StringValue("application/json"))
		msg.Headers.Set(":message-type", eventstream.StringValue("event"))
		var b bytes.Buffer
		if err := enc.Encode(&b, msg); err != nil {
			return nil, fmt.Errorf("frame %s event: %w", ev.eventType, err)
		}
		frames = append(frames, b.Bytes())
	}
	return frames, nil
}

const padding = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// writeBedrockError answers in Bedrock's error shape, the exception type
// following the status as the Bedrock Runtime API documents it.
func writeBedrockError(w http.ResponseWriter, e *apiError) {
	writeBedrockErrorType(w, e.Status, bedrockErrorType(e.Status), e.Message)
}

// writeBedrockErrorType answers {"message": …} with the exception's name in
// x-amzn-ErrorType, where AWS SDKs read it.
func writeBedrockErrorType(w http.ResponseWriter, status int, errType, message string) {
	w.Header().Set("x-amzn-ErrorType", errType)
	writeJSON(w, status, struct {
		Message string `json:"message"`
	}{message})
}

func bedrockErrorType(status int) string {
	switch status {
	case http.StatusForbidden:
		return "AccessDeniedException"
	case http.StatusNotFound:
		return "ResourceNotFoundException"
	case http.StatusRequestTimeout:
		return "ModelTimeoutException"
	case http.StatusFailedDependency:
		return "ModelErrorException"
	case http.StatusTooManyRequests:
		return "ThrottlingException"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailableException"
	}
	if status >= 500 {
		return "InternalServerException"
	}
	return "ValidationException"
}

// awsRequestID is a UUID-shaped request id, drawn from the global source
// like newID so it never moves the seeded jitter/error sequence.
func awsRequestID() string {
	a, b := rand.Uint64(), rand.Uint64()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xffff, b>>48, b&0xffffffffffff)
}
