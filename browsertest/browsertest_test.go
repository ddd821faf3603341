package browsertest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"tollgate/browsertest"
	"tollgate/static"
)

// csp is as strict as the admin UI's: no inline scripts or styles, no eval.
// Pico draws its icons (search, checkbox, select chevron…) as data: SVG
// background images, so img-src must allow data:.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>browsertest %s</title>
<link rel="stylesheet" href="/static/vendor/pico.min.css">
<link rel="stylesheet" href="/static/css/app.css">
<script src="/static/vendor/htmx.min.js" defer></script>
<script src="/static/js/app.js" defer></script>
</head>
<body class="app">
<aside class="sidebar">
  <a class="brand" href="/dashboard">Tollgate</a>
  <nav><ul>
    <li><a href="/dashboard">Dashboard</a></li>
    <li><a href="/keys">Keys</a></li>
    <li><a href="/teams">Teams</a></li>
  </ul></nav>
</aside>
<main>
  <div class="page-header"><h1>%s</h1>
    <div class="actions"><button id="create" hx-post="/keys/new" hx-target="#result">Create key</button></div>
  </div>
  <input type="search" id="q" placeholder="Search keys">
  <section class="stats">
    <article class="stat"><span class="stat-label">Spend today</span><span class="stat-value">$12.40</span></article>
    <article class="stat"><span class="stat-label">Requests</span><span class="stat-value">1,204</span></article>
  </section>
  <progress class="budget-bar" value="85" max="100" data-level="warn">85%%</progress>
  <p><span class="badge badge-ok">ok</span> <span class="badge badge-blocked">blocked</span> <span class="badge badge-failure">failure</span></p>
  <div class="secret"><code id="secret">sk-test-0123456789</code>
    <button type="button" class="secondary" id="copy" data-copy-target="#secret">Copy</button></div>
  <div id="result"></div>
  <div class="empty"><p>No teams yet.</p></div>
</main>
<div id="toasts" aria-live="polite"></div>
</body>
</html>`

// fragment is what a create action returns: a result, and the secret in a
// dialog that app.js opens.
const fragment = `<p class="fragment">Key <code>dev-laptop</code> created</p>
<dialog id="shown-once" data-open><article>
  <header><h3>Copy your key</h3></header>
  <p>It is shown only once.</p>
  <footer><button type="button" id="done" data-close>Done</button></footer>
</article></dialog>`

func server(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static.FS)))
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /keys/new", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("HX-Request") != "true" {
			http.Error(w, "want an htmx request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("HX-Trigger", `{"showToast":{"message":"Key dev-laptop created","level":"ok"}}`)
		io.WriteString(w, fragment)
	})
	mux.HandleFunc("GET /{page}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("page")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, page, name, name)
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		mux.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitFor polls a JavaScript expression until it is truthy. Errors count as
// not yet: the page may be navigating.
func waitFor(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		err := chromedp.Run(ctx, chromedp.Evaluate("!!("+expr+")", &ok))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s (%s): err=%v", what, expr, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	var v T
	run(t, ctx, expr, chromedp.Evaluate(expr, &v))
	return v
}

// TestHtmxAppJS drives the real assets in a real Chromium under a strict
// CSP: an htmx post swaps a fragment in, the server's HX-Trigger shows a
// toast that goes away by itself, the swapped-in dialog opens and closes,
// the copy button copies, and the keyboard shortcuts work.
func TestHtmxAppJS(t *testing.T) {
	srv := server(t)
	ctx := browsertest.New(t)

	run(t, ctx, "open the dashboard", chromedp.Navigate(srv.URL+"/dashboard"))
	waitFor(t, ctx, "htmx to start", `document.readyState === "complete" && typeof htmx === "object"`)
	if v := eval[string](t, ctx, `htmx.version`); v != "2.0.11" {
		t.Errorf("htmx.version = %q, want 2.0.11", v)
	}
	if eval[bool](t, ctx, `htmx.config.includeIndicatorStyles`) {
		t.Error("app.js left htmx.config.includeIndicatorStyles on; its inline <style> breaks the CSP")
	}
	// The stylesheets applied: Pico's variables and app.css's layout.
	if v := eval[string](t, ctx, `getComputedStyle(document.body).display`); v != "grid" {
		t.Errorf("body.app display = %q, want grid (app.css not applied?)", v)
	}
	if v := eval[string](t, ctx, `getComputedStyle(document.documentElement).getPropertyValue("--pico-primary").trim()`); v == "" {
		t.Error("Pico's --pico-primary is unset (pico.min.css not applied?)")
	}

	// htmx post -> fragment swapped in, toast from HX-Trigger.
	run(t, ctx, "click Create key",
		chromedp.Click(`#create`, chromedp.ByQuery),
		chromedp.WaitVisible(`#result .fragment`, chromedp.ByQuery),
	)
	if got := eval[string](t, ctx, `document.querySelector("#result .fragment").textContent`); got != "Key dev-laptop created" {
		t.Errorf("fragment text = %q", got)
	}
	waitFor(t, ctx, "the toast", `document.querySelector("#toasts .toast") !== null`)
	if got := eval[string](t, ctx, `document.querySelector("#toasts .toast").textContent`); got != "Key dev-laptop created" {
		t.Errorf("toast text = %q", got)
	}
	if got := eval[string](t, ctx, `document.querySelector("#toasts .toast").className`); got != "toast toast-ok" {
		t.Errorf("toast class = %q, want %q", got, "toast toast-ok")
	}
	toastShown := time.Now()

	// The dialog in the fragment was opened as a modal; Done closes it.
	waitFor(t, ctx, "the dialog to open", `document.getElementById("shown-once").open`)
	if !eval[bool](t, ctx, `document.getElementById("shown-once").matches(":modal")`) {
		t.Error("dialog was opened, but not with showModal()")
	}
	run(t, ctx, "click Done", chromedp.Click(`#done`, chromedp.ByQuery))
	waitFor(t, ctx, "the dialog to close", `!document.getElementById("shown-once").open`)

	// Copy: grant the clipboard to the page's origin so headless Chromium
	// lets it write, then read the clipboard back.
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		run(t, ctx, "grant "+perm, browser.SetPermission(&browser.PermissionDescriptor{Name: perm},
			browser.PermissionSettingGranted).WithOrigin(srv.URL))
	}
	run(t, ctx, "click Copy", chromedp.Click(`#copy`, chromedp.ByQuery))
	waitFor(t, ctx, "the copy button to react", `document.getElementById("copy").hasAttribute("data-copy-state")`)
	if state := eval[string](t, ctx, `document.getElementById("copy").dataset.copyState`); state != "copied" {
		t.Errorf("copy button data-copy-state = %q, want copied", state)
	}
	if text := eval[string](t, ctx, `document.getElementById("copy").textContent`); text != "Copied" {
		t.Errorf("copy button text = %q, want Copied", text)
	}
	var clip string
	run(t, ctx, "read the clipboard", chromedp.Evaluate(`navigator.clipboard.readText()`, &clip,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if clip != "sk-test-0123456789" {
		t.Errorf("clipboard = %q, want the secret", clip)
	}
	waitFor(t, ctx, "the copy button to reset", `document.getElementById("copy").textContent === "Copy"`)

	// The toast removes itself after 4 s.
	waitFor(t, ctx, "the toast to go", `document.querySelector("#toasts .toast") === null`)
	if gone := time.Since(toastShown); gone < 2*time.Second {
		t.Errorf("toast gone after %v, want about 4s", gone)
	}

	// Keyboard: "/" focuses search; typing there is left alone; "g k" goes
	// to /keys.
	run(t, ctx, "press /", browsertest.Keys("/"))
	if id := eval[string](t, ctx, `document.activeElement.id`); id != "q" {
		t.Errorf(`after "/", focus is on %q, want the search box`, id)
	}
	run(t, ctx, "type g k in search", browsertest.Keys("gk"))
	if v := eval[string](t, ctx, `document.getElementById("q").value`); v != "gk" {
		t.Errorf("search box value = %q, want gk (shortcuts must not fire while typing)", v)
	}
	if p := eval[string](t, ctx, `location.pathname`); p != "/dashboard" {
		t.Fatalf("typing in search navigated to %s", p)
	}
	run(t, ctx, "leave search", chromedp.Evaluate(`document.activeElement.blur()`, nil))
	run(t, ctx, "press g k", browsertest.Keys("gk"))
	waitFor(t, ctx, "navigation to /keys", `location.pathname === "/keys" && document.readyState === "complete"`)
	if h := eval[string](t, ctx, `document.querySelector("h1").textContent`); h != "keys" {
		t.Errorf("after g k, h1 = %q", h)
	}

	// Screenshot writes a PNG, making directories.
	shot := filepath.Join(t.TempDir(), "a", "b", "keys.png")
	browsertest.Screenshot(t, ctx, shot)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Errorf("screenshot is not a PNG (%d bytes)", len(png))
	}

	// Nothing broke in the page: no exceptions, no CSP violations.
	if errs := browsertest.JSErrors(ctx); len(errs) > 0 {
		t.Errorf("browser errors:\n\t%s", strings.Join(errs, "\n\t"))
	}
}

// TestJSErrorsSeesCSPViolations makes sure JSErrors would catch a page
// breaking the CSP, so TestHtmxAppJS's clean result means something.
func TestJSErrorsSeesCSPViolations(t *testing.T) {
	srv := server(t)
	ctx := browsertest.New(t)
	run(t, ctx, "open", chromedp.Navigate(srv.URL+"/dashboard"))
	waitFor(t, ctx, "htmx to start", `document.readyState === "complete" && typeof htmx === "object"`)
	// An inline script the CSP must refuse, and a thrown exception.
	run(t, ctx, "break things", chromedp.Evaluate(`
		const s = document.createElement("script");
		s.textContent = "window.inlineRan = true";
		document.body.appendChild(s);
		setTimeout(() => { throw new Error("boom") }, 0);
	`, nil))
	run(t, ctx, "let them happen", chromedp.Sleep(300*time.Millisecond))
	if eval[bool](t, ctx, `window.inlineRan === true`) {
		t.Fatal("the CSP let an inline script run")
	}
	errs := strings.Join(browsertest.JSErrors(ctx), "\n")
	if !strings.Contains(errs, "Content Security Policy") {
		t.Errorf("JSErrors missed the CSP violation:\n%s", errs)
	}
	if !strings.Contains(errs, "boom") {
		t.Errorf("JSErrors missed the exception:\n%s", errs)
	}
}

func TestExecPathFromEnv(t *testing.T) {
	t.Setenv(browsertest.EnvChromium, filepath.Join(t.TempDir(), "no-such-chromium"))
	if p, err := browsertest.ExecPath(); err == nil {
		t.Fatalf("ExecPath() = %q with a missing binary, want an error", p)
	}
}
