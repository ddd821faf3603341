// Package sinks pushes meter events to billing systems: one Sender per
// system, each speaking that system's own wire format.
//
//   - amberflo: POST {url}/ingest, a JSON array of meter records (at most
//     100 per request). A usage event becomes the meter set Amberflo's
//     AI-usage dashboards read from LLM gateways: records sharing uniqueId
//     (the request id) and meterTimeInMillis (the request start). An empty
//     dimension is sent as "unknown", which can still be grouped by.
//     A business-unit announcement becomes an Amberflo customer. Amberflo's
//     customer API can create (POST /customers) and replace (PUT
//     /customers) but has no upsert, so the sender does what Amberflo's own
//     SDKs do: it asks GET /customers/?customerId=… (an empty object when
//     there is none), then creates, or replaces the customer it read with
//     our name and traits laid over it, because PUT discards whatever it
//     is not given (traits such as a Stripe id set in Amberflo). A create
//     refused because the customer now exists is retried as a replace.
//   - openmeter: POST {url}/api/v1/events, a CloudEvents 1.0 JSON batch whose
//     subject is the business unit. An announcement upserts the subject
//     (POST /api/v1/subjects). Older self-hosted OpenMeters have no
//     subjects API: when it answers 404 while the events of the same send
//     were taken, the announcement is acknowledged and counted as skipped.
//   - stripe: POST {url}/v1/billing/meter_events, one form-encoded event per
//     request. Stripe allows one request at a time per customer and meter,
//     so a batch runs a few customers at once, each customer's events in
//     turn. Events Stripe cannot take (no billing customer, older than its
//     35-day window, announcements) are acknowledged and counted as
//     skipped. The identifier is the request id. Stripe rejects an
//     identifier it already holds; since the identifier is the request,
//     that answer proves the event was delivered before, and counts as
//     delivered (so one Stripe account takes one Stripe sink).
//   - webhook: POST {url}, {"events": [...]} signed with HMAC-SHA256.
//
// Every send is idempotent on the billing system's side (uniqueId, CloudEvent
// id, Stripe identifier, Idempotency-Key), so a failed batch is safely sent
// again whole.
package sinks

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"

	"tollgate/store"
)

// Sender pushes meter events to one billing system. Its Send may be
// called from several goroutines at once.
type Sender interface {
	// Send delivers a batch; nil means the system acknowledged every event
	// in it. A non-nil error is a *Error. Events the system cannot take by
	// design are acknowledged and counted (see Skipper).
	Send(ctx context.Context, events []store.MeterEvent) error
	// MaxEvents is the most events one Send may carry.
	MaxEvents() int
}

// Skipper is a Sender that acknowledges some events without sending them,
// such as Stripe events of a team with no billing customer.
type Skipper interface {
	// Skipped is how many events successful sends acknowledged without
	// sending, since the sender was built.
	Skipped() int64
}

// Skipped is how many events s acknowledged without sending; 0 for a
// sender that never skips.
func Skipped(s Sender) int64 {
	if k, ok := s.(Skipper); ok {
		return k.Skipped()
	}
	return 0
}

// Error is a failed send, with a message an admin can act on. It never
// holds a secret, a header or a full URL (a webhook URL may carry a token).
type Error struct {
	Status  int // HTTP status, 0 when no answer
	Message string
}

func (e *Error) Error() string { return e.Message }

// defaultClient is used when New is given no client.
var defaultClient = &http.Client{Timeout: 30 * time.Second}

// New builds the sender for a sink; secret is its decrypted API key, token
// or signing key.
func New(s store.Sink, secret string, client *http.Client) (Sender, error) {
	if client == nil {
		client = defaultClient
	}
	// Redirects are not followed: a redirected POST may turn into a GET,
	// and X-API-KEY would follow it to another host.
	noRedirects := *client
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &Error{Message: fmt.Sprintf("billing sink %s: the URL is not an http(s) URL", s.Name)}
	}
	cfg, err := parseConfig(s.Config)
	if err != nil {
		return nil, &Error{Message: fmt.Sprintf("billing sink %s: %v", s.Name, err)}
	}
	c := &conn{host: u.Host, client: &noRedirects, secret: secret, hosted: s.Type != "webhook"}
	var snd Sender
	switch s.Type {
	case "amberflo":
		snd, err = newAmberflo(c, s.URL, cfg)
	case "openmeter":
		snd, err = newOpenMeter(c, s.URL, cfg)
	case "stripe":
		snd, err = newStripe(c, s.URL, cfg)
	case "webhook":
		snd, err = newWebhook(c, s.URL)
	default:
		return nil, &Error{Message: fmt.Sprintf("billing sink %s: type %q is not one of %s", s.Name, s.Type, strings.Join(store.SinkTypes, ", "))}
	}
	if err != nil {
		return nil, &Error{Message: fmt.Sprintf("billing sink %s: %v", s.Name, err)}
	}
	return snd, nil
}

// config is a sink's per-type options.
type config map[string]any

func parseConfig(raw store.JSON) (config, error) {
	cfg := config{}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return cfg, nil
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config must be a JSON object of options")
	}
	return cfg, nil
}

// str is the string option name, or def when it is absent or empty.
func (c config) str(name, def string) (string, error) {
	v, ok := c[name]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("config %s must be a string", name)
	}
	if s = strings.TrimSpace(s); s == "" {
		return def, nil
	}
	return s, nil
}

// conn is the HTTP side every sender shares: it sends, and it turns what
// went wrong into a message an admin can act on.
type conn struct {
	system  string // the billing system's name in messages
	host    string
	client  *http.Client
	secret  string
	hosted  bool   // a web page answer means the URL names some other site
	urlHint string // what the URL should look like
	keyHint string // where to check a refused key
}

// answer is what a billing system said.
type answer struct {
	status int
	header http.Header
	body   []byte
	html   bool
}

func (a *answer) ok() bool { return a.status >= 200 && a.status < 300 }

// do sends one request. Its error, a *Error, says why no answer came.
func (c *conn) do(ctx context.Context, method, target string, header http.Header, body []byte) (*answer, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Message: fmt.Sprintf("cannot build the request to %s at %s: check the URL", c.system, c.host)}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "tollgate")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.noAnswer(ctx, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	a := &answer{status: resp.StatusCode, header: resp.Header, body: b}
	a.html = strings.Contains(strings.ToLower(resp.Header.Get("Content-Type")), "text/html") || looksHTML(b)
	return a, nil
}

// call sends one request and accepts only an acknowledgement.
func (c *conn) call(ctx context.Context, method, target string, header http.Header, body []byte) (*answer, error) {
	a, err := c.do(ctx, method, target, header, body)
	if err != nil {
		return nil, err
	}
	if err := c.check(a); err != nil {
		return a, err
	}
	return a, nil
}

// check is nil when a acknowledges the request.
func (c *conn) check(a *answer) error {
	if a.ok() && !(c.hosted && a.html) {
		return nil
	}
	return c.refused(a)
}

// refused explains an answer that is not an acknowledgement.
func (c *conn) refused(a *answer) *Error {
	var msg string
	switch {
	case c.hosted && a.html && a.status < 500:
		msg = fmt.Sprintf("%s answered with a web page (HTTP %d), not the %s API: the URL is wrong. %s", c.host, a.status, c.system, c.urlHint)
	case a.status >= 300 && a.status < 400 && a.header.Get("Location") != "":
		to := "another address"
		if loc, err := url.Parse(a.header.Get("Location")); err == nil && loc.Host != "" {
			to = loc.Scheme + "://" + loc.Host
		}
		msg = fmt.Sprintf("%s at %s redirects (HTTP %d) to %s: the URL is wrong. %s", c.system, c.host, a.status, to, c.urlHint)
	case a.status == http.StatusNotFound || (c.hosted && a.status == http.StatusMethodNotAllowed):
		msg = fmt.Sprintf("%s at %s answered %d %s: the URL is wrong. %s", c.system, c.host, a.status, http.StatusText(a.status), c.urlHint)
	case a.status == http.StatusUnauthorized || a.status == http.StatusForbidden:
		msg = fmt.Sprintf("%s at %s refused the key (HTTP %d): %s", c.system, c.host, a.status, c.keyHint)
	default:
		msg = fmt.Sprintf("%s at %s answered HTTP %d", c.system, c.host, a.status)
		if s := c.snippet(a); s != "" {
			msg += ": " + s
		}
	}
	return &Error{Status: a.status, Message: msg}
}

var (
	titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// snippet is the start of an answer's body, short, on one line, and with
// the secret blanked in case the system echoes it.
func (c *conn) snippet(a *answer) string {
	s := string(a.body)
	if a.html {
		m := titleRE.FindStringSubmatch(s)
		if m == nil {
			return "(a web page)"
		}
		s = "(a web page titled " + m[1] + ")"
	}
	s = c.redact(strings.TrimSpace(spaceRE.ReplaceAllString(strings.ToValidUTF8(s, "?"), " ")))
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

func (c *conn) redact(s string) string {
	if len(c.secret) >= 4 {
		s = strings.ReplaceAll(s, c.secret, "[secret]")
	}
	return s
}

func looksHTML(b []byte) bool {
	b = bytes.ToLower(bytes.TrimSpace(b[:min(len(b), 512)]))
	return bytes.HasPrefix(b, []byte("<!doctype html")) || bytes.HasPrefix(b, []byte("<html"))
}

// noAnswer explains why a request got no answer. It names the host only:
// a URL's path or query may carry a token, and *url.Error prints it.
func (c *conn) noAnswer(ctx context.Context, err error) *Error {
	var (
		dnsErr    *net.DNSError
		verifyErr *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		notTLS    tls.RecordHeaderError
		alert     tls.AlertError
		netErr    net.Error
	)
	blocked := fmt.Sprintf("outbound HTTPS from Tollgate to %s seems blocked: allow it in the firewall, or set HTTPS_PROXY if this network only goes out through a proxy", c.host)
	var msg string
	switch {
	case errors.Is(err, context.Canceled) || (ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled)):
		msg = fmt.Sprintf("the send to %s at %s was cancelled before it answered", c.system, c.host)
	case errors.As(err, &verifyErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid):
		msg = fmt.Sprintf("the certificate presented for %s is not trusted (%s): outbound HTTPS seems intercepted by a proxy that inspects TLS. "+
			"Add that proxy's CA certificate to the trust store of the Tollgate server (or point SSL_CERT_FILE at it), or have %s exempted from inspection",
			c.host, certReason(err), c.host)
	case errors.As(err, &notTLS):
		msg = fmt.Sprintf("%s did not answer in TLS: check http or https and the port in the URL; a proxy intercepting outbound HTTPS can cause this too", c.host)
	case strings.Contains(err.Error(), "HTTP response to HTTPS client"):
		msg = fmt.Sprintf("%s answered in plain HTTP: start the URL with http://, or use the host's HTTPS port", c.host)
	case errors.As(err, &alert), strings.Contains(err.Error(), "tls: "):
		msg = fmt.Sprintf("the TLS handshake with %s failed: outbound HTTPS seems blocked or intercepted by a firewall or proxy", c.host)
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("the host %s cannot be reached: its name does not resolve (DNS). Check the host name in the URL, and that the Tollgate server can resolve public names", c.host)
	case errors.Is(err, syscall.ECONNREFUSED):
		msg = fmt.Sprintf("the host %s cannot be reached: it refused the connection. Check the host and port in the URL, and that %s is running there", c.host, c.system)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		msg = fmt.Sprintf("the host %s cannot be reached: there is no network route to it. Check the host in the URL and the server's network", c.host)
	case errors.Is(err, syscall.ECONNRESET):
		msg = fmt.Sprintf("the connection to %s was cut: %s", c.host, blocked)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		msg = fmt.Sprintf("%s did not answer in time: %s", c.host, blocked)
	default:
		inner := err
		var ue *url.Error
		if errors.As(err, &ue) {
			inner = ue.Err
		}
		msg = fmt.Sprintf("could not reach %s at %s: %s", c.system, c.host, c.redact(inner.Error()))
	}
	return &Error{Message: msg}
}

func certReason(err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
	)
	switch {
	case errors.As(err, &unknownCA):
		return "signed by an unknown authority"
	case errors.As(err, &hostErr):
		return "issued for another host"
	default:
		return "invalid certificate"
	}
}

// orUnknown fills an empty dimension, which billing systems cannot group by.
func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// jsonHeader is the header of a JSON request, plus extra pairs.
func jsonHeader(contentType string, pairs ...string) http.Header {
	h := http.Header{"Content-Type": {contentType}, "Accept": {"application/json"}}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			h.Set(pairs[i], pairs[i+1])
		}
	}
	return h
}

// chunks splits s into runs of at most n.
func chunks[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}
