package mockllm

import (
	"hash/fnv"
	"io"
	"strings"
	"unicode/utf8"
)

// EstimateTokens is the mock's tokenizer: one token per four characters
// (runes) of s, rounded up. Usage numbers are built from it so tests can
// predict them:
//
//   - chat prompt_tokens = EstimateTokens(all message texts concatenated),
//     plus 3 per message, plus 3; a message's text is its string content or
//     its text parts joined by "\n" (other parts are ignored);
//   - completions prompt_tokens = EstimateTokens(prompt), summed over prompts;
//   - embeddings prompt_tokens = EstimateTokens(input) per string input, or
//     the array length per token-array input;
//   - completion_tokens = the number of space-separated words in the answer.
func EstimateTokens(s string) int {
	return (utf8.RuneCountInString(s) + 3) / 4
}

// vocabulary supplies the filler words of mock answers.
var vocabulary = [...]string{
	"gateway", "token", "latency", "stream", "model", "cache", "budget", "request",
	"router", "quota", "signal", "vector", "prompt", "answer", "policy", "tenant",
	"metric", "trace", "shard", "replica", "window", "bucket", "header", "payload",
	"sample", "cluster", "region", "fallback", "retry", "limit", "ledger", "audit",
}

const snippetRunes = 60

// generation is one generated answer, already capped by max tokens.
type generation struct {
	words  []string // one token each; joined by single spaces they form the text
	finish string   // "stop" or "length"
	usage  usage
}

func (g generation) text() string { return strings.Join(g.words, " ") }

// generate builds the deterministic answer to prompt. It echoes the start of
// the prompt so humans can match answers to requests, then adds 8-16 filler
// words chosen by seed so different requests differ in content and length.
// maxTokens 0 means no cap.
func generate(prompt string, seed uint64, promptTokens, maxTokens int) generation {
	words := []string{"Mock", "answer", "to:"}
	words = append(words, snippet(prompt)...)
	rnd := splitMix(seed)
	n := 8 + int(seed%9)
	for range n {
		words = append(words, vocabulary[rnd.next()%uint64(len(vocabulary))])
	}
	words[len(words)-1] += "."

	g := generation{words: words, finish: "stop"}
	if maxTokens > 0 && len(words) > maxTokens {
		g.words, g.finish = words[:maxTokens], "length"
	}
	g.usage = usage{
		PromptTokens:     promptTokens,
		CompletionTokens: len(g.words),
		TotalTokens:      promptTokens + len(g.words),
	}
	return g
}

// snippet returns the first ~60 characters of prompt as words, whitespace
// collapsed so the words rejoin into exactly the answer text.
func snippet(prompt string) []string {
	s := strings.Join(strings.Fields(prompt), " ")
	if s == "" {
		return []string{"(empty)"}
	}
	if utf8.RuneCountInString(s) > snippetRunes {
		s = strings.TrimSpace(string([]rune(s)[:snippetRunes])) + "..."
	}
	return strings.Fields(s)
}

// hashStrings is FNV-1a over parts, NUL-separated so ("ab","c") and
// ("a","bc") differ.
func hashStrings(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = io.WriteString(h, p)
		_, _ = h.Write([]byte{0})
	}
	return h.Sum64()
}

// splitMix is the SplitMix64 generator: tiny, with a fixed, documented
// output sequence, so answers and vectors stay stable across Go releases.
type splitMix uint64

func (s *splitMix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
