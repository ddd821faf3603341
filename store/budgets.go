package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// Limits are a subject's budget and limits once its profile filled the
// fields it leaves unset.
type Limits struct {
	MaxBudget           *float64 `json:"max_budget"`
	SoftBudget          *float64 `json:"soft_budget"`
	BudgetDuration      *string  `json:"budget_duration"`
	RPMLimit            *int64   `json:"rpm_limit"`
	TPMLimit            *int64   `json:"tpm_limit"`
	MaxParallelRequests *int64   `json:"max_parallel_requests"`
}

func orF(own, fallback *float64) *float64 {
	if own != nil {
		return own
	}
	return fallback
}

func orI(own, fallback *int64) *int64 {
	if own != nil {
		return own
	}
	return fallback
}

func orS(own, fallback *string) *string {
	if own != nil {
		return own
	}
	return fallback
}

func (p *Budget) limits() Limits {
	if p == nil {
		return Limits{}
	}
	return Limits{p.MaxBudget, p.SoftBudget, p.BudgetDuration, p.RPMLimit, p.TPMLimit, p.MaxParallelRequests}
}

func (l Limits) over(p *Budget) Limits {
	d := p.limits()
	return Limits{orF(l.MaxBudget, d.MaxBudget), orF(l.SoftBudget, d.SoftBudget), orS(l.BudgetDuration, d.BudgetDuration),
		orI(l.RPMLimit, d.RPMLimit), orI(l.TPMLimit, d.TPMLimit), orI(l.MaxParallelRequests, d.MaxParallelRequests)}
}

// Limits merges the key's own settings over its profile's (profile may be nil).
func (k *KeySpec) Limits(profile *Budget) Limits {
	return Limits{k.MaxBudget, k.SoftBudget, k.BudgetDuration, k.RPMLimit, k.TPMLimit, k.MaxParallelRequests}.over(profile)
}

// Limits merges the team's own settings over its profile's (profile may be nil).
func (t *TeamSpec) Limits(profile *Budget) Limits {
	return Limits{t.MaxBudget, t.SoftBudget, t.BudgetDuration, t.RPMLimit, t.TPMLimit, t.MaxParallelRequests}.over(profile)
}

// Limits are the user's settings.
func (u *UserSpec) Limits() Limits {
	return Limits{MaxBudget: u.MaxBudget, SoftBudget: u.SoftBudget, BudgetDuration: u.BudgetDuration, RPMLimit: u.RPMLimit, TPMLimit: u.TPMLimit}
}

// NextReset is when a budget with this duration that is running at from
// next resets: daily at 00:00 UTC, weekly on Monday 00:00 UTC, monthly on
// the 1st 00:00 UTC, and counts such as "30d" that long after from.
func NextReset(duration string, from time.Time) (time.Time, error) {
	from = from.UTC()
	day := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	switch duration {
	case "daily":
		return day.AddDate(0, 0, 1), nil
	case "weekly":
		return day.AddDate(0, 0, 7-(int(day.Weekday())+6)%7), nil
	case "monthly":
		return time.Date(from.Year(), from.Month()+1, 1, 0, 0, 0, 0, time.UTC), nil
	}
	d, err := ParseDuration(duration)
	if err != nil {
		return time.Time{}, err
	}
	return from.Add(d).Truncate(time.Second), nil
}

// advanceReset moves a reset time past now, keeping "30d"-style periods
// anchored to their start.
func advanceReset(duration string, last, now time.Time) (time.Time, error) {
	next := last
	for !next.After(now) {
		n, err := NextReset(duration, next)
		if err != nil {
			return time.Time{}, err
		}
		if !n.After(next) {
			return time.Time{}, fmt.Errorf("budget duration %q does not advance", duration)
		}
		next = n
	}
	return next, nil
}

// resetAtFor is the reset time to store for a subject whose effective
// duration is now dur: kept when the duration did not change.
func resetAtFor(dur, oldDur *string, old *time.Time, now time.Time) (*time.Time, error) {
	if dur == nil {
		return nil, nil
	}
	if old != nil && oldDur != nil && *oldDur == *dur {
		return old, nil
	}
	t, err := NextReset(*dur, now)
	if err != nil {
		return nil, invalid("budget_duration", "%v", err)
	}
	return &t, nil
}

// budgetPeriod is what decides a key's or team's budget period: its own
// duration, else its profile's.
type budgetPeriod struct {
	own       *string
	profileID *string
}

func (p budgetPeriod) duration(ctx context.Context, q sqlx.QueryerContext) (*string, error) {
	profile, err := getProfile(ctx, q, p.profileID)
	if err != nil || profile == nil {
		return p.own, err
	}
	return orS(p.own, profile.BudgetDuration), nil
}

// periodAfterChange is the reset time after a key or team changed from
// before to after: kept when the effective duration stayed the same.
func periodAfterChange(ctx context.Context, q sqlx.QueryerContext, before, after budgetPeriod, old *time.Time) (*time.Time, error) {
	was, err := before.duration(ctx, q)
	if err != nil {
		return nil, err
	}
	now, err := after.duration(ctx, q)
	if err != nil {
		return nil, err
	}
	return resetAtFor(now, was, old, time.Now())
}

func getProfile(ctx context.Context, q sqlx.QueryerContext, id *string) (*Budget, error) {
	if id == nil {
		return nil, nil
	}
	if !isUUID(*id) {
		return nil, invalid("budget_id", "budget_id must be a budget profile's id (a UUID)")
	}
	var b Budget
	if err := sqlx.GetContext(ctx, q, &b, `SELECT * FROM budgets WHERE id = $1`, *id); err != nil {
		if err := mapErr(err, "budget"); isNotFound(err) {
			return nil, invalid("budget_id", "budget_id %s does not name an existing budget profile", *id)
		}
		return nil, mapErr(err, "budget")
	}
	return &b, nil
}

// Normalize checks a budget profile.
func (b *BudgetSpec) Normalize() error {
	b.Name = strings.TrimSpace(b.Name)
	if b.Name == "" {
		return invalid("name", "name is required")
	}
	return firstErr(
		nonNegative("max_budget", b.MaxBudget),
		nonNegative("soft_budget", b.SoftBudget),
		ValidateBudgetDuration("budget_duration", b.BudgetDuration),
		nonNegativeInt("rpm_limit", b.RPMLimit),
		nonNegativeInt("tpm_limit", b.TPMLimit),
		nonNegativeInt("max_parallel_requests", b.MaxParallelRequests),
	)
}

// CreateBudget stores a new budget profile.
func (s *Store) CreateBudget(ctx context.Context, actor string, spec BudgetSpec) (*Budget, error) {
	if err := spec.Normalize(); err != nil {
		return nil, err
	}
	var b Budget
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &b, `
			INSERT INTO budgets (name, max_budget, soft_budget, budget_duration, rpm_limit, tpm_limit, max_parallel_requests)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
			spec.Name, spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, spec.RPMLimit, spec.TPMLimit, spec.MaxParallelRequests)
		if err != nil {
			return mapErr(err, fmt.Sprintf("budget %q", spec.Name))
		}
		return audit(ctx, tx, actor, "budget.create", "budget", b.ID, nil, b)
	})
	if err != nil {
		return nil, err
	}
	return &b, nil
}

// GetBudget reads one budget profile.
func (s *Store) GetBudget(ctx context.Context, id string) (*Budget, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("budget %s: %w", id, ErrNotFound)
	}
	var b Budget
	if err := s.db.GetContext(ctx, &b, `SELECT * FROM budgets WHERE id = $1`, id); err != nil {
		return nil, mapErr(err, "budget "+id)
	}
	return &b, nil
}

// ListBudgets returns a page of budget profiles.
func (s *Store) ListBudgets(ctx context.Context, page Page) ([]Budget, string, error) {
	rows, next, err := listPage[Budget](ctx, s, `SELECT * FROM budgets`, "created_at", "id", query{}, page)
	if err != nil {
		return nil, "", fmt.Errorf("list budgets: %w", err)
	}
	return rows, next, nil
}

// AllBudgets returns every budget profile, for the gateway's cache.
func (s *Store) AllBudgets(ctx context.Context) ([]Budget, error) {
	rows := []Budget{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM budgets ORDER BY name`); err != nil {
		return nil, fmt.Errorf("load budgets: %w", err)
	}
	return rows, nil
}

// UpdateBudget applies change to a budget profile. Keys and teams that use
// it and now have a different budget period get a new reset time.
func (s *Store) UpdateBudget(ctx context.Context, actor, id string, change func(*BudgetSpec) error) (*Budget, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("budget %s: %w", id, ErrNotFound)
	}
	var b Budget
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &b, `SELECT * FROM budgets WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "budget "+id)
		}
		before := b
		spec := b.BudgetSpec
		if err := change(&spec); err != nil {
			return err
		}
		if err := spec.Normalize(); err != nil {
			return err
		}
		err := tx.GetContext(ctx, &b, `
			UPDATE budgets SET name = $2, max_budget = $3, soft_budget = $4, budget_duration = $5, rpm_limit = $6,
			       tpm_limit = $7, max_parallel_requests = $8, updated_at = now()
			WHERE id = $1 RETURNING *`,
			id, spec.Name, spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, spec.RPMLimit, spec.TPMLimit, spec.MaxParallelRequests)
		if err != nil {
			return mapErr(err, fmt.Sprintf("budget %q", spec.Name))
		}
		if !sameString(before.BudgetDuration, b.BudgetDuration) {
			// Subjects with their own duration keep their period.
			for _, table := range []string{"keys", "teams"} {
				if err := restartPeriods(ctx, tx, table, b.BudgetDuration, id); err != nil {
					return err
				}
			}
		}
		return audit(ctx, tx, actor, "budget.update", "budget", id, before, b)
	})
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func restartPeriods(ctx context.Context, tx *sqlx.Tx, table string, dur *string, budgetID string) error {
	var at *time.Time
	if dur != nil {
		t, err := NextReset(*dur, time.Now())
		if err != nil {
			return err
		}
		at = &t
	}
	_, err := tx.ExecContext(ctx, `UPDATE `+table+` SET budget_reset_at = $1 WHERE budget_id = $2 AND budget_duration IS NULL`, at, budgetID)
	if err != nil {
		return fmt.Errorf("restart budget periods: %w", err)
	}
	return nil
}

func sameString(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// DeleteBudget removes a budget profile nothing uses any more.
func (s *Store) DeleteBudget(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("budget %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var users int
		if err := tx.GetContext(ctx, &users, `SELECT (SELECT count(*) FROM keys WHERE budget_id = $1) + (SELECT count(*) FROM teams WHERE budget_id = $1)`, id); err != nil {
			return fmt.Errorf("count budget users: %w", err)
		}
		if users > 0 {
			return &ConflictError{Message: fmt.Sprintf("budget profile is used by %d keys and teams; point them elsewhere first", users)}
		}
		var b Budget
		if err := tx.GetContext(ctx, &b, `DELETE FROM budgets WHERE id = $1 RETURNING *`, id); err != nil {
			return mapErr(err, "budget "+id)
		}
		return audit(ctx, tx, actor, "budget.delete", "budget", id, b, nil)
	})
}

const globalID = "00000000-0000-0000-0000-000000000000"

// GetGlobalBudget reads the budget over all spend.
func (s *Store) GetGlobalBudget(ctx context.Context) (*GlobalBudget, error) {
	var g GlobalBudget
	if err := s.db.GetContext(ctx, &g, `SELECT * FROM global_budget`); err != nil {
		return nil, mapErr(err, "global budget")
	}
	return &g, nil
}

// UpdateGlobalBudget applies change to the global budget.
func (s *Store) UpdateGlobalBudget(ctx context.Context, actor string, change func(*GlobalBudgetSpec) error) (*GlobalBudget, error) {
	var g GlobalBudget
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &g, `SELECT * FROM global_budget FOR UPDATE`); err != nil {
			return mapErr(err, "global budget")
		}
		before := g
		spec := g.GlobalBudgetSpec
		if err := change(&spec); err != nil {
			return err
		}
		if err := firstErr(nonNegative("max_budget", spec.MaxBudget), nonNegative("soft_budget", spec.SoftBudget),
			ValidateBudgetDuration("budget_duration", spec.BudgetDuration)); err != nil {
			return err
		}
		resetAt, err := resetAtFor(spec.BudgetDuration, before.BudgetDuration, before.BudgetResetAt, time.Now())
		if err != nil {
			return err
		}
		err = tx.GetContext(ctx, &g, `UPDATE global_budget SET max_budget = $1, soft_budget = $2, budget_duration = $3,
			budget_reset_at = $4, updated_at = now() RETURNING *`, spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, resetAt)
		if err != nil {
			return mapErr(err, "global budget")
		}
		return audit(ctx, tx, actor, "global_budget.update", "global_budget", globalID, before, g)
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// Subject types of budgets.
const (
	SubjectKey    = "key"
	SubjectTeam   = "team"
	SubjectUser   = "user"
	SubjectGlobal = "global"
)

var subjectTables = map[string]string{SubjectKey: "keys", SubjectTeam: "teams", SubjectUser: "users", SubjectGlobal: "global_budget"}

// SubjectSpend reads the spend a key, team, user or the global budget has
// in its current period, as written so far.
func (s *Store) SubjectSpend(ctx context.Context, subjectType, id string) (float64, error) {
	table, ok := subjectTables[subjectType]
	if !ok {
		return 0, fmt.Errorf("unknown budget subject %q", subjectType)
	}
	if subjectType == SubjectGlobal {
		id = globalID
	}
	var spend float64
	if err := s.db.GetContext(ctx, &spend, `SELECT spend FROM `+table+` WHERE id = $1`, id); err != nil {
		return 0, mapErr(err, subjectType+" "+id)
	}
	return spend, nil
}

// dueBudget is one subject whose budget period needs attention.
type dueBudget struct {
	ID       string     `db:"id"`
	Name     string     `db:"name"`
	Spend    float64    `db:"spend"`
	Duration *string    `db:"duration"`
	ResetAt  *time.Time `db:"budget_reset_at"`
}

// dueQueries select, per subject type, the rows whose period ended, whose
// reset time is missing, or who have a reset time but no period any more.
var dueQueries = map[string]string{
	SubjectKey: `SELECT k.id, k.alias AS name, k.spend, COALESCE(k.budget_duration, b.budget_duration) AS duration, k.budget_reset_at
		FROM keys k LEFT JOIN budgets b ON b.id = k.budget_id`,
	SubjectTeam: `SELECT t.id, t.name, t.spend, COALESCE(t.budget_duration, b.budget_duration) AS duration, t.budget_reset_at
		FROM teams t LEFT JOIN budgets b ON b.id = t.budget_id`,
	SubjectUser:   `SELECT u.id, u.email AS name, u.spend, u.budget_duration AS duration, u.budget_reset_at FROM users u`,
	SubjectGlobal: `SELECT g.id, 'global' AS name, g.spend, g.budget_duration AS duration, g.budget_reset_at FROM global_budget g`,
}

// BudgetReset is one budget period that ended.
type BudgetReset struct {
	SubjectType string
	SubjectID   string
	Spend       float64 // the spend the period ended with
	NextReset   time.Time
}

// ResetBudgets starts a new period for every budget whose period ended by
// now: spend goes back to 0 and the reset time moves on, with an audit row
// each. It also sets missing reset times and clears those without a period.
func (s *Store) ResetBudgets(ctx context.Context, actor string, now time.Time) ([]BudgetReset, error) {
	var done []BudgetReset
	for _, subject := range []string{SubjectKey, SubjectTeam, SubjectUser, SubjectGlobal} {
		table := subjectTables[subject]
		err := s.inTx(ctx, func(tx *sqlx.Tx) error {
			var rows []dueBudget
			q := `SELECT * FROM (` + dueQueries[subject] + `) d
				WHERE (duration IS NOT NULL AND (budget_reset_at IS NULL OR budget_reset_at <= $1))
				   OR (duration IS NULL AND budget_reset_at IS NOT NULL)`
			if err := tx.SelectContext(ctx, &rows, q, now); err != nil {
				return fmt.Errorf("find due %s budgets: %w", subject, err)
			}
			for _, r := range rows {
				switch {
				case r.Duration == nil:
					if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET budget_reset_at = NULL WHERE id = $1`, r.ID); err != nil {
						return fmt.Errorf("clear reset time: %w", err)
					}
				case r.ResetAt == nil:
					next, err := NextReset(*r.Duration, now)
					if err != nil {
						return err
					}
					if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET budget_reset_at = $2 WHERE id = $1`, r.ID, next); err != nil {
						return fmt.Errorf("set reset time: %w", err)
					}
				default:
					next, err := advanceReset(*r.Duration, *r.ResetAt, now)
					if err != nil {
						return err
					}
					// The row lock makes spend written meanwhile land after the reset.
					var spend float64
					if err := tx.GetContext(ctx, &spend, `SELECT spend FROM `+table+` WHERE id = $1 FOR UPDATE`, r.ID); err != nil {
						return fmt.Errorf("lock %s budget: %w", subject, err)
					}
					if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET spend = 0, budget_reset_at = $2 WHERE id = $1`, r.ID, next); err != nil {
						return fmt.Errorf("reset %s budget: %w", subject, err)
					}
					after := map[string]any{"spend": 0, "budget_reset_at": next, "period_ended": r.ResetAt, "name": r.Name}
					before := map[string]any{"spend": spend, "budget_reset_at": r.ResetAt, "name": r.Name}
					if err := audit(ctx, tx, actor, "budget.reset", subject, r.ID, before, after); err != nil {
						return err
					}
					done = append(done, BudgetReset{SubjectType: subject, SubjectID: r.ID, Spend: spend, NextReset: next})
				}
			}
			return nil
		})
		if err != nil {
			return done, err
		}
	}
	return done, nil
}
