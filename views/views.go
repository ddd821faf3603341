// Package views renders the admin dashboard's pages with templ. Components
// take plain view structs and never query or call services.
package views

import (
	"fmt"
	"strconv"
	"time"
)

// Session is who is signed in, as pages show it.
type Session struct {
	Name     string // e.g. "master key" or an email
	Role     string
	CanWrite bool // false for finance users: forms and buttons are not shown
}

// navLabel names a nav entry for the signed-in role: a member's keys page
// holds only their own keys.
func navLabel(label, key, role string) string {
	if key == "keys" && role == "member" {
		return "My keys"
	}
	return label
}

// Money formats USD for people: cents for big amounts, more digits for the
// fractions of a cent that single LLM calls cost.
func Money(v float64) string {
	switch {
	case v == 0:
		return "$0"
	case v >= 1 || v <= -1:
		return "$" + strconv.FormatFloat(v, 'f', 2, 64)
	case v >= 0.01:
		return "$" + strconv.FormatFloat(v, 'f', 4, 64)
	}
	return "$" + strconv.FormatFloat(v, 'f', 8, 64)
}

// Count formats a whole number with thousands separators.
func Count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := ""
	for len(s) > 3 {
		out = "," + s[len(s)-3:] + out
		s = s[:len(s)-3]
	}
	if neg {
		s = "-" + s
	}
	return s + out
}

// Percent formats a ratio as a percentage.
func Percent(r float64) string { return fmt.Sprintf("%.1f%%", r*100) }

// When formats a time in UTC, or "never".
func When(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func itoa(n int) string { return strconv.Itoa(n) }

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
