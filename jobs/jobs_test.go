package jobs_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"tollgate/jobs"
	"tollgate/store"
	"tollgate/store/storetest"
)

var quiet = slog.New(slog.DiscardHandler)

func monthStart(t time.Time, add int) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month()+time.Month(add), 1, 0, 0, 0, 0, time.UTC)
}

func partitionName(month time.Time) string { return "spend_logs_" + month.Format("2006_01") }

func partitionExists(t *testing.T, st *store.Store, name string) bool {
	t.Helper()
	var regclass *string
	if err := st.DB().Get(&regclass, `SELECT to_regclass($1)::text`, name); err != nil {
		t.Fatal(err)
	}
	var inherits bool
	if err := st.DB().Get(&inherits, `SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'spend_logs'::regclass AND c.relname = $1)`, name); err != nil {
		t.Fatal(err)
	}
	if (regclass != nil) != inherits {
		t.Fatalf("%s exists (%v) but is a partition of spend_logs: %v", name, regclass != nil, inherits)
	}
	return inherits
}

func partitionCount(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	if err := st.DB().Get(&n, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'spend_logs'::regclass`); err != nil {
		t.Fatal(err)
	}
	return n
}

// holder inserts a spend log at ts and returns the partition it landed in.
func holder(t *testing.T, st *store.Store, id string, ts time.Time) string {
	t.Helper()
	if _, err := st.InsertSpendLogs(context.Background(), []store.SpendLog{{RequestID: id, CreatedAt: ts, Status: store.StatusSuccess}}); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := st.DB().Get(&name, `SELECT tableoid::regclass::text FROM spend_logs WHERE request_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestEnsureSpendPartitionsCurrentAndNextTwoMonths(t *testing.T) {
	st := storetest.New(t)
	ctx := context.Background()
	now := time.Now().UTC()

	// The migration made some of these already: drop them so the job has
	// to create them.
	for i := range 4 {
		if _, err := st.DB().Exec(`DROP TABLE IF EXISTS ` + partitionName(monthStart(now, i))); err != nil {
			t.Fatal(err)
		}
		if partitionExists(t, st, partitionName(monthStart(now, i))) {
			t.Fatalf("%s still exists after DROP", partitionName(monthStart(now, i)))
		}
	}

	if err := jobs.EnsureSpendPartitions(ctx, st, now); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if name := partitionName(monthStart(now, i)); !partitionExists(t, st, name) {
			t.Errorf("%s (month +%d) was not created", name, i)
		}
	}
	if name := partitionName(monthStart(now, 3)); partitionExists(t, st, name) {
		t.Errorf("%s (month +3) was created; only this and the next two months are expected", name)
	}

	// Each partition holds exactly its month.
	for i := range 3 {
		m, name := monthStart(now, i), partitionName(monthStart(now, i))
		if got := holder(t, st, name+"-first", m); got != name {
			t.Errorf("first instant of %s stored in %s", m.Format("2006-01"), got)
		}
		if got := holder(t, st, name+"-last", monthStart(now, i+1).Add(-time.Microsecond)); got != name {
			t.Errorf("last microsecond of %s stored in %s", m.Format("2006-01"), got)
		}
	}

	// Idempotent: a second run succeeds and adds nothing.
	n := partitionCount(t, st)
	for range 2 {
		if err := jobs.EnsureSpendPartitions(ctx, st, now); err != nil {
			t.Fatalf("second run: %v", err)
		}
	}
	if got := partitionCount(t, st); got != n {
		t.Errorf("re-running made %d partitions, want %d", got, n)
	}
}

func TestEnsureSpendPartitionsAcrossYearEnd(t *testing.T) {
	st := storetest.New(t)
	before := partitionCount(t, st)
	now := time.Date(2031, time.December, 31, 23, 59, 59, 0, time.UTC)
	if err := jobs.EnsureSpendPartitions(context.Background(), st, now); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"spend_logs_2031_12", "spend_logs_2032_01", "spend_logs_2032_02"} {
		if !partitionExists(t, st, name) {
			t.Errorf("%s not created", name)
		}
	}
	for _, name := range []string{"spend_logs_2031_11", "spend_logs_2032_03"} {
		if partitionExists(t, st, name) {
			t.Errorf("%s created", name)
		}
	}
	if got := partitionCount(t, st); got != before+3 {
		t.Errorf("%d partitions, want %d", got, before+3)
	}
}

// The job is called with time.Now(), which is in the machine's zone.
func TestEnsureSpendPartitionsNonUTCNow(t *testing.T) {
	st := storetest.New(t)
	// 1 March 00:30 in UTC+2 is still 28 February in UTC.
	now := time.Date(2031, time.March, 1, 0, 30, 0, 0, time.FixedZone("EET", 2*3600))
	if err := jobs.EnsureSpendPartitions(context.Background(), st, now); err != nil {
		t.Fatal(err)
	}
	if !partitionExists(t, st, "spend_logs_2031_02") {
		t.Error("the current UTC month (2031-02) has no partition")
	}
}

func TestNewSchedules(t *testing.T) {
	st := storetest.New(t)
	noop := func(context.Context) error { return nil }
	for _, spec := range []string{"* * * * * *", "*/5 * * * *", "0 0 * * * *", "@hourly", "@every 10s"} {
		s, err := jobs.New(st, quiet, []jobs.Job{{Name: "ok", Schedule: spec, Run: noop}})
		if err != nil {
			t.Errorf("New(%q): %v", spec, err)
			continue
		}
		s.Stop(context.Background())
	}
	for _, spec := range []string{"", "every minute", "* * *", "61 * * * *", "* * * * * * * *"} {
		if _, err := jobs.New(st, quiet, []jobs.Job{{Name: "ok", Schedule: "@hourly", Run: noop}, {Name: "bad", Schedule: spec, Run: noop}}); err == nil {
			t.Errorf("New accepted schedule %q", spec)
		}
	}
	def := jobs.Default(st)
	if len(def) != 2 || def[0].Name != "spend-partitions" || def[1].Name != "session-cleanup" {
		t.Fatalf("Default = %+v", def)
	}
	s, err := jobs.New(st, quiet, def)
	if err != nil {
		t.Fatalf("New(Default): %v", err)
	}
	s.Stop(context.Background())
}

type jobRun struct {
	Tick     time.Time  `db:"tick"`
	Finished *time.Time `db:"finished_at"`
	Error    string     `db:"error"`
}

func jobRuns(t *testing.T, st *store.Store, job string) []jobRun {
	t.Helper()
	var rows []jobRun
	if err := st.DB().Select(&rows, `SELECT tick, finished_at, error FROM job_runs WHERE job = $1 ORDER BY tick`, job); err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestSchedulerRunsEachTickOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	// Two replicas: separate connection pools on one database.
	dsn := storetest.NewDatabase(t)
	var replicas [2]*store.Store
	for i := range replicas {
		st, err := store.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		replicas[i] = st
	}

	var ran [2]atomic.Int32
	var failed atomic.Int32
	var scheds [2]*jobs.Scheduler
	for i, st := range replicas {
		s, err := jobs.New(st, quiet, []jobs.Job{
			{Name: "tick", Schedule: "* * * * * *", Run: func(context.Context) error { ran[i].Add(1); return nil }},
			{Name: "failing", Schedule: "* * * * * *", Run: func(context.Context) error { failed.Add(1); return errors.New("boom") }},
		})
		if err != nil {
			t.Fatal(err)
		}
		scheds[i] = s
	}
	for _, s := range scheds {
		s.Start()
	}
	time.Sleep(3500 * time.Millisecond)
	for i, s := range scheds {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		start := time.Now()
		s.Stop(ctx)
		cancel()
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("replica %d: Stop took %v", i, took)
		}
	}
	total := int(ran[0].Load() + ran[1].Load())
	st := replicas[0]

	rows := jobRuns(t, st, "tick")
	if total != len(rows) {
		t.Errorf("job ran %d times (%d + %d) for %d claimed ticks, want once per tick", total, ran[0].Load(), ran[1].Load(), len(rows))
	}
	if len(rows) < 3 || len(rows) > 5 {
		t.Errorf("%d ticks in ~3.5s of an every-second job, want 3 to 5", len(rows))
	}
	seen := map[time.Time]bool{}
	for _, r := range rows {
		if seen[r.Tick] {
			t.Errorf("tick %v claimed twice", r.Tick)
		}
		seen[r.Tick] = true
		if !r.Tick.Equal(r.Tick.Truncate(time.Second)) {
			t.Errorf("tick %v is not a whole second", r.Tick)
		}
		if r.Finished == nil || r.Error != "" {
			t.Errorf("tick %v recorded as finished_at=%v error=%q", r.Tick, r.Finished, r.Error)
		}
	}
	var distinct int
	if err := st.DB().Get(&distinct, `SELECT count(DISTINCT tick) FROM job_runs WHERE job = 'tick'`); err != nil {
		t.Fatal(err)
	}
	if distinct != len(rows) {
		t.Errorf("%d distinct ticks among %d rows", distinct, len(rows))
	}

	failures := jobRuns(t, st, "failing")
	if int(failed.Load()) != len(failures) || len(failures) < 3 {
		t.Errorf("failing job ran %d times for %d claimed ticks", failed.Load(), len(failures))
	}
	for _, r := range failures {
		if r.Finished == nil || r.Error != "boom" {
			t.Errorf("failing tick %v recorded as finished_at=%v error=%q, want boom", r.Tick, r.Finished, r.Error)
		}
	}

	// Stopped means stopped.
	time.Sleep(1200 * time.Millisecond)
	if after := int(ran[0].Load() + ran[1].Load()); after != total {
		t.Errorf("job ran %d more times after Stop", after-total)
	}
	if n := len(jobRuns(t, st, "tick")); n != len(rows) {
		t.Errorf("%d ticks claimed after Stop", n-len(rows))
	}
}

func TestSchedulerStop(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)

	t.Run("waits for a running job", func(t *testing.T) {
		started := make(chan struct{}, 10)
		var finished atomic.Bool
		s, err := jobs.New(st, quiet, []jobs.Job{{Name: "slow", Schedule: "* * * * * *", Run: func(context.Context) error {
			started <- struct{}{}
			time.Sleep(700 * time.Millisecond)
			finished.Store(true)
			return nil
		}}})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		select {
		case <-started:
		case <-time.After(3 * time.Second):
			t.Fatal("job did not start")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
		if !finished.Load() {
			t.Error("Stop returned while the job was still running")
		}
	})

	t.Run("cancels a job still running at its deadline", func(t *testing.T) {
		started := make(chan struct{}, 10)
		ended := make(chan error, 10)
		s, err := jobs.New(st, quiet, []jobs.Job{{Name: "stuck", Schedule: "* * * * * *", Run: func(ctx context.Context) error {
			started <- struct{}{}
			select {
			case <-ctx.Done():
				ended <- ctx.Err()
				return ctx.Err()
			case <-time.After(30 * time.Second):
				ended <- nil
				return nil
			}
		}}})
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		select {
		case <-started:
		case <-time.After(3 * time.Second):
			t.Fatal("job did not start")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		begin := time.Now()
		s.Stop(ctx)
		if took := time.Since(begin); took > 2*time.Second {
			t.Errorf("Stop took %v past its 200ms deadline", took)
		}
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("job ended with %v, want its context canceled", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("the running job was not canceled")
		}
		// The cancelled run is still recorded.
		deadline := time.Now().Add(2 * time.Second)
		for {
			runs := jobRuns(t, st, "stuck")
			if len(runs) > 0 && runs[0].Finished != nil {
				if runs[0].Error != context.Canceled.Error() {
					t.Errorf("cancelled run recorded error %q", runs[0].Error)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cancelled run not recorded as finished: %+v", runs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
