package mockllm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"
)

const (
	defaultDimensions = 16
	maxDimensions     = 4096
)

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// embedInput is one input to embed: the text its vector is derived from and
// the tokens it is billed as.
type embedInput struct {
	key    string
	tokens int
}

type embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"` // []float64, or a base64 string of float32s
}

func (s *server) embeddings(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	var req embeddingRequest
	if e := decodeBody(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Model == "" {
		writeError(w, missingParam("model"))
		return
	}
	inputs, e := parseEmbeddingInput(req.Input)
	if e != nil {
		writeError(w, e)
		return
	}
	dims := defaultDimensions
	if req.Dimensions != nil {
		dims = *req.Dimensions
		if dims < 1 || dims > maxDimensions {
			writeError(w, badRequest("dimensions", "invalid_value",
				fmt.Sprintf("Invalid 'dimensions': expected a value between 1 and %d, got %d.", maxDimensions, dims)))
			return
		}
	}
	// The official Python client asks for base64 by default, so support it.
	if req.EncodingFormat != "" && req.EncodingFormat != "float" && req.EncodingFormat != "base64" {
		writeError(w, badRequest("encoding_format", "invalid_value",
			"Invalid 'encoding_format': expected 'float' or 'base64'."))
		return
	}

	data := make([]embedding, len(inputs))
	tokens := 0
	for i, in := range inputs {
		vec := embedVector(in.key, dims)
		data[i] = embedding{Object: "embedding", Index: i, Embedding: vec}
		if req.EncodingFormat == "base64" {
			data[i].Embedding = encodeBase64(vec)
		}
		tokens += in.tokens
	}
	if !sleep(r.Context(), delay) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data":   data,
		"model":  req.Model,
		"usage":  map[string]int{"prompt_tokens": tokens, "total_tokens": tokens},
	})
}

// parseEmbeddingInput accepts every input shape OpenAI does: a string, an
// array of strings, a token array, or an array of token arrays.
func parseEmbeddingInput(raw json.RawMessage) ([]embedInput, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, missingParam("input")
	}
	invalid := badRequest("input", "invalid_value",
		"Invalid 'input': expected a non-empty string, array of strings, or array of token arrays.")

	var one string
	if json.Unmarshal(raw, &one) == nil {
		return textInputs([]string{one}, invalid)
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return textInputs(many, invalid)
	}
	var tokens []int
	if json.Unmarshal(raw, &tokens) == nil {
		return tokenInputs([][]int{tokens}, invalid)
	}
	var batches [][]int
	if json.Unmarshal(raw, &batches) == nil {
		return tokenInputs(batches, invalid)
	}
	return nil, invalid
}

func textInputs(texts []string, invalid *apiError) ([]embedInput, *apiError) {
	if len(texts) == 0 {
		return nil, invalid
	}
	inputs := make([]embedInput, len(texts))
	for i, s := range texts {
		if s == "" {
			return nil, invalid
		}
		inputs[i] = embedInput{key: s, tokens: EstimateTokens(s)}
	}
	return inputs, nil
}

func tokenInputs(batches [][]int, invalid *apiError) ([]embedInput, *apiError) {
	if len(batches) == 0 {
		return nil, invalid
	}
	inputs := make([]embedInput, len(batches))
	for i, b := range batches {
		if len(b) == 0 {
			return nil, invalid
		}
		// A distinct prefix keeps token input [1 2] apart from the text "[1 2]".
		inputs[i] = embedInput{key: fmt.Sprint("tokens:", b), tokens: len(b)}
	}
	return inputs, nil
}

// embedVector derives a unit-length vector from key: FNV seeds a SplitMix64
// stream of components in [-1, 1), which are then normalised.
func embedVector(key string, dims int) []float64 {
	rnd := splitMix(hashStrings(key))
	vec := make([]float64, dims)
	var norm float64
	for i := range vec {
		vec[i] = float64(rnd.next()>>11)/(1<<53)*2 - 1
		norm += vec[i] * vec[i]
	}
	norm = math.Sqrt(norm)
	for i := range vec {
		vec[i] /= norm
	}
	return vec
}

// encodeBase64 packs vec as little-endian float32s, OpenAI's base64 format.
func encodeBase64(vec []float64) string {
	buf := make([]byte, 0, 4*len(vec))
	for _, f := range vec {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32(f)))
	}
	return base64.StdEncoding.EncodeToString(buf)
}
