package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"tollgate/config"
	"tollgate/store"
	"tollgate/views"
)

// Session keys of one sign-in attempt through the identity provider.
const (
	sessOIDCState    = "oidc_state"
	sessOIDCNonce    = "oidc_nonce"
	sessOIDCVerifier = "oidc_verifier"
	sessOIDCStarted  = "oidc_started"
)

// oidcAttemptTTL bounds the time between the sign-in button and the way
// back from the identity provider.
const oidcAttemptTTL = 10 * time.Minute

// discoveryRetry is how long a failed discovery is reported as is before
// the next request tries again.
const discoveryRetry = 2 * time.Second

// oidcAuth is single sign-on through an OpenID Connect provider. The
// provider is discovered on first use and again after a failure, so the
// admin app starts while the identity provider is down.
type oidcAuth struct {
	cfg    config.OIDC
	client *http.Client
	log    *slog.Logger

	mu       sync.Mutex
	provider *oidc.Provider
	idToken  *oidc.IDTokenVerifier // for sign-in: audience is the client id
	apiToken *oidc.IDTokenVerifier // for API calls: audience checked by tokenFor
	failedAt time.Time
	failure  error
}

// SetOIDC turns on single sign-on to the dashboard and the API.
func (s *Server) SetOIDC(cfg config.OIDC) {
	if !cfg.Enabled() {
		s.oidc = nil
		return
	}
	s.oidc = &oidcAuth{cfg: cfg, client: &http.Client{Timeout: 10 * time.Second}, log: s.log}
}

// SetKeySignIn turns the dashboard's master/management-key sign-in form on
// or off. The master key keeps working on the API either way.
func (s *Server) SetKeySignIn(on bool) { s.keySignIn = on }

// errUnavailable is a dependency that does not answer (503).
type errUnavailable struct{ msg string }

func (e *errUnavailable) Error() string { return e.msg }

// discover returns the provider and its verifiers, fetching the discovery
// document when that has not succeeded yet.
func (o *oidcAuth) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	if o.failure != nil && time.Since(o.failedAt) < discoveryRetry {
		return nil, o.failure
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client), o.cfg.Issuer)
	if err != nil {
		o.failedAt, o.failure = time.Now(), fmt.Errorf("discover %s: %w", o.cfg.Issuer, err)
		o.log.Warn("the identity provider cannot be reached", "issuer", o.cfg.Issuer, "err", err)
		return nil, o.failure
	}
	// The verifiers fetch the provider's keys again when a token names
	// one they do not know, so key rotation needs no restart.
	o.provider, o.failure = p, nil
	o.idToken = p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	o.apiToken = p.Verifier(&oidc.Config{SkipClientIDCheck: true})
	return p, nil
}

func (o *oidcAuth) unreachable() *errUnavailable {
	return &errUnavailable{"The identity provider at " + o.cfg.Issuer + " cannot be reached right now; try again in a moment. If it persists, an admin should check TOLLGATE_OIDC_ISSUER and the network."}
}

func (o *oidcAuth) oauth2Config(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: o.cfg.Scopes}
}

// tokenProblem says in a few words why go-oidc refused a token. Its
// errors never hold the token, but may hold claims: they go to no one.
func tokenProblem(err error) string {
	var expired *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &expired):
		return "expired"
	case strings.Contains(msg, "issued by a different provider"):
		return "wrong issuer"
	case strings.Contains(msg, "expected audience"):
		return "wrong audience"
	case strings.Contains(msg, "malformed jwt"):
		return "malformed"
	case strings.Contains(msg, "failed to verify signature"):
		return "bad signature"
	case strings.Contains(msg, "nbf"):
		return "not valid yet"
	}
	return "could not be verified"
}

// jwtShape is three base64url parts: a JSON Web Token, not a virtual key.
var jwtShape = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)

func looksLikeJWT(token string) bool { return jwtShape.MatchString(token) }

// verifyAPIToken checks a bearer token: issuer, signature, expiry and an
// audience of the client id or TOLLGATE_OIDC_AUDIENCES. API tokens carry
// no nonce.
func (o *oidcAuth) verifyAPIToken(ctx context.Context, raw string) (*oidc.IDToken, error) {
	if _, err := o.discover(ctx); err != nil {
		return nil, o.unreachable()
	}
	tok, err := o.apiToken.Verify(ctx, raw)
	if err != nil {
		return nil, &errUnauthorized{"The OIDC token is not valid: " + tokenProblem(err) + "."}
	}
	accepted := append([]string{o.cfg.ClientID}, o.cfg.Audiences...)
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(accepted, a) }) {
		return nil, &errUnauthorized{"The OIDC token is not valid: wrong audience (accepted: the client id or TOLLGATE_OIDC_AUDIENCES)."}
	}
	return tok, nil
}

// Reasons a verified token does not let its holder in.
var (
	errNoEmail         = errors.New("the token has no email claim: add the email scope, or ask an admin to map one")
	errEmailUnverified = errors.New("the identity provider says this email address is not verified")
)

// identity reads who a verified token vouches for and maps their groups.
// mapGroups is false for API tokens without the groups claim: they leave
// the user's role and teams as they are.
func (o *oidcAuth) identity(tok *oidc.IDToken, signIn bool) (store.SSOSignIn, error) {
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return store.SSOSignIn{}, fmt.Errorf("read claims: %w", err)
	}
	in := store.SSOSignIn{Issuer: o.cfg.Issuer, Subject: tok.Subject, SignIn: signIn, DefaultTeam: o.cfg.DefaultTeam}
	in.Email, _ = claims["email"].(string)
	in.Name, _ = claims["name"].(string)
	if in.Email == "" {
		return in, errNoEmail
	}
	if v, ok := claims["email_verified"]; ok && v != true && v != "true" {
		return in, errEmailUnverified
	}
	groups, found := groupsClaim(claims, o.cfg.GroupsClaim)
	in.Groups = signIn || found
	if in.Groups {
		in.Role, in.Teams = o.mapGroups(groups, in.Email)
	}
	return in, nil
}

// groupsClaim reads a claim of group names: an array of strings or one
// string. A dotted name reaches into objects (realm_access.roles).
func groupsClaim(claims map[string]any, name string) ([]string, bool) {
	v, ok := claims[name]
	if !ok {
		var cur any = claims
		for _, part := range strings.Split(name, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				return nil, false
			}
			if cur, ok = m[part]; !ok {
				return nil, false
			}
		}
		v = cur
	}
	switch g := v.(type) {
	case string:
		return []string{g}, true
	case []any:
		var out []string
		for _, item := range g {
			if s, isStr := item.(string); isStr {
				out = append(out, s)
			}
		}
		return out, true
	}
	return nil, false
}

// mapGroups turns group names into a role and team names: an admin group
// or an admin email makes an admin, else a finance group a finance user,
// else a member; each "<prefix><team>" group names a team.
func (o *oidcAuth) mapGroups(groups []string, email string) (string, []string) {
	role := store.RoleMember
	switch {
	case slices.Contains(o.cfg.AdminEmails, strings.ToLower(email)),
		slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(o.cfg.AdminGroups, g) }):
		role = store.RoleAdmin
	case slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(o.cfg.FinanceGroups, g) }):
		role = store.RoleFinance
	}
	var teams []string
	for _, g := range groups {
		if name, ok := strings.CutPrefix(g, o.cfg.TeamGroupPrefix); ok && name != "" && o.cfg.TeamGroupPrefix != "" {
			teams = append(teams, name)
		}
	}
	return role, teams
}

// provision signs the identity in through the store and logs group names
// that match no team.
func (s *Server) provision(ctx context.Context, in store.SSOSignIn) (*store.User, error) {
	res, err := s.st.SignInSSO(ctx, in)
	if err != nil {
		return nil, err
	}
	for _, name := range res.UnknownTeams {
		group := s.oidc.cfg.TeamGroupPrefix + name
		if name == in.DefaultTeam {
			group = "TOLLGATE_OIDC_DEFAULT_TEAM=" + name
		}
		s.log.Info("single sign-on: no team for group", "group", group)
	}
	if res.Created {
		s.log.Info("single sign-on: new user", "user_id", res.User.ID, "role", res.User.Role)
	}
	return res.User, nil
}

// oidcPrincipal resolves an OIDC bearer token on the API to its user,
// provisioning them just in time. A token without an email claim (many
// access tokens) is accepted for a user who has signed in before.
func (s *Server) oidcPrincipal(ctx context.Context, raw string) (*principal, error) {
	tok, err := s.oidc.verifyAPIToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	in, err := s.oidc.identity(tok, false)
	var u *store.User
	switch {
	case errors.Is(err, errNoEmail):
		u, err = s.st.UserByIdentity(ctx, s.oidc.cfg.Issuer, tok.Subject)
		if errors.Is(err, store.ErrNotFound) {
			return nil, &errUnauthorized{"The OIDC token has no email claim and its subject has not signed in to Tollgate yet: sign in to the dashboard once, or use an ID token."}
		}
		if err == nil && u.Blocked {
			err = store.ErrUserBlocked
		}
	case errors.Is(err, errEmailUnverified):
		return nil, &errForbidden{"The OIDC token's email address is not verified by the identity provider."}
	case err == nil:
		u, err = s.provision(ctx, in)
	}
	var cerr *store.ConflictError
	switch {
	case errors.Is(err, store.ErrUserBlocked):
		return nil, &errForbidden{"This user is blocked; ask an admin."}
	case errors.As(err, &cerr):
		return nil, &errForbidden{capitalize(cerr.Message) + "."}
	case err != nil:
		return nil, err
	}
	return &principal{Actor: "user:" + u.Email + " via oidc", Role: u.Role, UserID: u.ID, TeamIDs: u.Teams}, nil
}

// randomToken is 32 random bytes, base64url: for state and nonce.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// oidcLogin starts the authorization code flow with PKCE. The state,
// nonce and verifier of this one attempt stay in the server-side session.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if s.oidc == nil {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	p, err := s.oidc.discover(ctx)
	if err != nil {
		s.signInFailed(w, r, http.StatusServiceUnavailable, s.oidc.unreachable().msg)
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	s.sessions.Put(ctx, sessOIDCState, state)
	s.sessions.Put(ctx, sessOIDCNonce, nonce)
	s.sessions.Put(ctx, sessOIDCVerifier, verifier)
	s.sessions.Put(ctx, sessOIDCStarted, time.Now().UnixMicro())
	http.Redirect(w, r, s.oidc.oauth2Config(p).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// idpErrorCode keeps only a plain OAuth error code from the query string:
// the page must not show text a stranger put in a link.
var idpErrorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// oidcCallback finishes the flow: the attempt's state is used up first,
// then the code is exchanged, the ID token and its nonce checked, and the
// person provisioned and signed in.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.oidc == nil {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	// One use: whatever happens next, this attempt cannot be replayed.
	state := s.sessions.PopString(ctx, sessOIDCState)
	nonce := s.sessions.PopString(ctx, sessOIDCNonce)
	verifier := s.sessions.PopString(ctx, sessOIDCVerifier)
	started := time.UnixMicro(s.sessions.GetInt64(ctx, sessOIDCStarted))
	s.sessions.Remove(ctx, sessOIDCStarted)
	q := r.URL.Query()

	if code := q.Get("error"); code != "" {
		if !idpErrorCode.MatchString(code) {
			code = "an unknown error"
		}
		s.oidcFailed(w, r, http.StatusUnauthorized, "The identity provider did not sign you in ("+code+").", "idp_error", code)
		return
	}
	got := q.Get("state")
	if state == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(state)) != 1 || time.Since(started) > oidcAttemptTTL {
		s.oidcFailed(w, r, http.StatusBadRequest, "This sign-in link has expired or was already used. Start again.", "bad_state", "")
		return
	}
	p, err := s.oidc.discover(ctx)
	if err != nil {
		s.signInFailed(w, r, http.StatusServiceUnavailable, s.oidc.unreachable().msg)
		return
	}
	xctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, s.oidc.client), 15*time.Second)
	defer cancel()
	token, err := s.oidc.oauth2Config(p).Exchange(xctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		// The provider's answer may echo the code: log only its error code.
		detail := "no answer"
		var rerr *oauth2.RetrieveError
		if errors.As(err, &rerr) {
			detail = fmt.Sprintf("HTTP %d %s", rerr.Response.StatusCode, rerr.ErrorCode)
		}
		s.oidcFailed(w, r, http.StatusUnauthorized, "The identity provider did not accept the sign-in code. Start again.", "exchange_failed", detail)
		return
	}
	raw, _ := token.Extra("id_token").(string)
	if raw == "" {
		s.oidcFailed(w, r, http.StatusUnauthorized, "The identity provider sent no ID token; check that the openid scope is requested.", "no_id_token", "")
		return
	}
	tok, err := s.oidc.idToken.Verify(ctx, raw)
	if err != nil {
		problem := tokenProblem(err)
		s.oidcFailed(w, r, http.StatusUnauthorized, "The identity provider's ID token is not valid ("+problem+"). Start again.", "invalid_token", problem)
		return
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		s.oidcFailed(w, r, http.StatusUnauthorized, "The ID token does not belong to this sign-in (nonce mismatch). Start again.", "bad_nonce", "")
		return
	}
	in, err := s.oidc.identity(tok, true)
	switch {
	case errors.Is(err, errNoEmail), errors.Is(err, errEmailUnverified):
		s.oidcFailed(w, r, http.StatusForbidden, "Tollgate needs a verified email address from the identity provider: "+err.Error()+".", "no_email", "")
		return
	case err != nil:
		s.oidcFailed(w, r, http.StatusUnauthorized, "The ID token's claims cannot be read. Start again.", "bad_claims", "")
		return
	}
	u, err := s.provision(ctx, in)
	var cerr *store.ConflictError
	var verr *store.ValidationError
	switch {
	case errors.Is(err, store.ErrUserBlocked):
		s.oidcFailed(w, r, http.StatusForbidden, "Your account is blocked. Ask an admin to unblock it.", "blocked", "")
		return
	case errors.As(err, &cerr):
		s.oidcFailed(w, r, http.StatusForbidden, capitalize(cerr.Message)+".", "conflict", "")
		return
	case errors.As(err, &verr):
		s.oidcFailed(w, r, http.StatusForbidden, capitalize(verr.Message)+".", "invalid_identity", verr.Field)
		return
	case err != nil:
		s.writeErr(w, r, err)
		return
	}
	signedIn := time.Now()
	if u.LastSignInAt != nil {
		signedIn = *u.LastSignInAt // the database's clock, as sessions_valid_after
	}
	if err := s.startSession(ctx, &principal{Actor: "user:" + u.Email + " via oidc", Role: u.Role, UserID: u.ID}, u.Email, signedIn); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.log.Info("single sign-on: signed in", "user_id", u.ID, "role", u.Role)
	http.Redirect(w, r, home(u.Role), http.StatusSeeOther)
}

// oidcFailed shows the sign-in page with msg and logs why, without any
// token or code.
func (s *Server) oidcFailed(w http.ResponseWriter, r *http.Request, status int, msg, reason, detail string) {
	s.log.Warn("single sign-on refused", "reason", reason, "detail", detail)
	s.signInFailed(w, r, status, msg)
}

func (s *Server) signInFailed(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := s.signInView()
	v.Alert = msg
	render(w, r, status, views.SignIn(v))
}
