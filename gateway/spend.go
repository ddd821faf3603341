package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"tollgate/store"
)

// SpendWriter batches spend logs and writes them on a short interval, when
// a batch fills, and on Stop. A failed write keeps the rows and retries, so
// nothing is lost while PostgreSQL is briefly away; the store skips request
// ids already written, so a retry never double counts.
type SpendWriter struct {
	st       *store.Store
	log      *slog.Logger
	interval time.Duration

	flushMu sync.Mutex // one flush at a time: a batch is removed only after it is written
	mu      sync.Mutex
	pending []store.SpendLog
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

const spendBatch = 1000

// NewSpendWriter makes a writer; Start runs it.
func NewSpendWriter(st *store.Store, interval time.Duration, log *slog.Logger) *SpendWriter {
	return &SpendWriter{st: st, log: log, interval: interval,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// Add queues one spend log.
func (w *SpendWriter) Add(l store.SpendLog) {
	w.mu.Lock()
	w.pending = append(w.pending, l)
	full := len(w.pending) >= spendBatch
	w.mu.Unlock()
	if full {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// Queued is the number of spend logs not yet written.
func (w *SpendWriter) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// Start runs the flush loop in the background.
func (w *SpendWriter) Start() {
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.interval)
		defer t.Stop()
		backoff := time.Duration(0)
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
			case <-w.kick:
			}
			if backoff > 0 {
				select {
				case <-w.stop:
					return
				case <-time.After(backoff):
				}
			}
			if err := w.Flush(context.Background()); err != nil {
				backoff = min(max(2*backoff, 500*time.Millisecond), 30*time.Second)
				w.log.Error("write spend logs; will retry", "queued", w.Queued(), "retry_in", backoff, "err", err)
			} else {
				backoff = 0
			}
		}
	}()
}

// Flush writes everything queued now, in batches.
func (w *SpendWriter) Flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	for {
		w.mu.Lock()
		n := min(len(w.pending), spendBatch)
		batch := w.pending[:n:n]
		w.mu.Unlock()
		if n == 0 {
			return nil
		}
		if _, err := w.st.InsertSpendLogs(ctx, batch); err != nil {
			return err
		}
		w.mu.Lock()
		w.pending = w.pending[n:]
		if len(w.pending) == 0 {
			w.pending = nil
		}
		w.mu.Unlock()
	}
}

// Stop ends the loop and writes what is left, retrying until ctx ends.
func (w *SpendWriter) Stop(ctx context.Context) error {
	close(w.stop)
	<-w.done
	for {
		err := w.Flush(ctx)
		if err == nil {
			return nil
		}
		w.log.Error("write spend logs at shutdown; retrying", "queued", w.Queued(), "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}
