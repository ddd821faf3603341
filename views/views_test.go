package views

import (
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Money(0), "$0"}, {Money(12.345), "$12.35"}, {Money(0.0123), "$0.0123"}, {Money(0.0000099), "$0.00000990"},
		{Count(0), "0"}, {Count(999), "999"}, {Count(1234567), "1,234,567"}, {Count(-1000), "-1,000"},
		{Percent(0.0525), "5.2%"}, {When(nil), "never"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestChart(t *testing.T) {
	first := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 0, 9)
	var points []SeriesPoint
	for i, k := range []string{"a", "b", "c", "d", "e", "f"} {
		points = append(points, SeriesPoint{Day: first.AddDate(0, 0, i), Key: k, Name: k, Value: float64(10 - i)})
	}
	points = append(points, SeriesPoint{Day: first, Key: "b", Name: "b", Value: 5}) // day 0 holds a and b: the tallest day
	c := NewChart("spend", first, last, points)
	if c.Empty || len(c.Bars) != 7 {
		t.Fatalf("bars %d empty %v", len(c.Bars), c.Empty)
	}
	// Four named series and "other" for the two smallest.
	if len(c.Legend) != 5 || c.Legend[0].Name != "b" || c.Legend[4].Name != "other" {
		t.Errorf("legend %+v", c.Legend)
	}
	// The tallest day fills the plot: its bars stack from the bottom to the top line.
	top := float64(c.Height)
	for _, b := range c.Bars[:2] {
		top = min(top, b.Y)
	}
	if top != 10 {
		t.Errorf("tallest stack reaches %v, want the top line at 10", top)
	}
	if c.MaxY != "$15.00" {
		t.Errorf("max %q", c.MaxY)
	}
	if empty := NewChart("none", first, last, nil); !empty.Empty {
		t.Error("no points but not empty")
	}
}
