package mockllm

import "strings"

// turn is one message of a conversation in any wire format, reduced to what
// the generator reads: its role in OpenAI's words (system, user, assistant,
// tool …) and its text.
type turn struct {
	role, text string
}

// conversation is what a deterministic answer is derived from. Every wire
// format builds it the same way, so the same conversation gets the same
// answer and the same usage whichever format asks.
type conversation struct {
	prompt       string // the text answered: the last user turn, else the last turn
	seed         uint64 // a hash of every role and text
	promptTokens int    // EstimateTokens of all texts, plus 3 per turn, plus 3
}

func newConversation(turns []turn) conversation {
	texts := make([]string, len(turns))
	hashParts := make([]string, 0, 2*len(turns))
	answerTo := len(turns) - 1
	for i, t := range turns {
		texts[i] = t.text
		hashParts = append(hashParts, t.role, t.text)
		if t.role == "user" {
			answerTo = i
		}
	}
	c := conversation{
		seed:         hashStrings(hashParts...),
		promptTokens: EstimateTokens(strings.Join(texts, "")) + 3*len(turns) + 3,
	}
	if answerTo >= 0 {
		c.prompt = texts[answerTo]
	}
	return c
}

// answer generates the reply, capped at maxTokens (0 = uncapped).
func (c conversation) answer(maxTokens int) generation {
	return generate(c.prompt, c.seed, c.promptTokens, maxTokens)
}

// alternative generates the n-th of several candidate replies; the 0th is
// answer itself.
func (c conversation) alternative(n, maxTokens int) generation {
	return generate(c.prompt, c.seed+uint64(n), c.promptTokens, maxTokens)
}

// toolWord triggers a tool call in the Anthropic, Gemini and Bedrock formats.
const toolWord = "weather"

// callsTool is the mock's tool rule: a request that declares tools gets a
// call to the first one when its last user turn mentions the weather (any
// case), carries no tool result, and the answer was not cut by the token
// cap. A conversation that already answers a call therefore ends in text.
func callsTool(hasTools bool, lastUser string, hasToolResult bool, g generation) bool {
	return hasTools && !hasToolResult && g.finish == "stop" &&
		strings.Contains(strings.ToLower(lastUser), toolWord)
}
