package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// ErrUserBlocked is a blocked user trying to sign in.
var ErrUserBlocked = errors.New("user is blocked")

// SSOSignIn is a person as their identity provider vouches for them, and
// what their groups map to.
type SSOSignIn struct {
	Issuer, Subject string
	Email, Name     string
	// Groups says whether Role and Teams apply. False leaves the user's
	// role and teams alone (an API token without the groups claim).
	Groups      bool
	Role        string   // the role the groups map to; used while role_source is "sso"
	Teams       []string // names of the teams the groups map to
	DefaultTeam string   // joined when none of Teams exists; "" for none
	// SignIn marks a dashboard sign-in: last_sign_in_at is set.
	SignIn bool
}

// SSOResult is what a sign-in did.
type SSOResult struct {
	User    *User
	Created bool // a new user
	Linked  bool // an existing user, matched by email, now has this identity
	// UnknownTeams are team names from the groups that name no team.
	UnknownTeams []string
}

// Actor names a person acting through single sign-on in the audit log.
func (in SSOSignIn) Actor() string { return "user:" + in.Email + " via oidc" }

// errRaced is a first sign-in that lost the race to create its user.
var errRaced = errors.New("user created concurrently")

// SignInSSO finds or makes the user of an identity, in one transaction:
// by issuer and subject; else by email, linking a user who has no identity
// yet; else a new member whose role comes from single sign-on. It updates
// email and name from the claims and, when in.Groups, the role (only if
// role_source is "sso") and the memberships that came from groups; those
// an admin added stay. A blocked user gets ErrUserBlocked and nothing
// changes.
func (s *Store) SignInSSO(ctx context.Context, in SSOSignIn) (*SSOResult, error) {
	in.Email = strings.TrimSpace(in.Email)
	if addr, err := mail.ParseAddress(in.Email); err != nil || addr.Address != in.Email {
		return nil, invalid("email", "the identity provider's email %q is not a valid address", in.Email)
	}
	if in.Issuer == "" || in.Subject == "" {
		return nil, invalid("sub", "the identity has no issuer or subject")
	}
	if in.Role == "" {
		in.Role = RoleMember
	}
	if in.Role != RoleAdmin && in.Role != RoleFinance && in.Role != RoleMember {
		return nil, invalid("role", "role must be admin, finance or member (got %q)", in.Role)
	}
	res, err := s.signInSSO(ctx, in)
	if errors.Is(err, errRaced) {
		// Another sign-in of the same person created the user first.
		res, err = s.signInSSO(ctx, in)
	}
	return res, err
}

func (s *Store) signInSSO(ctx context.Context, in SSOSignIn) (*SSOResult, error) {
	res := &SSOResult{}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		id, err := s.ssoUser(ctx, tx, in, res)
		if err != nil {
			return err
		}
		before, err := getUser(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.Blocked {
			return ErrUserBlocked
		}
		role, name := before.Role, before.Name
		if in.Groups && before.RoleSource == RoleFromSSO {
			role = in.Role
		}
		if in.Name != "" {
			name = in.Name
		}
		changed := res.Linked || in.Email != before.Email || name != before.Name || role != before.Role
		if changed || in.SignIn {
			_, err = tx.ExecContext(ctx, `UPDATE users SET oidc_issuer = $2, oidc_subject = $3, email = $4, name = $5, role = $6,
				last_sign_in_at = CASE WHEN $7 THEN now() ELSE last_sign_in_at END,
				updated_at = CASE WHEN $8 THEN now() ELSE updated_at END WHERE id = $1`,
				id, in.Issuer, in.Subject, in.Email, name, role, in.SignIn, changed)
			if err != nil {
				return mapErr(err, fmt.Sprintf("user %q", in.Email))
			}
		}
		if in.Groups {
			if res.UnknownTeams, err = syncSSOTeams(ctx, tx, id, in.Teams, in.DefaultTeam); err != nil {
				return err
			}
		}
		if res.User, err = getUser(ctx, tx, id); err != nil {
			return err
		}
		if res.Created {
			return audit(ctx, tx, in.Actor(), "user.create", "user", id, nil, res.User)
		}
		if changed || !slices.Equal(before.Teams, res.User.Teams) {
			return audit(ctx, tx, in.Actor(), "user.sso_update", "user", id, before, res.User)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// ssoUser returns the id of the identity's user, linking or creating one,
// locked for the rest of the transaction.
func (s *Store) ssoUser(ctx context.Context, tx *sqlx.Tx, in SSOSignIn, res *SSOResult) (string, error) {
	var id string
	err := tx.GetContext(ctx, &id, `SELECT id FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2 FOR UPDATE`, in.Issuer, in.Subject)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("find user by identity: %w", err)
	}
	var byEmail struct {
		ID     string  `db:"id"`
		Issuer *string `db:"oidc_issuer"`
	}
	err = tx.GetContext(ctx, &byEmail, `SELECT id, oidc_issuer FROM users WHERE lower(email) = lower($1) FOR UPDATE`, in.Email)
	switch {
	case err == nil && byEmail.Issuer != nil:
		return "", &ConflictError{Message: fmt.Sprintf("the user %s is already linked to another single sign-on identity; an admin must remove that user before this one can sign in", in.Email)}
	case err == nil:
		res.Linked = true
		return byEmail.ID, nil
	case !errors.Is(err, sql.ErrNoRows):
		return "", fmt.Errorf("find user by email: %w", err)
	}
	role := RoleMember
	if in.Groups {
		role = in.Role
	}
	err = tx.GetContext(ctx, &id, `INSERT INTO users (email, name, role, role_source, oidc_issuer, oidc_subject, last_sign_in_at)
		VALUES ($1, $2, $3, 'sso', $4, $5, CASE WHEN $6 THEN now() END)
		ON CONFLICT DO NOTHING RETURNING id`, in.Email, in.Name, role, in.Issuer, in.Subject, in.SignIn)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errRaced
	}
	if err != nil {
		return "", mapErr(err, fmt.Sprintf("user %q", in.Email))
	}
	res.Created = true
	return id, nil
}

// syncSSOTeams makes the user's "sso" memberships exactly the named teams
// that exist (or the default team when none does), leaving memberships an
// admin added alone. It returns the names that match no team.
func syncSSOTeams(ctx context.Context, tx *sqlx.Tx, userID string, names []string, defaultTeam string) ([]string, error) {
	var teams []struct {
		ID   string `db:"id"`
		Name string `db:"name"`
	}
	if err := tx.SelectContext(ctx, &teams, `SELECT id, name FROM teams WHERE name = ANY($1)`, pq.StringArray(append([]string{}, names...))); err != nil {
		return nil, fmt.Errorf("find teams of groups: %w", err)
	}
	var unknown, ids []string
	for _, n := range names {
		found := false
		for _, t := range teams {
			if t.Name == n {
				found = true
				ids = append(ids, t.ID)
			}
		}
		if !found {
			unknown = append(unknown, n)
		}
	}
	if len(ids) == 0 && defaultTeam != "" {
		var id string
		err := tx.GetContext(ctx, &id, `SELECT id FROM teams WHERE name = $1`, defaultTeam)
		switch {
		case err == nil:
			ids = append(ids, id)
		case errors.Is(err, sql.ErrNoRows):
			unknown = append(unknown, defaultTeam)
		default:
			return nil, fmt.Errorf("find default team: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM team_members WHERE user_id = $1 AND source = 'sso' AND NOT (team_id = ANY($2::uuid[]))`,
		userID, pq.StringArray(append([]string{}, ids...))); err != nil {
		return nil, fmt.Errorf("remove teams of groups: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO team_members (team_id, user_id, source) SELECT unnest($2::uuid[]), $1, 'sso' ON CONFLICT DO NOTHING`,
		userID, pq.StringArray(append([]string{}, ids...))); err != nil {
		return nil, fmt.Errorf("add teams of groups: %w", err)
	}
	return unknown, nil
}

// UserByIdentity finds the user signed in through single sign-on as this
// issuer and subject.
func (s *Store) UserByIdentity(ctx context.Context, issuer, subject string) (*User, error) {
	var id string
	err := s.db.GetContext(ctx, &id, `SELECT id FROM users WHERE oidc_issuer = $1 AND oidc_subject = $2`, issuer, subject)
	if err != nil {
		return nil, mapErr(err, "user of this identity")
	}
	return getUser(ctx, s.db, id)
}
