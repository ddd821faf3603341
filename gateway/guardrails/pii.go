package guardrails

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// PIIEntities is the personal data the pii type finds. Each finder validates what it matches
// (Luhn for cards, mod-97 for IBANs, the SSA's rules for SSNs, net/netip for
// addresses) so that numbers which merely look alike are left alone.
var PIIEntities = []string{"email", "phone", "credit_card", "iban", "us_ssn", "ip_address"}

func (r *Rule) compilePII(config []byte) error {
	var c struct {
		Entities []string `json:"entities"`
	}
	if err := decodeConfig(config, &c, `"entities" (a list of `+strings.Join(PIIEntities, ", ")+`; empty for all)`); err != nil {
		return err
	}
	on := map[string]bool{}
	for _, e := range c.Entities {
		if !slices.Contains(PIIEntities, e) {
			return fmt.Errorf("config.entities: unknown entity %q; choose from %s", e, strings.Join(PIIEntities, ", "))
		}
		on[e] = true
	}
	if len(on) == 0 {
		for _, e := range PIIEntities {
			on[e] = true
		}
	}
	p := piiFinder{card: on["credit_card"], ssn: on["us_ssn"], ip: on["ip_address"], phone: on["phone"]}
	if on["email"] {
		r.detectors = append(r.detectors, findEmails)
	}
	if p.card || p.ssn || p.ip || p.phone {
		r.detectors = append(r.detectors, p.find)
	}
	if on["iban"] {
		r.detectors = append(r.detectors, findIBANs)
	}
	if on["ip_address"] {
		r.detectors = append(r.detectors, findIPv6)
	}
	r.window = 64 // IBANs with spaces, IPv6, grouped cards and phone numbers are shorter
	if on["email"] {
		r.window = defaultWindow
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'z' || isUpper(c) }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// word reports whether s[i] exists and belongs to a word (ASCII letter,
// digit or underscore), for boundary checks.
func word(s string, i int) bool {
	return i >= 0 && i < len(s) && (isAlnum(s[i]) || s[i] == '_')
}

// E-mail addresses: a local part of up to 64 characters, an @, and a domain
// of letter-digit-hyphen labels ending in a letters-only top-level domain.
func findEmails(t *text, out []Finding) []Finding {
	s := t.s
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '@')
		if j < 0 {
			break
		}
		at := i + j
		i = at + 1
		start := at
		for start > 0 && at-start < 64 && isLocal(s[start-1]) {
			start--
		}
		for start < at && s[start] == '.' {
			start++
		}
		if start == at || (start > 0 && isLocal(s[start-1])) {
			continue
		}
		end := at + 1
		for end < len(s) && end-at <= 190 && (isAlnum(s[end]) || s[end] == '-' || s[end] == '.') {
			end++
		}
		for end > at+1 && (s[end-1] == '.' || s[end-1] == '-') {
			end--
		}
		if !validDomain(s[at+1 : end]) {
			continue
		}
		out = append(out, Finding{"EMAIL", start, end})
		i = end
	}
	return out
}

func isLocal(c byte) bool {
	return isAlnum(c) || strings.IndexByte("._%+-'", c) >= 0
}

func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if !('a' <= tld[i] && tld[i] <= 'z' || isUpper(tld[i])) {
			return false
		}
	}
	return true
}

// piiFinder reads every number that starts at a word boundary once and asks,
// in order, whether it is a card, an SSN, an IPv4 address or a phone number.
type piiFinder struct{ card, ssn, ip, phone bool }

func (p piiFinder) find(t *text, out []Finding) []Finding {
	s := t.s
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isDigit(c) || (c == '+' || c == '(') && i+1 < len(s) && isDigit(s[i+1])) {
			continue
		}
		prev := byte(0)
		if i > 0 {
			prev = s[i-1]
		}
		if word(s, i-1) || prev == '.' || prev == '-' || isDigit(c) && (prev == '+' || prev == '(') ||
			prev == ' ' && i >= 2 && isDigit(s[i-2]) {
			// Inside a longer token (DE89 3704 …), or tried from its + or (.
			i = numberEnd(s, i) - 1
			continue
		}
		typ, end := "", -1
		if isDigit(c) {
			if p.card {
				if e := cardAt(s, i); e > 0 {
					typ, end = "CREDIT_CARD", e
				}
			}
			if end < 0 && p.ssn {
				if e := ssnAt(s, i); e > 0 {
					typ, end = "US_SSN", e
				}
			}
			if end < 0 && p.ip {
				if e := ipv4At(s, i); e > 0 {
					typ, end = "IP_ADDRESS", e
				}
			}
		}
		if end < 0 && p.phone {
			if e := phoneAt(s, i); e > 0 {
				typ, end = "PHONE", e
			}
		}
		if end > 0 {
			out = append(out, Finding{typ, i, end})
			i = end - 1
			continue
		}
		// Nothing starts here: no part of this number is tried again.
		i = numberEnd(s, i) - 1
	}
	return out
}

// numberEnd is the end of the number starting at i, with its separators:
// digits, and single spaces, hyphens, dots and parentheses between them.
func numberEnd(s string, i int) int {
	j := i + 1
	for j < len(s) {
		switch c := s[j]; {
		case isDigit(c), c == ')' || c == '(':
			j++
		case (c == ' ' || c == '-' || c == '.') && j+1 < len(s) && (isDigit(s[j+1]) || s[j+1] == '('):
			j++
		default:
			return j
		}
	}
	return j
}

// cardAt matches 13 to 19 digits, either together or in groups of 3 to 6
// split by single spaces or hyphens (the same one throughout), that pass
// the Luhn check and start like a card network's numbers. When the number
// runs on into more groups (a card number followed by others), the longest
// leading groups that make a card are taken.
func cardAt(s string, i int) int {
	var digits [19]byte
	n := 0
	var sep byte
	var ends []int // where each group ends, and the digits before it
	var counts []int
	group := 0
	for j := i; j <= len(s); j++ {
		if j < len(s) && isDigit(s[j]) {
			if n == len(digits) {
				break
			}
			digits[n] = s[j]
			n++
			group++
			continue
		}
		ends, counts = append(ends, j), append(counts, n)
		if j < len(s) && (s[j] == ' ' || s[j] == '-') && j+1 < len(s) && isDigit(s[j+1]) && (sep == 0 || sep == s[j]) && group >= 3 && group <= 6 {
			sep, group = s[j], 0
			continue
		}
		break
	}
	for k := len(ends) - 1; k >= 0; k-- {
		end, n := ends[k], counts[k]
		last := n
		if k > 0 {
			last = n - counts[k-1]
		}
		if n < 13 || k > 0 && (last < 3 || last > 6) || word(s, end) || k == 0 && end < len(s) && isDigit(s[end]) {
			continue
		}
		if d := digits[:n]; cardNetwork(d) && luhn(d) {
			return end
		}
	}
	return -1
}

// cardNetwork reports whether the number starts like Visa, Mastercard,
// American Express, Discover, JCB, Diners Club or UnionPay numbers, at a
// length that network issues.
func cardNetwork(d []byte) bool {
	n := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p4 := p2*100 + int(d[2]-'0')*10 + int(d[3]-'0')
	switch {
	case d[0] == '4':
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return n == 16
	case p2 == 34 || p2 == 37:
		return n == 15
	case p4 == 6011 || p2 == 65 || p4 >= 6440 && p4 <= 6499:
		return n >= 16
	case p2 == 35:
		return n >= 16
	case p2 == 36 || p2 == 38 || p2 == 39 || p2 == 30:
		return n >= 14
	case p2 == 62:
		return n >= 16
	}
	return false
}

// luhn is the check digit algorithm of card numbers (ISO/IEC 7812-1).
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// ssnAt matches AAA-GG-SSSS (or with spaces) where the area is not 000,
// 666 or 900-999, the group not 00 and the serial not 0000, as the Social
// Security Administration issues them.
func ssnAt(s string, i int) int {
	if i+11 > len(s) {
		return -1
	}
	sep := s[i+3]
	if sep != '-' && sep != ' ' || s[i+6] != sep || word(s, i+11) {
		return -1
	}
	for _, j := range []int{0, 1, 2, 4, 5, 7, 8, 9, 10} {
		if !isDigit(s[i+j]) {
			return -1
		}
	}
	num := func(a, b int) int {
		v := 0
		for _, c := range []byte(s[i+a : i+b]) {
			v = v*10 + int(c-'0')
		}
		return v
	}
	area, group, serial := num(0, 3), num(4, 6), num(7, 11)
	if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
		return -1
	}
	if i+11 < len(s) && (s[i+11] == '-' || s[i+11] == '.') && i+12 < len(s) && isDigit(s[i+12]) {
		return -1
	}
	return i + 11
}

// ipv4At matches a dotted-quad address that net/netip accepts.
func ipv4At(s string, i int) int {
	end, dots := i, 0
	for end < len(s) && end-i < 16 && (isDigit(s[end]) || s[end] == '.') {
		if s[end] == '.' {
			dots++
		}
		end++
	}
	for end > i && s[end-1] == '.' {
		end--
		dots--
	}
	if dots != 3 || word(s, end) || end < len(s) && s[end] == '.' && end+1 < len(s) && isDigit(s[end+1]) {
		return -1
	}
	a, err := netip.ParseAddr(s[i:end])
	if err != nil || !a.Is4() {
		return -1
	}
	return end
}

// phoneAt matches an international number (+ and 8 to 15 digits, with or
// without separators) or a national one: 9 to 12 digits in at least two
// groups split by spaces, hyphens, dots or an area code in parentheses.
// A number without + or separators is never a phone: token counts, ids
// and timestamps look just like one. The whole number must be a phone
// number: 4111 1111 1111 1112 is not one because its first 12 digits
// would be.
func phoneAt(s string, i int) int {
	j := i
	plus := s[j] == '+'
	if plus {
		j++
	}
	var groups, ends []int
	var seps []byte
	for j < len(s) && len(groups) <= 8 {
		n, paren := 0, false
		if s[j] == '(' {
			k := j + 1
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			if k-j-1 < 1 || k-j-1 > 4 || k >= len(s) || s[k] != ')' {
				break
			}
			n, j, paren = k-j-1, k+1, true
		} else {
			for j < len(s) && isDigit(s[j]) {
				j++
				n++
			}
		}
		if n == 0 {
			break
		}
		groups, ends = append(groups, n), append(ends, j)
		if j+1 < len(s) && (s[j] == ' ' || s[j] == '-' || s[j] == '.') && (isDigit(s[j+1]) || s[j+1] == '(') {
			seps = append(seps, s[j])
			j++
			continue
		}
		if paren && j < len(s) && isDigit(s[j]) {
			seps = append(seps, ')') // (555)123-4567
			continue
		}
		break
	}
	if len(groups) == 0 || len(groups) > 8 || word(s, ends[len(groups)-1]) || !phoneShape(groups, seps, plus) {
		return -1
	}
	return ends[len(groups)-1]
}

func phoneShape(groups []int, seps []byte, plus bool) bool {
	seps = seps[:min(len(seps), len(groups)-1)]
	total := 0
	for _, g := range groups {
		total += g
	}
	if plus {
		return total >= 8 && total <= 15
	}
	if len(groups) < 2 || total < 9 || total > 12 {
		return false
	}
	same := func(c byte) bool { return !slices.ContainsFunc(seps, func(x byte) bool { return x != c }) }
	switch {
	case len(groups) >= 3 && !slices.ContainsFunc(groups[1:], func(g int) bool { return g != 3 }) && (same(' ') || same('.')):
		return false // 1 234 567 890: a number with thousands separators
	case len(groups) == 3 && groups[0] == 3 && groups[1] == 2 && groups[2] == 4 && seps[0] == seps[1]:
		return false // AAA-GG-SSSS is the shape of an SSN
	case len(groups) >= 3 && (groups[0] == 4 && groups[1] == 2 && groups[2] == 2 || groups[0] == 2 && groups[1] == 2 && groups[2] == 4) && seps[0] == seps[1] && seps[0] != ' ':
		return false // 2024-01-15 10…, 15.01.2024 10…: a date and time
	case len(groups) == 4 && same('.') && !slices.ContainsFunc(groups, func(g int) bool { return g > 3 }):
		return false // a dotted quad
	}
	return true
}

// ibanLengths are the IBAN lengths by country (SWIFT's IBAN registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
	"MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
	"QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23,
	"ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// findIBANs matches a country code, two check digits and the country's
// number of letters and digits, written together or in groups split by
// single spaces, whose mod-97 checksum (ISO 13616) is 1.
func findIBANs(t *text, out []Finding) []Finding {
	s := t.s
	for i := 0; i+4 < len(s); i++ {
		if !isUpper(s[i]) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) || word(s, i-1) {
			continue
		}
		want, ok := ibanLengths[s[i:i+2]]
		if !ok {
			continue
		}
		var buf [34]byte
		n, end := 0, i
		for j := i; j < len(s) && n < want; j++ {
			c := s[j]
			if isDigit(c) || isUpper(c) {
				buf[n] = c
				n++
				end = j + 1
				continue
			}
			if c == ' ' && j+1 < len(s) && (isDigit(s[j+1]) || isUpper(s[j+1])) && n > 0 {
				continue
			}
			break
		}
		if n != want || word(s, end) || !ibanChecksum(buf[:n]) {
			continue
		}
		out = append(out, Finding{"IBAN", i, end})
		i = end - 1
	}
	return out
}

// ibanChecksum moves the first four characters to the end, reads letters
// as 10 to 35 and checks that the number is 1 modulo 97.
func ibanChecksum(b []byte) bool {
	rem := 0
	add := func(c byte) {
		if isDigit(c) {
			rem = (rem*10 + int(c-'0')) % 97
		} else {
			rem = (rem*100 + int(c-'A'+10)) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return rem == 1
}

// findIPv6 matches IPv6 addresses net/netip accepts, with at least three
// groups or a group of four digits, so that C++'s a::b is left alone.
func findIPv6(t *text, out []Finding) []Finding {
	s := t.s
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], ':')
		if j < 0 {
			break
		}
		p := i + j
		start, end := p, p
		for start > 0 && (isHex(s[start-1]) || s[start-1] == ':') {
			start--
		}
		for end < len(s) && (isHex(s[end]) || s[end] == ':' || s[end] == '.' && end+1 < len(s) && isDigit(s[end+1])) {
			end++
		}
		i = end + 1
		if word(s, start-1) || word(s, end) || strings.Count(s[start:end], ":") < 2 {
			continue
		}
		a, err := netip.ParseAddr(s[start:end])
		if err != nil || !a.Is6() {
			continue
		}
		groups, longest := 0, 0
		for g := range strings.SplitSeq(s[start:end], ":") {
			if g != "" {
				groups++
				longest = max(longest, len(g))
			}
		}
		if groups < 3 && longest < 4 {
			continue
		}
		out = append(out, Finding{"IP_ADDRESS", start, end})
	}
	return out
}
