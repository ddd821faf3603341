package guardrails

import (
	"math"
	"strings"
)

func (r *Rule) compileSecrets(config []byte) error {
	var c struct{}
	if err := decodeConfig(config, &c, "no fields"); err != nil {
		return err
	}
	r.detectors = append(r.detectors, findTokens, findPrivateKeys, findBearer, findAssigned)
	return nil
}

// tokenFormat is a credential recognised by its prefix: after it, at least
// min characters of its alphabet (exactly min when exact).
type tokenFormat struct {
	prefix string
	typ    string
	min    int
	exact  bool
	chars  func(byte) bool
	mixed  bool // must hold a digit and a letter, to leave words like sk-learn-style-names alone
}

func upperDigit(c byte) bool { return isDigit(c) || isUpper(c) }
func alnum(c byte) bool      { return isAlnum(c) }
func urlSafe(c byte) bool    { return isAlnum(c) || c == '_' || c == '-' }
func alnumUnder(c byte) bool { return isAlnum(c) || c == '_' }
func slackChar(c byte) bool  { return isAlnum(c) || c == '-' }
func base64Char(c byte) bool { return isAlnum(c) || c == '+' || c == '/' || c == '=' }

// tokenFormats are ordered so that a more specific prefix (sk-ant-) is
// found before the general one (sk-) covering the same bytes.
var tokenFormats = []tokenFormat{
	{prefix: "AKIA", typ: "AWS_ACCESS_KEY", min: 16, exact: true, chars: upperDigit},
	{prefix: "ASIA", typ: "AWS_ACCESS_KEY", min: 16, exact: true, chars: upperDigit},
	{prefix: "AGPA", typ: "AWS_ACCESS_KEY", min: 16, exact: true, chars: upperDigit},
	{prefix: "AIDA", typ: "AWS_ACCESS_KEY", min: 16, exact: true, chars: upperDigit},
	{prefix: "AROA", typ: "AWS_ACCESS_KEY", min: 16, exact: true, chars: upperDigit},
	{prefix: "ANPA", typ: "AWS_ACCESS_KEY", min: 16, exact: true, chars: upperDigit},
	{prefix: "AIza", typ: "GCP_API_KEY", min: 35, chars: urlSafe},
	{prefix: "ghp_", typ: "GITHUB_TOKEN", min: 30, chars: alnum},
	{prefix: "gho_", typ: "GITHUB_TOKEN", min: 30, chars: alnum},
	{prefix: "ghu_", typ: "GITHUB_TOKEN", min: 30, chars: alnum},
	{prefix: "ghs_", typ: "GITHUB_TOKEN", min: 30, chars: alnum},
	{prefix: "ghr_", typ: "GITHUB_TOKEN", min: 30, chars: alnum},
	{prefix: "github_pat_", typ: "GITHUB_TOKEN", min: 40, chars: alnumUnder},
	{prefix: "glpat-", typ: "GITLAB_TOKEN", min: 20, chars: urlSafe},
	{prefix: "xoxb-", typ: "SLACK_TOKEN", min: 10, chars: slackChar, mixed: true},
	{prefix: "xoxp-", typ: "SLACK_TOKEN", min: 10, chars: slackChar, mixed: true},
	{prefix: "xoxa-", typ: "SLACK_TOKEN", min: 10, chars: slackChar, mixed: true},
	{prefix: "xoxr-", typ: "SLACK_TOKEN", min: 10, chars: slackChar, mixed: true},
	{prefix: "xoxs-", typ: "SLACK_TOKEN", min: 10, chars: slackChar, mixed: true},
	{prefix: "sk-ant-", typ: "ANTHROPIC_API_KEY", min: 20, chars: urlSafe, mixed: true},
	{prefix: "sk-proj-", typ: "OPENAI_API_KEY", min: 20, chars: urlSafe, mixed: true},
	{prefix: "sk-", typ: "OPENAI_API_KEY", min: 20, chars: urlSafe, mixed: true},
	{prefix: "sk_live_", typ: "STRIPE_KEY", min: 20, chars: alnum},
	{prefix: "rk_live_", typ: "STRIPE_KEY", min: 20, chars: alnum},
	{prefix: "eyJ", typ: "JWT", chars: urlSafe}, // checked by jwtAt
	{prefix: "AccountKey=", typ: "AZURE_STORAGE_KEY", min: 86, chars: base64Char},
}

var tokenPrefixes = func() *needles {
	var words []string
	for _, f := range tokenFormats {
		words = append(words, f.prefix)
	}
	return newNeedles(words)
}()

// findTokens finds credentials by their published prefixes.
func findTokens(t *text, out []Finding) []Finding {
	s := t.s
	tokenPrefixes.each(s, func(start, k int) int {
		f := &tokenFormats[k]
		if word(s, start-1) {
			return 0
		}
		i := start + len(f.prefix)
		if f.typ == "JWT" {
			if end := jwtAt(s, start); end > 0 {
				out = append(out, Finding{"JWT", start, end})
				return end
			}
			return 0
		}
		end := i
		for end < len(s) && f.chars(s[end]) && (!f.exact || end-i < f.min) {
			end++
		}
		if end-i < f.min || word(s, end) && f.typ != "AZURE_STORAGE_KEY" {
			return 0
		}
		if f.mixed && !hasDigitAndLetter(s[i:end]) {
			return 0
		}
		if f.typ == "AZURE_STORAGE_KEY" {
			start = i // the key, not its name
		}
		out = append(out, Finding{f.typ, start, end})
		return end
	})
	return out
}

func hasDigitAndLetter(s string) bool {
	var d, l bool
	for i := 0; i < len(s); i++ {
		d = d || isDigit(s[i])
		l = l || 'a' <= s[i] && s[i] <= 'z' || isUpper(s[i])
	}
	return d && l
}

// jwtAt matches a JSON Web Token: base64url header and payload that both
// start with {" (eyJ), and a signature, which a token still being streamed
// may not have yet.
func jwtAt(s string, i int) int {
	run := func(j int) int {
		for j < len(s) && urlSafe(s[j]) {
			j++
		}
		return j
	}
	h := run(i)
	if h-i < 10 || h+4 > len(s) || s[h] != '.' || !strings.HasPrefix(s[h+1:], "eyJ") {
		return -1
	}
	p := run(h + 1)
	if p-h-1 < 10 {
		return -1
	}
	if p < len(s) && s[p] == '.' {
		p = run(p + 1)
	}
	if word(s, p) {
		return -1
	}
	return p
}

// maxPEM bounds a private key block, so that a stream holding one back
// never holds more.
const maxPEM = 16 << 10

// findPrivateKeys matches PEM private key blocks, from the BEGIN line to
// the END line, or to the end of the base64 body when the END line is
// missing (a pasted fragment, or a stream that has not reached it yet).
// The body is read up to the first character a PEM body cannot hold, so a
// stream, which cannot look ahead for the END line, finds the same block.
func findPrivateKeys(t *text, out []Finding) []Finding {
	s := t.s
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], "-----BEGIN ")
		if j < 0 {
			break
		}
		start := i + j
		i = start + 11
		line := strings.Index(s[i:min(len(s), i+64)], "-----")
		if line < 0 || !strings.HasSuffix(s[i:i+line], "PRIVATE KEY") && !strings.HasSuffix(s[i:i+line], "PRIVATE KEY BLOCK") {
			continue
		}
		body := i + line + 5
		limit := min(len(s), start+maxPEM)
		end := body
		for end < limit && (base64Char(s[end]) || strings.IndexByte("\n\r :-,", s[end]) >= 0) {
			if strings.HasPrefix(s[end:], "-----END ") {
				if m := strings.Index(s[end+9:min(limit, end+9+64)], "-----"); m >= 0 {
					end += 9 + m + 5
				} else {
					end = limit
				}
				break
			}
			end++
		}
		out = append(out, Finding{"PRIVATE_KEY", start, end})
		i = end
	}
	return out
}

// findBearer matches the token after "Bearer " (any case) when it is at
// least 20 characters of the RFC 6750 token alphabet.
func findBearer(t *text, out []Finding) []Finding {
	low := t.folded()
	s := t.s
	for i := 0; i < len(low); {
		j := strings.Index(low[i:], "bearer ")
		if j < 0 {
			break
		}
		start := i + j + 7
		i = start
		if word(s, i-8) {
			continue
		}
		end := start
		for end < len(s) && (urlSafe(s[end]) || s[end] == '.' || s[end] == '~' || s[end] == '+' || s[end] == '/') {
			end++
		}
		for end < len(s) && s[end] == '=' {
			end++
		}
		if end-start < 20 || !hasDigitAndLetter(s[start:end]) {
			continue
		}
		out = append(out, Finding{"BEARER_TOKEN", start, end})
		i = end
	}
	return out
}

// secretNames end the names of settings whose values are credentials, with
// _, - and . removed and lowercased: api_key, x-api-key, client_secret …
var secretNames = []string{"apikey", "accesskey", "secretkey", "privatekey", "secret", "token", "password", "passwd", "pwd", "credential", "credentials", "auth", "key"}

// findAssigned matches values assigned to a secret-sounding name (api_key=…,
// "token": "…", password: …) that are at least 20 characters long and look
// random: Shannon entropy of at least 3.5 bits per character. A value
// assigned to an aws_secret… name that is 40 characters long is an AWS
// secret access key.
func findAssigned(t *text, out []Finding) []Finding {
	s := t.s
	for i := 0; i < len(s); {
		j := strings.IndexAny(s[i:], "=:")
		if j < 0 {
			break
		}
		p := i + j
		i = p + 1
		k := p
		for n := 0; n < 3 && k > 0 && (s[k-1] == ' ' || s[k-1] == '"' || s[k-1] == '\''); n++ {
			k--
		}
		nameEnd := k
		for k > 0 && nameEnd-k < 64 && (isAlnum(s[k-1]) || s[k-1] == '_' || s[k-1] == '-' || s[k-1] == '.') {
			k--
		}
		if k == nameEnd {
			continue
		}
		// Every secret name ends in one of these letters: most names are
		// ruled out without building the normalized name.
		last := nameEnd - 1
		for last > k && strings.IndexByte("_-.", s[last]) >= 0 {
			last--
		}
		if strings.IndexByte("yntdlshYNTDLSH", s[last]) < 0 {
			continue
		}
		name := normalizeName(s[k:nameEnd])
		secret := false
		for _, n := range secretNames {
			if strings.HasSuffix(name, n) {
				secret = true
				break
			}
		}
		if !secret {
			continue
		}
		q := p + 1
		if q < len(s) && s[q] == '=' {
			q++
		}
		for n := 0; n < 3 && q < len(s) && (s[q] == ' ' || s[q] == '"' || s[q] == '\''); n++ {
			q++
		}
		end := q
		for end < len(s) && end-q < 512 && (urlSafe(s[end]) || strings.IndexByte("+/=.~", s[end]) >= 0) {
			end++
		}
		for end > q && s[end-1] == '.' {
			end--
		}
		v := s[q:end]
		if len(v) < 20 || isUUID(v) || entropy(v) < 3.5 {
			continue
		}
		typ := "GENERIC_SECRET"
		if len(v) == 40 && (strings.Contains(name, "awssecret") || strings.HasSuffix(name, "secretaccesskey")) {
			typ = "AWS_SECRET_KEY"
		}
		out = append(out, Finding{typ, q, end})
		i = end
	}
	return out
}

func normalizeName(n string) string {
	var b strings.Builder
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c == '_' || c == '-' || c == '.':
		case isUpper(c):
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isUUID reports the 8-4-4-4-12 hex shape: ids, not secrets.
func isUUID(v string) bool {
	if len(v) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if v[i] != '-' {
				return false
			}
		} else if !isHex(v[i]) {
			return false
		}
	}
	return true
}

// entropy is the Shannon entropy of s in bits per byte.
func entropy(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	h := 0.0
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
