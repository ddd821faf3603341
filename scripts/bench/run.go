package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"tollgate/store"
)

// Paths to an upstream, in the order each cell measures them.
const (
	pathDirect  = "direct"
	pathProxy   = "reverse proxy"
	pathGateway = "gateway"
)

// cell is one measurement: one path to one upstream at one concurrency.
type cell struct {
	Upstream    string `json:"upstream"`
	Stream      bool   `json:"stream"`
	Concurrency int    `json:"concurrency"`
	Path        string `json:"path"`

	Requests   int     `json:"requests"` // whole, successful answers in the measured time
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	FirstByte  float64 `json:"first_byte_p50_ms,omitempty"`
	FirstByte9 float64 `json:"first_byte_p99_ms,omitempty"`

	// Of the measured process (the reverse proxy or the gateway); -1 when
	// not measured.
	CPUPer1k      float64 `json:"cpu_ms_per_1k"`
	RedisCPUPer1k float64 `json:"redis_cpu_ms_per_1k"`
	PeakRSSMB     float64 `json:"peak_rss_mb"`
	Goroutines    int     `json:"goroutines,omitempty"` // the gateway's peak, where sampled
	// RedisLost counts the times the gateway found Redis unreachable (its
	// 500 ms ping failed) during the cell and limits fell back to
	// per-process state.
	RedisLost int `json:"redis_lost,omitempty"`
}

type soakSample struct {
	Seconds    float64 `json:"s"`
	RSSMB      float64 `json:"rss_mb"`
	HeapMB     float64 `json:"heap_inuse_mb"`
	Goroutines int     `json:"goroutines"`
}

type soakResult struct {
	Duration       string       `json:"duration"`
	Minutes        float64      `json:"minutes"`
	Requests       int          `json:"requests"`
	Errors         int          `json:"errors"`
	RPS            float64      `json:"rps"`
	IdleBefore     int          `json:"idle_goroutines_before"`
	IdleAfter      int          `json:"idle_goroutines_after"`
	Samples        []soakSample `json:"samples"`
	EarlyHeapMB    float64      `json:"early_heap_mb"`
	LateHeapMB     float64      `json:"late_heap_mb"`
	EarlyRSSMB     float64      `json:"early_rss_mb"`
	LateRSSMB      float64      `json:"late_rss_mb"`
	EarlyGoroutine int          `json:"early_goroutines"`
	LateGoroutine  int          `json:"late_goroutines"`
	Grew           []string     `json:"grew"`
}

type accounting struct {
	GatewayAnswers int     `json:"gateway_answers"` // warm-ups included
	SpendLogs      int     `json:"spend_logs"`
	MeterEvents    int     `json:"meter_events"`
	SinkEvents     int     `json:"sink_events"`
	SinkWait       float64 `json:"sink_wait_s"` // after the load, until the sink had every event
}

type report struct {
	Started       time.Time   `json:"started"`
	Finished      time.Time   `json:"finished"`
	Quick         bool        `json:"quick"`
	Duration      string      `json:"duration"`
	Warmup        string      `json:"warmup"`
	HoldDuration  string      `json:"hold_duration"`
	Machine       machine     `json:"machine"`
	Tollgate      string      `json:"tollgate"`
	LoadAvgStart  string      `json:"loadavg_start"`
	LoadAvgEnd    string      `json:"loadavg_end"`
	RedisMeasured bool        `json:"redis_measured"`
	Cells         []cell      `json:"cells"`
	IdleBefore    int         `json:"idle_goroutines_before_hold"`
	IdleAfter     int         `json:"idle_goroutines_after_hold"`
	Soak          *soakResult `json:"soak,omitempty"`
	Accounting    accounting  `json:"accounting"`
}

// bench is one run's state.
type bench struct {
	o        options
	gw       *child
	gov      governed
	redisPID int
	rep      *report

	gatewayAnswers int
}

func run(ctx context.Context, o options) error {
	if o.from != "" {
		b, err := os.ReadFile(o.from)
		if err != nil {
			return err
		}
		var rep report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("%s: %w", o.from, err)
		}
		return publish(o, &rep, false)
	}
	rep := &report{Started: time.Now(), Quick: o.quick, Duration: o.duration.String(), Warmup: o.warmup.String(),
		HoldDuration: o.holdDuration.String(), Machine: readMachine(), LoadAvgStart: loadAvg()}
	if out, err := exec.Command(o.tollgate, "version").Output(); err == nil {
		rep.Tollgate = strings.TrimSpace(string(out))
	}
	work, err := os.MkdirTemp("", "tollgate-bench-")
	if err != nil {
		return err
	}
	cs := &children{dir: work}
	defer cs.stopAll()
	failed := true
	defer func() {
		if failed || erred(rep) {
			fmt.Fprintf(os.Stderr, "bench: the processes' logs are in %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()

	progress("starting mock-llm, reverse proxies and the gateway")
	ups := upstreams()
	if err := startUpstreams(ctx, cs, o.tollgate, ups); err != nil {
		return err
	}
	st, gov, err := prepareDatabase(ctx, o, ups)
	if err != nil {
		return err
	}
	defer st.Close()
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cleanRedis(cctx, o.redisURL, gov); err != nil {
			fmt.Fprintln(os.Stderr, "bench: clean Redis:", err)
		}
	}()
	sink := newMeterSink()
	defer sink.srv.Close()
	gw, err := startGateway(ctx, cs, o, sink.srv.URL+"/meter-events", filepath.Join(work, "spool"))
	if err != nil {
		return err
	}
	b := &bench{o: o, gw: gw, gov: gov, redisPID: redisPID(ctx, o.redisURL), rep: rep}
	rep.RedisMeasured = b.redisPID != 0
	for _, u := range ups {
		if err := b.checkGateway(ctx, u); err != nil {
			return err
		}
	}

	zero, slow, streaming := ups[0], ups[1], ups[2]
	for _, stream := range []bool{false, true} {
		for _, c := range o.concurrency {
			if err := b.measureAll(ctx, zero, stream, c, o.duration, false); err != nil {
				return err
			}
		}
	}
	if err := b.measureAll(ctx, slow, false, 16, o.duration, false); err != nil {
		return err
	}
	if o.hold > 0 {
		rep.IdleBefore = b.idleGoroutines(ctx)
		if err := b.measureAll(ctx, streaming, true, o.hold, o.holdDuration, true); err != nil {
			return err
		}
		rep.IdleAfter = b.idleGoroutines(ctx)
	}
	if o.soak > 0 {
		if rep.Soak, err = b.soak(ctx, zero); err != nil {
			return err
		}
	}
	rep.Accounting = b.account(ctx, st, sink)
	rep.LoadAvgEnd = loadAvg()
	rep.Finished = time.Now()

	if err := publish(o, rep, true); err != nil {
		return err
	}
	failed = false
	return nil
}

// publish prints the report and writes it into the markdown file and,
// for a new run, the JSON file.
func publish(o options, rep *report, fresh bool) error {
	md := render(rep)
	fmt.Println(md)
	if o.out != "" {
		if err := writeGenerated(o.out, md); err != nil {
			return err
		}
		progress("wrote " + o.out)
	}
	if o.jsonOut != "" && fresh {
		if err := os.MkdirAll(filepath.Dir(o.jsonOut), 0o755); err != nil {
			return err
		}
		j, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, j, 0o644); err != nil {
			return err
		}
		progress("wrote " + o.jsonOut)
	}
	return nil
}

// erred says whether any request failed, so that the logs are kept.
func erred(r *report) bool {
	for _, c := range r.Cells {
		if c.Errors > 0 {
			return true
		}
	}
	return r.Soak != nil && r.Soak.Errors > 0
}

func progress(msg string) {
	fmt.Fprintf(os.Stderr, "bench: %s %s\n", time.Now().Format("15:04:05"), msg)
}

func (b *bench) targets(u *upstream) []target {
	const endpoint = "/v1/chat/completions"
	return []target{
		{path: pathDirect, url: u.mock.url + endpoint, model: "mock-gpt", auth: upstreamKey},
		{path: pathProxy, url: u.proxy.url + endpoint, model: "mock-gpt", auth: upstreamKey, proc: u.proxy},
		{path: pathGateway, url: b.gw.url + endpoint, model: u.model, auth: b.gov.secret, proc: b.gw},
	}
}

// checkGateway makes sure the gateway serves the upstream's model before
// anything is measured.
func (b *bench) checkGateway(ctx context.Context, u *upstream) error {
	t := b.targets(u)[2]
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(string(chatBody(t.model, false))))
		req.Header.Set("Authorization", "Bearer "+t.auth)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body strings.Builder
			bufio.NewReader(resp.Body).WriteTo(&body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				b.gatewayAnswers++
				return nil
			}
			err = fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, body.String())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the gateway does not serve model %s: %v; its log:\n%s", t.model, err, tail(b.gw.log, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// measureAll measures the three paths to u one after the other, so that
// they see the machine in about the same state.
func (b *bench) measureAll(ctx context.Context, u *upstream, stream bool, conc int, d time.Duration, sample bool) error {
	for _, t := range b.targets(u) {
		c, err := b.measure(ctx, u, t, stream, conc, d, sample && t.path == pathGateway)
		if err != nil {
			return err
		}
		b.rep.Cells = append(b.rep.Cells, c)
	}
	return nil
}

func (b *bench) measure(ctx context.Context, u *upstream, t target, stream bool, conc int, d time.Duration, sampleGoroutines bool) (cell, error) {
	c := cell{Upstream: u.name, Stream: stream, Concurrency: conc, Path: t.path, CPUPer1k: -1, RedisCPUPer1k: -1, PeakRSSMB: -1}
	mode := "whole answers"
	expect := expectWhole
	if stream {
		mode, expect = "streams", expectStream
	}
	what := fmt.Sprintf("%s, %s, %s upstream, concurrency %d", t.path, mode, u.title, conc)
	lc := newLoadClient(conc)
	defer lc.close()
	tg := []vegeta.Target{t.vegeta(stream)}

	if b.o.warmup > 0 {
		w := attack(ctx, lc, tg, expect, conc, b.o.warmup, false)
		if t.path == pathGateway {
			b.gatewayAnswers += len(w.ok) + w.errors
		}
		if len(w.ok) == 0 && ctx.Err() == nil {
			return c, fmt.Errorf("%s: no request succeeded in the warm-up: %s", what, w.firstErr)
		}
	}
	if err := ctx.Err(); err != nil {
		return c, err
	}
	pid := 0
	if t.proc != nil {
		pid = t.proc.pid()
		if err := resetPeakRSS(pid); err != nil {
			return c, fmt.Errorf("reset the peak RSS of %s: %w", t.proc.name, err)
		}
	}
	cpu0, _ := cpuTime(pid)
	redis0, _ := cpuTime(b.redisPID)
	lost0 := countLines(b.gw.log, redisLost)

	var peak goroutinePeak
	stopSampling := func() {}
	if sampleGoroutines {
		stopSampling = peak.sample(ctx, b.gw.url, 500*time.Millisecond)
	}
	out := attack(ctx, lc, tg, expect, conc, d, true)
	stopSampling()
	cpu1, _ := cpuTime(pid)
	redis1, _ := cpuTime(b.redisPID)
	if t.path == pathGateway {
		b.gatewayAnswers += len(out.ok) + out.errors
	}
	if err := ctx.Err(); err != nil {
		return c, err
	}

	lat, fb := sorted(out.ok), sorted(out.firstByte)
	done := len(out.ok) + out.errors
	c.Requests, c.Errors, c.FirstError = len(out.ok), out.errors, out.firstErr
	c.Seconds = out.elapsed.Seconds()
	c.RPS = float64(len(out.ok)) / out.elapsed.Seconds()
	c.P50, c.P90, c.P99 = ms(quantile(lat, .50)), ms(quantile(lat, .90)), ms(quantile(lat, .99))
	if stream {
		c.FirstByte, c.FirstByte9 = ms(quantile(fb, .50)), ms(quantile(fb, .99))
	}
	if pid != 0 && done > 0 {
		c.CPUPer1k = ms(cpu1-cpu0) * 1000 / float64(done)
		if kb, err := memoryKB(pid, "VmHWM"); err == nil {
			c.PeakRSSMB = float64(kb) / 1024
		}
	}
	if t.path == pathGateway && b.redisPID != 0 && done > 0 {
		c.RedisCPUPer1k = ms(redis1-redis0) * 1000 / float64(done)
	}
	c.Goroutines = peak.peak
	if t.path == pathGateway {
		c.RedisLost = countLines(b.gw.log, redisLost) - lost0
	}
	line := fmt.Sprintf("%s: %.0f/s, p50 %.2f ms, p99 %.2f ms", what, c.RPS, c.P50, c.P99)
	if stream {
		line += fmt.Sprintf(", first byte p50 %.2f ms", c.FirstByte)
	}
	if c.CPUPer1k >= 0 {
		line += fmt.Sprintf(", CPU %.0f µs/request, peak RSS %.0f MB", c.CPUPer1k, c.PeakRSSMB)
	}
	if c.Goroutines > 0 {
		line += fmt.Sprintf(", %d goroutines", c.Goroutines)
	}
	if c.Errors > 0 {
		line += fmt.Sprintf(", %d errors (first: %s)", c.Errors, c.FirstError)
	}
	if c.RedisLost > 0 {
		line += fmt.Sprintf("; Redis was unreachable %s, limits fell back to per-process state", times(c.RedisLost))
	}
	progress(line)
	return c, nil
}

// redisLost is what the gateway logs when its Redis ping fails.
const redisLost = `msg="redis unreachable`

// countLines counts the lines of a log that contain s.
func countLines(path, s string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// goroutinePeak samples the gateway's go_goroutines while a cell runs;
// read peak after stop has returned.
type goroutinePeak struct {
	peak int
}

func (g *goroutinePeak) sample(ctx context.Context, gatewayURL string, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if m, err := scrape(ctx, gatewayURL); err == nil {
				g.peak = max(g.peak, int(m["go_goroutines"]))
			}
		}
	}()
	return func() { cancel(); <-done }
}

// scrape reads the gateway's unlabelled Prometheus series.
func scrape(ctx context.Context, gatewayURL string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gatewayURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// idleGoroutines is the gateway's goroutine count once the last requests'
// work (spend-log flush, meter push) has had time to finish.
func (b *bench) idleGoroutines(ctx context.Context) int {
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(5 * time.Second):
	}
	m, err := scrape(ctx, b.gw.url)
	if err != nil {
		return 0
	}
	return int(m["go_goroutines"])
}

// soak loads the gateway with a mix of whole answers and streams at
// concurrency 64 for the -soak duration, sampling its memory and
// goroutines, and says what grew between the early and the late samples.
func (b *bench) soak(ctx context.Context, u *upstream) (*soakResult, error) {
	const conc = 64
	r := &soakResult{Duration: b.o.soak.String(), Minutes: b.o.soak.Minutes()}
	t := b.targets(u)[2]
	tg := []vegeta.Target{t.vegeta(false), t.vegeta(true)}
	lc := newLoadClient(conc)
	defer lc.close()
	progress(fmt.Sprintf("soak: the gateway for %s at concurrency %d, whole answers and streams", b.o.soak, conc))
	r.IdleBefore = b.idleGoroutines(ctx)

	every := max(b.o.soak/60, 5*time.Second)
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx2.Done():
				return
			case <-tick.C:
			}
			s := soakSample{Seconds: time.Since(start).Seconds()}
			if kb, err := memoryKB(b.gw.pid(), "VmRSS"); err == nil {
				s.RSSMB = float64(kb) / 1024
			}
			if m, err := scrape(ctx2, b.gw.url); err == nil {
				s.HeapMB, s.Goroutines = m["go_memstats_heap_inuse_bytes"]/(1<<20), int(m["go_goroutines"])
			}
			r.Samples = append(r.Samples, s) // read only after <-done
		}
	}()
	out := attack(ctx, lc, tg, expectEither, conc, b.o.soak, false)
	cancel()
	<-done
	b.gatewayAnswers += len(out.ok) + out.errors
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lc.close()
	r.IdleAfter = b.idleGoroutines(ctx)
	r.Requests, r.Errors = len(out.ok), out.errors
	r.RPS = float64(len(out.ok)) / out.elapsed.Seconds()

	// The first tenth is the gateway settling; then compare the next fifth
	// with the last fifth.
	n := len(r.Samples)
	if n >= 10 {
		early, late := r.Samples[n/10:n/10+n/5], r.Samples[n-n/5:]
		med := func(s []soakSample, f func(soakSample) float64) float64 {
			v := make([]float64, len(s))
			for i := range s {
				v[i] = f(s[i])
			}
			return median(v)
		}
		heap := func(s soakSample) float64 { return s.HeapMB }
		rss := func(s soakSample) float64 { return s.RSSMB }
		gor := func(s soakSample) float64 { return float64(s.Goroutines) }
		r.EarlyHeapMB, r.LateHeapMB = med(early, heap), med(late, heap)
		r.EarlyRSSMB, r.LateRSSMB = med(early, rss), med(late, rss)
		r.EarlyGoroutine, r.LateGoroutine = int(med(early, gor)), int(med(late, gor))
		if r.LateHeapMB > r.EarlyHeapMB*1.10 {
			r.Grew = append(r.Grew, fmt.Sprintf("heap in use %.1f → %.1f MB", r.EarlyHeapMB, r.LateHeapMB))
		}
		if r.LateRSSMB > r.EarlyRSSMB*1.10 {
			r.Grew = append(r.Grew, fmt.Sprintf("RSS %.1f → %.1f MB", r.EarlyRSSMB, r.LateRSSMB))
		}
		if r.LateGoroutine > r.EarlyGoroutine+max(10, r.EarlyGoroutine/20) {
			r.Grew = append(r.Grew, fmt.Sprintf("goroutines under load %d → %d", r.EarlyGoroutine, r.LateGoroutine))
		}
	}
	progress(fmt.Sprintf("soak: %d requests (%.0f/s), %d errors; heap %.1f → %.1f MB, RSS %.1f → %.1f MB, goroutines %d → %d",
		r.Requests, r.RPS, r.Errors, r.EarlyHeapMB, r.LateHeapMB, r.EarlyRSSMB, r.LateRSSMB, r.EarlyGoroutine, r.LateGoroutine))
	return r, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// account checks that governance really ran: a spend log for every answer
// the gateway gave, and every billed request's meter event at the sink.
func (b *bench) account(ctx context.Context, st *store.Store, sink *meterSink) accounting {
	a := accounting{GatewayAnswers: b.gatewayAnswers}
	count := func(q string) int {
		var n int
		if err := st.DB().GetContext(ctx, &n, q, b.gov.keyID); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		return n
	}
	progress("waiting for the spend logs and the meter events to arrive")
	start := time.Now()
	for a.SpendLogs = count(`SELECT count(*) FROM spend_logs WHERE key_id = $1`); a.SpendLogs < a.GatewayAnswers && time.Since(start) < 30*time.Second; {
		time.Sleep(500 * time.Millisecond)
		a.SpendLogs = count(`SELECT count(*) FROM spend_logs WHERE key_id = $1`)
	}
	a.MeterEvents = count(`SELECT count(*) FROM meter_events WHERE key_id = $1`)
	for a.SinkEvents = sink.count(); a.SinkEvents < a.MeterEvents && time.Since(start) < 3*time.Minute && ctx.Err() == nil; {
		time.Sleep(500 * time.Millisecond)
		a.SinkEvents = sink.count()
	}
	a.SinkWait = time.Since(start).Seconds()
	return a
}

// machine describes where the figures were taken.
type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
}

func readMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			m.Memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
