package views

import (
	"fmt"
	"sort"
	"time"
)

// Chart is a stacked bar chart of daily spend, drawn as SVG on the server.
type Chart struct {
	Title  string
	Width  int
	Height int
	Bars   []Bar
	Legend []LegendItem
	MaxY   string // the value of the top grid line
	Labels []AxisLabel
	Empty  bool
}

// Bar is one rectangle of the chart.
type Bar struct {
	X, Y, W, H float64
	Class      string // colour class
	Title      string // tooltip
}

// LegendItem names one series.
type LegendItem struct{ Name, Class string }

// AxisLabel is a date under the bars.
type AxisLabel struct {
	X    float64
	Text string
}

// SeriesPoint is one day's value of one series.
type SeriesPoint struct {
	Day   time.Time
	Key   string
	Name  string
	Value float64
}

// palette are the CSS classes of the series colours (static/css/app.css).
var palette = []string{"series-1", "series-2", "series-3", "series-4", "series-5"}

const maxSeries = 4 // the rest are summed as "other", in the last colour

// NewChart lays out points over the days from first to last (inclusive):
// the four largest series get their own colour, the rest are "other".
func NewChart(title string, first, last time.Time, points []SeriesPoint) Chart {
	c := Chart{Title: title, Width: 720, Height: 220}
	totals := map[string]float64{}
	names := map[string]string{}
	for _, p := range points {
		totals[p.Key] += p.Value
		names[p.Key] = p.Name
	}
	keys := make([]string, 0, len(totals))
	for k := range totals {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if totals[keys[i]] != totals[keys[j]] {
			return totals[keys[i]] > totals[keys[j]]
		}
		return keys[i] < keys[j]
	})
	colour := map[string]string{}
	for i, k := range keys {
		if i < maxSeries {
			colour[k] = palette[i]
			name := names[k]
			if name == "" {
				name = "(none)"
			}
			c.Legend = append(c.Legend, LegendItem{Name: name, Class: palette[i]})
		} else {
			colour[k] = palette[maxSeries]
		}
	}
	if len(keys) > maxSeries {
		c.Legend = append(c.Legend, LegendItem{Name: "other", Class: palette[maxSeries]})
	}
	days := int(last.Sub(first).Hours()/24) + 1
	if days < 1 || len(points) == 0 {
		c.Empty = true
		return c
	}
	perDay := make([]map[string]float64, days)
	for i := range perDay {
		perDay[i] = map[string]float64{}
	}
	maxDay := 0.0
	for _, p := range points {
		i := int(p.Day.Sub(first).Hours() / 24)
		if i < 0 || i >= days {
			continue
		}
		perDay[i][colour[p.Key]] += p.Value
	}
	for _, d := range perDay {
		sum := 0.0
		for _, v := range d {
			sum += v
		}
		maxDay = max(maxDay, sum)
	}
	if maxDay == 0 {
		c.Empty = true
		return c
	}
	const top, bottom, left = 10.0, 24.0, 4.0
	plotH := float64(c.Height) - top - bottom
	slot := (float64(c.Width) - left) / float64(days)
	for i, d := range perDay {
		y := float64(c.Height) - bottom
		day := first.AddDate(0, 0, i)
		for _, col := range palette {
			v, ok := d[col]
			if !ok || v == 0 {
				continue
			}
			h := v / maxDay * plotH
			y -= h
			c.Bars = append(c.Bars, Bar{X: left + float64(i)*slot + 1, Y: y, W: slot - 2, H: h, Class: col,
				Title: fmt.Sprintf("%s: %s", day.Format("Jan 2"), Money(v))})
		}
		if (days-1-i)%7 == 0 { // weekly, ending on the last day
			c.Labels = append(c.Labels, AxisLabel{X: left + float64(i)*slot, Text: day.Format("Jan 2")})
		}
	}
	c.MaxY = Money(maxDay)
	return c
}
