package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"tollgate/browsertest"
)

// People sign in to the dashboard in a real browser through an OpenID
// Connect provider (mockoidc on loopback): the button takes them to the
// provider and back, and they land signed in with the role and teams their
// groups map to.
//
// With TOLLGATE_SCREENSHOTS=dir the sign-in and users pages are saved there.
func TestSingleSignOnInABrowser(t *testing.T) {
	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	adminAddr := freeAddr(t)
	s := startStackWith(t, map[string]string{
		"TOLLGATE_ADMIN_ADDR":         adminAddr,
		"TOLLGATE_OIDC_ISSUER":        idp.Issuer(),
		"TOLLGATE_OIDC_CLIENT_ID":     idp.ClientID,
		"TOLLGATE_OIDC_CLIENT_SECRET": idp.ClientSecret,
		"TOLLGATE_OIDC_REDIRECT_URL":  "http://" + adminAddr + "/auth/oidc/callback",
		"TOLLGATE_OIDC_SCOPES":        "openid email profile groups",
		"TOLLGATE_OIDC_PROVIDER_NAME": "Mock IdP",
		"TOLLGATE_KEY_SIGNIN":         "false",
	})
	prov := s.api("POST", "/providers", map[string]any{"name": "mock", "type": "mock", "api_base": s.provider.URL + "/v1", "api_key": "upstream-key"})
	for _, m := range []string{"gpt-4o-mini", "gpt-4o"} {
		s.api("POST", "/models", map[string]any{"model_name": m, "provider_id": prov["id"], "upstream_model": "mock-gpt",
			"input_cost_per_million": 0.15, "output_cost_per_million": 0.6})
	}
	eng := s.api("POST", "/teams", map[string]any{"name": "eng", "models": []string{"gpt-4o-mini"},
		"member_key_caps": map[string]any{"max_budget": 5}})["id"].(string)
	ctx := browsertest.New(t)
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v (page errors: %v)", what, err, browsertest.JSErrors(ctx))
		}
	}
	shot := func(name string) {
		if dir := os.Getenv("TOLLGATE_SCREENSHOTS"); dir != "" {
			browsertest.Screenshot(t, ctx, filepath.Join(dir, name+".png"))
		}
	}

	// An admin by their groups: the sign-in page offers only the button.
	idp.QueueUser(&mockoidc.MockUser{Subject: "sub-ada", Email: "ada@corp.example", EmailVerified: true,
		PreferredUsername: "ada", Groups: []string{"tollgate-admins", "team-eng"}})
	var button, whoami string
	var keyForm bool
	run("sign-in page",
		chromedp.Navigate(s.admin+"/dashboard"),
		chromedp.WaitVisible(`#sso-signin`),
		chromedp.Text(`#sso-signin`, &button),
		chromedp.Evaluate(`document.querySelector('#master_key') !== null`, &keyForm),
	)
	if button != "Sign in with Mock IdP" || keyForm {
		t.Errorf("sign-in page: button %q, key form %v", button, keyForm)
	}
	shot("signin-sso")
	run("sign in as an admin",
		chromedp.Click(`#sso-signin`),
		chromedp.WaitVisible(`section.stats`),
		chromedp.Text(`.whoami small`, &whoami),
	)
	if whoami != "ada@corp.example · admin" {
		t.Errorf("signed in as %q", whoami)
	}
	var users string
	run("users page", chromedp.Navigate(s.admin+"/users"), chromedp.WaitVisible(`#users-list table`), chromedp.Text(`#users-list`, &users))
	shot("users-sso")
	if !strings.Contains(users, "ada@corp.example") || !strings.Contains(users, "single sign-on · last") || !strings.Contains(users, "admin · groups") || !strings.Contains(users, "eng") {
		t.Errorf("users page: %q", users)
	}

	// A member by their groups lands on their keys, in their team.
	idp.QueueUser(&mockoidc.MockUser{Subject: "sub-bob", Email: "bob@corp.example", EmailVerified: true, Groups: []string{"team-eng"}})
	var url string
	run("sign out and in as a member",
		chromedp.Click(`.whoami button[type=submit]`),
		chromedp.WaitVisible(`#sso-signin`),
		chromedp.Click(`#sso-signin`),
		chromedp.WaitVisible(`.whoami small`),
		chromedp.Text(`.whoami small`, &whoami),
		chromedp.Location(&url),
	)
	if whoami != "bob@corp.example · member" || !strings.HasSuffix(url, "/keys") {
		t.Errorf("member: %q at %s", whoami, url)
	}
	found := false
	for _, u := range s.api("GET", "/users?limit=100", nil)["data"].([]any) {
		if u := u.(map[string]any); u["email"] == "bob@corp.example" {
			found = true
			if teams := u["teams"].([]any); len(teams) != 1 || teams[0] != eng {
				t.Errorf("bob's teams: %v, want [%s]", teams, eng)
			}
		}
	}
	if !found {
		t.Fatal("signing in did not create bob@corp.example")
	}

	// The member makes a key in My keys: above the team's cap it is
	// refused with the reason; within it, the secret is shown once and
	// works through the gateway for the team's model only.
	var refusal, secret string
	run("a key above the cap",
		chromedp.SetValue(`#key-form input[name=alias]`, "bob-laptop", chromedp.ByQuery),
		chromedp.SetValue(`#key-form input[name=max_budget]`, "50", chromedp.ByQuery),
		chromedp.Click(`#key-form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#key-form [aria-invalid=true]`, chromedp.ByQuery),
		chromedp.Text(`#key-form`, &refusal, chromedp.ByQuery),
	)
	if !strings.Contains(refusal, "above team eng's cap") {
		t.Errorf("refusal above the cap: %q", refusal)
	}
	run("a key within the cap",
		chromedp.SetValue(`#key-form input[name=max_budget]`, "2", chromedp.ByQuery),
		chromedp.Click(`#key-form button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#new-secret`, chromedp.ByQuery),
		chromedp.Text(`#new-secret`, &secret, chromedp.ByQuery),
	)
	shot("my-keys-sso")
	if !strings.HasPrefix(secret, "sk-") {
		t.Fatalf("new secret %q", secret)
	}
	if code, body := s.chatWith(secret, "gpt-4o-mini"); code != http.StatusOK {
		t.Errorf("bob's key on gpt-4o-mini: %d %s", code, body)
	}
	if code, _ := s.chatWith(secret, "gpt-4o"); code != http.StatusForbidden {
		t.Errorf("bob's key on a model outside his team: %d, want 403", code)
	}
	if errs := browsertest.JSErrors(ctx); len(errs) > 0 {
		t.Errorf("browser errors: %q", errs)
	}
}
