package admin_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"tollgate/admin"
	"tollgate/config"
	"tollgate/store/storetest"
)

// ssoEnv is the admin app with single sign-on through mockoidc, a real
// OpenID Connect provider on loopback.
type ssoEnv struct {
	*env
	idp *mockoidc.MockOIDC
	adm *admin.Server
	cfg config.OIDC
}

func newSSOEnv(t *testing.T, tweak func(*config.OIDC)) *ssoEnv {
	t.Helper()
	t.Parallel()
	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	return newSSOEnvFor(t, idp, idp.Issuer(), tweak)
}

// newSSOEnvFor starts the admin app for an issuer that idp (maybe not
// started yet) will serve.
func newSSOEnvFor(t *testing.T, idp *mockoidc.MockOIDC, issuer string, tweak func(*config.OIDC)) *ssoEnv {
	st := storetest.New(t)
	srv := httptest.NewServer(nil)
	t.Cleanup(srv.Close)
	adm := admin.New(st, storetest.Redis(t), masterKey, slog.New(slog.DiscardHandler))
	cfg := config.OIDC{Issuer: issuer, ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
		RedirectURL: srv.URL + config.CallbackPath, Scopes: []string{"openid", "email", "profile", "groups"},
		ProviderName: "MockIdP", GroupsClaim: "groups", AdminGroups: []string{"tollgate-admins"},
		FinanceGroups: []string{"finance"}, TeamGroupPrefix: "team-"}
	if tweak != nil {
		tweak(&cfg)
	}
	adm.SetOIDC(cfg)
	srv.Config.Handler = adm.Handler()
	return &ssoEnv{env: &env{t: t, st: st, srv: srv}, idp: idp, adm: adm, cfg: cfg}
}

// person is who the identity provider signs in next: its ID token holds
// sub, the standard claims of the session and claims; nonce, when set,
// replaces the one the sign-in asked for.
type person struct {
	sub    string
	claims map[string]any
	nonce  string
}

func (p person) ID() string { return p.sub }

func (p person) Userinfo([]string) ([]byte, error) { return json.Marshal(p.claims) }

func (p person) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	m := jwt.MapClaims{}
	b, _ := json.Marshal(base)
	json.Unmarshal(b, &m)
	for k, v := range p.claims {
		m[k] = v
	}
	if p.nonce != "" {
		m["nonce"] = p.nonce
	}
	return m, nil
}

func ada(groups ...string) person {
	return person{sub: "sub-ada", claims: map[string]any{"email": "ada@corp.example", "email_verified": true, "name": "Ada Lovelace", "groups": groups}}
}

// client is a browser: it keeps cookies and follows redirects, through
// the identity provider and back, but stops at the callback's own answer
// so it can be checked.
func (e *ssoEnv) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == via[0].URL.Host && req.URL.Path != "/auth/oidc/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// read takes a client's answer and reads its body: read(t)(c.Get(u)).
func read(t *testing.T) func(*http.Response, error) (*http.Response, string) {
	return func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
}

// signIn clicks "Sign in with MockIdP" as p and returns the callback's
// answer.
func (e *ssoEnv) signIn(c *http.Client, p person) (*http.Response, string) {
	e.t.Helper()
	e.idp.QueueUser(p)
	return read(e.t)(c.Get(e.srv.URL + "/auth/oidc/login"))
}

// mustSignIn signs p in and returns where they land.
func (e *ssoEnv) mustSignIn(c *http.Client, p person) string {
	e.t.Helper()
	resp, body := e.signIn(c, p)
	to := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || to != "/dashboard" && to != "/keys" {
		e.t.Fatalf("sign in as %s: %d %s\n%s", p.sub, resp.StatusCode, to, body)
	}
	return to
}

// get fetches a page with c, not following redirects away from it.
func (e *ssoEnv) get(c *http.Client, path string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	return read(e.t)(c.Do(req))
}

// userByEmail reads a user through the API.
func (e *ssoEnv) userByEmail(email string) obj {
	e.t.Helper()
	users, _ := e.list("/api/v1/users?limit=1000")
	for _, u := range users {
		if strings.EqualFold(u["email"].(string), email) {
			return u
		}
	}
	e.t.Fatalf("no user %s", email)
	return nil
}

func teamsOf(u obj) []string {
	var out []string
	for _, t := range u["teams"].([]any) {
		out = append(out, t.(string))
	}
	slices.Sort(out)
	return out
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func TestSSOSignInProvisionsAndMapsGroups(t *testing.T) {
	e := newSSOEnv(t, nil)
	eng, ops, _ := e.newTeam("eng"), e.newTeam("ops"), e.newTeam("design")
	c := e.client()

	// First sign-in: a new finance user in eng; a group naming no team
	// is ignored.
	if to := e.mustSignIn(c, ada("finance", "team-eng", "team-ghost", "unrelated")); to != "/dashboard" {
		t.Errorf("finance lands on %s", to)
	}
	resp, body := e.get(c, "/dashboard")
	if resp.StatusCode != 200 || !strings.Contains(body, "ada@corp.example · finance") {
		t.Fatalf("dashboard after sign-in: %d %s", resp.StatusCode, body)
	}
	u := e.userByEmail("ada@corp.example")
	id := u["id"].(string)
	if u["role"] != "finance" || u["role_source"] != "sso" || u["oidc_subject"] != "sub-ada" || u["oidc_issuer"] != e.idp.Issuer() ||
		u["name"] != "Ada Lovelace" || u["last_sign_in_at"] == nil || !slices.Equal(teamsOf(u), []string{eng}) {
		t.Errorf("provisioned user: %v", u)
	}
	if a := e.auditFor("user.create", id); len(a) != 1 || a[0]["actor"] != "user:ada@corp.example via oidc" {
		t.Errorf("user.create audit: %v", a)
	}

	// An admin adds her to ops and makes her an admin by hand.
	e.must(http.StatusCreated, http.MethodPost, "/api/v1/teams/"+ops+"/members", obj{"user_id": id})
	if u := e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+id, obj{"role": "admin"}).json; u["role_source"] != "admin" {
		t.Errorf("a role set by hand: role_source %v", u["role_source"])
	}

	// Her groups went: eng (from the groups) goes, ops (the admin's)
	// stays, and the role set by hand stays.
	e.mustSignIn(e.client(), ada())
	u = e.userByEmail("ada@corp.example")
	if u["role"] != "admin" || !slices.Equal(teamsOf(u), []string{ops}) {
		t.Errorf("after the groups went: role %v, teams %v (eng %s, ops %s)", u["role"], u["teams"], eng, ops)
	}
	if a := e.auditFor("user.sso_update", id); len(a) != 1 || a[0]["actor"] != "user:ada@corp.example via oidc" {
		t.Errorf("user.sso_update audit: %v", a)
	}

	// Handed back to single sign-on, the groups decide the role again;
	// a group given as one string counts.
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+id, obj{"role_source": "sso"})
	p := ada()
	p.claims["groups"] = "team-eng"
	if to := e.mustSignIn(e.client(), p); to != "/keys" {
		t.Errorf("a member lands on %s, want /keys (their only page besides the playground)", to)
	}
	u = e.userByEmail("ada@corp.example")
	if u["role"] != "member" || u["role_source"] != "sso" || !slices.Equal(teamsOf(u), sorted(eng, ops)) {
		t.Errorf("back to sso: role %v (%v), teams %v", u["role"], u["role_source"], u["teams"])
	}
	// Her first session still works, now with the member's pages only.
	if resp, _ := e.get(c, "/users"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("old session after the role became member: GET /users %d", resp.StatusCode)
	}
	if e.count("users") != 1 {
		t.Errorf("%d users, want 1", e.count("users"))
	}
}

func TestSSOLinksUsersAndAdminEmails(t *testing.T) {
	e := newSSOEnv(t, func(c *config.OIDC) {
		c.AdminEmails = []string{"grace@corp.example"}
		c.DefaultTeam = "everyone"
	})
	everyone := e.newTeam("everyone")
	// An existing user, made by an admin, is linked by email (any case);
	// their role was set by hand and stays.
	bobID, _ := e.create("/api/v1/users", obj{"email": "Bob@Corp.example", "role": "finance"})
	e.mustSignIn(e.client(), person{sub: "sub-bob", claims: map[string]any{"email": "bob@corp.example", "groups": []string{"tollgate-admins"}}})
	bob := e.userByEmail("bob@corp.example")
	if bob["id"] != bobID || bob["role"] != "finance" || bob["oidc_subject"] != "sub-bob" || bob["email"] != "bob@corp.example" {
		t.Errorf("linked user: %v", bob)
	}
	// An admin email is an admin without any group, and joins the
	// default team when no team group matched.
	e.mustSignIn(e.client(), person{sub: "sub-grace", claims: map[string]any{"email": "Grace@corp.example", "email_verified": true}})
	grace := e.userByEmail("grace@corp.example")
	if grace["role"] != "admin" || !slices.Equal(teamsOf(grace), []string{everyone}) {
		t.Errorf("admin email: %v", grace)
	}

	// Another identity with Bob's email is refused; so are a missing and
	// an unverified email.
	for _, c := range []struct {
		p    person
		want string
	}{
		{person{sub: "sub-bob-2", claims: map[string]any{"email": "bob@corp.example"}}, "already linked to another single sign-on identity"},
		{person{sub: "sub-anon", claims: map[string]any{"name": "Anon"}}, "no email claim"},
		{person{sub: "sub-eve", claims: map[string]any{"email": "eve@corp.example", "email_verified": false}}, "not verified"},
	} {
		resp, body := e.signIn(e.client(), c.p)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d, want 403 saying %q:\n%s", c.p.sub, resp.StatusCode, c.want, body)
		}
	}
	if n := e.count("users"); n != 2 {
		t.Errorf("%d users, want 2", n)
	}
}

// A sign-in attempt is one use: the callback cannot be replayed, and a
// state or nonce of another attempt is refused.
func TestSSORefusesReplayForgedStateAndWrongNonce(t *testing.T) {
	e := newSSOEnv(t, nil)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	step := func(u string) *http.Response {
		t.Helper()
		resp, _ := read(t)(c.Get(u))
		return resp
	}
	e.idp.QueueUser(ada("tollgate-admins"))
	login := step(e.srv.URL + "/auth/oidc/login")
	authorize, _ := url.Parse(login.Header.Get("Location"))
	q := authorize.Query()
	if !strings.HasPrefix(authorize.String(), e.idp.AuthorizationEndpoint()) || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" || q.Get("scope") != "openid email profile groups" {
		t.Fatalf("authorization request: %s", authorize)
	}
	callback := step(authorize.String()).Header.Get("Location")

	// A forged state is refused, and uses up the attempt.
	forged := strings.Replace(callback, "state="+url.QueryEscape(q.Get("state")), "state=forged", 1)
	resp, body := read(t)(c.Get(forged))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "expired or was already used") {
		t.Errorf("forged state: %d %s", resp.StatusCode, body)
	}
	resp, _ = read(t)(c.Get(callback))
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the real callback after a forged one: %d", resp.StatusCode)
	}

	// A good callback works once; its replay is refused.
	e.idp.QueueUser(ada("tollgate-admins"))
	callback = step(step(e.srv.URL + "/auth/oidc/login").Header.Get("Location")).Header.Get("Location")
	if resp := step(callback); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/dashboard" {
		t.Fatalf("callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = read(t)(c.Get(callback))
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "already used") {
		t.Errorf("replayed callback: %d", resp.StatusCode)
	}

	// An ID token minted for another sign-in (another nonce) is refused,
	// and does not sign anyone in.
	fresh := e.client()
	p := ada()
	p.nonce = "the-nonce-of-another-attempt"
	resp, body = e.signIn(fresh, p)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "nonce mismatch") {
		t.Errorf("wrong nonce: %d %s", resp.StatusCode, body)
	}
	if resp, _ := e.get(fresh, "/dashboard"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after a wrong nonce, /dashboard: %d", resp.StatusCode)
	}

	// The identity provider's error is shown as its code only.
	resp, body = read(t)(e.client().Get(e.srv.URL + "/auth/oidc/callback?error=access_denied&error_description=%3Cb%3Ecall+555%3C%2Fb%3E&state=x"))
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "access_denied") || strings.Contains(body, "555") {
		t.Errorf("IdP error: %d %s", resp.StatusCode, body)
	}
	// No page or log line holds a token: the callback pages are checked
	// above; the session table holds no ID token either.
	var n int
	e.st.DB().Get(&n, `SELECT count(*) FROM sessions WHERE encode(data, 'escape') LIKE '%eyJ%'`)
	if n != 0 {
		t.Errorf("%d sessions hold a JWT", n)
	}
}

func TestSSOBlockedUserLosesSessionAndCannotSignIn(t *testing.T) {
	e := newSSOEnv(t, nil)
	c := e.client()
	e.mustSignIn(c, ada("tollgate-admins"))
	id := e.userByEmail("ada@corp.example")["id"].(string)
	if resp, _ := e.get(c, "/users"); resp.StatusCode != 200 {
		t.Fatalf("admin page: %d", resp.StatusCode)
	}

	// An admin cannot block themselves.
	b := e.browser()
	b.client = c
	if resp, _ := b.send("POST", "/users/"+id+"/block", url.Values{}, true); resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("HX-Trigger"), "cannot block yourself") {
		t.Errorf("self-block: %d %s", resp.StatusCode, resp.Header.Get("HX-Trigger"))
	}

	blocked := e.must(http.StatusOK, http.MethodPost, "/api/v1/users/"+id+"/block", nil).json
	if blocked["blocked"] != true {
		t.Fatalf("block: %v", blocked)
	}
	e.wantAudit("user.block", "user", id)
	resp, _ := e.get(c, "/dashboard")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?ended=blocked" {
		t.Fatalf("blocked user's next page: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := e.get(c, "/signin?ended=blocked"); !strings.Contains(body, "your account is blocked") {
		t.Error("the sign-in page does not say why the session ended")
	}
	if resp, _ := e.get(c, "/dashboard"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Errorf("the session was not destroyed: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := e.signIn(e.client(), ada("tollgate-admins"))
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Your account is blocked") {
		t.Errorf("blocked sign-in: %d %s", resp.StatusCode, body)
	}

	// Unblocked, they sign in again; a session from before the block
	// stays ended.
	c2 := e.client()
	e.must(http.StatusOK, http.MethodPost, "/api/v1/users/"+id+"/unblock", nil)
	e.mustSignIn(c2, ada("tollgate-admins"))
	if resp, _ := e.get(c2, "/dashboard"); resp.StatusCode != 200 {
		t.Errorf("after unblocking: %d", resp.StatusCode)
	}

	// Blocking through PATCH ends sessions too; removing the user as well.
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+id, obj{"blocked": true})
	if resp, _ := e.get(c2, "/keys"); resp.Header.Get("Location") != "/signin?ended=blocked" {
		t.Errorf("PATCH blocked: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.must(http.StatusOK, http.MethodPatch, "/api/v1/users/"+id, obj{"blocked": false})
	c3 := e.client()
	e.mustSignIn(c3, ada("tollgate-admins"))
	e.must(http.StatusNoContent, http.MethodDelete, "/api/v1/users/"+id, nil)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/keys", nil)
	req.Header.Set("HX-Request", "true")
	if resp, _ := read(t)(c3.Do(req)); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != "/signin?ended=removed" {
		t.Errorf("removed user, htmx: %d %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
}

func TestSSODashboardUserControls(t *testing.T) {
	e := newSSOEnv(t, nil)
	e.mustSignIn(e.client(), ada("finance"))
	id := e.userByEmail("ada@corp.example")["id"].(string)
	b := e.browser()
	b.signIn()
	_, body := b.send("GET", "/users", nil, false)
	htmlHas(t, "users page", body, "single sign-on · last 20", "finance · groups</span>", `hx-post="/users/`+id+`/block"`)
	_, body = b.send("GET", "/users/"+id+"/edit", nil, true)
	htmlHas(t, "edit dialog", body, `<option value="sso" selected`)

	// Changing the role in the form, with the select left at sso, sets
	// it by hand.
	form := url.Values{"email": {"ada@corp.example"}, "name": {"Ada"}, "role": {"admin"}, "role_source": {"sso"}}
	if resp, _ := b.send("POST", "/users/"+id, form, true); resp.StatusCode != 200 {
		t.Fatalf("save user: %d", resp.StatusCode)
	}
	if u := e.userByEmail("ada@corp.example"); u["role"] != "admin" || u["role_source"] != "admin" {
		t.Errorf("role changed in the form: %v / %v", u["role"], u["role_source"])
	}
	form.Set("role_source", "sso")
	b.send("POST", "/users/"+id, form, true)
	if u := e.userByEmail("ada@corp.example"); u["role_source"] != "sso" {
		t.Errorf("handed back to sso in the form: %v", u["role_source"])
	}

	resp, body := b.send("POST", "/users/"+id+"/block", url.Values{}, true)
	if resp.StatusCode != 200 || !strings.Contains(body, "badge blocked") || !strings.Contains(body, `/unblock"`) {
		t.Errorf("block button: %d %s", resp.StatusCode, body)
	}
	if u := e.userByEmail("ada@corp.example"); u["blocked"] != true {
		t.Error("not blocked")
	}
	wantError(t, e.doAuth(http.MethodPost, "/api/v1/users/"+id+"/role", "Bearer "+masterKey, nil), http.StatusNotFound, "not_found", "")
	wantError(t, e.do(http.MethodPatch, "/api/v1/users/"+id, obj{"role_source": "idp"}), http.StatusBadRequest, "invalid_request", "role_source", "admin", "sso")
}

// idToken mints a token signed by key with the IdP's key id, so it looks
// like the IdP's own.
func (e *ssoEnv) idToken(key *rsa.PrivateKey, claims jwt.MapClaims) string {
	e.t.Helper()
	base := jwt.MapClaims{"iss": e.idp.Issuer(), "aud": e.idp.ClientID, "sub": "sub-ada", "email": "ada@corp.example",
		"email_verified": true, "groups": []string{"team-eng"}, "iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	kid, _ := e.idp.Keypair.KeyID()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, base)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// codeFlowTokens gets real tokens from the IdP's token endpoint.
func (e *ssoEnv) codeFlowTokens(p person) (idToken, accessToken string) {
	e.t.Helper()
	e.idp.QueueUser(p)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {e.idp.ClientID}, "response_type": {"code"}, "scope": {"openid email groups"},
		"state": {"s"}, "nonce": {"n"}, "redirect_uri": {"http://127.0.0.1/cli"}}
	resp, _ := read(e.t)(c.Get(e.idp.AuthorizationEndpoint() + "?" + q.Encode()))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	resp, body := read(e.t)(c.PostForm(e.idp.TokenEndpoint(), url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"client_id": {e.idp.ClientID}, "client_secret": {e.idp.ClientSecret}, "redirect_uri": {"http://127.0.0.1/cli"}}))
	var tr struct {
		IDToken     string `json:"id_token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &tr); err != nil || tr.IDToken == "" {
		e.t.Fatalf("token endpoint: %d %s", resp.StatusCode, body)
	}
	return tr.IDToken, tr.AccessToken
}

func TestSSOBearerTokensOnTheAPI(t *testing.T) {
	e := newSSOEnv(t, func(c *config.OIDC) { c.Audiences = []string{"tollgate-cli"} })
	eng := e.newTeam("eng")
	bearer := func(tok, method, path string) resp {
		t.Helper()
		r := e.doAuth(method, path, "Bearer "+tok, nil)
		if strings.Contains(r.raw, tok) {
			t.Errorf("%s %s echoes the token", method, path)
		}
		return r
	}

	// A real ID token from the code flow: the caller is provisioned just
	// in time as a member of eng and may call what members may.
	idTok, accessTok := e.codeFlowTokens(ada("team-eng"))
	r := bearer(idTok, http.MethodGet, "/api/v1/me")
	if r.status != 200 || r.json["email"] != "ada@corp.example" || r.json["role"] != "member" || !slices.Equal(teamsOf(r.json), []string{eng}) {
		t.Fatalf("GET /me with an ID token: %d %s", r.status, r.raw)
	}
	id := r.json["id"].(string)
	if r.json["last_sign_in_at"] != nil {
		t.Error("an API call counted as a dashboard sign-in")
	}
	if a := e.auditFor("user.create", id); len(a) != 1 || a[0]["actor"] != "user:ada@corp.example via oidc" {
		t.Errorf("audit of the just-in-time user: %v", a)
	}
	wantError(t, bearer(idTok, http.MethodGet, "/api/v1/users"), http.StatusForbidden, "forbidden", "")
	if r := bearer(idTok, http.MethodGet, "/api/v1/users/"+id); r.status != 200 {
		t.Errorf("own user: %d", r.status)
	}
	// Keys made with the token obey the team's rules and caps, as in the dashboard.
	if r := e.do(http.MethodPatch, "/api/v1/teams/"+eng, obj{"member_key_caps": obj{"max_budget": 5}}); r.status != 200 {
		t.Fatalf("set caps: %d %s", r.status, r.raw)
	}
	ops := e.newTeam("ops")
	wantError(t, e.doAuth(http.MethodPost, "/api/v1/keys", "Bearer "+idTok, obj{"team_id": eng, "max_budget": 50}),
		http.StatusForbidden, "forbidden", "", "above team eng's cap")
	wantError(t, e.doAuth(http.MethodPost, "/api/v1/keys", "Bearer "+idTok, obj{"team_id": ops}),
		http.StatusForbidden, "forbidden", "", "not a member of team ops")
	if r := e.doAuth(http.MethodPost, "/api/v1/keys", "Bearer "+idTok, obj{"team_id": eng, "alias": "script"}); r.status != http.StatusCreated ||
		r.json["max_budget"] != 5.0 || r.json["user_id"] != id {
		t.Errorf("a key made with the ID token: %d %s", r.status, r.raw)
	}
	// The access token has no email: it works for a known subject.
	if r := bearer(accessTok, http.MethodGet, "/api/v1/me"); r.status != 200 || r.json["id"] != id {
		t.Errorf("GET /me with the access token: %d %s", r.status, r.raw)
	}
	// An extra audience is accepted; an admin group makes an admin.
	adminTok := e.idToken(e.idp.Keypair.PrivateKey, jwt.MapClaims{"aud": "tollgate-cli", "groups": []string{"tollgate-admins"}})
	if r := bearer(adminTok, http.MethodGet, "/api/v1/users"); r.status != 200 {
		t.Errorf("admin by groups, audience tollgate-cli: %d %s", r.status, r.raw)
	}
	// A token without the groups claim leaves the role alone.
	noGroups := e.idToken(e.idp.Keypair.PrivateKey, jwt.MapClaims{"groups": nil})
	if r := bearer(noGroups, http.MethodGet, "/api/v1/me"); r.status != 200 || r.json["role"] != "admin" {
		t.Errorf("token without groups: %d %s", r.status, r.raw)
	}

	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, token, want string
	}{
		{"forged", e.idToken(other, nil), "bad signature"},
		{"expired", e.idToken(e.idp.Keypair.PrivateKey, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}), "expired"},
		{"wrong audience", e.idToken(e.idp.Keypair.PrivateKey, jwt.MapClaims{"aud": "another-app"}), "wrong audience"},
		{"wrong issuer", e.idToken(e.idp.Keypair.PrivateKey, jwt.MapClaims{"iss": "https://idp.evil.example"}), "wrong issuer"},
		{"malformed", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "The OIDC token is not valid"},
		{"unknown subject without email", e.idToken(e.idp.Keypair.PrivateKey, jwt.MapClaims{"sub": "sub-new", "email": nil}), "no email claim"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, bearer(c.token, http.MethodGet, "/api/v1/me"), http.StatusUnauthorized, "unauthorized", "", c.want)
		})
	}

	// A blocked user's tokens stop working.
	e.must(http.StatusOK, http.MethodPost, "/api/v1/users/"+id+"/block", nil)
	wantError(t, bearer(idTok, http.MethodGet, "/api/v1/me"), http.StatusForbidden, "forbidden", "", "blocked")
	wantError(t, bearer(accessTok, http.MethodGet, "/api/v1/me"), http.StatusForbidden, "forbidden", "", "blocked")
	// The master key is no user.
	wantError(t, e.do(http.MethodGet, "/api/v1/me", nil), http.StatusNotFound, "not_found", "", "master key")
}

func TestKeySignInTurnedOff(t *testing.T) {
	e := newSSOEnv(t, nil)
	e.adm.SetKeySignIn(false)
	b := e.browser()
	_, body := b.send("GET", "/signin", nil, false)
	if !strings.Contains(body, "Sign in with MockIdP") || strings.Contains(body, "master_key") {
		t.Errorf("sign-in page without the key form:\n%s", body)
	}
	resp, body := b.send("POST", "/signin", url.Values{"master_key": {masterKey}}, false)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "TOLLGATE_KEY_SIGNIN=false") {
		t.Errorf("key sign-in: %d %s", resp.StatusCode, body)
	}
	if r := e.do(http.MethodGet, "/api/v1/teams", nil); r.status != 200 {
		t.Errorf("the master key on the API: %d", r.status)
	}
	// A JWT is never a key: the key form refuses one even when on.
	e.adm.SetKeySignIn(true)
	tok := e.idToken(e.idp.Keypair.PrivateKey, nil)
	if resp, _ := b.send("POST", "/signin", url.Values{"master_key": {tok}}, false); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a JWT in the key form: %d", resp.StatusCode)
	}
}

// The admin app starts while the identity provider is down, says so on
// sign-in, and uses it once it answers.
func TestSSOWhileTheIdentityProviderIsDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	idp, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newSSOEnvFor(t, idp, "http://"+addr+mockoidc.IssuerBase, nil)
	c := e.client()
	resp, body := read(t)(c.Get(e.srv.URL + "/signin"))
	if resp.StatusCode != 200 || !strings.Contains(body, "Sign in with MockIdP") {
		t.Fatalf("sign-in page while the IdP is down: %d", resp.StatusCode)
	}
	resp, body = read(t)(c.Get(e.srv.URL + "/auth/oidc/login"))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "cannot be reached") {
		t.Errorf("login while the IdP is down: %d %s", resp.StatusCode, body)
	}
	wantError(t, e.doAuth(http.MethodGet, "/api/v1/me", "Bearer aaa.bbb.ccc", nil), http.StatusServiceUnavailable, "unavailable", "", "cannot be reached")

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	if err := idp.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		idp.QueueUser(ada())
		resp, _ := read(t)(c.Get(e.srv.URL + "/auth/oidc/login"))
		if resp.StatusCode == http.StatusSeeOther {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login once the IdP is up: %d", resp.StatusCode)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
