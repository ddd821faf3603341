// Package config reads Tollgate's settings from the environment once, at
// start, and the optional declarative file of providers, models and teams.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config holds every setting. Zero values never reach the apps: Load fills
// defaults and rejects bad values naming the variable.
type Config struct {
	DatabaseURL string
	RedisURL    string
	MasterKey   string
	SecretKey   string
	ConfigFile  string

	GatewayAddr string
	GatewayURL  string // how the admin app's playground reaches the gateway
	AdminAddr   string
	MockAddr    string
	PprofAddr   string // Go's profiler, loopback only; "" is off

	AutoMigrate         bool
	SecureCookies       bool
	KeySignIn           bool          // the dashboard's master/management-key sign-in form
	SessionIdleTimeout  time.Duration // dashboard sessions end after this long unused
	SessionLifetime     time.Duration // and this long after sign-in in any case
	OIDC                OIDC          // single sign-on; zero when not configured
	MaxRequestBodyBytes int64
	UpstreamTimeout     time.Duration
	SpendFlushInterval  time.Duration
	ShutdownTimeout     time.Duration

	// Governance.
	Replicas         int           // gateway replicas: Redis-down fallback limits are divided by it
	RateLimitWindow  time.Duration // the "minute" of RPM/TPM limits (shorter only in tests)
	SpendMaxQueued   int           // spend logs held in memory before spilling to disk
	SpoolDir         string        // where spilled spend logs wait for PostgreSQL
	AlertWebhooks    []string      // URLs budget alerts are POSTed to
	AlertSecret      string        // HMAC-SHA256 key signing alert webhooks
	AlertMaxAttempts int

	// Routing.
	Retries          int           // extra upstream attempts on 429, 5xx and transport errors
	CooldownFailures int           // failures within CooldownWindow that take a deployment out
	CooldownWindow   time.Duration //
	CooldownPeriod   time.Duration // how long it stays out
	DefaultFallbacks []string      // models tried after a model's own fallbacks
	HealthInterval   time.Duration // how often each deployment is probed

	// Metering.
	MeterPushInterval time.Duration
	MeterMaxAttempts  int
	MeterLease        time.Duration  // how long a batch being sent is held from other pushers
	Sinks             []DeclaredSink // billing sinks declared by environment variables

	LogLevel  slog.Level
	LogFormat string // text or json
}

// Load reads the environment through getenv (os.Getenv in production).
func Load(getenv func(string) string) (*Config, error) {
	e := env{get: getenv}
	c := &Config{
		DatabaseURL:         e.str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable"),
		RedisURL:            e.str("REDIS_URL", "redis://127.0.0.1:6379/0"),
		MasterKey:           e.str("TOLLGATE_MASTER_KEY", ""),
		SecretKey:           e.str("TOLLGATE_SECRET_KEY", ""),
		ConfigFile:          e.str("TOLLGATE_CONFIG_FILE", ""),
		GatewayAddr:         e.str("TOLLGATE_GATEWAY_ADDR", ":4000"),
		AdminAddr:           e.str("TOLLGATE_ADMIN_ADDR", ":8080"),
		MockAddr:            e.str("TOLLGATE_MOCK_ADDR", ":9090"),
		PprofAddr:           e.str("TOLLGATE_PPROF_ADDR", ""),
		AutoMigrate:         e.boolean("TOLLGATE_AUTO_MIGRATE", true),
		SecureCookies:       e.boolean("TOLLGATE_SECURE_COOKIES", false),
		KeySignIn:           e.boolean("TOLLGATE_KEY_SIGNIN", true),
		SessionIdleTimeout:  e.duration("TOLLGATE_SESSION_IDLE_TIMEOUT", 2*time.Hour),
		SessionLifetime:     e.duration("TOLLGATE_SESSION_LIFETIME", 12*time.Hour),
		MaxRequestBodyBytes: e.int("TOLLGATE_MAX_REQUEST_BODY_BYTES", 10<<20),
		UpstreamTimeout:     e.duration("TOLLGATE_UPSTREAM_TIMEOUT", 10*time.Minute),
		SpendFlushInterval:  e.duration("TOLLGATE_SPEND_FLUSH_INTERVAL", time.Second),
		ShutdownTimeout:     e.duration("TOLLGATE_SHUTDOWN_TIMEOUT", 30*time.Second),
		LogFormat:           e.str("TOLLGATE_LOG_FORMAT", "text"),
		Replicas:            int(e.int("TOLLGATE_REPLICAS", 1)),
		RateLimitWindow:     e.duration("TOLLGATE_RATE_LIMIT_WINDOW", time.Minute),
		SpendMaxQueued:      int(e.int("TOLLGATE_SPEND_MAX_QUEUED", 50_000)),
		SpoolDir:            e.str("TOLLGATE_SPOOL_DIR", ""),
		AlertSecret:         e.str("TOLLGATE_ALERT_WEBHOOK_SECRET", ""),
		AlertMaxAttempts:    int(e.int("TOLLGATE_ALERT_MAX_ATTEMPTS", 10)),
	}
	for _, u := range strings.Split(e.str("TOLLGATE_ALERT_WEBHOOK_URLS", ""), ",") {
		if u = strings.TrimSpace(u); u != "" {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				e.fail("TOLLGATE_ALERT_WEBHOOK_URLS", fmt.Sprintf("must be comma-separated http(s) URLs (got %q)", u))
			}
			c.AlertWebhooks = append(c.AlertWebhooks, u)
		}
	}
	c.Retries = int(e.int("TOLLGATE_RETRIES", 3))
	c.HealthInterval = e.duration("TOLLGATE_HEALTH_CHECK_INTERVAL", time.Minute)
	for _, m := range strings.Split(e.str("TOLLGATE_DEFAULT_FALLBACKS", ""), ",") {
		if m = strings.TrimSpace(m); m != "" {
			c.DefaultFallbacks = append(c.DefaultFallbacks, m)
		}
	}
	c.CooldownFailures = int(e.int("TOLLGATE_COOLDOWN_FAILURES", 3))
	c.CooldownWindow = e.duration("TOLLGATE_COOLDOWN_WINDOW", time.Minute)
	c.CooldownPeriod = e.duration("TOLLGATE_COOLDOWN_PERIOD", 30*time.Second)
	if c.Retries < 0 || c.Retries > 10 {
		e.fail("TOLLGATE_RETRIES", "must be from 0 to 10")
	}
	if c.CooldownFailures < 1 {
		e.fail("TOLLGATE_COOLDOWN_FAILURES", "must be at least 1")
	}
	c.MeterPushInterval = e.duration("TOLLGATE_METER_PUSH_INTERVAL", 30*time.Second)
	c.MeterMaxAttempts = int(e.int("TOLLGATE_METER_MAX_ATTEMPTS", 12))
	c.MeterLease = e.duration("TOLLGATE_METER_LEASE", 2*time.Minute)
	if c.MeterMaxAttempts < 1 {
		e.fail("TOLLGATE_METER_MAX_ATTEMPTS", "must be at least 1")
	}
	c.Sinks = sinksFromEnv(&e)
	if c.Replicas < 1 {
		e.fail("TOLLGATE_REPLICAS", "must be at least 1")
	}
	if c.SpendMaxQueued < 1 {
		e.fail("TOLLGATE_SPEND_MAX_QUEUED", "must be at least 1")
	}
	if c.AlertMaxAttempts < 1 {
		e.fail("TOLLGATE_ALERT_MAX_ATTEMPTS", "must be at least 1")
	}
	if err := c.LogLevel.UnmarshalText([]byte(e.str("TOLLGATE_LOG_LEVEL", "info"))); err != nil {
		e.fail("TOLLGATE_LOG_LEVEL", "must be debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		e.fail("TOLLGATE_LOG_FORMAT", "must be text or json")
	}
	if c.PprofAddr != "" {
		// Profiles show internals and cost CPU: never on a public address.
		host, _, err := net.SplitHostPort(c.PprofAddr)
		if ip, perr := netip.ParseAddr(host); err != nil || (host != "localhost" && (perr != nil || !ip.IsLoopback())) {
			e.fail("TOLLGATE_PPROF_ADDR", "must be a loopback host and port, such as 127.0.0.1:6060")
		}
	}
	c.GatewayURL = e.str("TOLLGATE_GATEWAY_URL", "")
	if c.GatewayURL == "" {
		addr := c.GatewayAddr
		if strings.HasPrefix(addr, ":") {
			addr = "127.0.0.1" + addr
		}
		c.GatewayURL = "http://" + addr
	}
	if c.MaxRequestBodyBytes <= 0 {
		e.fail("TOLLGATE_MAX_REQUEST_BODY_BYTES", "must be positive")
	}
	if c.SessionIdleTimeout > c.SessionLifetime {
		e.fail("TOLLGATE_SESSION_IDLE_TIMEOUT", fmt.Sprintf("must not be longer than TOLLGATE_SESSION_LIFETIME (%s)", c.SessionLifetime))
	}
	c.OIDC = oidcFromEnv(&e)
	if !c.KeySignIn && !c.OIDC.Enabled() {
		e.fail("TOLLGATE_KEY_SIGNIN", "can be false only with single sign-on configured (TOLLGATE_OIDC_ISSUER): otherwise nobody could sign in to the dashboard")
	}
	if c.MasterKey != "" && len(c.MasterKey) < 8 {
		e.fail("TOLLGATE_MASTER_KEY", "must be at least 8 characters")
	}
	if len(e.errs) > 0 {
		return nil, fmt.Errorf("configuration: %s", strings.Join(e.errs, "; "))
	}
	return c, nil
}

// Logger builds the process logger from the settings.
func (c *Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

type env struct {
	get  func(string) string
	errs []string
}

func (e *env) fail(name, msg string) { e.errs = append(e.errs, name+" "+msg) }

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.get(name)); v != "" {
		return v
	}
	return def
}

// list reads a comma-separated list; empty items are dropped.
func (e *env) list(name, def string) []string {
	var out []string
	for _, v := range strings.Split(e.str(name, def), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (e *env) boolean(name string, def bool) bool {
	v := e.get(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, fmt.Sprintf("must be true or false (got %q)", v))
	}
	return b
}

func (e *env) int(name string, def int64) int64 {
	v := e.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		e.fail(name, fmt.Sprintf("must be a whole number (got %q)", v))
	}
	return n
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.get(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.fail(name, fmt.Sprintf("must be a positive duration such as 30s or 5m (got %q)", v))
	}
	return d
}
