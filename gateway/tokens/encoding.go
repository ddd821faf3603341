package tokens

import (
	"fmt"
	"strings"
	"sync"

	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// An encoding is one BPE vocabulary with its pre-tokenizer. Its ranks are
// read from the loader's embedded files on first use, once, and are only
// read afterwards, so one encoding is shared by every request.
type encoding struct {
	name  string
	split func(s string, i int) int // end of the piece that starts at i

	once        sync.Once
	vocab       *vocab
	maxTokenLen int
	err         error
}

var (
	o200kBase  = &encoding{name: "o200k_base", split: splitO200K}
	cl100kBase = &encoding{name: "cl100k_base", split: splitCL100K}
)

// load reads the vocabulary; no network is involved because the loader
// embeds the .tiktoken files in the binary.
func (e *encoding) load() error {
	e.once.Do(func() {
		ranks, err := tiktoken_loader.NewOfflineLoader().LoadTiktokenBpe(e.name + ".tiktoken")
		if err != nil {
			e.err = fmt.Errorf("load %s vocabulary: %w", e.name, err)
			return
		}
		for token := range ranks {
			e.maxTokenLen = max(e.maxTokenLen, len(token))
		}
		e.vocab = newVocab(ranks)
	})
	return e.err
}

// encodingPrefixes maps model names to encodings by prefix; the first match
// wins, so longer prefixes come before the shorter ones they extend.
// tiktoken-go's own table stops at gpt-4.5, hence ours.
var encodingPrefixes = []struct {
	prefix string
	enc    *encoding
}{
	{"gpt-4o", o200kBase},
	{"gpt-4.1", o200kBase},
	{"gpt-4.5", o200kBase},
	{"gpt-5", o200kBase},
	{"o1", o200kBase},
	{"o3", o200kBase},
	{"o4", o200kBase},
	{"gpt-4", cl100kBase},
	{"gpt-3.5", cl100kBase},
	{"text-embedding-", cl100kBase},
}

// encodingFor picks the encoding for a model. Models we do not know,
// including other vendors' (claude-*, gemini-*, llama), get o200k_base:
// their tokenizers are not available offline and o200k_base is the closest
// modern general-purpose vocabulary.
func encodingFor(model string) *encoding {
	model = strings.ToLower(model)
	// Provider-qualified names ("openai/gpt-4o", "azure/gpt-4") count like the bare model.
	if i := strings.LastIndexByte(model, '/'); i >= 0 {
		model = model[i+1:]
	}
	for _, p := range encodingPrefixes {
		if strings.HasPrefix(model, p.prefix) {
			return p.enc
		}
	}
	return o200kBase
}
