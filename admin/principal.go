package admin

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"tollgate/store"
)

// principal is who is calling the management API and what they may do.
type principal struct {
	Actor   string   // how the audit log names them
	Role    string   // store.RoleAdmin, RoleFinance or RoleMember
	UserID  string   // "" for the master key and ownerless keys
	TeamIDs []string // the teams of a member
}

type principalKey struct{}

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

func withPrincipal(ctx context.Context, p *principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// errForbidden is a caller acting beyond their role (403).
type errForbidden struct{ msg string }

func (e *errForbidden) Error() string { return e.msg }

// errUnauthorized is a caller without valid credentials (401).
type errUnauthorized struct{ msg string }

func (e *errUnauthorized) Error() string { return e.msg }

// authenticate resolves the bearer token: the master key acts as admin; a
// virtual key of type management or default acts with its owner's role
// (an ownerless one, which only an admin can make, as admin).
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if token == "" || !strings.EqualFold(scheme, "Bearer") {
		return nil, &errUnauthorized{"Missing credentials: send 'Authorization: Bearer <master key, management key or OIDC token>'."}
	}
	return s.principalFor(r.Context(), token)
}

// principalFor resolves a master key, a management/default virtual key,
// or (with single sign-on configured) an OIDC token of a user.
func (s *Server) principalFor(ctx context.Context, token string) (*principal, error) {
	if s.masterKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.masterKey)) == 1 {
		return &principal{Actor: masterActor, Role: store.RoleAdmin}, nil
	}
	if s.oidc != nil && looksLikeJWT(token) {
		return s.oidcPrincipal(ctx, token)
	}
	key, err := s.st.KeyByHash(ctx, store.HashKey(token))
	if errors.Is(err, store.ErrNotFound) {
		return nil, &errUnauthorized{"Invalid credentials for the management API."}
	}
	if err != nil {
		return nil, err
	}
	switch {
	case key.Blocked:
		return nil, &errUnauthorized{"This key is blocked."}
	case key.Expired(time.Now()):
		return nil, &errUnauthorized{"This key has expired."}
	case key.KeyType == store.KeyTypeLLMAPI:
		return nil, &errForbidden{"Keys of type llm_api cannot call the management API; use a management or default key."}
	}
	if key.UserID == nil {
		return &principal{Actor: "key:" + key.ID, Role: store.RoleAdmin}, nil
	}
	u, err := s.st.GetUser(ctx, *key.UserID)
	if err != nil {
		return nil, err
	}
	if u.Blocked {
		return nil, &errForbidden{"The owner of this key is blocked; ask an admin."}
	}
	return &principal{Actor: "user:" + u.Email + " via key:" + key.ID, Role: u.Role, UserID: u.ID, TeamIDs: u.Teams}, nil
}

// memberRoutes are the API routes a member may call at all; handlers then
// limit them to the member's own keys, teams and spend.
var memberRoutes = []string{
	"models.list", "teams.list", "teams.get", "users.get", "users.me",
	"keys.list", "keys.get", "keys.create", "keys.update", "keys.delete",
	"keys.block", "keys.unblock", "keys.regenerate",
	"spend.logs", "spend.report",
}

// authorize applies the roles: admins do everything, finance users read
// everything and change nothing, members reach only memberRoutes.
func authorize(p *principal, r *http.Request) error {
	switch p.Role {
	case store.RoleAdmin:
		return nil
	case store.RoleFinance:
		if r.Method == http.MethodGet {
			return nil
		}
		return &errForbidden{"Finance users have read-only access; this change needs an admin."}
	}
	name := ""
	if route := mux.CurrentRoute(r); route != nil {
		name = route.GetName()
	}
	if slices.Contains(memberRoutes, name) {
		return nil
	}
	return &errForbidden{"Members may manage only their own keys and read their own teams and spend; this needs an admin."}
}

// requireAuth authenticates and authorizes every /api/v1 call.
func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err == nil {
			err = authorize(p, r)
		}
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
	})
}

// sees reports whether p may see a record owned by userID in teamID.
func (p *principal) seesKey(k *store.Key) bool {
	return p.Role != store.RoleMember || (k.UserID != nil && *k.UserID == p.UserID)
}

func (p *principal) inTeam(teamID string) bool {
	return p.Role != store.RoleMember || slices.Contains(p.TeamIDs, teamID)
}
