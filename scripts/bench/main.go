// Command bench measures what the gateway costs on top of its upstream,
// side by side with calling mock-llm directly and with a bare
// httputil.ReverseProxy, and writes the figures into docs/performance.md
// between its generated-block markers (issue 9). `make bench` runs it.
//
// Everything runs on 127.0.0.1. Three mock-llm processes answer with no
// latency, with 20 ms, and with a 1–3 s streaming profile; in front of
// each runs a bare reverse proxy (this program again, as a child); and one
// `tollgate gateway` serves all three as models, with full governance: a
// key with RPM/TPM limits, parallel slots and a budget, in a team and for a
// user with their own limits and budgets, spend logs written to PostgreSQL
// and meter events pushed to a webhook billing sink served here. The
// proxies and the gateway are child processes so that their CPU time and
// peak RSS can be read from /proc/<pid>; the load generator (vegeta, as a
// library, closed loop: a fixed number of workers each sending its next
// request when the last one finished) runs in this process.
//
// Usage:
//
//	eval "$(scripts/services.sh up tollgate_bench)"
//	go build -o bin/bench ./scripts/bench && bin/bench -tollgate bin/tollgate [-quick] [-soak 10m]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	quick        bool
	duration     time.Duration // measured time per cell
	warmup       time.Duration // unmeasured load before each cell
	concurrency  []int
	hold         int // concurrent streams in the hold test; 0 skips it
	holdDuration time.Duration
	soak         time.Duration // 0 skips the soak
	tollgate     string        // the built tollgate binary
	out          string        // markdown file with the generated block; "" only prints
	jsonOut      string
	databaseURL  string
	redisURL     string
	reset        bool
	from         string // render this earlier -json output instead of measuring
	pprof        string // loopback address for the gateway's profiler; "" keeps it off
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "short cells (3 s after 1 s of warm-up, 5 s hold) for a first look, about 2 minutes")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per cell")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each cell")
	conc := fs.String("concurrency", "16,64,256", "comma-separated concurrencies for the no-latency cells")
	fs.IntVar(&o.hold, "hold", 1000, "concurrent streams held against the 1-3 s mock (0: skip)")
	fs.DurationVar(&o.holdDuration, "hold-duration", 10*time.Second, "measured time of the hold test")
	fs.DurationVar(&o.soak, "soak", 0, "also load the gateway this long (e.g. 10m) and check goroutines and memory for growth")
	fs.StringVar(&o.tollgate, "tollgate", "bin/tollgate", "the tollgate binary to measure (make build)")
	fs.StringVar(&o.out, "out", "docs/performance.md", "markdown file whose generated block is replaced (empty: print only)")
	fs.StringVar(&o.jsonOut, "json", "", "also write every cell's figures to this JSON file")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL for the gateway (scripts/services.sh up tollgate_bench)")
	fs.StringVar(&o.redisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis for the gateway")
	fs.StringVar(&o.from, "from", "", "measure nothing: render the figures of an earlier run's -json file (after changing how they are shown)")
	fs.StringVar(&o.pprof, "pprof", "", "serve the gateway's profiler on this loopback address (e.g. 127.0.0.1:6060) while it runs")
	fs.BoolVar(&o.reset, "reset", true, "empty the database first, so every run starts alike (only a database whose name contains \"bench\")")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["duration"] {
			o.duration = 3 * time.Second
		}
		if !set["warmup"] {
			o.warmup = time.Second
		}
		if !set["hold-duration"] {
			o.holdDuration = 5 * time.Second
		}
	}
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-concurrency must be positive integers separated by commas (got %q)", *conc)
		}
		o.concurrency = append(o.concurrency, n)
	}
	if o.from != "" {
		return o, nil
	}
	switch {
	case o.duration <= 0:
		return o, errors.New("-duration must be positive")
	case o.warmup < 0, o.soak < 0, o.hold < 0:
		return o, errors.New("-warmup, -soak and -hold must not be negative")
	case o.databaseURL == "":
		return o, errors.New("no PostgreSQL: set DATABASE_URL or -database-url (eval \"$(scripts/services.sh up tollgate_bench)\" does)")
	case o.redisURL == "":
		return o, errors.New("no Redis: set REDIS_URL or -redis-url (eval \"$(scripts/services.sh up tollgate_bench)\" does)")
	}
	if _, err := os.Stat(o.tollgate); err != nil {
		return o, fmt.Errorf("-tollgate %s: %w (run make build first)", o.tollgate, err)
	}
	return o, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == reverseProxyCommand {
		if err := serveReverseProxy(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench reverse-proxy:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
