// Command tollgate is the AI gateway and its admin app in one binary.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"tollgate/config"
	"tollgate/mockllm"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `tollgate: an AI gateway with budgets, limits and chargeback.

Usage:
  tollgate gateway     serve the OpenAI-compatible API (default :4000)
  tollgate admin       serve the management API and run the jobs (default :8080)
  tollgate all [-demo] both apps and the jobs in one process; -demo also starts
                       mock-llm and seeds a demo provider, model, team and key
  tollgate migrate     apply database migrations and exit
  tollgate mock-llm    serve a fake provider speaking OpenAI, Anthropic, Gemini and Bedrock (default :9090)
  tollgate version     print the version

Settings come from the environment; see docs/configuration.md.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "version", "--version", "-v":
		fmt.Println("tollgate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	case "mock-llm":
		return runMock(ctx, args)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	log := cfg.Logger()
	switch cmd {
	case "migrate":
		cfg.AutoMigrate = true
		a, err := openApp(ctx, cfg, log)
		if err != nil {
			return err
		}
		a.close()
		log.Info("migrations applied")
		return nil
	case "gateway":
		return serveApps(ctx, cfg, log, true, false, false)
	case "admin":
		return serveApps(ctx, cfg, log, false, true, false)
	case "all":
		fs := flag.NewFlagSet("all", flag.ContinueOnError)
		demo := fs.Bool("demo", false, "start mock-llm and seed a demo provider, models, team and key")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return serveApps(ctx, cfg, log, true, true, *demo)
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func runMock(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("mock-llm", flag.ContinueOnError)
	addr := fs.String("addr", envOr("TOLLGATE_MOCK_ADDR", ":9090"), "listen address")
	var o mockllm.Options
	fs.DurationVar(&o.Latency, "latency", 0, "latency added to every answer, e.g. 200ms")
	fs.DurationVar(&o.Jitter, "jitter", 0, "random extra latency up to this much")
	fs.Float64Var(&o.ErrorRate, "error-rate", 0, "fraction of requests answered with HTTP 500 (0..1)")
	fs.StringVar(&o.APIKey, "api-key", "", "require this bearer key (empty: accept any)")
	fs.Int64Var(&o.Seed, "seed", 0, "random seed for jitter and errors (0: time-based)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.ErrorRate < 0 || o.ErrorRate > 1 {
		return fmt.Errorf("-error-rate must be between 0 and 1 (got %v)", o.ErrorRate)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		return err
	}
	return mockllm.Serve(ctx, *addr, o, cfg.Logger())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// shutdownContext bounds graceful shutdown after a signal.
func shutdownContext(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
