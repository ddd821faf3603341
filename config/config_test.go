package config_test

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"tollgate/config"
)

// envMap is a getenv backed by a map.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	// Load must read only through getenv, never the process environment.
	t.Setenv("TOLLGATE_GATEWAY_ADDR", ":1111")
	t.Setenv("DATABASE_URL", "postgres://elsewhere/db")

	c, err := config.Load(envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		DatabaseURL:         "postgres://postgres@127.0.0.1:5432/tollgate?sslmode=disable",
		RedisURL:            "redis://127.0.0.1:6379/0",
		GatewayAddr:         ":4000",
		GatewayURL:          "http://127.0.0.1:4000",
		AdminAddr:           ":8080",
		MockAddr:            ":9090",
		AutoMigrate:         true,
		KeySignIn:           true,
		SessionIdleTimeout:  2 * time.Hour,
		SessionLifetime:     12 * time.Hour,
		MaxRequestBodyBytes: 10 << 20,
		UpstreamTimeout:     10 * time.Minute,
		SpendFlushInterval:  time.Second,
		ShutdownTimeout:     30 * time.Second,
		LogLevel:            slog.LevelInfo,
		LogFormat:           "text",
		Replicas:            1,
		RateLimitWindow:     time.Minute,
		SpendMaxQueued:      50_000,
		AlertMaxAttempts:    10,
		MeterPushInterval:   30 * time.Second,
		MeterMaxAttempts:    12,
		MeterLease:          2 * time.Minute,
		Retries:             3,
		HealthInterval:      time.Minute,
		CooldownFailures:    3,
		CooldownWindow:      time.Minute,
		CooldownPeriod:      30 * time.Second,
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("defaults\n%+v\nwant\n%+v", *c, want)
	}
	if c.MaxRequestBodyBytes != 10*1024*1024 {
		t.Errorf("MaxRequestBodyBytes = %d, want 10 MiB", c.MaxRequestBodyBytes)
	}
}

func TestLoadReadsEveryVariable(t *testing.T) {
	c, err := config.Load(envMap(map[string]string{
		"DATABASE_URL":                    "postgres://db.internal/tollgate",
		"REDIS_URL":                       "redis://cache.internal:6379/2",
		"TOLLGATE_MASTER_KEY":             "sk-master-0123456789",
		"TOLLGATE_SECRET_KEY":             "00112233",
		"TOLLGATE_CONFIG_FILE":            "/etc/tollgate.yaml",
		"TOLLGATE_GATEWAY_ADDR":           "  :4400  ",
		"TOLLGATE_ADMIN_ADDR":             "127.0.0.1:8880",
		"TOLLGATE_MOCK_ADDR":              ":9999",
		"TOLLGATE_PPROF_ADDR":             "localhost:6060",
		"TOLLGATE_AUTO_MIGRATE":           "false",
		"TOLLGATE_MAX_REQUEST_BODY_BYTES": "1024",
		"TOLLGATE_UPSTREAM_TIMEOUT":       "90s",
		"TOLLGATE_SPEND_FLUSH_INTERVAL":   "250ms",
		"TOLLGATE_SHUTDOWN_TIMEOUT":       "1m",
		"TOLLGATE_LOG_LEVEL":              "DEBUG",
		"TOLLGATE_LOG_FORMAT":             "json",
		"TOLLGATE_GATEWAY_URL":            "https://gateway.internal",
		"TOLLGATE_SECURE_COOKIES":         "true",
		"TOLLGATE_REPLICAS":               "3",
		"TOLLGATE_RATE_LIMIT_WINDOW":      "10s",
		"TOLLGATE_SPEND_MAX_QUEUED":       "500",
		"TOLLGATE_SPOOL_DIR":              "/var/lib/tollgate/spool",
		"TOLLGATE_ALERT_WEBHOOK_URLS":     "https://hooks.internal/a, http://alerts.internal/b",
		"TOLLGATE_ALERT_WEBHOOK_SECRET":   "whsec",
		"TOLLGATE_ALERT_MAX_ATTEMPTS":     "4",
		"TOLLGATE_METER_PUSH_INTERVAL":    "5s",
		"TOLLGATE_METER_MAX_ATTEMPTS":     "3",
		"TOLLGATE_METER_LEASE":            "45s",
		"TOLLGATE_AMBERFLO_API_KEY":       "aflo-key",
		"TOLLGATE_AMBERFLO_COST_METER":    "ai_cost",
		"TOLLGATE_BILLING_WEBHOOK_URL":    "https://billing.internal/usage",
		"TOLLGATE_BILLING_WEBHOOK_SECRET": "whsec-billing",
		"TOLLGATE_KEY_SIGNIN":             "false",
		"TOLLGATE_SESSION_IDLE_TIMEOUT":   "30m",
		"TOLLGATE_SESSION_LIFETIME":       "8h",
		"TOLLGATE_OIDC_ISSUER":            "https://login.example.com/realms/acme",
		"TOLLGATE_OIDC_CLIENT_ID":         "tollgate",
		"TOLLGATE_OIDC_CLIENT_SECRET":     "oidc-secret",
		"TOLLGATE_OIDC_REDIRECT_URL":      "https://tollgate.example.com/auth/oidc/callback",
		"TOLLGATE_OIDC_SCOPES":            "openid email profile groups",
		"TOLLGATE_OIDC_PROVIDER_NAME":     "Keycloak",
		"TOLLGATE_OIDC_GROUPS_CLAIM":      "realm_access.roles",
		"TOLLGATE_OIDC_ADMIN_GROUPS":      "platform-admins, sre",
		"TOLLGATE_OIDC_FINANCE_GROUPS":    "fin-ops",
		"TOLLGATE_OIDC_TEAM_GROUP_PREFIX": "llm-",
		"TOLLGATE_OIDC_ADMIN_EMAILS":      "Ada@Example.com",
		"TOLLGATE_OIDC_DEFAULT_TEAM":      "everyone",
		"TOLLGATE_OIDC_AUDIENCES":         "tollgate-api,cli",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		DatabaseURL: "postgres://db.internal/tollgate", RedisURL: "redis://cache.internal:6379/2",
		MasterKey: "sk-master-0123456789", SecretKey: "00112233", ConfigFile: "/etc/tollgate.yaml",
		GatewayAddr: ":4400", GatewayURL: "https://gateway.internal", AdminAddr: "127.0.0.1:8880", MockAddr: ":9999", PprofAddr: "localhost:6060",
		SecureCookies: true, KeySignIn: false, SessionIdleTimeout: 30 * time.Minute, SessionLifetime: 8 * time.Hour,
		OIDC: config.OIDC{
			Issuer: "https://login.example.com/realms/acme", ClientID: "tollgate", ClientSecret: "oidc-secret",
			RedirectURL: "https://tollgate.example.com/auth/oidc/callback", Scopes: []string{"openid", "email", "profile", "groups"},
			ProviderName: "Keycloak", GroupsClaim: "realm_access.roles", AdminGroups: []string{"platform-admins", "sre"},
			FinanceGroups: []string{"fin-ops"}, TeamGroupPrefix: "llm-", AdminEmails: []string{"ada@example.com"},
			DefaultTeam: "everyone", Audiences: []string{"tollgate-api", "cli"},
		},
		AutoMigrate: false, MaxRequestBodyBytes: 1024, UpstreamTimeout: 90 * time.Second,
		SpendFlushInterval: 250 * time.Millisecond, ShutdownTimeout: time.Minute,
		LogLevel: slog.LevelDebug, LogFormat: "json",
		Replicas: 3, RateLimitWindow: 10 * time.Second, SpendMaxQueued: 500, SpoolDir: "/var/lib/tollgate/spool",
		AlertWebhooks: []string{"https://hooks.internal/a", "http://alerts.internal/b"}, AlertSecret: "whsec", AlertMaxAttempts: 4,
		MeterPushInterval: 5 * time.Second, MeterMaxAttempts: 3, MeterLease: 45 * time.Second,
		Retries: 3, HealthInterval: time.Minute, CooldownFailures: 3, CooldownWindow: time.Minute, CooldownPeriod: 30 * time.Second,
		Sinks: []config.DeclaredSink{
			{Name: "amberflo", Type: "amberflo", Secret: "aflo-key", Config: map[string]string{"cost_meter": "ai_cost"}},
			{Name: "webhook", Type: "webhook", URL: "https://billing.internal/usage", Secret: "whsec-billing"},
		},
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("loaded\n%+v\nwant\n%+v", *c, want)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value, wantMsg string }{
		{"TOLLGATE_UPSTREAM_TIMEOUT", "abc", `must be a positive duration such as 30s or 5m (got "abc")`},
		{"TOLLGATE_UPSTREAM_TIMEOUT", "0s", "must be a positive duration"},
		{"TOLLGATE_UPSTREAM_TIMEOUT", "-5s", "must be a positive duration"},
		{"TOLLGATE_UPSTREAM_TIMEOUT", "30", "must be a positive duration"},
		{"TOLLGATE_SPEND_FLUSH_INTERVAL", "soon", "must be a positive duration"},
		{"TOLLGATE_SHUTDOWN_TIMEOUT", "1d", "must be a positive duration"},
		{"TOLLGATE_MAX_REQUEST_BODY_BYTES", "-1", "must be positive"},
		{"TOLLGATE_MAX_REQUEST_BODY_BYTES", "0", "must be positive"},
		{"TOLLGATE_MAX_REQUEST_BODY_BYTES", "10MiB", `must be a whole number (got "10MiB")`},
		{"TOLLGATE_LOG_LEVEL", "loud", "must be debug, info, warn or error"},
		{"TOLLGATE_LOG_FORMAT", "xml", "must be text or json"},
		{"TOLLGATE_AUTO_MIGRATE", "maybe", `must be true or false (got "maybe")`},
		{"TOLLGATE_MASTER_KEY", "short", "must be at least 8 characters"},
		{"TOLLGATE_REPLICAS", "0", "must be at least 1"},
		{"TOLLGATE_SPEND_MAX_QUEUED", "0", "must be at least 1"},
		{"TOLLGATE_ALERT_WEBHOOK_URLS", "ftp://x", "must be comma-separated http(s) URLs"},
		{"TOLLGATE_RATE_LIMIT_WINDOW", "1h?", "must be a positive duration"},
		{"TOLLGATE_KEY_SIGNIN", "false", "can be false only with single sign-on configured"},
		{"TOLLGATE_SESSION_IDLE_TIMEOUT", "13h", "must not be longer than TOLLGATE_SESSION_LIFETIME (12h0m0s)"},
		{"TOLLGATE_SESSION_LIFETIME", "forever", "must be a positive duration"},
		{"TOLLGATE_OIDC_CLIENT_ID", "tollgate", "is set but TOLLGATE_OIDC_ISSUER is not"},
		{"TOLLGATE_PPROF_ADDR", ":6060", "must be a loopback host and port"},
		{"TOLLGATE_PPROF_ADDR", "0.0.0.0:6060", "must be a loopback host and port"},
		{"TOLLGATE_PPROF_ADDR", "127.0.0.1", "must be a loopback host and port"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			c, err := config.Load(envMap(map[string]string{tc.name: tc.value}))
			if err == nil {
				t.Fatalf("Load accepted %s=%q: %+v", tc.name, tc.value, c)
			}
			if c != nil {
				t.Errorf("Load returned a config along with the error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.name+" "+tc.wantMsg) {
				t.Errorf("error %q does not say %q", msg, tc.name+" "+tc.wantMsg)
			}
			// Only the bad variable is blamed.
			for _, other := range []string{"TOLLGATE_UPSTREAM_TIMEOUT", "TOLLGATE_MAX_REQUEST_BODY_BYTES", "TOLLGATE_LOG_LEVEL", "TOLLGATE_AUTO_MIGRATE", "TOLLGATE_LOG_FORMAT"} {
				if other != tc.name && strings.Contains(msg, other) {
					t.Errorf("error %q also blames %s", msg, other)
				}
			}
		})
	}

	t.Run("every bad variable is reported at once", func(t *testing.T) {
		_, err := config.Load(envMap(map[string]string{
			"TOLLGATE_UPSTREAM_TIMEOUT":       "abc",
			"TOLLGATE_MAX_REQUEST_BODY_BYTES": "-1",
			"TOLLGATE_LOG_LEVEL":              "loud",
			"TOLLGATE_AUTO_MIGRATE":           "maybe",
		}))
		if err == nil {
			t.Fatal("Load accepted four bad values")
		}
		for _, name := range []string{"TOLLGATE_UPSTREAM_TIMEOUT", "TOLLGATE_MAX_REQUEST_BODY_BYTES", "TOLLGATE_LOG_LEVEL", "TOLLGATE_AUTO_MIGRATE"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name %s", err, name)
			}
		}
	})
}
