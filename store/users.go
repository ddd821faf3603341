package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

const userSelect = `SELECT u.*, array(SELECT m.team_id::text FROM team_members m WHERE m.user_id = u.id ORDER BY m.team_id) AS teams FROM users u`

// UserInput is a user and, optionally, the ids of the teams they belong to
// and who decides their role.
type UserInput struct {
	UserSpec
	Teams *[]string `json:"teams"`
	// RoleSource is "admin" (the role is set by hand) or "sso" (the
	// groups claim sets it at each sign-in). Changing the role makes it
	// "admin" unless the same change switches it to "sso".
	RoleSource *string `json:"role_source"`
}

func checkRoleSource(src *string) error {
	if src != nil && *src != RoleFromAdmin && *src != RoleFromSSO {
		return invalid("role_source", "role_source must be admin (set by hand) or sso (from the groups claim at each sign-in), got %q", *src)
	}
	return nil
}

// setUserTeams makes the user a member of exactly these teams. Memberships
// kept keep their source (a team from the groups claim stays "sso");
// new ones are the admin's.
func setUserTeams(ctx context.Context, tx *sqlx.Tx, userID string, teams []string) error {
	for _, id := range teams {
		if !isUUID(id) {
			return invalid("teams", "teams must hold team ids (UUIDs); %q is not one", id)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM team_members WHERE user_id = $1 AND NOT (team_id = ANY($2::uuid[]))`, userID, pq.StringArray(append([]string{}, teams...))); err != nil {
		return fmt.Errorf("clear teams: %w", err)
	}
	for _, id := range teams {
		var exists bool
		err := tx.GetContext(ctx, &exists, `WITH t AS (SELECT id FROM teams WHERE id = $1),
			added AS (INSERT INTO team_members (team_id, user_id, source) SELECT id, $2, 'admin' FROM t ON CONFLICT DO NOTHING)
			SELECT EXISTS (SELECT 1 FROM t)`, id, userID)
		if err != nil {
			return fmt.Errorf("add team: %w", err)
		}
		if !exists {
			return invalid("teams", "team %s does not exist", id)
		}
	}
	return nil
}

func getUser(ctx context.Context, q sqlx.QueryerContext, id string) (*User, error) {
	var u User
	if err := sqlx.GetContext(ctx, q, &u, userSelect+` WHERE u.id = $1`, id); err != nil {
		return nil, mapErr(err, "user "+id)
	}
	return &u, nil
}

// CreateUser stores a new user.
func (s *Store) CreateUser(ctx context.Context, actor string, in UserInput) (*User, error) {
	if err := in.UserSpec.Normalize(); err != nil {
		return nil, err
	}
	if err := checkRoleSource(in.RoleSource); err != nil {
		return nil, err
	}
	roleSource := RoleFromAdmin
	if in.RoleSource != nil {
		roleSource = *in.RoleSource
	}
	var u *User
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		resetAt, err := resetAtFor(in.BudgetDuration, nil, nil, time.Now())
		if err != nil {
			return err
		}
		var id string
		err = tx.GetContext(ctx, &id, `INSERT INTO users (email, name, role, max_budget, soft_budget, budget_duration, rpm_limit, tpm_limit, budget_reset_at, blocked, role_source)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			in.Email, in.Name, in.Role, in.MaxBudget, in.SoftBudget, in.BudgetDuration, in.RPMLimit, in.TPMLimit, resetAt, in.Blocked, roleSource)
		if err != nil {
			return mapErr(err, fmt.Sprintf("user %q", in.Email))
		}
		if in.Teams != nil {
			if err := setUserTeams(ctx, tx, id, *in.Teams); err != nil {
				return err
			}
		}
		if u, err = getUser(ctx, tx, id); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "user.create", "user", id, nil, u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// GetUser reads one user.
func (s *Store) GetUser(ctx context.Context, id string) (*User, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return getUser(ctx, s.db, id)
}

// AllUsers returns every user, for the gateway's cache.
func (s *Store) AllUsers(ctx context.Context) ([]User, error) {
	rows := []User{}
	if err := s.db.SelectContext(ctx, &rows, userSelect); err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	return rows, nil
}

// ListUsers returns a page of users.
func (s *Store) ListUsers(ctx context.Context, page Page) ([]User, string, error) {
	rows, next, err := listPage[User](ctx, s, `SELECT * FROM (`+userSelect+`) x`, "created_at", "id", query{}, page)
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	return rows, next, nil
}

// lockUser locks the user's row for the rest of tx and reads the user.
func lockUser(ctx context.Context, tx *sqlx.Tx, id string) (*User, error) {
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id); err != nil {
		return nil, mapErr(err, "user "+id)
	}
	return getUser(ctx, tx, id)
}

// UpdateUser applies change to the stored user and saves it.
func (s *Store) UpdateUser(ctx context.Context, actor, id string, change func(*UserInput) error) (*User, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	var u *User
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		before, err := lockUser(ctx, tx, id)
		if err != nil {
			return err
		}
		roleSource := before.RoleSource
		in := UserInput{UserSpec: before.UserSpec, RoleSource: &roleSource}
		if err := change(&in); err != nil {
			return err
		}
		if err := in.UserSpec.Normalize(); err != nil {
			return err
		}
		if err := checkRoleSource(in.RoleSource); err != nil {
			return err
		}
		if in.RoleSource != nil {
			roleSource = *in.RoleSource
		} else {
			roleSource = before.RoleSource
		}
		// A role set by hand sticks: single sign-on stops mapping it,
		// unless the same change hands the role to single sign-on.
		if in.Role != before.Role && roleSource == before.RoleSource {
			roleSource = RoleFromAdmin
		}
		resetAt, err := resetAtFor(in.BudgetDuration, before.BudgetDuration, before.BudgetResetAt, time.Now())
		if err != nil {
			return err
		}
		// Blocking ends the user's dashboard sessions.
		_, err = tx.ExecContext(ctx, `UPDATE users SET email = $2, name = $3, role = $4, max_budget = $5, soft_budget = $6,
			budget_duration = $7, rpm_limit = $8, tpm_limit = $9, budget_reset_at = $10, role_source = $11, blocked = $12,
			sessions_valid_after = CASE WHEN $12 AND NOT blocked THEN now() ELSE sessions_valid_after END, updated_at = now() WHERE id = $1`,
			id, in.Email, in.Name, in.Role, in.MaxBudget, in.SoftBudget, in.BudgetDuration, in.RPMLimit, in.TPMLimit, resetAt, roleSource, in.Blocked)
		if err != nil {
			return mapErr(err, fmt.Sprintf("user %q", in.Email))
		}
		if in.Teams != nil {
			if err := setUserTeams(ctx, tx, id, *in.Teams); err != nil {
				return err
			}
		}
		if u, err = getUser(ctx, tx, id); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "user.update", "user", id, before, u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// DeleteUser removes a user; their keys stay, without an owner.
func (s *Store) DeleteUser(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		u, err := getUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = $1`, id); err != nil {
			return mapErr(err, "user "+id)
		}
		return audit(ctx, tx, actor, "user.delete", "user", id, u, nil)
	})
}

// SetUserBlocked blocks or unblocks a user. Blocking ends their dashboard
// sessions at once and refuses their sign-ins until unblocked.
func (s *Store) SetUserBlocked(ctx context.Context, actor, id string, blocked bool) (*User, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	action := "user.unblock"
	if blocked {
		action = "user.block"
	}
	var u *User
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		before, err := lockUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.Blocked == blocked {
			u = before
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET blocked = $2,
			sessions_valid_after = CASE WHEN $2 THEN now() ELSE sessions_valid_after END, updated_at = now() WHERE id = $1`, id, blocked)
		if err != nil {
			return mapErr(err, "user "+id)
		}
		if u, err = getUser(ctx, tx, id); err != nil {
			return err
		}
		return audit(ctx, tx, actor, action, "user", id, before, u)
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}
