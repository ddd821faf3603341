package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"
)

// Labels of chargeback rows that have no team or key to name them. Team
// names cannot hold parentheses, so these never collide with a team.
const (
	NoTeam      = "(no team)"
	DeletedTeam = "(deleted team)"
	NoKey       = "(no key)"
	DeletedKey  = "(deleted key)"
)

// forecastWindow is how many days the month-end forecast averages.
const forecastWindow = 7

// ChargebackUsage is what some spend amounted to.
type ChargebackUsage struct {
	Requests     int64   `db:"requests" json:"requests"`
	InputTokens  int64   `db:"input_tokens" json:"input_tokens"`
	OutputTokens int64   `db:"output_tokens" json:"output_tokens"`
	Cost         float64 `db:"cost" json:"cost"`
}

func (u *ChargebackUsage) add(o ChargebackUsage) {
	u.Requests += o.Requests
	u.InputTokens += o.InputTokens
	u.OutputTokens += o.OutputTokens
	u.Cost = roundCost(u.Cost + o.Cost)
}

// roundCost keeps the rollups' ten decimals, so that sums read 0.3 and
// not 0.30000000000000004.
func roundCost(v float64) float64 { return math.Round(v*1e10) / 1e10 }

// ChargebackLine is one team's spend on one model through one key.
type ChargebackLine struct {
	Model string  `json:"model"`
	KeyID *string `json:"key_id"`
	Key   string  `json:"key"` // the key's alias, else its hint; NoKey or DeletedKey
	ChargebackUsage
}

// ChargebackModel is one team's spend on one model.
type ChargebackModel struct {
	Model string `json:"model"`
	ChargebackUsage
}

// ChargebackKey is one team's spend through one key.
type ChargebackKey struct {
	KeyID *string `json:"key_id"`
	Key   string  `json:"key"`
	ChargebackUsage
}

// ChargebackTeam is one cost center's bill for the month.
type ChargebackTeam struct {
	TeamID       *string `json:"team_id"`       // nil for spend without a team
	Team         string  `json:"team"`          // the team's name; NoTeam or DeletedTeam
	BusinessUnit string  `json:"business_unit"` // team metadata business_unit_id, else the team's name
	ChargebackUsage
	// MaxBudget is the team's effective max budget (its own, else its
	// budget profile's), over BudgetDuration; nil without one.
	MaxBudget      *float64          `json:"max_budget"`
	BudgetDuration *string           `json:"budget_duration"`
	SpendToDate    float64           `json:"spend_to_date"` // the month's cost so far
	DailyAverage   float64           `json:"daily_average"` // over the forecast window; 0 for a past month
	Forecast       float64           `json:"forecast"`      // cost expected by the month's end; the cost for a past month
	Models         []ChargebackModel `json:"models"`        // highest cost first
	Keys           []ChargebackKey   `json:"keys"`          // highest cost first
	Lines          []ChargebackLine  `json:"lines"`         // model × key, highest cost first
}

// ChargebackReport is the month's spend per team (cost center), from the
// daily rollups.
type ChargebackReport struct {
	Period string    `json:"period"` // YYYY-MM
	From   time.Time `json:"from"`   // the month's first day, 00:00 UTC
	To     time.Time `json:"to"`     // the next month's first day
	AsOf   time.Time `json:"as_of"`
	// Complete is true once the month is over: forecasts are then the
	// actual cost.
	Complete    bool `json:"complete"`
	DaysInMonth int  `json:"days_in_month"`
	DaysElapsed int  `json:"days_elapsed"` // UTC days of the month up to and including today
	// ForecastDays is how many days, ending today, the daily average is
	// taken over (the last 7, fewer early in the month); 0 for a past month.
	ForecastDays int `json:"forecast_days"`
	ChargebackUsage
	Forecast float64          `json:"forecast"`
	Teams    []ChargebackTeam `json:"teams"` // highest cost first, then by name
}

// MonthOf is the first day of t's UTC month.
func MonthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// ParsePeriod reads a chargeback period, YYYY-MM; field names it in errors.
func ParsePeriod(field, v string) (time.Time, error) {
	month, err := time.Parse("2006-01", v)
	if err != nil {
		return time.Time{}, invalid(field, "%s must be a month as YYYY-MM, such as 2026-01 (got %q)", field, v)
	}
	return month, nil
}

// Chargeback reports the spend of every team in month (any time in it) as
// it stands at now: cost, requests and tokens by model and key, the
// team's budget and a forecast to the month's end. The forecast is the
// month to date plus the average daily cost of the last 7 days up to and
// including today (fewer when the month is younger) times the days left.
// Every team is listed, with or without spend; spend without a team is a
// row of its own.
func (s *Store) Chargeback(ctx context.Context, month, now time.Time) (*ChargebackReport, error) {
	from := MonthOf(month)
	to := from.AddDate(0, 1, 0)
	today := utcDay(now)
	if from.After(today) {
		return nil, invalid("period", "period %s has not started yet; the latest is %s", from.Format("2006-01"), today.Format("2006-01"))
	}
	rep := &ChargebackReport{Period: from.Format("2006-01"), From: from, To: to, AsOf: now.UTC(),
		DaysInMonth: int(to.Sub(from).Hours() / 24), Teams: []ChargebackTeam{}}
	rep.Complete = !today.Before(to)
	if rep.Complete {
		rep.DaysElapsed = rep.DaysInMonth
	} else {
		rep.DaysElapsed = today.Day()
		rep.ForecastDays = min(forecastWindow, rep.DaysElapsed)
	}

	// The month so far: spend logged after now (clock skew, a fixed now in
	// tests) is not yet part of it.
	until := to
	if !rep.Complete {
		until = today.AddDate(0, 0, 1)
	}
	lines := []struct {
		TeamID   *string `db:"team_id"`
		KeyID    *string `db:"key_id"`
		Model    string  `db:"model"`
		KeyAlias *string `db:"alias"`
		KeyHint  *string `db:"key_hint"`
		ChargebackUsage
	}{}
	err := s.db.SelectContext(ctx, &lines, `
		SELECT g.team_id::text AS team_id, g.key_id::text AS key_id, g.model, k.alias, k.key_hint,
		       g.requests, g.input_tokens, g.output_tokens, g.cost
		FROM (SELECT d.team_id, d.key_id, d.model, sum(d.requests) AS requests, sum(d.input_tokens) AS input_tokens,
		             sum(d.output_tokens) AS output_tokens, sum(d.cost) AS cost
		      FROM spend_daily d
		      WHERE d.day >= $1::date AND d.day < $2::date
		      GROUP BY d.team_id, d.key_id, d.model) g
		LEFT JOIN keys k ON k.id = g.key_id
		ORDER BY g.cost DESC, g.model, g.key_id`, from.Format(time.DateOnly), until.Format(time.DateOnly))
	if err != nil {
		return nil, fmt.Errorf("chargeback %s: %w", rep.Period, err)
	}
	recent := map[string]float64{} // team id ("" for none) → cost in the forecast window
	if !rep.Complete {
		rows := []struct {
			TeamID *string `db:"team_id"`
			Cost   float64 `db:"cost"`
		}{}
		err := s.db.SelectContext(ctx, &rows, `
			SELECT d.team_id::text AS team_id, sum(d.cost) AS cost
			FROM spend_daily d
			WHERE d.day >= $1::date AND d.day <= $2::date
			GROUP BY d.team_id`, today.AddDate(0, 0, 1-rep.ForecastDays).Format(time.DateOnly), today.Format(time.DateOnly))
		if err != nil {
			return nil, fmt.Errorf("chargeback %s forecast: %w", rep.Period, err)
		}
		for _, r := range rows {
			recent[deref(r.TeamID)] = r.Cost
		}
	}
	teams, err := s.AllTeams(ctx)
	if err != nil {
		return nil, err
	}
	profiles, err := s.AllBudgets(ctx)
	if err != nil {
		return nil, err
	}
	profileByID := map[string]*Budget{}
	for i := range profiles {
		profileByID[profiles[i].ID] = &profiles[i]
	}

	teamByID := map[string]*Team{}
	for i := range teams {
		teamByID[teams[i].ID] = &teams[i]
	}
	row := func(t *Team) *ChargebackTeam {
		var profile *Budget
		if t.BudgetID != nil {
			profile = profileByID[*t.BudgetID]
		}
		l := t.Limits(profile)
		return &ChargebackTeam{TeamID: &t.ID, Team: t.Name, BusinessUnit: businessUnit(t.Metadata, t.Name),
			MaxBudget: l.MaxBudget, BudgetDuration: l.BudgetDuration}
	}
	byTeam := map[string]*ChargebackTeam{}
	for _, t := range teamByID {
		if t.CreatedAt.Before(to) { // teams made after the month are listed only with spend in it
			byTeam[t.ID] = row(t)
		}
	}
	for _, l := range lines {
		id := deref(l.TeamID)
		ct := byTeam[id]
		switch {
		case ct != nil:
		case teamByID[id] != nil:
			ct = row(teamByID[id])
		case l.TeamID != nil:
			ct = &ChargebackTeam{TeamID: l.TeamID, Team: DeletedTeam}
		default:
			ct = &ChargebackTeam{Team: NoTeam}
		}
		byTeam[id] = ct
		key := NoKey
		switch {
		case l.KeyID != nil && l.KeyAlias == nil:
			key = DeletedKey
		case l.KeyAlias != nil && *l.KeyAlias != "":
			key = *l.KeyAlias
		case l.KeyHint != nil:
			key = *l.KeyHint
		}
		ct.Lines = append(ct.Lines, ChargebackLine{Model: l.Model, KeyID: l.KeyID, Key: key, ChargebackUsage: l.ChargebackUsage})
	}

	remaining := float64(rep.DaysInMonth - rep.DaysElapsed)
	for id, ct := range byTeam {
		models, keys := map[string]*ChargebackModel{}, map[string]*ChargebackKey{}
		for _, l := range ct.Lines {
			ct.ChargebackUsage.add(l.ChargebackUsage)
			if models[l.Model] == nil {
				models[l.Model] = &ChargebackModel{Model: l.Model}
			}
			models[l.Model].add(l.ChargebackUsage)
			k := deref(l.KeyID)
			if keys[k] == nil {
				keys[k] = &ChargebackKey{KeyID: l.KeyID, Key: l.Key}
			}
			keys[k].add(l.ChargebackUsage)
		}
		ct.Models, ct.Keys = sortedByCost(models, func(m *ChargebackModel) (float64, string) { return m.Cost, m.Model }),
			sortedByCost(keys, func(k *ChargebackKey) (float64, string) { return k.Cost, k.Key })
		if ct.Lines == nil {
			ct.Lines = []ChargebackLine{}
		}
		ct.SpendToDate, ct.Forecast = ct.Cost, ct.Cost
		if !rep.Complete {
			days := float64(rep.ForecastDays)
			ct.DailyAverage = roundCost(recent[id] / days)
			ct.Forecast = roundCost(ct.Cost + recent[id]*remaining/days)
		}
		rep.ChargebackUsage.add(ct.ChargebackUsage)
		rep.Forecast = roundCost(rep.Forecast + ct.Forecast)
		rep.Teams = append(rep.Teams, *ct)
	}
	sort.Slice(rep.Teams, func(i, j int) bool {
		a, b := rep.Teams[i], rep.Teams[j]
		if a.Cost != b.Cost {
			return a.Cost > b.Cost
		}
		if a.Team != b.Team {
			return a.Team < b.Team
		}
		return deref(a.TeamID) < deref(b.TeamID)
	})
	return rep, nil
}

// businessUnit is the team's billing business unit: its metadata's
// business_unit_id, else its name (as in the meter events).
func businessUnit(metadata JSON, name string) string {
	var m map[string]any
	json.Unmarshal(metadata, &m)
	if bu, _ := m["business_unit_id"].(string); bu != "" {
		return bu
	}
	return name
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sortedByCost lists a map's values highest cost first, then by name.
func sortedByCost[T any](m map[string]*T, costName func(*T) (float64, string)) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		ci, ni := costName(&out[i])
		cj, nj := costName(&out[j])
		if ci != cj {
			return ci > cj
		}
		return ni < nj
	})
	return out
}
