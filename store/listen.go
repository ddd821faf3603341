package store

import (
	"context"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Change is one row change announced by the database triggers.
type Change struct {
	Table string // providers, models, teams or keys
	Op    string // INSERT, UPDATE or DELETE
	ID    string
}

const changeChannel = "tollgate_changes"

// ListenChanges calls onChange for every row change until ctx ends. After
// the connection is (re)established, onResync is called: changes may have
// been missed, so caches must reload everything.
func (s *Store) ListenChanges(ctx context.Context, onChange func(Change), onResync func()) error {
	events := make(chan pq.ListenerEventType, 4)
	l := pq.NewListener(s.dsn, 100*time.Millisecond, 5*time.Second, func(ev pq.ListenerEventType, err error) {
		select {
		case events <- ev:
		default:
		}
	})
	defer l.Close()
	if err := l.Listen(changeChannel); err != nil {
		return err
	}
	onResync()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-l.Notify:
			if n == nil { // reconnected: notifications may have been lost
				onResync()
				continue
			}
			parts := strings.SplitN(n.Extra, ":", 3)
			if len(parts) == 3 {
				onChange(Change{Table: parts[0], Op: parts[1], ID: parts[2]})
			}
		case ev := <-events:
			if ev == pq.ListenerEventReconnected {
				onResync()
			}
		case <-ping.C:
			go l.Ping()
		}
	}
}
