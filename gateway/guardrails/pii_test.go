package guardrails

import "testing"

func TestLuhn(t *testing.T) {
	for _, tc := range []struct {
		number string
		valid  bool
	}{
		{"4111111111111111", true},
		{"4012888888881881", true},
		{"378282246310005", true},
		{"5555555555554444", true},
		{"6011111111111117", true},
		{"4111111111111112", false},
		{"378282246310006", false},
		{"5555555555554440", false},
	} {
		if got := luhn([]byte(tc.number)); got != tc.valid {
			t.Errorf("luhn(%s) = %v, want %v", tc.number, got, tc.valid)
		}
	}
}

func TestIBANChecksum(t *testing.T) {
	for _, tc := range []struct {
		iban  string
		valid bool
	}{
		{"DE89370400440532013000", true},
		{"GB29NWBK60161331926819", true},
		{"FR1420041010050500013M02606", true},
		{"NL91ABNA0417164300", true},
		{"DE89370400440532013001", false},
		{"GB29NWBK60161331926818", false},
		{"GB92NWBK60161331926819", false},
	} {
		if got := ibanChecksum([]byte(tc.iban)); got != tc.valid {
			t.Errorf("ibanChecksum(%s) = %v, want %v", tc.iban, got, tc.valid)
		}
	}
}

func TestPII(t *testing.T) {
	r := rule(t, "pii", "pre_call", "mask", `{}`)
	for _, tc := range []struct {
		text string
		want []string
	}{
		// e-mail
		{"write to jane.doe+tag@example.co.uk today", []string{"EMAIL:jane.doe+tag@example.co.uk"}},
		{"<ops@northwind.io>.", []string{"EMAIL:ops@northwind.io"}},
		{"user@localhost, a@b.c, @handle, x@1.2", nil},
		// cards: Luhn and a network's prefix, together or grouped
		{"card 4111 1111 1111 1111 exp 12/27", []string{"CREDIT_CARD:4111 1111 1111 1111"}},
		{"4111-1111-1111-1111", []string{"CREDIT_CARD:4111-1111-1111-1111"}},
		{"amex 3782 822463 10005.", []string{"CREDIT_CARD:3782 822463 10005"}},
		{"pan=5555555555554444;", []string{"CREDIT_CARD:5555555555554444"}},
		{"4111 1111 1111 1112", nil},                // Luhn fails
		{"4111 1111-1111 1111", nil},                // mixed separators
		{"1234567890123 and 9999999999999999", nil}, // no network starts so
		{"order 41111111111111110 shipped", nil},    // 17 digits: no Visa length
		// IBAN with mod-97
		{"IBAN DE89 3704 0044 0532 0130 00 please", []string{"IBAN:DE89 3704 0044 0532 0130 00"}},
		{"GB29NWBK60161331926819", []string{"IBAN:GB29NWBK60161331926819"}},
		{"DE89 3704 0044 0532 0130 01", nil}, // checksum
		{"DE89 3704 0044 0532 0130", nil},    // too short for DE
		// SSN
		{"ssn 123-45-6789.", []string{"US_SSN:123-45-6789"}},
		{"ssn 123 45 6789", []string{"US_SSN:123 45 6789"}},
		{"000-12-3456 666-12-3456 900-12-3456 123-00-4567 123-45-0000", nil},
		{"123456789", nil},
		// phones: a + or separators
		{"call +1 415 555 2671 now", []string{"PHONE:+1 415 555 2671"}},
		{"call +14155552671", []string{"PHONE:+14155552671"}},
		{"(415) 555-2671", []string{"PHONE:(415) 555-2671"}},
		{"415-555-2671", []string{"PHONE:415-555-2671"}},
		{"415.555.2671", []string{"PHONE:415.555.2671"}},
		{"London 020 7946 0958", []string{"PHONE:020 7946 0958"}},
		{"Paris 01 23 45 67 89", []string{"PHONE:01 23 45 67 89"}},
		{"+44 (0)20 7946 0958", []string{"PHONE:+44 (0)20 7946 0958"}},
		{"used 1234567890123 tokens, 4096 max, id 12345678", nil},
		{"on 2024-01-15 10:30 and 15.01.2024", nil},
		{"1 234 567 890 rows", nil},
		{"v1.2.3 and 555-1234", nil},
		// IP addresses
		{"from 203.0.113.42:8080", []string{"IP_ADDRESS:203.0.113.42"}},
		{"host 2001:db8::8a2e:370:7334 up", []string{"IP_ADDRESS:2001:db8::8a2e:370:7334"}},
		{"[fe80::1ff:fe23:4567:890a]", []string{"IP_ADDRESS:fe80::1ff:fe23:4567:890a"}},
		{"999.1.1.1 and 1.2.3 and 10:30:00 and std::vector and a::b", nil},
	} {
		got := found(tc.text, r.Scan(tc.text))
		if !same(got, tc.want) {
			t.Errorf("%q: found %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestPIIEntities(t *testing.T) {
	r := rule(t, "pii", "pre_call", "mask", `{"entities":["email"]}`)
	text := "jane@example.com 4111 1111 1111 1111 +14155552671"
	if got := found(text, r.Scan(text)); !same(got, []string{"EMAIL:jane@example.com"}) {
		t.Errorf("found %q, want only the e-mail", got)
	}
}

func TestPIIRunOn(t *testing.T) {
	r := rule(t, "pii", "pre_call", "mask", `{}`)
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"4111 1111 1111 1111 2027", []string{"CREDIT_CARD:4111 1111 1111 1111"}},
		{"card 4111 1111 1111 1111 12/27", []string{"CREDIT_CARD:4111 1111 1111 1111"}},
		{"tel 415 555 2671 0000 1111", nil}, // one number of 18 digits: neither
	} {
		if got := found(tc.text, r.Scan(tc.text)); !same(got, tc.want) {
			t.Errorf("%q: found %q, want %q", tc.text, got, tc.want)
		}
	}
}
