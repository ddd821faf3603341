package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"tollgate/admin"
	"tollgate/config"
	"tollgate/gateway"
	"tollgate/gateway/limits"
	"tollgate/jobs"
	"tollgate/mockllm"
	"tollgate/store"
)

// app holds the connections both apps share.
type app struct {
	st  *store.Store
	rdb *redis.Client
}

func openApp(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	var sealer *store.Sealer
	if cfg.SecretKey != "" {
		var err error
		if sealer, err = store.NewSealer(cfg.SecretKey); err != nil {
			return nil, fmt.Errorf("TOLLGATE_SECRET_KEY %w", err)
		}
	} else {
		log.Warn("TOLLGATE_SECRET_KEY is not set: provider API keys can be neither stored nor used")
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, sealer)
	if err != nil {
		return nil, err
	}
	if cfg.AutoMigrate {
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("REDIS_URL is not a redis:// URL: %w", err)
	}
	return &app{st: st, rdb: redis.NewClient(opts)}, nil
}

func (a *app) close() {
	a.rdb.Close()
	a.st.Close()
}

// serveApps runs the gateway and/or the admin app until ctx ends, then shuts
// down gracefully: servers stop taking requests and finish the ones in
// flight, then queued spend logs are written.
func serveApps(ctx context.Context, cfg *config.Config, log *slog.Logger, withGateway, withAdmin, demo bool) error {
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.close()

	var wg sync.WaitGroup
	errs := make(chan error, 4)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	goRun := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}

	if demo {
		mockAddr := cfg.MockAddr
		goRun(func() error { return mockllm.Serve(runCtx, mockAddr, mockllm.Options{}, log) })
		if err := seedDemo(ctx, a.st, cfg, log); err != nil {
			return err
		}
	}
	if cfg.ConfigFile != "" {
		d, err := config.ReadDeclared(cfg.ConfigFile)
		if err != nil {
			return err
		}
		if err := d.Apply(ctx, a.st, log); err != nil {
			return fmt.Errorf("apply %s: %w", cfg.ConfigFile, err)
		}
	}
	if err := config.ApplySinks(ctx, a.st, cfg.Sinks, log); err != nil {
		return err
	}
	meterMetrics := jobs.NewMeterMetrics(a.st)

	if withGateway {
		cache := gateway.NewCache(a.st, log)
		if err := cache.Load(ctx); err != nil {
			return err
		}
		go cache.Run(runCtx)
		spend := gateway.NewSpendWriter(a.st, gateway.SpendOptions{Interval: cfg.SpendFlushInterval, MaxQueued: cfg.SpendMaxQueued, SpoolDir: cfg.SpoolDir}, log)
		spend.Start()
		gw := gateway.New(a.st, a.rdb, cache, spend, gateway.Options{
			MaxBodyBytes: cfg.MaxRequestBodyBytes, UpstreamTimeout: cfg.UpstreamTimeout,
			Limits: limits.Options{Replicas: cfg.Replicas, Window: cfg.RateLimitWindow},
			Retry: gateway.RetryOptions{Retries: retries(cfg.Retries), CooldownFailures: cfg.CooldownFailures,
				CooldownWindow: cfg.CooldownWindow, CooldownFor: cfg.CooldownPeriod},
			DefaultFallbacks: cfg.DefaultFallbacks,
		}, log)
		go gw.Run(runCtx)
		if err := meterMetrics.Register(gw.Registry()); err != nil {
			return err
		}
		goRun(func() error {
			err := serveHTTP(runCtx, "gateway", cfg.GatewayAddr, gw.Handler(), cfg.ShutdownTimeout, log)
			sctx, scancel := shutdownContext(cfg.ShutdownTimeout)
			defer scancel()
			if ferr := spend.Stop(sctx); ferr != nil {
				log.Error("spend logs left unwritten at shutdown", "queued", spend.Queued(), "err", ferr)
			}
			return err
		})
	}
	// Every process schedules the jobs; each tick runs on one replica only.
	alerts := &jobs.Alerts{URLs: cfg.AlertWebhooks, Secret: cfg.AlertSecret, MaxAttempts: cfg.AlertMaxAttempts,
		Client: &http.Client{Timeout: 10 * time.Second}, Log: log}
	meter := &jobs.Meter{St: a.st, MaxAttempts: cfg.MeterMaxAttempts, Lease: cfg.MeterLease, Metrics: meterMetrics, Log: log,
		Client: &http.Client{Timeout: 30 * time.Second}}
	all := append(jobs.Default(a.st), jobs.BudgetJobs(a.st, alerts)...)
	probeClient := &http.Client{Timeout: 20 * time.Second}
	all = append(all, jobs.HealthJob(a.st, func(ctx context.Context, m store.Model, p *store.Provider, key string) (time.Duration, error) {
		return gateway.Probe(ctx, probeClient, m, p, key)
	}, cfg.HealthInterval, log))
	sched, err := jobs.New(a.st, log, append(all, jobs.MeterJob(meter, cfg.MeterPushInterval)))
	if err != nil {
		return err
	}
	sched.Start()
	defer func() {
		sctx, scancel := shutdownContext(cfg.ShutdownTimeout)
		defer scancel()
		sched.Stop(sctx)
	}()
	if cfg.PprofAddr != "" {
		goRun(func() error { return serveHTTP(runCtx, "pprof", cfg.PprofAddr, profiler(), cfg.ShutdownTimeout, log) })
	}
	if withAdmin {
		if cfg.MasterKey == "" {
			log.Warn("TOLLGATE_MASTER_KEY is not set: the management API refuses every call")
		}
		adm := admin.New(a.st, a.rdb, cfg.MasterKey, log)
		if err := meterMetrics.Register(adm.Registry()); err != nil {
			return err
		}
		adm.SetSecureCookies(cfg.SecureCookies)
		adm.SetSessionTimeouts(cfg.SessionIdleTimeout, cfg.SessionLifetime)
		adm.SetKeySignIn(cfg.KeySignIn)
		adm.SetOIDC(cfg.OIDC)
		if cfg.OIDC.Enabled() {
			log.Info("single sign-on is on", "issuer", cfg.OIDC.Issuer, "key_signin", cfg.KeySignIn)
		}
		adm.SetGatewayURL(cfg.GatewayURL)
		adm.SetRoutingDefaults(admin.RoutingDefaults{Retries: cfg.Retries, CooldownFailures: cfg.CooldownFailures,
			CooldownWindow: cfg.CooldownWindow, CooldownPeriod: cfg.CooldownPeriod, DefaultFallbacks: cfg.DefaultFallbacks,
			HealthInterval: cfg.HealthInterval})
		goRun(func() error {
			return serveHTTP(runCtx, "admin", cfg.AdminAddr, adm.Handler(), cfg.ShutdownTimeout, log)
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// serveHTTP serves handler on addr until ctx ends, then drains requests.
func serveHTTP(ctx context.Context, name, addr string, h http.Handler, grace time.Duration, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info(name+" listening", "addr", ln.Addr().String())
	select {
	case err := <-served:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	sctx, cancel := shutdownContext(grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	log.Info(name + " stopped")
	return nil
}

// seedDemo declares the demo provider, models and team, makes sure the demo
// key exists, and tells the user how to call the gateway.
func seedDemo(ctx context.Context, st *store.Store, cfg *config.Config, log *slog.Logger) error {
	if err := config.Demo("http://"+loopback(cfg.MockAddr)+"/v1").Apply(ctx, st, log); err != nil {
		return fmt.Errorf("seed demo: %w", err)
	}
	secret, err := config.EnsureDemoKey(ctx, st, os.Getenv("TOLLGATE_DEMO_KEY"))
	if err != nil {
		return fmt.Errorf("seed demo key: %w", err)
	}
	gw := "http://" + loopback(cfg.GatewayAddr)
	fmt.Fprintf(os.Stderr, `
  Tollgate demo is ready.
    gateway   %s/v1   (OpenAI-compatible)
    dashboard http://%s   (sign in with TOLLGATE_MASTER_KEY; make run keeps it in .tollgate/demo.env)
    demo key  %s

  Try it (the x-tollgate-cost header says what the call cost, in USD):
    curl -si %s/v1/chat/completions \
      -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
      -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, Tollgate!"}]}'

  Spend by team so far (master key in .tollgate/demo.env when started by make run):
    curl -s 'http://%s/api/v1/spend/report?group_by=team' -H "Authorization: Bearer $TOLLGATE_MASTER_KEY"

`, gw, loopback(cfg.AdminAddr), secret, gw, secret, loopback(cfg.AdminAddr))
	return nil
}

// loopback turns ":4000" into "127.0.0.1:4000" for links.
func loopback(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "127.0.0.1" + addr
	}
	return addr
}

// retries maps the setting to RetryOptions, where 0 means the default.
func retries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// profiler serves Go's pprof endpoints under /debug/pprof/ on its own
// listener (TOLLGATE_PPROF_ADDR), away from the public ports.
func profiler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
