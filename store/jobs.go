package store

import (
	"context"
	"fmt"
	"time"
)

// ClaimJobRun records that job runs for tick; it returns false when another
// replica already claimed that tick, so each tick runs exactly once.
func (s *Store) ClaimJobRun(ctx context.Context, job string, tick time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO job_runs (job, tick) VALUES ($1, $2) ON CONFLICT DO NOTHING`, job, tick)
	if err != nil {
		return false, fmt.Errorf("claim job %s: %w", job, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishJobRun records how a claimed run ended.
func (s *Store) FinishJobRun(ctx context.Context, job string, tick time.Time, runErr error) error {
	msg := ""
	if runErr != nil {
		msg = runErr.Error()
	}
	_, err := s.db.ExecContext(ctx, `UPDATE job_runs SET finished_at = now(), error = $3 WHERE job = $1 AND tick = $2`, job, tick, msg)
	if err != nil {
		return fmt.Errorf("finish job %s: %w", job, err)
	}
	return nil
}

// DeleteExpiredSessions removes dashboard sessions past their expiry.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expiry < now()`)
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return res.RowsAffected()
}

// JobLock makes this replica the leader for job while it runs: a
// session-level advisory lock on a connection of its own. ok is false when
// another replica holds it; release ends the leadership.
func (s *Store) JobLock(ctx context.Context, job string) (release func(), ok bool, err error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("job lock %s: %w", job, err)
	}
	if err := conn.GetContext(ctx, &ok, `SELECT pg_try_advisory_lock(hashtext('tollgate-job:' || $1))`, job); err != nil || !ok {
		conn.Close()
		if err != nil {
			return nil, false, fmt.Errorf("job lock %s: %w", job, err)
		}
		return nil, false, nil
	}
	return func() {
		// Closing the connection would release the lock too, but the pool
		// may keep it; unlock explicitly.
		conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock(hashtext('tollgate-job:' || $1))`, job)
		conn.Close()
	}, true, nil
}
