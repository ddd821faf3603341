package guardrails

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"tollgate/gateway/tokens"
	"tollgate/store"
)

// sizeLimit bounds a whole prompt: every text of the request together.
type sizeLimit struct {
	maxTokens int64
	maxChars  int64
}

func (r *Rule) compileSize(config []byte) error {
	var c struct {
		MaxTokens *int64 `json:"max_tokens"`
		MaxChars  *int64 `json:"max_chars"`
	}
	if err := decodeConfig(config, &c, `"max_tokens" and/or "max_chars" (positive integers)`); err != nil {
		return err
	}
	if c.MaxTokens == nil && c.MaxChars == nil {
		return errors.New(`config: set "max_tokens", "max_chars" or both`)
	}
	if c.MaxTokens != nil && *c.MaxTokens <= 0 {
		return fmt.Errorf("config.max_tokens: must be a positive integer (got %d)", *c.MaxTokens)
	}
	if c.MaxChars != nil && *c.MaxChars <= 0 {
		return fmt.Errorf("config.max_chars: must be a positive integer (got %d)", *c.MaxChars)
	}
	if r.Mode == store.ModePostCall {
		return errors.New("mode: max_prompt_size checks prompts, so it runs pre_call or during_call, not post_call")
	}
	if r.Action == store.ActionMask {
		return errors.New("action: mask is not possible for max_prompt_size (there is nothing to replace); use block or log")
	}
	r.size = &sizeLimit{}
	if c.MaxTokens != nil {
		r.size.maxTokens = *c.MaxTokens
	}
	if c.MaxChars != nil {
		r.size.maxChars = *c.MaxChars
	}
	return nil
}

// check measures the prompt: characters first, since they are cheap, then
// tokens with the model's vocabulary (gateway/tokens), without the few
// tokens of chat formatting.
func (l *sizeLimit) check(in Input) (string, bool) {
	if l.maxChars > 0 {
		var n int64
		for _, t := range in.Texts {
			n += int64(utf8.RuneCountInString(t.Text))
		}
		if n > l.maxChars {
			return fmt.Sprintf("the prompt has %d characters, more than the limit of %d", n, l.maxChars), true
		}
	}
	if l.maxTokens > 0 {
		var n int64
		for _, t := range in.Texts {
			n += tokens.Text(in.Model, t.Text)
		}
		if n > l.maxTokens {
			return fmt.Sprintf("the prompt has %d tokens, more than the limit of %d", n, l.maxTokens), true
		}
	}
	return "", false
}
