package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// CallbackPath is where the identity provider sends people back to the
// admin app; TOLLGATE_OIDC_REDIRECT_URL must end with it.
const CallbackPath = "/auth/oidc/callback"

// OIDC is single sign-on to the dashboard and the management API through
// an OpenID Connect provider. The zero value means it is off.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string // empty for a public client (PKCE only)
	RedirectURL  string
	Scopes       []string
	ProviderName string // the label of the sign-in button

	// Mapping the groups claim to roles and teams.
	GroupsClaim     string   // claim name; a dotted path reaches into objects
	AdminGroups     []string // members of any of these are admins
	FinanceGroups   []string // members of any of these (and of no admin group) are finance users
	TeamGroupPrefix string   // group "<prefix><team>" makes its members members of that team
	AdminEmails     []string // lower case; these people are admins whatever their groups
	DefaultTeam     string   // the team of people no team group placed

	// Audiences are accepted in API tokens besides the client id.
	Audiences []string
}

// Enabled reports whether single sign-on is configured.
func (o OIDC) Enabled() bool { return o.Issuer != "" }

func oidcFromEnv(e *env) OIDC {
	o := OIDC{
		Issuer:       e.str("TOLLGATE_OIDC_ISSUER", ""),
		ClientID:     e.str("TOLLGATE_OIDC_CLIENT_ID", ""),
		ClientSecret: e.str("TOLLGATE_OIDC_CLIENT_SECRET", ""),
		RedirectURL:  e.str("TOLLGATE_OIDC_REDIRECT_URL", ""),
	}
	if o.Issuer == "" {
		for _, name := range []string{"TOLLGATE_OIDC_CLIENT_ID", "TOLLGATE_OIDC_CLIENT_SECRET", "TOLLGATE_OIDC_REDIRECT_URL"} {
			if e.str(name, "") != "" {
				e.fail(name, "is set but TOLLGATE_OIDC_ISSUER is not: set the issuer URL to turn on single sign-on")
			}
		}
		return OIDC{}
	}
	// The issuer is kept exactly as written: it must equal the one
	// discovery reports, trailing slash (Auth0) or not (most others).
	if !absoluteHTTP(o.Issuer) {
		e.fail("TOLLGATE_OIDC_ISSUER", fmt.Sprintf("must be the identity provider's issuer URL, http(s)://… (got %q)", o.Issuer))
	}
	if o.ClientID == "" {
		e.fail("TOLLGATE_OIDC_CLIENT_ID", "must be set with TOLLGATE_OIDC_ISSUER: the client id registered for Tollgate at the identity provider")
	}
	switch {
	case o.RedirectURL == "":
		e.fail("TOLLGATE_OIDC_REDIRECT_URL", "must be set with TOLLGATE_OIDC_ISSUER: the admin app's public URL followed by "+CallbackPath+", as registered at the identity provider")
	case !absoluteHTTP(o.RedirectURL) || !strings.HasSuffix(strings.SplitN(o.RedirectURL, "?", 2)[0], CallbackPath):
		e.fail("TOLLGATE_OIDC_REDIRECT_URL", fmt.Sprintf("must be an http(s) URL ending in %s, e.g. https://tollgate.example.com%s (got %q)", CallbackPath, CallbackPath, o.RedirectURL))
	}
	o.Scopes = strings.FieldsFunc(e.str("TOLLGATE_OIDC_SCOPES", "openid email profile"), func(r rune) bool { return r == ' ' || r == ',' })
	if !slices.Contains(o.Scopes, "openid") {
		e.fail("TOLLGATE_OIDC_SCOPES", fmt.Sprintf("must include openid (got %q)", strings.Join(o.Scopes, " ")))
	}
	o.ProviderName = e.str("TOLLGATE_OIDC_PROVIDER_NAME", "SSO")
	o.GroupsClaim = e.str("TOLLGATE_OIDC_GROUPS_CLAIM", "groups")
	o.AdminGroups = e.list("TOLLGATE_OIDC_ADMIN_GROUPS", "tollgate-admins")
	o.FinanceGroups = e.list("TOLLGATE_OIDC_FINANCE_GROUPS", "finance")
	o.TeamGroupPrefix = e.str("TOLLGATE_OIDC_TEAM_GROUP_PREFIX", "team-")
	for _, m := range e.list("TOLLGATE_OIDC_ADMIN_EMAILS", "") {
		if !strings.Contains(m, "@") {
			e.fail("TOLLGATE_OIDC_ADMIN_EMAILS", fmt.Sprintf("must be comma-separated email addresses (got %q)", m))
		}
		o.AdminEmails = append(o.AdminEmails, strings.ToLower(m))
	}
	o.DefaultTeam = e.str("TOLLGATE_OIDC_DEFAULT_TEAM", "")
	o.Audiences = e.list("TOLLGATE_OIDC_AUDIENCES", "")
	return o
}

func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
