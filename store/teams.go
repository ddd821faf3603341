package store

import (
	"time"

	"context"
	"fmt"
	"slices"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// CreateTeam stores a new team.
func (s *Store) CreateTeam(ctx context.Context, actor string, spec TeamSpec) (*Team, error) {
	if err := spec.Normalize(); err != nil {
		return nil, err
	}
	var t Team
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		profile, err := getProfile(ctx, tx, spec.BudgetID)
		if err != nil {
			return err
		}
		resetAt, err := resetAtFor(spec.Limits(profile).BudgetDuration, nil, nil, time.Now())
		if err != nil {
			return err
		}
		err = tx.GetContext(ctx, &t, `
			INSERT INTO teams (name, models, max_budget, soft_budget, budget_duration, rpm_limit, tpm_limit, blocked, metadata,
			                   max_parallel_requests, budget_id, budget_reset_at, member_key_caps)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
			spec.Name, spec.Models, spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, spec.RPMLimit, spec.TPMLimit, spec.Blocked, spec.Metadata,
			spec.MaxParallelRequests, spec.BudgetID, resetAt, spec.MemberKeyCaps)
		if err != nil {
			return mapErr(err, fmt.Sprintf("team %q", spec.Name))
		}
		if err := announceTeam(ctx, tx, &t); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "team.create", "team", t.ID, nil, t)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// clone copies the spec deep enough that decoding a change into the copy
// leaves the original alone (see KeySpec.Clone).
func (t *TeamSpec) clone() TeamSpec {
	c := *t
	c.MaxBudget, c.SoftBudget, c.BudgetDuration, c.BudgetID = clonePtr(t.MaxBudget), clonePtr(t.SoftBudget), clonePtr(t.BudgetDuration), clonePtr(t.BudgetID)
	c.RPMLimit, c.TPMLimit, c.MaxParallelRequests = clonePtr(t.RPMLimit), clonePtr(t.TPMLimit), clonePtr(t.MaxParallelRequests)
	c.Models, c.Metadata = slices.Clone(t.Models), slices.Clone(t.Metadata)
	m := t.MemberKeyCaps
	c.MemberKeyCaps = KeyCaps{MaxBudget: clonePtr(m.MaxBudget), BudgetDuration: clonePtr(m.BudgetDuration), RPMLimit: clonePtr(m.RPMLimit),
		TPMLimit: clonePtr(m.TPMLimit), MaxParallelRequests: clonePtr(m.MaxParallelRequests)}
	return c
}

// GetTeam reads one team.
func (s *Store) GetTeam(ctx context.Context, id string) (*Team, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("team %s: %w", id, ErrNotFound)
	}
	var t Team
	if err := s.db.GetContext(ctx, &t, `SELECT * FROM teams WHERE id = $1`, id); err != nil {
		return nil, mapErr(err, "team "+id)
	}
	return &t, nil
}

// TeamByName reads one team by its unique name.
func (s *Store) TeamByName(ctx context.Context, name string) (*Team, error) {
	var t Team
	if err := s.db.GetContext(ctx, &t, `SELECT * FROM teams WHERE name = $1`, name); err != nil {
		return nil, mapErr(err, fmt.Sprintf("team %q", name))
	}
	return &t, nil
}

// TeamFilter selects teams; nil IDs means all, empty IDs none.
type TeamFilter struct {
	IDs []string
	Page
}

// ListTeams returns a page of teams.
func (s *Store) ListTeams(ctx context.Context, f TeamFilter) ([]Team, string, error) {
	var q query
	if f.IDs != nil {
		q.add("id::text = ANY(?)", pq.Array(f.IDs))
	}
	rows, next, err := listPage[Team](ctx, s, `SELECT * FROM teams`, "created_at", "id", q, f.Page)
	if err != nil {
		return nil, "", fmt.Errorf("list teams: %w", err)
	}
	return rows, next, nil
}

// AllTeams returns every team, for the gateway's cache.
func (s *Store) AllTeams(ctx context.Context) ([]Team, error) {
	rows := []Team{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM teams`); err != nil {
		return nil, fmt.Errorf("load teams: %w", err)
	}
	return rows, nil
}

// UpdateTeam applies change to the stored team and saves it.
func (s *Store) UpdateTeam(ctx context.Context, actor, id string, change func(*TeamSpec) error) (*Team, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("team %s: %w", id, ErrNotFound)
	}
	var t Team
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &t, `SELECT * FROM teams WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "team "+id)
		}
		before := t
		spec := t.TeamSpec.clone() // so that the audit log's before is the team as it was
		if err := change(&spec); err != nil {
			return err
		}
		if err := spec.Normalize(); err != nil {
			return err
		}
		resetAt, err := periodAfterChange(ctx, tx, budgetPeriod{before.BudgetDuration, before.BudgetID},
			budgetPeriod{spec.BudgetDuration, spec.BudgetID}, before.BudgetResetAt)
		if err != nil {
			return err
		}
		err = tx.GetContext(ctx, &t, `
			UPDATE teams SET name = $2, models = $3, max_budget = $4, soft_budget = $5, budget_duration = $6,
			       rpm_limit = $7, tpm_limit = $8, blocked = $9, metadata = $10, max_parallel_requests = $11,
			       budget_id = $12, budget_reset_at = $13, member_key_caps = $14, updated_at = now()
			WHERE id = $1 RETURNING *`,
			id, spec.Name, spec.Models, spec.MaxBudget, spec.SoftBudget, spec.BudgetDuration, spec.RPMLimit, spec.TPMLimit, spec.Blocked, spec.Metadata,
			spec.MaxParallelRequests, spec.BudgetID, resetAt, spec.MemberKeyCaps)
		if err != nil {
			return mapErr(err, fmt.Sprintf("team %q", spec.Name))
		}
		if businessUnitChanged(&before, &t) {
			if err := announceTeam(ctx, tx, &t); err != nil {
				return err
			}
		}
		return audit(ctx, tx, actor, "team.update", "team", id, before, t)
	})
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// DeleteTeam removes a team that has no keys left.
func (s *Store) DeleteTeam(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("team %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var t Team
		if err := tx.GetContext(ctx, &t, `SELECT * FROM teams WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "team "+id)
		}
		var keys int
		if err := tx.GetContext(ctx, &keys, `SELECT count(*) FROM keys WHERE team_id = $1`, id); err != nil {
			return fmt.Errorf("count keys of team: %w", err)
		}
		if keys > 0 {
			return &ConflictError{Message: fmt.Sprintf("team %q still has %d key(s); delete them first", t.Name, keys)}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM teams WHERE id = $1`, id); err != nil {
			return mapErr(err, "team "+id)
		}
		// Guardrails name their teams in an array, which no foreign key guards.
		if _, err := tx.ExecContext(ctx, `
			UPDATE guardrails SET team_ids = array_remove(team_ids, $1::uuid), updated_at = now()
			WHERE $1::uuid = ANY(team_ids)`, id); err != nil {
			return fmt.Errorf("remove team from guardrails: %w", err)
		}
		return audit(ctx, tx, actor, "team.delete", "team", id, t, nil)
	})
}

// TeamMembers lists the users of a team.
func (s *Store) TeamMembers(ctx context.Context, teamID string) ([]User, error) {
	if _, err := s.GetTeam(ctx, teamID); err != nil {
		return nil, err
	}
	rows := []User{}
	err := s.db.SelectContext(ctx, &rows, userSelect+` WHERE u.id IN (SELECT user_id FROM team_members WHERE team_id = $1) ORDER BY u.email`, teamID)
	if err != nil {
		return nil, fmt.Errorf("list team members: %w", err)
	}
	return rows, nil
}

// AddTeamMember puts a user in a team; adding twice is harmless.
// An admin adding someone already in the team through their groups makes
// the membership the admin's, so losing the group no longer removes it.
func (s *Store) AddTeamMember(ctx context.Context, actor, teamID, userID string) error {
	if !isUUID(teamID) {
		return fmt.Errorf("team %s: %w", teamID, ErrNotFound)
	}
	if !isUUID(userID) {
		return invalid("user_id", "user_id must be a user's id (a UUID)")
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO team_members (team_id, user_id)
			SELECT t.id, u.id FROM teams t, users u WHERE t.id = $1 AND u.id = $2
			ON CONFLICT (team_id, user_id) DO UPDATE SET source = 'admin' WHERE team_members.source <> 'admin'`, teamID, userID)
		if err != nil {
			return mapErr(err, "team member")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if err := s.memberTargetsExist(ctx, tx, teamID, userID); err != nil {
				return err
			}
			return nil // already a member
		}
		return audit(ctx, tx, actor, "team.member.add", "team", teamID, nil, map[string]string{"user_id": userID})
	})
}

func (s *Store) memberTargetsExist(ctx context.Context, tx *sqlx.Tx, teamID, userID string) error {
	var teamOK, userOK bool
	err := tx.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM teams WHERE id = $1), EXISTS (SELECT 1 FROM users WHERE id = $2)`, teamID, userID).Scan(&teamOK, &userOK)
	if err != nil {
		return fmt.Errorf("check team member: %w", err)
	}
	if !teamOK {
		return fmt.Errorf("team %s: %w", teamID, ErrNotFound)
	}
	if !userOK {
		return invalid("user_id", "user_id %s does not name an existing user", userID)
	}
	return nil
}

// RemoveTeamMember takes a user out of a team.
func (s *Store) RemoveTeamMember(ctx context.Context, actor, teamID, userID string) error {
	if !isUUID(teamID) || !isUUID(userID) {
		return fmt.Errorf("team member: %w", ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM team_members WHERE team_id = $1 AND user_id = $2`, teamID, userID)
		if err != nil {
			return mapErr(err, "team member")
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %s in team %s: %w", userID, teamID, ErrNotFound)
		}
		return audit(ctx, tx, actor, "team.member.remove", "team", teamID, map[string]string{"user_id": userID}, nil)
	})
}
