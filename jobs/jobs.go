// Package jobs runs Tollgate's scheduled work. Every replica schedules the
// same jobs; each tick runs on exactly one of them, the one that claims it
// in PostgreSQL first.
package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"

	"tollgate/store"
)

// Job is one piece of scheduled work.
type Job struct {
	Name     string
	Schedule string // cron spec, with optional seconds field
	Run      func(ctx context.Context) error
}

// Scheduler runs jobs on their schedules.
type Scheduler struct {
	st   *store.Store
	log  *slog.Logger
	cron *cron.Cron
	ctx  context.Context
	stop context.CancelFunc
}

// New makes a scheduler for jobs; Start runs it.
func New(st *store.Store, log *slog.Logger, jobs []Job) (*Scheduler, error) {
	ctx, stop := context.WithCancel(context.Background())
	s := &Scheduler{st: st, log: log, ctx: ctx, stop: stop,
		cron: cron.New(cron.WithSeconds(), cron.WithLocation(time.UTC))}
	for _, j := range jobs {
		sched, err := cron.ParseStandard(j.Schedule)
		if err != nil {
			sched, err = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow).Parse(j.Schedule)
		}
		if err != nil {
			stop()
			return nil, err
		}
		s.cron.Schedule(sched, cron.FuncJob(func() { s.runTick(j, time.Now().UTC().Truncate(time.Second)) }))
	}
	return s, nil
}

// Start begins scheduling.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop waits for running jobs to finish, up to ctx.
func (s *Scheduler) Stop(ctx context.Context) {
	// Cancelling the jobs' context makes a job still running at the
	// deadline give up; after they finished it is harmless.
	select {
	case <-s.cron.Stop().Done():
	case <-ctx.Done():
	}
	s.stop()
}

// runTick runs the job if this replica is its leader (holds its advisory
// lock, so a slow run never overlaps the next tick on another replica) and
// claims the tick first.
func (s *Scheduler) runTick(j Job, tick time.Time) {
	release, leader, err := s.st.JobLock(s.ctx, j.Name)
	if err != nil {
		s.log.Error("job leader election", "job", j.Name, "err", err)
		return
	}
	if !leader {
		return
	}
	defer release()
	won, err := s.st.ClaimJobRun(s.ctx, j.Name, tick)
	if err != nil {
		s.log.Error("claim job run", "job", j.Name, "err", err)
		return
	}
	if !won {
		return
	}
	start := time.Now()
	runErr := j.Run(s.ctx)
	if err := s.st.FinishJobRun(context.WithoutCancel(s.ctx), j.Name, tick, runErr); err != nil {
		s.log.Error("record job run", "job", j.Name, "err", err)
	}
	if runErr != nil {
		s.log.Error("job failed", "job", j.Name, "err", runErr)
		return
	}
	s.log.Debug("job done", "job", j.Name, "took", time.Since(start))
}

// Default is the set of jobs every deployment runs.
func Default(st *store.Store) []Job {
	return []Job{{
		Name:     "spend-partitions",
		Schedule: "0 0 * * * *", // hourly: keeps the next months' spend partitions ready
		Run:      func(ctx context.Context) error { return EnsureSpendPartitions(ctx, st, time.Now()) },
	}, {
		Name:     "session-cleanup",
		Schedule: "0 */10 * * * *", // dashboard sessions past their expiry
		Run: func(ctx context.Context) error {
			_, err := st.DeleteExpiredSessions(ctx)
			return err
		},
	}}
}

// EnsureSpendPartitions creates this month's and the next two months'
// spend-log partitions, so inserts never wait on DDL.
func EnsureSpendPartitions(ctx context.Context, st *store.Store, now time.Time) error {
	now = now.UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if err := st.EnsureSpendPartition(ctx, first.AddDate(0, i, 0)); err != nil {
			return err
		}
	}
	return nil
}
