package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"tollgate/jobs/sinks"
	"tollgate/store"
)

// billingRoutes serve the billing sinks, their delivery status and the
// chargeback report. Finance users read them all; only admins change
// sinks, replay or send test events (authorize lets finance GET only).
func (s *Server) billingRoutes(r *mux.Router) {
	register(s, r, "/billing/sinks", resource[store.SinkInput, store.Sink]{
		defaults: func() store.SinkInput { return store.SinkInput{SinkSpec: store.SinkSpec{Enabled: true}} },
		create:   s.st.CreateSink,
		get:      s.st.GetSink,
		list: func(r *http.Request, _ store.Page) ([]store.Sink, string, error) {
			sinks, err := s.st.AllSinks(r.Context())
			return sinks, "", err
		},
		update: s.st.UpdateSink,
		remove: s.st.DeleteSink,
	})
	r.HandleFunc("/billing/sinks/{id}/replay", s.replaySink).Methods(http.MethodPost).Name("billing/sinks.replay")
	r.HandleFunc("/billing/sinks/{id}/test", s.testSink).Methods(http.MethodPost).Name("billing/sinks.test")
	r.HandleFunc("/billing/status", s.billingStatus).Methods(http.MethodGet).Name("billing.status")
	r.HandleFunc("/chargeback", s.chargeback).Methods(http.MethodGet).Name("chargeback.get")
}

// replaySink makes a sink's failed events pending again.
func (s *Server) replaySink(w http.ResponseWriter, r *http.Request) {
	n, err := s.replay(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"replayed": n})
}

func (s *Server) replay(r *http.Request) (int64, error) {
	if _, err := s.st.GetSink(r.Context(), pathID(r)); err != nil {
		return 0, err
	}
	return s.st.ReplayFailed(r.Context(), principalFrom(r.Context()).Actor, pathID(r))
}

// sinkTestClient sends test events; a sink that does not answer in time
// is reported as such rather than holding the admin's request.
var sinkTestClient = &http.Client{Timeout: 15 * time.Second}

// testSink sends one test event to a sink: 200 {"ok": true}, or 502 with
// what went wrong in words an admin can act on.
func (s *Server) testSink(w http.ResponseWriter, r *http.Request) {
	_, msg, err := s.sendTestEvent(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if msg != "" {
		writeJSON(w, http.StatusBadGateway, map[string]any{"ok": false, "error": msg})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// sendTestEvent tests the sink of the path. msg is the sink's failure for
// the admin; err is ours (unknown sink, unreadable secret).
func (s *Server) sendTestEvent(r *http.Request) (sink *store.Sink, msg string, err error) {
	sink, err = s.st.GetSink(r.Context(), pathID(r))
	if err != nil {
		return nil, "", err
	}
	secret, err := s.st.SinkSecret(sink)
	if err != nil {
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	if err := sinks.Test(ctx, *sink, secret, sinkTestClient); err != nil {
		s.log.Info("billing sink test failed", "sink", sink.Name, "type", sink.Type, "err", err)
		return sink, err.Error(), nil
	}
	s.log.Info("billing sink test passed", "sink", sink.Name, "type", sink.Type)
	return sink, "", nil
}

// sinkStatus is one sink's deliveries as GET /billing/status shows them.
type sinkStatus struct {
	SinkID    string `json:"sink_id"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Enabled   bool   `json:"enabled"`
	Delivered int64  `json:"delivered"`
	Pending   int64  `json:"pending"`
	Failed    int64  `json:"failed"`
	// OldestPending is when the oldest pending event was queued; its age
	// is how far the sink lags. Both are null when nothing is pending.
	OldestPending           *time.Time `json:"oldest_pending"`
	OldestPendingAgeSeconds *int64     `json:"oldest_pending_age_seconds"`
	LastError               string     `json:"last_error"`
	LastDelivered           *time.Time `json:"last_delivered"`
}

// sinkStatuses lists every sink with its deliveries, by name.
func (s *Server) sinkStatuses(ctx context.Context, now time.Time) ([]store.Sink, []sinkStatus, error) {
	all, err := s.st.AllSinks(ctx)
	if err != nil {
		return nil, nil, err
	}
	stats, err := s.st.SinkStatuses(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make([]sinkStatus, 0, len(all))
	for _, k := range all {
		st := stats[k.ID]
		row := sinkStatus{SinkID: k.ID, Name: k.Name, Type: k.Type, Enabled: k.Enabled, Delivered: st.Delivered, Pending: st.Pending,
			Failed: st.Failed, OldestPending: st.OldestPending, LastError: st.LastError, LastDelivered: st.LastDelivered}
		if st.OldestPending != nil {
			age := int64(max(0, now.Sub(*st.OldestPending).Seconds()))
			row.OldestPendingAgeSeconds = &age
		}
		out = append(out, row)
	}
	return all, out, nil
}

func (s *Server) billingStatus(w http.ResponseWriter, r *http.Request) {
	_, rows, err := s.sinkStatuses(r.Context(), time.Now())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeList(w, rows, "")
}
