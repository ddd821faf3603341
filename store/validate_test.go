package store_test

import (
	"strings"
	"testing"
	"time"

	"tollgate/store"
)

func TestValidateTeamName(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		wantMsg string // "" means valid
	}{
		{"single letter", "a", ""},
		{"single digit", "7", ""},
		{"mixed case and digits", "FinanceEU42", ""},
		{"every allowed symbol inside", "bu_fin-eu.ops+x@corp", ""},
		{"200 characters", strings.Repeat("a", 200), ""},
		{"200 characters with symbols", "a" + strings.Repeat("-", 198) + "z", ""},

		{"empty", "", "name is required"},
		{"201 characters", strings.Repeat("a", 201), "at most 200 characters (got 201)"},
		{"leading dash", "-team", "start and end with a letter or digit"},
		{"trailing dash", "team-", "start and end with a letter or digit"},
		{"leading underscore", "_team", "start and end with a letter or digit"},
		{"trailing dot", "team.", "start and end with a letter or digit"},
		{"leading plus", "+team", "start and end with a letter or digit"},
		{"trailing at", "team@", "start and end with a letter or digit"},
		{"only a symbol", "-", "start and end with a letter or digit"},
		{"inner space", "my team", `found ' ' at position 3`},
		{"leading space", " team", `found ' ' at position 1`},
		{"trailing space", "team ", `found ' ' at position 5`},
		{"tab", "a\tb", `found '\t' at position 2`},
		{"slash", "a/b", `found '/' at position 2`},
		{"non-ASCII letter", "tëam", `found 'ë' at position 2`},
		{"CJK", "团队", `found '团' at position 1`},
		{"non-ASCII digit", "team٣", `found '٣' at position 5`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := store.ValidateTeamName(tc.in)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("ValidateTeamName(%q) = %v, want valid", tc.in, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateTeamName(%q) = nil, want an error", tc.in)
			}
			ve := asValidation(t, err)
			if ve.Field != "name" {
				t.Errorf("Field = %q, want name", ve.Field)
			}
			if !strings.Contains(ve.Message, tc.wantMsg) {
				t.Errorf("message %q does not contain %q", ve.Message, tc.wantMsg)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"30d", 30 * 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"12h", 12 * time.Hour},
		{"15m", 15 * time.Minute},
		{"45s", 45 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"500ms", 500 * time.Millisecond},
	} {
		got, err := store.ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "abc", "d", "0d", "0s", "-5m", "1.5d", "30 d", "30D", "10w", "monthly"} {
		got, err := store.ParseDuration(bad)
		if err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, got)
			continue
		}
		if want := `(got "` + bad + `")`; !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDuration(%q) error %q does not quote the input", bad, err)
		}
	}
}

func TestKeyExpired(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		expiresAt *time.Time
		want      bool
	}{
		{"no expiry", nil, false},
		{"expires in an hour", ptr(now.Add(time.Hour)), false},
		{"expires in a nanosecond", ptr(now.Add(time.Nanosecond)), false},
		{"expires exactly now", ptr(now), true},
		{"expired a nanosecond ago", ptr(now.Add(-time.Nanosecond)), true},
		{"expired last year", ptr(now.AddDate(-1, 0, 0)), true},
		{"same instant in another zone", ptr(now.In(time.FixedZone("UTC+5", 5*3600))), true},
	} {
		k := store.Key{KeySpec: store.KeySpec{ExpiresAt: tc.expiresAt}}
		if got := k.Expired(now); got != tc.want {
			t.Errorf("%s: Expired = %v, want %v", tc.name, got, tc.want)
		}
	}
}
