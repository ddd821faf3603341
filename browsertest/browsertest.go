// Package browsertest gives tests a real headless Chromium, driven with
// github.com/chromedp/chromedp.
//
//	func TestKeysPage(t *testing.T) {
//		srv := httptest.NewServer(handler)
//		defer srv.Close()
//		ctx := browsertest.New(t)
//		var title string
//		if err := chromedp.Run(ctx,
//			chromedp.Navigate(srv.URL+"/keys"),
//			chromedp.Click(`button[hx-post]`, chromedp.ByQuery),
//			chromedp.WaitVisible(`.toast`, chromedp.ByQuery),
//			chromedp.Title(&title),
//		); err != nil {
//			t.Fatal(err)
//		}
//		if errs := browsertest.JSErrors(ctx); len(errs) > 0 {
//			t.Errorf("browser errors: %q", errs)
//		}
//	}
//
// The browser is the one in TOLLGATE_CHROMIUM, which `make test` sets from
// scripts/chromium.sh (installing Debian's chromium package when needed), or
// else the first of chromium, chromium-browser, google-chrome on PATH. With
// neither, New fails the test: browser tests are never skipped.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// EnvChromium names the environment variable holding the browser's path.
const EnvChromium = "TOLLGATE_CHROMIUM"

// Timeout bounds everything done with one context from New, so a test that
// waits for an element that never appears fails instead of hanging until
// go test's own timeout.
var Timeout = 2 * time.Minute

// Window size of every browser New starts.
const (
	Width  = 1280
	Height = 900
)

// candidates are looked up on PATH when EnvChromium is unset.
var candidates = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// ExecPath returns the Chromium binary tests use: EnvChromium if set, or
// the first candidate on PATH.
func ExecPath() (string, error) {
	if p := strings.TrimSpace(os.Getenv(EnvChromium)); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("%s=%q is not an executable: %w", EnvChromium, p, err)
		}
		return p, nil
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is unset and none of %s is on PATH", EnvChromium, strings.Join(candidates, ", "))
}

// New starts a headless Chromium for the test and returns a chromedp
// context for its first tab. Pass it to chromedp.Run. The browser runs
// with a fresh, empty profile in a temporary directory, a 1280x900 window
// and viewport, and no network traffic of its own; it is shut down and the profile
// removed when the test ends. Everything run on the context must finish
// within Timeout.
//
// Uncaught exceptions, console.error calls and browser log errors (such as
// CSP violations and failed loads) on the tab are collected: see JSErrors.
// They are also printed if the test fails.
func New(t testing.TB) context.Context {
	t.Helper()
	execPath, err := ExecPath()
	if err != nil {
		t.Fatalf("browsertest: no Chromium: %v; run the tests with make test, which installs Chromium", err)
	}

	profile, err := os.MkdirTemp("", "tollgate-chromium-")
	if err != nil {
		t.Fatalf("browsertest: profile directory: %v", err)
	}
	output := &limitedBuffer{max: 64 << 10}
	logger := &testLogger{t: t}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(Width, Height),
		chromedp.CombinedOutput(output),
	)

	base, cancelTimeout := context.WithTimeout(context.Background(), Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithErrorf(logger.logf))

	pl := &pageLog{}
	ctx = context.WithValue(ctx, pageLogKey{}, pl)
	chromedp.ListenTarget(ctx, pl.listen)

	t.Cleanup(func() {
		if t.Failed() {
			if errs := pl.get(); len(errs) > 0 {
				t.Logf("browsertest: browser errors:\n\t%s", strings.Join(errs, "\n\t"))
			}
			if out := output.String(); out != "" {
				t.Logf("browsertest: Chromium output:\n%s", out)
			}
		}
		// Close the browser gracefully, then make sure the process is
		// gone (cancelAlloc waits for it) before removing its profile.
		_ = chromedp.Cancel(ctx)
		cancelCtx()
		cancelAlloc()
		cancelTimeout()
		logger.stop()
		removeAll(t, profile)
	})

	// Start the browser now, so a broken installation fails here with
	// Chromium's own words rather than in the test's first action. Headless
	// Chromium keeps room for an invisible toolbar inside the window, so
	// set the viewport itself to the window's size too.
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(Width, Height)); err != nil {
		t.Fatalf("browsertest: starting %s: %v\n%s", execPath, err, output.String())
	}
	return ctx
}

// Screenshot saves a full-page PNG of the tab in ctx to path, creating its
// directory. Use it for documentation screenshots, or to see what a
// failing test saw.
//
// Like a browser's "capture full size screenshot", it grows the viewport to
// the page's height for the capture (so fixed and sticky elements, toasts
// and modal dialogs land where a tall window would show them), then puts
// the viewport's size back.
func Screenshot(t testing.TB, ctx context.Context, path string) {
	t.Helper()
	var png []byte
	err := chromedp.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		_, _, _, viewport, _, content, err := page.GetLayoutMetrics().Do(ctx)
		if err != nil {
			return err
		}
		width := viewport.ClientWidth
		height := max(viewport.ClientHeight, int64(math.Ceil(content.Height)))
		height = min(height, maxScreenshotHeight)
		if err := emulation.SetDeviceMetricsOverride(width, height, 1, false).Do(ctx); err != nil {
			return err
		}
		defer func() {
			_ = emulation.SetDeviceMetricsOverride(width, viewport.ClientHeight, 1, false).Do(ctx)
		}()
		// Let the page lay out and paint at the new size.
		if err := chromedp.Evaluate(`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, nil,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) },
		).Do(ctx); err != nil {
			return err
		}
		png, err = page.CaptureScreenshot().
			WithFormat(page.CaptureScreenshotFormatPng).
			WithFromSurface(true).
			Do(ctx)
		return err
	}))
	if err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", path, err)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("browsertest: screenshot %s: %v", path, err)
		}
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browsertest: screenshot %s: %v", path, err)
	}
}

// maxScreenshotHeight keeps captures within what Chromium can paint at once.
const maxScreenshotHeight = 16384

// Keys types keys the way a real keyboard does: each key's keydown event
// carries its text, so a page's keydown handler that calls preventDefault
// stops the character being typed. (chromedp.KeyEvent sends the character
// as a separate event that preventDefault cannot stop, which makes
// keyboard-shortcut tests lie.)
func Keys(keys string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for _, r := range keys {
			events := kb.Encode(r)
			var down, up *input.DispatchKeyEventParams
			text, unmodified := "", ""
			for _, e := range events {
				switch e.Type {
				case input.KeyDown:
					down = e
				case input.KeyUp:
					up = e
				case input.KeyChar:
					text, unmodified = e.Text, e.UnmodifiedText
				}
			}
			if down == nil || up == nil {
				return fmt.Errorf("browsertest: cannot type %q", r)
			}
			down.Text, down.UnmodifiedText = text, unmodified
			if err := down.Do(ctx); err != nil {
				return err
			}
			if err := up.Do(ctx); err != nil {
				return err
			}
		}
		return nil
	})
}

// JSErrors returns what went wrong in the page so far: uncaught exceptions,
// console.error calls and the browser's own error log entries (CSP
// violations, failed loads including 4xx/5xx responses). ctx must come from
// New; errors in other tabs are not seen.
func JSErrors(ctx context.Context) []string {
	if pl, ok := ctx.Value(pageLogKey{}).(*pageLog); ok {
		return pl.get()
	}
	return nil
}

type pageLogKey struct{}

type pageLog struct {
	mu   sync.Mutex
	errs []string
}

func (p *pageLog) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) < 1000 {
		p.errs = append(p.errs, s)
	}
}

func (p *pageLog) get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errs...)
}

func (p *pageLog) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			msg += " " + d.Exception.Description
		}
		p.add(fmt.Sprintf("exception: %s (%s:%d)", msg, d.URL, d.LineNumber+1))
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.APITypeError && ev.Type != runtime.APITypeAssert {
			return
		}
		parts := make([]string, 0, len(ev.Args))
		for _, a := range ev.Args {
			switch {
			case a.Description != "":
				parts = append(parts, a.Description)
			case len(a.Value) > 0:
				parts = append(parts, string(a.Value))
			default:
				parts = append(parts, string(a.Type))
			}
		}
		p.add("console." + string(ev.Type) + ": " + strings.Join(parts, " "))
	case *log.EventEntryAdded:
		if e := ev.Entry; e != nil && e.Level == log.LevelError {
			s := fmt.Sprintf("%s: %s", e.Source, e.Text)
			if e.URL != "" {
				s += " (" + e.URL + ")"
			}
			p.add(s)
		}
	}
}

// testLogger forwards chromedp's error log to the test until cleanup, and
// drops it after: logging on a finished test panics.
type testLogger struct {
	mu      sync.Mutex
	t       testing.TB
	stopped bool
}

func (l *testLogger) logf(format string, args ...any) {
	if strings.HasPrefix(format, "unhandled node event") {
		// chromedp v0.16 doesn't know every DOM event of newer Chromium
		// (e.g. dom.EventTopLayerElementsUpdated when a dialog opens).
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("chromedp: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}

// limitedBuffer keeps the first max bytes of Chromium's output.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// removeAll deletes the profile; Chromium's helpers may still be writing
// for a moment after the main process exits.
func removeAll(t testing.TB, dir string) {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("browsertest: removing %s: %v", dir, err)
}
