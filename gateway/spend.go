package gateway

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tollgate/store"
)

// SpendWriter batches spend logs and writes them on a short interval, when
// a batch fills, and on Stop. A failed write keeps the rows and retries, so
// nothing is lost while PostgreSQL is away; the store skips request ids
// already written, so a retry never double counts.
//
// During a long outage memory stays bounded: past MaxQueued rows the oldest
// go to spool files on local disk, which the writer (or any writer sharing
// the spool directory) drains once PostgreSQL is back, oldest first. Memory
// then holds about MaxQueued rows plus the batch being retried, plus what
// arrives while a spool file is written and synced: Add never waits for
// the disk, so a disk slower than the traffic lets memory grow rather
// than slow requests or drop a row.
//
// The spool directory holds:
//
//	spend-<unix-nanos>-<pid>-<rand>.jsonl           rows waiting, one JSON spend log a line
//	spend-….jsonl.draining-<pid>-<rand>              claimed by a writer that is draining it
//	spend-….jsonl.bad                                had a corrupt line; kept for a person to look at
//	.spend-*.tmp                                     being written; never drained
type SpendWriter struct {
	st        *store.Store
	log       *slog.Logger
	interval  time.Duration
	maxQueued int
	spillTo   int // a spill leaves this many rows in memory, so spool files are not one row each
	spoolDir  string

	flushMu sync.Mutex // one flush at a time: a batch is removed only after it is written

	mu        sync.Mutex
	pending   []store.SpendLog // in memory, oldest first
	retry     []store.SpendLog // the batch being written, kept until PostgreSQL takes it
	spilling  int              // rows taken from pending by a spill not yet on disk
	spool     map[string]int   // spool files this writer knows of, by name, and their rows
	spoolRows int              // rows in those files plus those left in the file being drained

	sent atomic.Int64 // rows PostgreSQL acknowledged, memory and spool

	kick   chan struct{}
	spill  chan struct{}
	stop   chan struct{}
	cancel context.CancelFunc // ends a write the flush loop is waiting on, at Stop
	done   sync.WaitGroup
}

// SpendOptions tune a SpendWriter; zero values take the defaults.
type SpendOptions struct {
	// Interval is how often queued rows are written (default 1s).
	Interval time.Duration
	// MaxQueued is how many rows wait in memory before the oldest go to
	// the spool (default 50,000).
	MaxQueued int
	// SpoolDir holds spool files (default $TMPDIR/tollgate-spool). Writers
	// of the same database may share it; writers of different databases
	// must not.
	SpoolDir string
}

const (
	spendBatch = 1000
	// staleClaim is how long a claimed spool file may go untouched before
	// another writer takes it over; a writer touches its claim every batch.
	staleClaim = 10 * time.Minute
)

// NewSpendWriter makes a writer; Start runs it.
func NewSpendWriter(st *store.Store, opts SpendOptions, log *slog.Logger) *SpendWriter {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = 50_000
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = filepath.Join(os.TempDir(), "tollgate-spool")
	}
	return &SpendWriter{st: st, log: log, interval: opts.Interval,
		maxQueued: opts.MaxQueued, spillTo: opts.MaxQueued - max(1, min(spendBatch, opts.MaxQueued/2)),
		spoolDir: opts.SpoolDir, spool: map[string]int{},
		kick: make(chan struct{}, 1), spill: make(chan struct{}, 1), stop: make(chan struct{})}
}

// Add queues one spend log. It never waits on the disk or the network:
// past MaxQueued rows it wakes the spooler, which moves the oldest to disk.
func (w *SpendWriter) Add(l store.SpendLog) {
	w.mu.Lock()
	w.pending = append(w.pending, l)
	n := len(w.pending)
	w.mu.Unlock()
	if n >= spendBatch {
		wake(w.kick)
	}
	if n > w.maxQueued {
		wake(w.spill)
	}
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Queued is the number of spend logs not yet written: in memory and in
// the spool files this writer knows of.
func (w *SpendWriter) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + len(w.retry) + w.spilling + w.spoolRows
}

// Spooled is the number of spend logs waiting on disk.
func (w *SpendWriter) Spooled() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.spoolRows
}

// inMemory is the number of spend logs held in memory.
func (w *SpendWriter) inMemory() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) + len(w.retry) + w.spilling
}

// Start runs the flush loop and the spooler in the background. The first
// flush runs at once, so spool files left by a previous process are
// drained without waiting for the interval.
func (w *SpendWriter) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done.Add(2)
	go w.flushLoop(ctx)
	go w.spoolLoop()
}

func (w *SpendWriter) flushLoop(ctx context.Context) {
	defer w.done.Done()
	w.countSpool()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	backoff := time.Duration(0)
	for first := true; ; first = false {
		if !first {
			select {
			case <-w.stop:
				return
			case <-t.C:
			case <-w.kick:
			}
		}
		if backoff > 0 {
			select {
			case <-w.stop:
				return
			case <-time.After(backoff):
			}
		}
		if err := w.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return // stopping: Stop writes what is left
			}
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			w.log.Error("write spend logs; will retry", "queued", w.Queued(), "spooled", w.Spooled(), "retry_in", backoff, "err", err)
		} else {
			backoff = 0
		}
	}
}

// spoolLoop moves the oldest rows to disk whenever memory holds more than
// maxQueued, so Add never waits on the disk.
func (w *SpendWriter) spoolLoop() {
	defer w.done.Done()
	backoff := time.Duration(0)
	for {
		select {
		case <-w.stop:
			return
		case <-w.spill:
		}
		if backoff > 0 {
			select {
			case <-w.stop:
				return
			case <-time.After(backoff):
			}
		}
		w.mu.Lock()
		if len(w.pending) <= w.maxQueued {
			w.mu.Unlock()
			continue
		}
		k := len(w.pending) - w.spillTo
		rows := w.pending[:k:k]
		w.pending = w.pending[k:]
		w.mu.Unlock()
		if err := w.spoolRowsOut(rows); err != nil {
			// Nothing may be dropped: keep the rows in memory and try again.
			backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
			w.log.Error("spool spend logs to disk; keeping them in memory", "dir", w.spoolDir, "rows", len(rows), "retry_in", backoff, "err", err)
			wake(w.spill)
			continue
		}
		backoff = 0
		wake(w.spill) // rows that came in during the write may be over the bound again
	}
}

// spoolRowsOut writes rows, already taken out of pending, to a new spool
// file. On failure the rows go back to the front of pending.
func (w *SpendWriter) spoolRowsOut(rows []store.SpendLog) error {
	w.mu.Lock()
	w.spilling += len(rows)
	w.mu.Unlock()
	name, err := w.writeSpoolFile(rows)
	w.mu.Lock()
	w.spilling -= len(rows)
	if err != nil {
		w.pending = append(rows, w.pending...)
		w.mu.Unlock()
		return err
	}
	// countSpool may have seen the file already, between rename and here.
	w.spoolRows += len(rows) - w.spool[name]
	w.spool[name] = len(rows)
	spooled := w.spoolRows
	w.mu.Unlock()
	w.log.Warn("spend logs spooled to disk until PostgreSQL takes them", "file", filepath.Join(w.spoolDir, name),
		"rows", len(rows), "spooled", spooled)
	return nil
}

// writeSpoolFile writes rows as JSON lines to a temporary file, syncs it,
// then renames it, so a crash never leaves half a file under a name that
// is drained.
func (w *SpendWriter) writeSpoolFile(rows []store.SpendLog) (string, error) {
	if err := os.MkdirAll(w.spoolDir, 0o700); err != nil {
		return "", fmt.Errorf("create spool directory: %w", err)
	}
	f, err := os.CreateTemp(w.spoolDir, ".spend-*.tmp")
	if err != nil {
		return "", fmt.Errorf("create spool file: %w", err)
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	enc := json.NewEncoder(bw)
	for i := range rows {
		if err := enc.Encode(&rows[i]); err != nil {
			return fail(fmt.Errorf("encode spend log %s: %w", rows[i].RequestID, err))
		}
	}
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("write spool file: %w", err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync spool file: %w", err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("close spool file: %w", err)
	}
	name := fmt.Sprintf("spend-%d-%d-%s.jsonl", time.Now().UnixNano(), os.Getpid(), randomSuffix())
	if err := os.Rename(tmp, filepath.Join(w.spoolDir, name)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("name spool file: %w", err)
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(w.spoolDir); err == nil {
		d.Sync()
		d.Close()
	}
	return name, nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Flush writes everything queued in memory, in batches, then drains the
// spool files.
func (w *SpendWriter) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if err := w.flushMemory(ctx); err != nil {
		return err
	}
	return w.drainSpool(ctx)
}

// flushMemory writes the rows in memory; the caller holds flushMu.
func (w *SpendWriter) flushMemory(ctx context.Context) error {
	for {
		w.mu.Lock()
		if w.retry == nil {
			n := min(len(w.pending), spendBatch)
			if n == 0 {
				w.mu.Unlock()
				return nil
			}
			w.retry = w.pending[:n:n]
			w.pending = w.pending[n:]
			if len(w.pending) == 0 {
				w.pending = nil
			}
		}
		batch := w.retry
		w.mu.Unlock()
		if _, err := w.st.InsertSpendLogs(ctx, batch); err != nil {
			return err
		}
		w.sent.Add(int64(len(batch)))
		w.mu.Lock()
		w.retry = nil
		w.mu.Unlock()
	}
}

// spoolFile is a spool file's name, split into its parts.
type spoolFile struct {
	name  string // as found in the directory
	base  string // spend-<nanos>-<pid>-<rand>.jsonl
	nanos int64
	pid   int // of the claim's owner, for a claimed file
}

// parseSpoolName reads the parts of a spool file's name; ok is false for
// any other file (temporary, bad, foreign).
func parseSpoolName(name string) (f spoolFile, claimed, ok bool) {
	f.name = name
	base, claim, claimed := strings.Cut(name, ".draining-")
	if !strings.HasPrefix(base, "spend-") || !strings.HasSuffix(base, ".jsonl") {
		return f, false, false
	}
	f.base = base
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(base, "spend-"), ".jsonl"), "-")
	if len(parts) != 3 {
		return f, false, false
	}
	nanos, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return f, false, false
	}
	f.nanos = nanos
	if claimed {
		pid, _, _ := strings.Cut(claim, "-")
		if f.pid, err = strconv.Atoi(pid); err != nil {
			return f, false, false
		}
	}
	return f, claimed, true
}

// drainSpool writes the spool files, oldest first, until none is left or
// a write fails; the caller holds flushMu.
func (w *SpendWriter) drainSpool(ctx context.Context) error {
	for {
		claim, f, ok, err := w.claimNext()
		if err != nil || !ok {
			return err
		}
		if err := w.drainFile(ctx, claim, f); err != nil {
			return err
		}
		// Rows keep arriving while the spool drains; write them between
		// files so memory does not fill behind a long drain.
		if err := w.flushMemory(ctx); err != nil {
			return err
		}
	}
}

// claimNext renames the oldest spool file, or a stale claim, to a claim of
// this writer, so no other writer drains it at the same time.
func (w *SpendWriter) claimNext() (claim string, f spoolFile, ok bool, err error) {
	entries, err := os.ReadDir(w.spoolDir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", f, false, nil
	}
	if err != nil {
		return "", f, false, fmt.Errorf("read spool directory: %w", err)
	}
	var files []spoolFile
	present := map[string]bool{}
	for _, e := range entries {
		sf, claimed, ok := parseSpoolName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		if !claimed {
			present[sf.name] = true
			files = append(files, sf)
			continue
		}
		if info, err := e.Info(); err == nil && w.staleClaim(sf, info) {
			files = append(files, sf)
		}
	}
	w.forgetGone(present)
	slices.SortFunc(files, func(a, b spoolFile) int {
		return cmp.Or(cmp.Compare(a.nanos, b.nanos), strings.Compare(a.name, b.name))
	})
	for _, sf := range files {
		claim := fmt.Sprintf("%s.draining-%d-%s", sf.base, os.Getpid(), randomSuffix())
		err := os.Rename(filepath.Join(w.spoolDir, sf.name), filepath.Join(w.spoolDir, claim))
		if errors.Is(err, fs.ErrNotExist) {
			continue // another writer claimed it first
		}
		if err != nil {
			return "", f, false, fmt.Errorf("claim spool file %s: %w", sf.name, err)
		}
		if sf.name != sf.base {
			w.log.Warn("taking over a stale spool claim", "file", sf.name)
		}
		// The rename keeps the old mtime; a fresh one marks the claim as live.
		now := time.Now()
		os.Chtimes(filepath.Join(w.spoolDir, claim), now, now)
		return claim, sf, true, nil
	}
	return "", f, false, nil
}

// staleClaim says whether a claimed file was left by a writer that is gone:
// untouched for staleClaim and, when its owner ran on this host, that
// process no longer runs. Replicas in containers often share a pid, so
// the same pid as ours proves nothing and the age decides.
func (w *SpendWriter) staleClaim(f spoolFile, info fs.FileInfo) bool {
	if time.Since(info.ModTime()) < staleClaim {
		return false
	}
	return f.pid == os.Getpid() || !processRuns(f.pid)
}

func processRuns(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// forgetGone drops from the count the spool files of this writer that
// another writer has claimed since.
func (w *SpendWriter) forgetGone(present map[string]bool) {
	w.mu.Lock()
	var check []string
	for name := range w.spool {
		if !present[name] {
			check = append(check, name)
		}
	}
	w.mu.Unlock()
	for _, name := range check {
		// A file spooled after the directory was read is not in present
		// but still exists; only one that is really gone is forgotten.
		if _, err := os.Stat(filepath.Join(w.spoolDir, name)); errors.Is(err, fs.ErrNotExist) {
			w.mu.Lock()
			w.spoolRows -= w.spool[name]
			delete(w.spool, name)
			w.mu.Unlock()
		}
	}
}

// countSpool counts, once at start, the rows of spool files already on
// disk, so Queued includes what a previous process left.
func (w *SpendWriter) countSpool() {
	entries, err := os.ReadDir(w.spoolDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if sf, claimed, ok := parseSpoolName(e.Name()); ok && !claimed {
			n, err := countLines(filepath.Join(w.spoolDir, sf.name))
			if err != nil {
				continue // claimed meanwhile
			}
			w.mu.Lock()
			if _, known := w.spool[sf.name]; !known {
				w.spool[sf.name] = n
				w.spoolRows += n
			}
			w.mu.Unlock()
		}
	}
	if n := w.Spooled(); n > 0 {
		w.log.Warn("spend logs left in the spool; writing them", "dir", w.spoolDir, "rows", n)
	}
}

// countLines counts the non-empty lines of a file.
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	n, content := 0, false
	for {
		chunk, err := r.ReadSlice('\n')
		if len(bytes.TrimSpace(chunk)) > 0 {
			content = true
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a long line: read on to its end
		}
		if content {
			n++
		}
		content = false
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// drainFile writes the rows of a claimed spool file in batches and removes
// the file once all are written. If a write fails the claim is released
// (the file keeps all its rows; the store skips those already written).
// A corrupt line is logged and skipped, and the file moved aside to
// *.bad once the rest is written, so it is neither retried forever nor
// deleted.
func (w *SpendWriter) drainFile(ctx context.Context, claim string, f spoolFile) error {
	path := filepath.Join(w.spoolDir, claim)
	rows, err := countLines(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // taken over by another writer
	}
	if err != nil {
		return w.release(claim, f, 0, fmt.Errorf("read spool file %s: %w", claim, err))
	}
	w.mu.Lock()
	if n, known := w.spool[f.base]; known {
		w.spoolRows -= n
		delete(w.spool, f.base)
	}
	w.spoolRows += rows
	w.mu.Unlock()
	left := rows

	file, err := os.Open(path)
	if err != nil {
		return w.release(claim, f, left, fmt.Errorf("open spool file %s: %w", claim, err))
	}
	defer file.Close()
	r := bufio.NewReaderSize(file, 64<<10)
	batch := make([]store.SpendLog, 0, spendBatch)
	lines, corrupt := 0, 0
	write := func() error {
		now := time.Now()
		os.Chtimes(path, now, now) // keeps the claim live for other writers
		if _, err := w.st.InsertSpendLogs(ctx, batch); err != nil {
			return err
		}
		w.sent.Add(int64(len(batch)))
		w.mu.Lock()
		w.spoolRows -= len(batch)
		w.mu.Unlock()
		left -= len(batch)
		batch = batch[:0]
		return nil
	}
	for {
		line, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return w.release(claim, f, left, fmt.Errorf("read spool file %s: %w", claim, rerr))
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			lines++
			var l store.SpendLog
			if err := json.Unmarshal(line, &l); err != nil || l.RequestID == "" {
				if err == nil {
					err = errors.New("no request_id")
				}
				corrupt++
				w.log.Error("corrupt line in spend spool file; skipping it", "file", path, "line", lines, "err", err)
				w.mu.Lock()
				w.spoolRows--
				w.mu.Unlock()
				left--
			} else {
				batch = append(batch, l)
			}
		}
		if len(batch) == spendBatch || (rerr == io.EOF && len(batch) > 0) {
			if err := write(); err != nil {
				return w.release(claim, f, left, fmt.Errorf("write spooled spend logs from %s: %w", f.base, err))
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	file.Close()
	w.mu.Lock()
	w.spoolRows -= left // zero unless the file changed after it was counted
	w.mu.Unlock()
	if corrupt > 0 {
		bad := filepath.Join(w.spoolDir, f.base+".bad")
		if err := os.Rename(path, bad); err != nil {
			return fmt.Errorf("set aside corrupt spool file %s: %w", claim, err)
		}
		w.log.Error("spend spool file had corrupt lines; wrote the rest and kept it aside", "file", bad,
			"corrupt_lines", corrupt, "rows_written", lines-corrupt)
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove drained spool file %s: %w", claim, err)
	}
	return nil
}

// release gives a claimed file back to the spool after a failed drain and
// returns err. The file keeps all its rows, so it counts in full again.
func (w *SpendWriter) release(claim string, f spoolFile, left int, err error) error {
	w.mu.Lock()
	w.spoolRows -= left
	w.mu.Unlock()
	rows, cerr := countLines(filepath.Join(w.spoolDir, claim))
	if rerr := os.Rename(filepath.Join(w.spoolDir, claim), filepath.Join(w.spoolDir, f.base)); rerr != nil {
		if !errors.Is(rerr, fs.ErrNotExist) {
			w.log.Error("release spend spool file", "file", claim, "err", rerr)
		}
		return err
	}
	if cerr == nil {
		w.mu.Lock()
		w.spoolRows -= w.spool[f.base]
		w.spool[f.base] = rows
		w.spoolRows += rows
		w.mu.Unlock()
	}
	return err
}

// Stop ends the loops and writes what is left, retrying until ctx ends.
// If PostgreSQL is still away then, the rows in memory go to the spool for
// the next start and Stop returns the write error. Spool files are drained
// while ctx allows; what remains waits on disk for the next start.
func (w *SpendWriter) Stop(ctx context.Context) error {
	close(w.stop)
	if w.cancel != nil {
		w.cancel()
	}
	w.done.Wait()
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	for {
		err := w.flushMemory(ctx)
		if err == nil {
			break
		}
		w.log.Error("write spend logs at shutdown; retrying", "queued", w.Queued(), "err", err)
		select {
		case <-ctx.Done():
			return w.spillAll(err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err := w.drainSpool(ctx); err != nil {
		w.log.Warn("spend logs left in the spool at shutdown; the next start writes them",
			"dir", w.spoolDir, "spooled", w.Spooled(), "err", err)
	}
	return nil
}

// spillAll moves every row in memory to the spool, at shutdown.
func (w *SpendWriter) spillAll(cause error) error {
	w.mu.Lock()
	rows := append(w.retry, w.pending...)
	w.retry, w.pending = nil, nil
	w.mu.Unlock()
	if len(rows) == 0 {
		return cause
	}
	if err := w.spoolRowsOut(rows); err != nil {
		return fmt.Errorf("write spend logs at shutdown: %w; and %d could not be spooled either, so they are lost: %w", cause, len(rows), err)
	}
	return fmt.Errorf("write spend logs at shutdown: %w (%d kept in the spool at %s for the next start)", cause, len(rows), w.spoolDir)
}
