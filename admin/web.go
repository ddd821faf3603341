package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/mux"

	"tollgate/static"
	"tollgate/store"
	"tollgate/views"
)

// newSessions keeps dashboard sessions in PostgreSQL, so any admin replica
// serves any signed-in browser. Expired rows are removed by a job.
func newSessions(st *store.Store) *scs.SessionManager {
	sm := scs.New()
	sm.Store = postgresstore.NewWithCleanupInterval(st.DB().DB, 0)
	sm.Lifetime = 12 * time.Hour   // TOLLGATE_SESSION_LIFETIME
	sm.IdleTimeout = 2 * time.Hour // TOLLGATE_SESSION_IDLE_TIMEOUT
	sm.Cookie.Name = "tollgate_session"
	sm.Cookie.HttpOnly = true
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Path = "/"
	return sm
}

// SetSessionTimeouts sets how long a dashboard session lasts unused
// (idle) and at most (lifetime).
func (s *Server) SetSessionTimeouts(idle, lifetime time.Duration) {
	s.sessions.IdleTimeout, s.sessions.Lifetime = idle, lifetime
}

// SetSecureCookies marks the session cookie Secure; turn it on when the
// dashboard is served over TLS (TOLLGATE_SECURE_COOKIES).
func (s *Server) SetSecureCookies(on bool) { s.sessions.Cookie.Secure = on }

// securityHeaders forbid framing and inline script on every page.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// webRoutes mounts the dashboard: pages need a session; every
// state-changing request must come from our own origin (CSRF).
func (s *Server) webRoutes(r *mux.Router) {
	r.PathPrefix("/static/").Handler(http.StripPrefix("/static/", http.FileServerFS(static.FS)))
	csrf := http.NewCrossOriginProtection()
	web := r.NewRoute().Subrouter()
	web.Use(securityHeaders, s.sessions.LoadAndSave, csrf.Handler)
	web.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, home(s.sessions.GetString(r.Context(), sessRole)), http.StatusSeeOther)
	}).Methods(http.MethodGet)
	web.HandleFunc("/signin", s.signInPage).Methods(http.MethodGet)
	web.HandleFunc("/signin", s.signIn).Methods(http.MethodPost)
	web.HandleFunc("/signout", s.signOut).Methods(http.MethodPost)
	web.HandleFunc("/auth/oidc/login", s.oidcLogin).Methods(http.MethodGet)
	web.HandleFunc("/auth/oidc/callback", s.oidcCallback).Methods(http.MethodGet)

	pages := web.NewRoute().Subrouter()
	pages.Use(s.requireSession)
	pages.HandleFunc("/dashboard", s.dashboardPage).Methods(http.MethodGet)
	s.keyPages(pages)
	s.teamPages(pages)
	s.providerPages(pages)
	s.modelPages(pages)
	s.routingPages(pages)
	s.guardrailPages(pages)
	s.userPages(pages)
	s.userAccessPages(pages)
	s.budgetPages(pages)
	s.spendPages(pages)
	s.auditPages(pages)
	s.chargebackPages(pages)
	s.billingPages(pages)
	s.playgroundPages(pages)
}

const (
	sessRole   = "role"
	sessActor  = "actor"
	sessUserID = "user_id"
	sessName   = "name"
	// sessSignedInAt ends the session when it is before the user's
	// sessions_valid_after (they were blocked, or signed out everywhere).
	sessSignedInAt = "signed_in_at"
)

// signInView is the sign-in page as configured: the single sign-on button
// and/or the key form.
func (s *Server) signInView() views.SignInView {
	v := views.SignInView{KeyForm: s.keySignIn}
	if s.oidc != nil {
		v.SSOName = s.oidc.cfg.ProviderName
	}
	return v
}

// sessionEnded explains the ?ended= of a redirect from requireSession.
var sessionEnded = map[string]string{
	"blocked": "Your session has ended: your account is blocked. Ask an admin to unblock it.",
	"removed": "Your session has ended: your account no longer exists.",
	"revoked": "Your session has ended; sign in again.",
}

func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	if role := s.sessions.GetString(r.Context(), sessRole); role != "" {
		http.Redirect(w, r, home(role), http.StatusSeeOther)
		return
	}
	v := s.signInView()
	v.Notice = sessionEnded[r.URL.Query().Get("ended")]
	render(w, r, http.StatusOK, views.SignIn(v))
}

// signIn accepts the master key, or a management/default key, which signs
// its owner in with their role.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if !s.keySignIn {
		s.signInFailed(w, r, http.StatusForbidden, "Signing in with a key is turned off here (TOLLGATE_KEY_SIGNIN=false); use single sign-on.")
		return
	}
	key := strings.TrimSpace(r.PostFormValue("master_key"))
	var p *principal
	var err error
	if !looksLikeJWT(key) {
		p, err = s.principalFor(r.Context(), key)
	}
	var uerr *errUnauthorized
	var ferr *errForbidden
	if key == "" || p == nil && err == nil || errors.As(err, &uerr) || errors.As(err, &ferr) {
		v := s.signInView()
		v.Error = "That is not the master key or a management key."
		render(w, r, http.StatusUnauthorized, views.SignIn(v))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	name := "master key"
	if p.Actor != masterActor {
		name = strings.TrimPrefix(strings.SplitN(p.Actor, " via ", 2)[0], "user:")
	}
	if err := s.startSession(r.Context(), p, name, time.Now()); err != nil {
		s.writeErr(w, r, err)
		return
	}
	http.Redirect(w, r, home(p.Role), http.StatusSeeOther)
}

// home is where a role lands after sign-in: members on their keys, the
// only page of theirs besides the playground.
func home(role string) string {
	if role == store.RoleMember {
		return "/keys"
	}
	return "/dashboard"
}

// startSession signs p in: a new session token (against session fixation)
// holding who they are and when they signed in.
func (s *Server) startSession(ctx context.Context, p *principal, name string, at time.Time) error {
	if err := s.sessions.RenewToken(ctx); err != nil {
		return err
	}
	s.sessions.Put(ctx, sessRole, p.Role)
	s.sessions.Put(ctx, sessActor, p.Actor+" (dashboard)")
	s.sessions.Put(ctx, sessUserID, p.UserID)
	s.sessions.Put(ctx, sessName, name)
	s.sessions.Put(ctx, sessSignedInAt, at.UnixMicro())
	return nil
}

// endSession signs the visitor out and sends them to the sign-in page,
// which says why.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request, reason string) {
	if err := s.sessions.Destroy(r.Context()); err != nil {
		s.writeErr(w, r, err)
		return
	}
	to := "/signin?ended=" + reason
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if err := s.sessions.Destroy(r.Context()); err != nil {
		s.writeErr(w, r, err)
		return
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// requireSession sends visitors without a session to the sign-in page and
// applies the roles: only admins change anything from the dashboard.
func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		role := s.sessions.GetString(ctx, sessRole)
		if role == "" {
			if r.Header.Get("HX-Request") == "true" {
				w.Header().Set("HX-Redirect", "/signin")
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			http.Redirect(w, r, "/signin", http.StatusSeeOther)
			return
		}
		p := &principal{Actor: s.sessions.GetString(ctx, sessActor), Role: role, UserID: s.sessions.GetString(ctx, sessUserID)}
		if p.UserID != "" {
			// The user row decides on every page: blocking or removing
			// them ends the session, and a new role applies at once.
			u, err := s.st.GetUser(ctx, p.UserID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				s.endSession(w, r, "removed")
				return
			case err != nil:
				s.writeErr(w, r, err)
				return
			case u.Blocked:
				s.endSession(w, r, "blocked")
				return
			case time.UnixMicro(s.sessions.GetInt64(ctx, sessSignedInAt)).Before(u.SessionsValidAfter):
				s.endSession(w, r, "revoked")
				return
			}
			p.Role, p.TeamIDs = u.Role, u.Teams
		}
		switch {
		case p.Role == store.RoleMember:
			// Members see their own keys and the playground, nothing else.
			if !memberPage(r.URL.Path) {
				http.Error(w, "Members may manage their own keys and use the playground; this page is for admins and finance users.", http.StatusForbidden)
				return
			}
		case r.Method != http.MethodGet && p.Role != store.RoleAdmin && !strings.HasPrefix(r.URL.Path, "/playground/"):
			http.Error(w, "Finance users have read-only access.", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(withPrincipal(ctx, p)))
	})
}

// memberPage reports whether a member may open path.
func memberPage(path string) bool {
	return path == "/keys" || strings.HasPrefix(path, "/keys/") || path == "/playground" || strings.HasPrefix(path, "/playground/")
}

// viewSession is the signed-in person as pages show them.
func (s *Server) viewSession(ctx context.Context) views.Session {
	p := principalFrom(ctx)
	return views.Session{Name: s.sessions.GetString(ctx, sessName), Role: p.Role, CanWrite: p.Role == store.RoleAdmin}
}

// page renders a whole page, or only its body for htmx requests that
// target the content area.
func (s *Server) page(w http.ResponseWriter, r *http.Request, title, active string, body templ.Component) {
	if r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-Target") == "content" {
		render(w, r, http.StatusOK, body)
		return
	}
	render(w, r, http.StatusOK, views.Page(title, active, s.viewSession(r.Context()), body))
}

func render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	c.Render(r.Context(), w)
}

// toast asks the page to show a short message after an htmx request.
func toast(w http.ResponseWriter, level, msg string) {
	b, _ := json.Marshal(map[string]any{"showToast": map[string]string{"message": msg, "level": level}})
	w.Header().Set("HX-Trigger", string(b))
}

// userMessage is the one message a person can act on for a validation or
// conflict error; any other error comes back for writeErr.
func userMessage(err error) (string, error) {
	errs, err := fieldErrors(err)
	if err != nil {
		return "", err
	}
	for _, msg := range errs {
		return msg, nil
	}
	return "", nil
}

// refuse leaves the page as it is and says why in a toast.
func refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("HX-Reswap", "none")
	toast(w, "error", msg)
	w.WriteHeader(http.StatusOK)
}

// refuseErr refuses with the message of a store validation error; other
// errors are answered as failures.
func (s *Server) refuseErr(w http.ResponseWriter, r *http.Request, err error) {
	msg, err := userMessage(err)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	refuse(w, msg)
}

// fieldErrors turns a store validation error into a message per field;
// other errors are returned as they are.
func fieldErrors(err error) (map[string]string, error) {
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		field := verr.Field
		if field == "" {
			field = "form"
		}
		return map[string]string{field: verr.Message}, nil
	}
	var cerr *store.ConflictError
	if errors.As(err, &cerr) {
		return map[string]string{"form": cerr.Message}, nil
	}
	return nil, err
}
