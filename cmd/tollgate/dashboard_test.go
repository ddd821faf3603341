package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"tollgate/browsertest"
)

// An admin runs the product from the dashboard in a real browser: sign in,
// add a provider, a model, its routing, a guardrail, a team and a key, use the key through the
// gateway, find the call in the spend logs and on the dashboard, chat in
// the playground, block the key and see the gateway refuse it, and export
// the audit log.
//
// With TOLLGATE_SCREENSHOTS=dir the main pages are saved there as PNG.
func TestDashboardInABrowser(t *testing.T) {
	s := startStackWith(t, map[string]string{"TOLLGATE_SPEND_FLUSH_INTERVAL": "100ms"})
	ctx := browsertest.New(t)
	shots := os.Getenv("TOLLGATE_SCREENSHOTS")
	shot := func(name string) {
		if shots != "" {
			browsertest.Screenshot(t, ctx, filepath.Join(shots, name+".png"))
		}
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			t.Fatalf("%s: %v (page errors: %v)", what, err, browsertest.JSErrors(ctx))
		}
	}
	admin := s.admin

	// Sign in: a wrong key is refused, the master key opens the dashboard.
	var errText string
	run("wrong key",
		chromedp.Navigate(admin+"/dashboard"),
		chromedp.WaitVisible(`#master_key`),
		chromedp.SendKeys(`#master_key`, "not-the-key"),
		chromedp.Submit(`#master_key`),
		chromedp.WaitVisible(`#signin-error`),
		chromedp.Text(`#signin-error`, &errText),
	)
	if !strings.Contains(errText, "not the master key") {
		t.Errorf("sign-in error %q", errText)
	}
	run("sign in",
		chromedp.SetValue(`#master_key`, masterKey),
		chromedp.Submit(`#master_key`),
		chromedp.WaitVisible(`section.stats`),
	)

	// Provider, model and team through their forms.
	run("add provider",
		chromedp.Navigate(admin+"/providers"),
		chromedp.WaitVisible(`#provider-form input[name=name]`),
		chromedp.SendKeys(`#provider-form input[name=name]`, "mock"),
		chromedp.SetValue(`#provider-form select[name=type]`, "mock"),
		chromedp.SendKeys(`#provider-form input[name=api_key]`, "upstream-key"),
		chromedp.SendKeys(`#provider-form input[name=api_base]`, s.provider.URL+"/v1"),
		chromedp.Click(`#provider-form button[type=submit]`),
		chromedp.WaitVisible(`#providers-list table`),
		chromedp.WaitVisible(`#toasts .toast`),
	)
	shot("providers")
	run("add model",
		chromedp.Navigate(admin+"/models"),
		chromedp.WaitVisible(`#model-form select[name=provider_id]`),
		chromedp.SetValue(`#model-form select[name=provider_id]`, providerIDByName(t, s, "mock")),
		chromedp.SendKeys(`#model-form input[name=upstream_model]`, "mock-gpt"),
		chromedp.SendKeys(`#model-form input[name=model_name]`, "gpt-4o-mini"),
		chromedp.SendKeys(`#model-form input[name=input_cost_per_million]`, "0.15"),
		chromedp.SendKeys(`#model-form input[name=output_cost_per_million]`, "0.6"),
		chromedp.Click(`#model-form button[type=submit]`),
		chromedp.WaitVisible(`#models-list table`),
	)
	// The provider's own model list is offered, and narrowed as you type.
	var visible int
	run("model type-ahead",
		chromedp.Navigate(admin+"/models"),
		chromedp.Click(`details.create summary`), // closed once models exist
		chromedp.WaitVisible(`#model-form select[name=provider_id]`),
		chromedp.SetValue(`#model-form select[name=provider_id]`, providerIDByName(t, s, "mock")),
		chromedp.Evaluate(`document.querySelector('#model-form select[name=provider_id]').dispatchEvent(new Event('change', {bubbles: true}))`, nil),
		chromedp.WaitVisible(`#model-suggestions .suggest-filter`),
		chromedp.SendKeys(`#model-suggestions .suggest-filter`, "embed"),
	)
	// The filter runs on input events; a loaded machine may take a moment.
	const shown = `[...document.querySelectorAll('#model-suggestions .suggest-list label')].filter(l => !l.hidden).length`
	_ = chromedp.Run(ctx, chromedp.Poll(shown+` === 1`, nil, chromedp.WithPollingTimeout(10*time.Second)))
	run("count the models left", chromedp.Evaluate(shown, &visible))
	if visible != 1 {
		t.Errorf("%d models left after filtering for embed, want 1", visible)
	}

	// Routing: the model's strategy through the form, with an error shown
	// inline first, and an alias for it.
	var groupErr, groups, aliases string
	run("invalid model group",
		chromedp.Navigate(admin+"/routing"),
		chromedp.WaitVisible(`#group-form select[name=model_name]`),
		chromedp.SetValue(`#group-form select[name=model_name]`, "gpt-4o-mini"),
		chromedp.SetValue(`#group-form select[name=strategy]`, "least_busy"),
		chromedp.SendKeys(`#group-form input[name=fallbacks]`, "gpt-4o-mini"),
		chromedp.Click(`#group-form button[type=submit]`),
		chromedp.WaitVisible(`#group-form .field-error`),
		chromedp.Text(`#group-form .field-error`, &groupErr),
	)
	if !strings.Contains(groupErr, "cannot fall back to itself") {
		t.Errorf("model group error %q", groupErr)
	}
	run("save model group",
		chromedp.Clear(`#group-form input[name=fallbacks]`),
		chromedp.Click(`#group-form button[type=submit]`),
		chromedp.WaitVisible(`#groups-table`),
		chromedp.Text(`#groups-table`, &groups),
		chromedp.WaitVisible(`#alias-form input[name=alias]`),
		chromedp.SendKeys(`#alias-form input[name=alias]`, "mini"),
		chromedp.SetValue(`#alias-form select[name=model_name]`, "gpt-4o-mini"),
		chromedp.Click(`#alias-form button[type=submit]`),
		chromedp.WaitVisible(`#aliases-table`),
		chromedp.Text(`#aliases-table`, &aliases),
	)
	if !strings.Contains(groups, "gpt-4o-mini") || !strings.Contains(groups, "least_busy") || !strings.Contains(groups, "weight 1") {
		t.Errorf("model groups table: %q", groups)
	}
	if !strings.Contains(aliases, "mini") || !strings.Contains(aliases, "gpt-4o-mini") {
		t.Errorf("aliases table: %q", aliases)
	}
	shot("routing")

	// Guardrails: the type picks its settings; a pattern the engine refuses
	// is explained inline, then an opt-in guardrail (no team: it changes no
	// call below) is added.
	var guardErr, guardrails string
	var piiHidden bool
	run("invalid guardrail",
		chromedp.Navigate(admin+"/guardrails"),
		chromedp.WaitVisible(`#guardrail-form input[name=name]`),
		chromedp.SendKeys(`#guardrail-form input[name=name]`, "employee-ids"),
		chromedp.SetValue(`#guardrail-form select[name=type]`, "regex"),
		chromedp.Evaluate(`document.querySelector('#guardrail-form select[name=type]').dispatchEvent(new Event('change', {bubbles: true}))`, nil),
		chromedp.WaitVisible(`#guardrail-form textarea[name=patterns]`),
		chromedp.Evaluate(`document.querySelector('#guardrail-form fieldset[data-guardrail-fields=pii]').hidden`, &piiHidden),
		chromedp.SetValue(`#guardrail-form select[name=action]`, "log"),
		chromedp.SendKeys(`#guardrail-form textarea[name=patterns]`, "SLOW=(a+)+$"),
		chromedp.Click(`#guardrail-form button[type=submit]`),
		chromedp.WaitVisible(`#guardrail-form .field-error`),
		chromedp.Text(`#guardrail-form .field-error`, &guardErr),
	)
	if !piiHidden {
		t.Error("the pii settings stay visible for a regex guardrail")
	}
	if !strings.Contains(guardErr, "SLOW") {
		t.Errorf("guardrail error %q", guardErr)
	}
	run("add guardrail",
		chromedp.SetValue(`#guardrail-form textarea[name=patterns]`, "EMPLOYEE_ID=E-[0-9]{6}"),
		chromedp.Click(`#guardrail-form button[type=submit]`),
		chromedp.WaitVisible(`#guardrails-table`),
		chromedp.Text(`#guardrails-table`, &guardrails),
	)
	if !strings.Contains(guardrails, "employee-ids") || !strings.Contains(guardrails, "EMPLOYEE_ID") || !strings.Contains(guardrails, "opt-in") {
		t.Errorf("guardrails table: %q", guardrails)
	}
	shot("guardrails")

	// An invalid team name is explained next to the field; nothing is created.
	var fieldErr string
	run("invalid team name",
		chromedp.Navigate(admin+"/teams"),
		chromedp.WaitVisible(`#team-form input[name=name]`),
		chromedp.SendKeys(`#team-form input[name=name]`, "-growth"),
		chromedp.Click(`#team-form button[type=submit]`),
		chromedp.WaitVisible(`#team-form .field-error`),
		chromedp.Text(`#team-form .field-error`, &fieldErr),
	)
	if !strings.Contains(fieldErr, "start and end with a letter or digit") {
		t.Errorf("team name error %q", fieldErr)
	}
	run("add team",
		chromedp.SetValue(`#team-form input[name=name]`, "growth-team"),
		chromedp.SendKeys(`#team-form input[name=max_budget]`, "25"),
		chromedp.Click(`#team-form button[type=submit]`),
		chromedp.WaitVisible(`#teams-list progress.budget-bar`),
	)
	shot("teams")

	// A key whose alias is markup: it must show as text.
	alias := `<img src=x onerror=alert(1)>`
	var secret, copyState string
	run("create key",
		chromedp.Navigate(admin+"/keys"),
		chromedp.WaitVisible(`#key-form select[name=team_id]`),
		chromedp.SetValue(`#key-form select[name=team_id]`, teamIDByName(t, s, "growth-team")),
		chromedp.SendKeys(`#key-form input[name=alias]`, alias),
		chromedp.Click(`#key-form button[type=submit]`),
		chromedp.WaitVisible(`#secret-dialog #new-secret`),
		chromedp.Text(`#new-secret`, &secret),
		chromedp.Click(`#secret-dialog button[data-copy-target]`),
		chromedp.WaitVisible(`#secret-dialog button[data-copy-state]`),
		chromedp.AttributeValue(`#secret-dialog button[data-copy-target]`, "data-copy-state", &copyState, nil),
	)
	if !strings.HasPrefix(secret, "sk-") {
		t.Fatalf("secret %q", secret)
	}
	if copyState == "" {
		t.Error("copy button did nothing")
	}
	shot("key-created")
	var images int
	var aliasText string
	run("alias is text",
		chromedp.Click(`#secret-dialog button[data-close]`),
		chromedp.Evaluate(`document.querySelectorAll('#keys-list img').length`, &images),
		chromedp.Text(`#keys-list tbody tr td`, &aliasText),
	)
	if images != 0 || aliasText != alias {
		t.Errorf("alias rendered as markup: %d images, text %q", images, aliasText)
	}

	// The key works through the gateway; the call shows in the spend logs
	// and on the dashboard.
	if status := s.chat(secret); status != 200 {
		t.Fatalf("gateway with the new key: %d", status)
	}
	// The spend writer flushes every 100 ms: reload until the row is there.
	for i := 0; ; i++ {
		var found bool
		run("spend logs", chromedp.Navigate(admin+"/spend"), chromedp.WaitVisible(`#spend-results`),
			chromedp.Evaluate(`document.querySelector('#spend-table') !== null`, &found))
		if found {
			break
		}
		if i == 50 {
			t.Fatal("the call never showed in the spend logs")
		}
		time.Sleep(200 * time.Millisecond)
	}
	var spendText string
	run("spend row", chromedp.Text(`#spend-table tbody`, &spendText))
	if !strings.Contains(spendText, "gpt-4o-mini") || !strings.Contains(spendText, "growth-team") {
		t.Errorf("spend table: %q", spendText)
	}
	shot("spend-logs")
	var stats string
	run("dashboard",
		chromedp.Navigate(admin+"/dashboard"),
		chromedp.WaitVisible(`section.stats`),
		chromedp.Text(`section.stats`, &stats),
		chromedp.WaitVisible(`figure.chart svg rect`),
	)
	if !strings.Contains(stats, "1 requests") {
		t.Errorf("dashboard stats: %q", stats)
	}
	shot("dashboard")

	// The playground streams an answer through the gateway with the key.
	var answer string
	run("playground",
		chromedp.Navigate(admin+"/playground"),
		chromedp.WaitVisible(`#pg-key`),
		chromedp.SendKeys(`#pg-key`, secret),
		chromedp.Evaluate(`document.getElementById('pg-key').dispatchEvent(new Event('change'))`, nil),
		chromedp.WaitEnabled(`#pg-model`),
		chromedp.SetValue(`#pg-model`, "gpt-4o-mini"),
		chromedp.SendKeys(`#pg-message`, "Hello from the playground"),
		chromedp.Click(`#pg-send`),
		chromedp.WaitVisible(`#pg-transcript[data-done="1"]`),
		chromedp.Text(`#pg-transcript .turn.assistant span`, &answer),
	)
	if !strings.Contains(answer, "Hello from the playground") {
		t.Errorf("playground answer %q", answer)
	}
	shot("playground")

	// Block it from the list: the gateway refuses its next call.
	run("block key",
		chromedp.Navigate(admin+"/keys"),
		chromedp.Click(`#keys-list tbody tr button[hx-post$="/block"]`),
		chromedp.WaitVisible(`#keys-list .badge.blocked`),
	)
	waitFor(t, func() (int, error) {
		if st := s.chat(secret); st != 401 {
			return st, errStatus(st)
		}
		return 401, nil
	})

	// The audit log lists the changes and exports them.
	var csv string
	run("audit export",
		chromedp.Navigate(admin+"/audit"),
		chromedp.WaitVisible(`#audit-table`),
		chromedp.Evaluate(`fetch(document.querySelector('a[href*="format=csv"]').href).then(r => r.text())`, &csv,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
	)
	for _, action := range []string{"provider.create", "model.create", "model_group.create", "model_alias.put", "team.create", "key.create", "key.block"} {
		if !strings.Contains(csv, action) {
			t.Errorf("audit export lacks %s", action)
		}
	}
	if strings.Contains(csv, secret) || strings.Contains(csv, "upstream-key") {
		t.Error("a secret reached the audit export")
	}
	shot("audit")

	// The budgets page: the global budget, profiles and alerts.
	run("budgets",
		chromedp.Navigate(admin+"/budgets"),
		chromedp.WaitVisible(`#global-budget form`),
		chromedp.WaitVisible(`#profiles-list`),
	)
	shot("budgets")

	// Chargeback: this month's cost per team, with the calls made above.
	var chargeback string
	run("chargeback",
		chromedp.Navigate(admin+"/chargeback"),
		chromedp.WaitVisible(`#chargeback`),
		chromedp.Text(`#chargeback`, &chargeback),
	)
	if !strings.Contains(chargeback, "growth-team") {
		t.Errorf("the chargeback table lacks the team that spent: %q", chargeback)
	}
	shot("chargeback")
	run("billing", chromedp.Navigate(admin+"/billing"), chromedp.WaitVisible(`#sinks-list`))
	shot("billing")
	for _, e := range browsertest.JSErrors(ctx) {
		// The refused sign-in is answered 401 on purpose.
		if !strings.Contains(e, "/signin") {
			t.Errorf("error in the page (CSP violation, script error, failed load): %s", e)
		}
	}
}

// chat makes one chat completion with key and returns the status.
func (s *stack) chat(key string) int {
	req, _ := http.NewRequest("POST", s.gateway+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"from the dashboard test"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	resp.Body.Close()
	return resp.StatusCode
}

type errStatus int

func (e errStatus) Error() string { return http.StatusText(int(e)) }

func providerIDByName(t *testing.T, s *stack, name string) string {
	return idByName(t, s, "/providers", "name", name)
}

func teamIDByName(t *testing.T, s *stack, name string) string {
	return idByName(t, s, "/teams", "name", name)
}

func idByName(t *testing.T, s *stack, path, field, name string) string {
	t.Helper()
	list := s.api("GET", path, nil)
	for _, item := range list["data"].([]any) {
		m := item.(map[string]any)
		if m[field] == name {
			return m["id"].(string)
		}
	}
	t.Fatalf("%s %q not found", path, name)
	return ""
}
