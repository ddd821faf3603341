package config_test

import (
	"reflect"
	"strings"
	"testing"

	"tollgate/config"
)

// oidcEnv is a complete single sign-on setting with one variable changed
// (an empty value unsets it).
func oidcEnv(name, value string) map[string]string {
	m := map[string]string{
		"TOLLGATE_OIDC_ISSUER":       "https://idp.example.com",
		"TOLLGATE_OIDC_CLIENT_ID":    "tollgate",
		"TOLLGATE_OIDC_REDIRECT_URL": "https://tollgate.example.com/auth/oidc/callback",
	}
	if name != "" {
		m[name] = value
	}
	return m
}

func TestOIDCDefaults(t *testing.T) {
	c, err := config.Load(envMap(oidcEnv("", "")))
	if err != nil {
		t.Fatal(err)
	}
	want := config.OIDC{
		Issuer: "https://idp.example.com", ClientID: "tollgate", RedirectURL: "https://tollgate.example.com/auth/oidc/callback",
		Scopes: []string{"openid", "email", "profile"}, ProviderName: "SSO", GroupsClaim: "groups",
		AdminGroups: []string{"tollgate-admins"}, FinanceGroups: []string{"finance"}, TeamGroupPrefix: "team-",
	}
	if !reflect.DeepEqual(c.OIDC, want) {
		t.Errorf("OIDC defaults\n%+v\nwant\n%+v", c.OIDC, want)
	}
	if !c.OIDC.Enabled() || !c.KeySignIn {
		t.Errorf("enabled %v, key sign-in %v", c.OIDC.Enabled(), c.KeySignIn)
	}
	// Key sign-in may be turned off once single sign-on is on.
	env := oidcEnv("TOLLGATE_KEY_SIGNIN", "false")
	if c, err := config.Load(envMap(env)); err != nil || c.KeySignIn {
		t.Errorf("TOLLGATE_KEY_SIGNIN=false with OIDC: %v, %+v", err, c)
	}
	if c, _ := config.Load(envMap(nil)); c.OIDC.Enabled() {
		t.Error("OIDC enabled without an issuer")
	}
}

func TestOIDCRejectsBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value, wantMsg string }{
		{"TOLLGATE_OIDC_ISSUER", "idp.example.com", "must be the identity provider's issuer URL"},
		{"TOLLGATE_OIDC_CLIENT_ID", "", "must be set with TOLLGATE_OIDC_ISSUER"},
		{"TOLLGATE_OIDC_REDIRECT_URL", "", "must be set with TOLLGATE_OIDC_ISSUER"},
		{"TOLLGATE_OIDC_REDIRECT_URL", "https://tollgate.example.com/callback", "must be an http(s) URL ending in /auth/oidc/callback"},
		{"TOLLGATE_OIDC_REDIRECT_URL", "/auth/oidc/callback", "must be an http(s) URL ending in /auth/oidc/callback"},
		{"TOLLGATE_OIDC_SCOPES", "email profile", "must include openid"},
		{"TOLLGATE_OIDC_ADMIN_EMAILS", "ada@example.com, bob", `must be comma-separated email addresses (got "bob")`},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := config.Load(envMap(oidcEnv(tc.name, tc.value)))
			if err == nil || !strings.Contains(err.Error(), tc.name+" "+tc.wantMsg) {
				t.Errorf("error %v, want it to say %q", err, tc.name+" "+tc.wantMsg)
			}
		})
	}
}
