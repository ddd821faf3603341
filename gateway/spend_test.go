package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/store"
	"tollgate/store/storetest"
)

// spendDB is a fresh database reached through a proxy that can cut it,
// with a team and a key to charge.
type spendDB struct {
	t      *testing.T
	dsn    string
	proxy  *storetest.Proxy
	direct *store.Store // bypasses the proxy, to check what was written
	team   *store.Team
	key    *store.Key
}

func newSpendDB(t *testing.T) *spendDB {
	t.Helper()
	dsn := storetest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := &spendDB{t: t, dsn: dsn, proxy: storetest.NewProxy(t, u.Host)}
	db.direct = db.open(dsn)
	ctx := context.Background()
	if db.team, err = db.direct.CreateTeam(ctx, "test", store.TeamSpec{Name: "spool"}); err != nil {
		t.Fatal(err)
	}
	if db.key, _, err = db.direct.CreateKey(ctx, "test", store.KeySpec{Alias: "spool", TeamID: &db.team.ID}, ""); err != nil {
		t.Fatal(err)
	}
	return db
}

// proxied opens a store (its own pool, like a replica) through the proxy.
func (db *spendDB) proxied() *store.Store { return db.open(storetest.ProxyURL(db.dsn, db.proxy)) }

func (db *spendDB) open(dsn string) *store.Store {
	db.t.Helper()
	sealer, err := store.NewSealer(storetest.SecretKey)
	if err != nil {
		db.t.Fatal(err)
	}
	st, err := store.Open(context.Background(), dsn, sealer)
	if err != nil {
		db.t.Fatal(err)
	}
	db.t.Cleanup(func() { st.Close() })
	return st
}

// rows makes n spend logs charged to the key and team, and their total cost.
func (db *spendDB) rows(prefix string, n int) ([]store.SpendLog, float64) {
	logs := make([]store.SpendLog, n)
	total := 0.0
	now := time.Now().UTC()
	for i := range logs {
		cost := float64(i%7+1) / 1000
		total += cost
		logs[i] = store.SpendLog{
			RequestID: fmt.Sprintf("%s%06d", prefix, i), CreatedAt: now.Add(time.Duration(i) * time.Microsecond),
			KeyID: &db.key.ID, TeamID: &db.team.ID, Model: "gpt-test", Provider: "fake", Endpoint: "chat",
			InputTokens: int64(i % 100), OutputTokens: 10, Cost: cost, LatencyMS: 12,
			Status: store.StatusSuccess, StatusCode: 200,
		}
	}
	return logs, total
}

// written counts the spend logs whose request id starts with prefix, and
// how many distinct request ids they hold.
func (db *spendDB) written(prefix string) (rows, distinct int) {
	db.t.Helper()
	var c struct {
		Rows     int `db:"rows"`
		Distinct int `db:"distinct_ids"`
	}
	err := db.direct.DB().Get(&c, `SELECT count(*) AS rows, count(DISTINCT request_id) AS distinct_ids
		FROM spend_logs WHERE request_id LIKE $1`, prefix+"%")
	if err != nil {
		db.t.Fatal(err)
	}
	return c.Rows, c.Distinct
}

// checkSpend asserts that the key and the team were charged total.
func (db *spendDB) checkSpend(total float64) {
	db.t.Helper()
	ctx := context.Background()
	k, err := db.direct.GetKey(ctx, db.key.ID)
	if err != nil {
		db.t.Fatal(err)
	}
	tm, err := db.direct.GetTeam(ctx, db.team.ID)
	if err != nil {
		db.t.Fatal(err)
	}
	if math.Abs(k.Spend-total) > 1e-6 || math.Abs(tm.Spend-total) > 1e-6 {
		db.t.Errorf("spend: key %.6f, team %.6f, want %.6f for both", k.Spend, tm.Spend, total)
	}
}

func newTestSpendWriter(t *testing.T, st *store.Store, maxQueued int, dir string) *SpendWriter {
	w := NewSpendWriter(st, SpendOptions{Interval: 20 * time.Millisecond, MaxQueued: maxQueued, SpoolDir: dir},
		slog.New(slog.DiscardHandler))
	w.Start()
	t.Cleanup(func() {
		select {
		case <-w.stop:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			w.Stop(ctx)
		}
	})
	return w
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spoolContents lists the spool directory and counts the rows of its
// spool files (not claims, temporary or bad files).
func spoolContents(t *testing.T, dir string) (names []string, rows int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		names = append(names, e.Name())
		if strings.HasSuffix(e.Name(), ".jsonl") {
			n, err := countLines(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			rows += n
		}
	}
	return names, rows
}

// writeSpoolFile writes rows by hand, as a writer that crashed left them.
func writeSpoolFile(t *testing.T, dir, name string, lines []string, mtime time.Time) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func jsonLines(t *testing.T, rows []store.SpendLog) []string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		lines[i] = string(b)
	}
	return lines
}

// TestSpendOutageSpoolsAndDrains: PostgreSQL goes away while 5,000 spend
// logs arrive; memory stays bounded, the rest waits on disk, and all of
// it is written exactly once when PostgreSQL returns.
func TestSpendOutageSpoolsAndDrains(t *testing.T) {
	db := newSpendDB(t)
	dir := t.TempDir()
	const maxQueued, n = 1000, 5000
	w := newTestSpendWriter(t, db.proxied(), maxQueued, dir)
	db.proxy.Cut()

	logs, total := db.rows("outage-", n)
	peak := 0
	start := time.Now()
	for _, l := range logs {
		w.Add(l)
		peak = max(peak, w.inMemory())
	}
	addTime := time.Since(start)
	waitUntil(t, 5*time.Second, "memory back within MaxQueued plus a batch", func() bool {
		return w.inMemory() <= maxQueued+spendBatch
	})
	if q := w.Queued(); q != n {
		t.Fatalf("Queued() = %d while PostgreSQL is down, want %d", q, n)
	}
	names, onDisk := spoolContents(t, dir)
	if len(names) == 0 || onDisk != w.Spooled() || onDisk < n-maxQueued-spendBatch {
		t.Fatalf("spool holds %d rows in %v; Spooled() = %d, in memory %d", onDisk, names, w.Spooled(), w.inMemory())
	}
	if rows, _ := db.written("outage-"); rows != 0 {
		t.Fatalf("%d rows written while PostgreSQL was cut", rows)
	}
	t.Logf("5,000 adds took %v; memory peaked at %d rows, settled at %d; %d rows in %d spool files",
		addTime, peak, w.inMemory(), onDisk, len(names))

	db.proxy.Restore()
	restored := time.Now()
	waitUntil(t, 45*time.Second, "every spend log written after PostgreSQL returned", func() bool { return w.Queued() == 0 })
	t.Logf("drained %d rows %v after PostgreSQL returned (includes the retry backoff)", n, time.Since(restored))

	if rows, distinct := db.written("outage-"); rows != n || distinct != n {
		t.Fatalf("spend_logs holds %d rows, %d distinct request ids; want %d of each", rows, distinct, n)
	}
	db.checkSpend(total)
	if names, _ := spoolContents(t, dir); len(names) != 0 {
		t.Fatalf("spool not empty after drain: %v", names)
	}
	if w.Spooled() != 0 {
		t.Fatalf("Spooled() = %d after drain", w.Spooled())
	}
}

// deadPID is the pid of a process that has ended.
func deadPID(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a process to get a dead pid: %v", err)
	}
	return cmd.Process.Pid
}

// TestSpendDrainsLeftoverSpool: a new writer drains at start what a
// crashed writer left, takes over stale claims only, and sets aside a
// file with a corrupt line after writing its other rows.
func TestSpendDrainsLeftoverSpool(t *testing.T) {
	db := newSpendDB(t)
	dir := t.TempDir()
	dead := deadPID(t)
	old := time.Now().Add(-time.Hour)
	nanos := old.UnixNano()

	left, leftCost := db.rows("left-", 5000)
	lines := jsonLines(t, left[1:])
	// The first line as a person would write it, to pin the format.
	lines = slices.Insert(lines, 0, fmt.Sprintf(`{"request_id":"left-000000","created_at":%q,"key_id":%q,"team_id":%q,`+
		`"user_id":null,"model":"gpt-test","provider":"fake","deployment_id":null,"endpoint":"chat","input_tokens":0,`+
		`"output_tokens":10,"cost":0.001,"latency_ms":12,"status":"success","status_code":200,"error":"","cache_hit":false}`,
		left[0].CreatedAt.Format(time.RFC3339Nano), db.key.ID, db.team.ID))
	writeSpoolFile(t, dir, fmt.Sprintf("spend-%d-%d-0a0b0c0d.jsonl", nanos, dead), lines, old)

	stale, staleCost := db.rows("stale-", 300)
	writeSpoolFile(t, dir, fmt.Sprintf("spend-%d-%d-0e0f1011.jsonl.draining-%d-12345678", nanos+1, dead, dead),
		jsonLines(t, stale), time.Now().Add(-staleClaim-time.Minute))

	corrupt, _ := db.rows("corrupt-", 15)
	corruptLines := jsonLines(t, corrupt)
	corruptLines = slices.Insert(corruptLines, 10, `{"request_id": "corrupt-x", "created_at": `)
	corruptName := fmt.Sprintf("spend-%d-%d-12131415.jsonl", nanos+2, dead)
	writeSpoolFile(t, dir, corruptName, corruptLines, old)

	// Left alone: a fresh claim (its owner may still be draining it), an
	// old claim whose owner still runs, and a file still being written.
	fresh, _ := db.rows("fresh-", 5)
	freshName := fmt.Sprintf("spend-%d-%d-16171819.jsonl.draining-%d-9abcdef0", nanos+3, dead, dead)
	writeSpoolFile(t, dir, freshName, jsonLines(t, fresh), time.Now().Add(-time.Minute))
	alive, _ := db.rows("alive-", 5)
	aliveName := fmt.Sprintf("spend-%d-%d-1a1b1c1d.jsonl.draining-%d-9abcdef1", nanos+4, os.Getppid(), os.Getppid())
	writeSpoolFile(t, dir, aliveName, jsonLines(t, alive), time.Now().Add(-time.Hour))
	writeSpoolFile(t, dir, ".spend-123.tmp", jsonLines(t, alive), old)

	start := time.Now()
	w := newTestSpendWriter(t, db.proxied(), 1000, dir)
	waitUntil(t, 30*time.Second, "the leftover spool written", func() bool {
		rows, _ := db.written("left-")
		return rows == len(left) && w.Queued() == 0
	})
	t.Logf("drained 5,000 rows from a leftover spool file in %v", time.Since(start))

	for _, c := range []struct {
		prefix string
		want   int
	}{{"left-", 5000}, {"stale-", 300}, {"corrupt-", 15}, {"fresh-", 0}, {"alive-", 0}} {
		if rows, distinct := db.written(c.prefix); rows != c.want || distinct != c.want {
			t.Errorf("%s: %d rows, %d distinct written; want %d", c.prefix, rows, distinct, c.want)
		}
	}
	names, _ := spoolContents(t, dir)
	slices.Sort(names)
	want := []string{".spend-123.tmp", corruptName + ".bad", freshName, aliveName}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("spool holds %v, want %v", names, want)
	}
	db.checkSpend(leftCost + staleCost + totalCost(corrupt))
}

func totalCost(logs []store.SpendLog) float64 {
	total := 0.0
	for _, l := range logs {
		total += l.Cost
	}
	return total
}

// TestSpendStopSpillsToDisk: Stop while PostgreSQL is down keeps the rows
// in the spool, and the next writer writes them.
func TestSpendStopSpillsToDisk(t *testing.T) {
	db := newSpendDB(t)
	dir := t.TempDir()
	w := newTestSpendWriter(t, db.proxied(), 1000, dir)
	db.proxy.Cut()
	logs, total := db.rows("stop-", 700)
	for _, l := range logs {
		w.Add(l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := w.Stop(ctx)
	if err == nil {
		t.Fatal("Stop returned nil with PostgreSQL down")
	}
	t.Logf("Stop: %v", err)
	names, onDisk := spoolContents(t, dir)
	if onDisk != len(logs) || w.Spooled() != len(logs) || w.Queued() != len(logs) || w.inMemory() != 0 {
		t.Fatalf("after Stop: %d rows on disk in %v, Spooled %d, Queued %d, in memory %d; want all %d on disk",
			onDisk, names, w.Spooled(), w.Queued(), w.inMemory(), len(logs))
	}

	db.proxy.Restore()
	w2 := newTestSpendWriter(t, db.proxied(), 1000, dir)
	waitUntil(t, 10*time.Second, "the spilled rows written by the next writer", func() bool {
		rows, _ := db.written("stop-")
		return rows == len(logs) && w2.Queued() == 0
	})
	if err := w2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rows, distinct := db.written("stop-"); rows != len(logs) || distinct != len(logs) {
		t.Fatalf("%d rows, %d distinct; want %d", rows, distinct, len(logs))
	}
	db.checkSpend(total)
	if names, _ := spoolContents(t, dir); len(names) != 0 {
		t.Fatalf("spool not empty: %v", names)
	}
}

// TestSpendWritersShareSpool: two writers (replicas, each with its own
// pool) spool to one directory during an outage; afterwards every row is
// written once and no file was drained twice.
func TestSpendWritersShareSpool(t *testing.T) {
	db := newSpendDB(t)
	dir := t.TempDir()
	const perWriter = 3000
	writers := []*SpendWriter{
		newTestSpendWriter(t, db.proxied(), 500, dir),
		newTestSpendWriter(t, db.proxied(), 500, dir),
	}
	db.proxy.Cut()
	var wg sync.WaitGroup
	total := 0.0
	for i, w := range writers {
		logs, cost := db.rows(fmt.Sprintf("shared-%d-", i), perWriter)
		total += cost
		wg.Go(func() {
			for _, l := range logs {
				w.Add(l)
			}
		})
	}
	wg.Wait()
	for _, w := range writers {
		waitUntil(t, 5*time.Second, "memory back within MaxQueued plus a batch", func() bool {
			return w.inMemory() <= 500+spendBatch
		})
	}
	names, onDisk := spoolContents(t, dir)
	if onDisk != writers[0].Spooled()+writers[1].Spooled() {
		t.Fatalf("%d rows on disk in %d files; writers say %d and %d", onDisk, len(names), writers[0].Spooled(), writers[1].Spooled())
	}
	t.Logf("%d rows spooled in %d files by two writers", onDisk, len(names))

	db.proxy.Restore()
	waitUntil(t, 45*time.Second, "both writers drained", func() bool {
		return writers[0].Queued() == 0 && writers[1].Queued() == 0
	})
	if rows, distinct := db.written("shared-"); rows != 2*perWriter || distinct != 2*perWriter {
		t.Fatalf("%d rows, %d distinct; want %d", rows, distinct, 2*perWriter)
	}
	db.checkSpend(total)
	// Every row acknowledged exactly once across both writers: no batch
	// and no spool file was written twice.
	if sent := writers[0].sent.Load() + writers[1].sent.Load(); sent != 2*perWriter {
		t.Fatalf("writers sent %d rows (%d + %d), want %d", sent, writers[0].sent.Load(), writers[1].sent.Load(), 2*perWriter)
	}
	t.Logf("writer 0 wrote %d rows, writer 1 wrote %d", writers[0].sent.Load(), writers[1].sent.Load())
	if names, _ := spoolContents(t, dir); len(names) != 0 {
		t.Fatalf("spool not empty: %v", names)
	}
}

func TestSpendParseSpoolName(t *testing.T) {
	for _, c := range []struct {
		name        string
		ok, claimed bool
		nanos       int64
		pid         int
	}{
		{name: "spend-1700000000000000000-42-0a0b0c0d.jsonl", ok: true, nanos: 1700000000000000000},
		{name: "spend-17-42-0a0b0c0d.jsonl.draining-99-deadbeef", ok: true, claimed: true, nanos: 17, pid: 99},
		{name: "spend-17-42-0a0b0c0d.jsonl.bad"},
		{name: ".spend-123.tmp"},
		{name: "spend-x-42-0a0b0c0d.jsonl"},
		{name: "spend-17-42.jsonl"},
		{name: "spend-17-42-0a.jsonl.draining-x-1"},
		{name: "notes.txt"},
	} {
		f, claimed, ok := parseSpoolName(c.name)
		if ok != c.ok || claimed != c.claimed || (ok && (f.nanos != c.nanos || f.pid != c.pid)) {
			t.Errorf("%s: ok %v claimed %v nanos %d pid %d; want %v %v %d %d", c.name, ok, claimed, f.nanos, f.pid, c.ok, c.claimed, c.nanos, c.pid)
		}
		if ok && !strings.HasSuffix(f.base, ".jsonl") {
			t.Errorf("%s: base %q", c.name, f.base)
		}
	}
}

func TestSpendCountLines(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 200<<10) // longer than the read buffer
	for _, c := range []struct {
		content string
		want    int
	}{
		{"", 0},
		{"a\n", 1},
		{"a\nb", 2},
		{"a\n\n  \nb\n", 2},
		{long + "\n" + long + "\nc", 3},
	} {
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if n, err := countLines(path); err != nil || n != c.want {
			t.Errorf("countLines(%.20q…) = %d, %v; want %d", c.content, n, err, c.want)
		}
	}
}

// The spool file format is one JSON spend log a line; check a written
// file reads back the same rows.
func TestSpendSpoolFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w := NewSpendWriter(nil, SpendOptions{SpoolDir: dir}, slog.New(slog.DiscardHandler))
	user, dep := "7d0f8e0c-0000-4000-8000-000000000001", "7d0f8e0c-0000-4000-8000-000000000002"
	rows := []store.SpendLog{
		{RequestID: "a", CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC), UserID: &user, DeploymentID: &dep,
			Model: "m", Cost: 0.125, Status: store.StatusFailure, StatusCode: 502, Error: "upstream said \"no\"\nline two", CacheHit: true},
		{RequestID: "b", CreatedAt: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Status: store.StatusSuccess},
	}
	name, err := w.writeSpoolFile(rows)
	if err != nil {
		t.Fatal(err)
	}
	if _, claimed, ok := parseSpoolName(name); !ok || claimed {
		t.Fatalf("written file %q does not parse as a spool file", name)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []store.SpendLog
	s := bufio.NewScanner(f)
	for s.Scan() {
		var l store.SpendLog
		if err := json.Unmarshal(s.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		got = append(got, l)
	}
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, want %d", len(got), len(rows))
	}
	for i := range rows {
		a, _ := json.Marshal(rows[i])
		b, _ := json.Marshal(got[i])
		if string(a) != string(b) {
			t.Errorf("row %d: wrote %s, read %s", i, a, b)
		}
	}
	if names, _ := spoolContents(t, dir); len(names) != 1 {
		t.Errorf("spool holds %v, want only %s (no temporary file left)", names, name)
	}
}
