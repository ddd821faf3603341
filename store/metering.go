package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Billing sink types.
var SinkTypes = []string{"amberflo", "openmeter", "stripe", "webhook"}

// Meter event kinds.
const (
	EventUsage        = "usage"
	EventBusinessUnit = "business_unit"
)

// Delivery statuses.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// SinkSpec is the writable part of a billing sink.
type SinkSpec struct {
	Name    string `db:"name" json:"name"`
	Type    string `db:"type" json:"type"`
	URL     string `db:"url" json:"url"`       // the ingest base URL
	Config  JSON   `db:"config" json:"config"` // per type: cost_meter, event_name, region …
	Enabled bool   `db:"enabled" json:"enabled"`
}

// Sink is a billing system usage is pushed to. Its secret never leaves
// the store in JSON.
type Sink struct {
	ID string `db:"id" json:"id"`
	SinkSpec
	SecretSealed []byte    `db:"secret_enc" json:"-"`
	SecretHint   string    `db:"secret_hint" json:"secret_hint"`
	HasSecret    bool      `db:"-" json:"has_secret"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"`
	UpdatedAt    time.Time `db:"updated_at" json:"updated_at"`
}

// SinkInput is a sink as callers write it: the spec plus the write-only
// secret (nil keeps the stored one, "" removes it).
type SinkInput struct {
	SinkSpec
	Secret *string `json:"secret"`
}

// MeterEvent is one billed request, or a business-unit announcement, as
// the billing systems see it.
type MeterEvent struct {
	ID           string    `db:"id" json:"id"` // the request id
	Kind         string    `db:"kind" json:"kind"`
	CreatedAt    time.Time `db:"created_at" json:"created_at"` // when the request started
	TeamID       *string   `db:"team_id" json:"team_id"`
	TeamName     string    `db:"team_name" json:"team_name"`
	BusinessUnit string    `db:"business_unit" json:"business_unit"` // team name unless key or team metadata business_unit_id overrides
	CustomerID   string    `db:"customer_id" json:"customer_id"`     // team metadata billing_customer_id
	KeyID        *string   `db:"key_id" json:"key_id"`
	KeyAlias     string    `db:"key_alias" json:"key_alias"`
	UserID       *string   `db:"user_id" json:"user_id"`
	UserEmail    string    `db:"user_email" json:"user_email"`
	Model        string    `db:"model" json:"model"`
	Provider     string    `db:"provider" json:"provider"`
	Endpoint     string    `db:"endpoint" json:"endpoint"`
	InputTokens  int64     `db:"input_tokens" json:"input_tokens"`
	OutputTokens int64     `db:"output_tokens" json:"output_tokens"`
	Cost         float64   `db:"cost" json:"cost"`
	LatencyMS    int64     `db:"latency_ms" json:"latency_ms"`
	StatusCode   int       `db:"status_code" json:"status_code"`
	Error        string    `db:"error" json:"error"`
}

// Normalize checks a sink.
func (s *SinkSpec) Normalize() error {
	s.Name = strings.TrimSpace(s.Name)
	s.URL = strings.TrimRight(strings.TrimSpace(s.URL), "/")
	if s.Name == "" {
		return invalid("name", "name is required")
	}
	if !slices.Contains(SinkTypes, s.Type) {
		return invalid("type", "type %q is not a billing sink type; use one of: %s", s.Type, strings.Join(SinkTypes, ", "))
	}
	if s.URL == "" {
		s.URL = DefaultSinkURL[s.Type]
	}
	u, err := url.Parse(s.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return invalid("url", "url must be an http(s) URL such as %s (got %q)", firstNonEmpty(DefaultSinkURL[s.Type], "https://billing.example.com/usage"), s.URL)
	}
	return nil
}

// DefaultSinkURL is used when a sink of a hosted type names no URL.
var DefaultSinkURL = map[string]string{
	"amberflo":  "https://app.amberflo.io",
	"openmeter": "https://openmeter.cloud",
	"stripe":    "https://api.stripe.com",
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Store) sealSink(k *Sink, secret *string) error {
	return s.sealSecret("billing sink secret", secret, &k.SecretSealed, &k.SecretHint)
}

// SinkSecret decrypts a sink's secret for a push.
func (s *Store) SinkSecret(k *Sink) (string, error) {
	return s.openSecret("billing sink "+k.Name+" secret", k.SecretSealed)
}

func fillSink(k *Sink) *Sink {
	k.HasSecret = len(k.SecretSealed) > 0
	return k
}

// CreateSink stores a new billing sink.
func (s *Store) CreateSink(ctx context.Context, actor string, in SinkInput) (*Sink, error) {
	if err := in.SinkSpec.Normalize(); err != nil {
		return nil, err
	}
	k := &Sink{SinkSpec: in.SinkSpec}
	if err := s.sealSink(k, in.Secret); err != nil {
		return nil, err
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, k, `INSERT INTO billing_sinks (name, type, url, config, secret_enc, secret_hint, enabled)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`, k.Name, k.Type, k.URL, k.Config, k.SecretSealed, k.SecretHint, k.Enabled)
		if err != nil {
			return mapErr(err, fmt.Sprintf("billing sink %q", k.Name))
		}
		return audit(ctx, tx, actor, "sink.create", "sink", k.ID, nil, fillSink(k))
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// GetSink reads one billing sink.
func (s *Store) GetSink(ctx context.Context, id string) (*Sink, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("billing sink %s: %w", id, ErrNotFound)
	}
	var k Sink
	if err := s.db.GetContext(ctx, &k, `SELECT * FROM billing_sinks WHERE id = $1`, id); err != nil {
		return nil, mapErr(err, "billing sink "+id)
	}
	return fillSink(&k), nil
}

// SinkByName reads one billing sink by its unique name.
func (s *Store) SinkByName(ctx context.Context, name string) (*Sink, error) {
	var k Sink
	if err := s.db.GetContext(ctx, &k, `SELECT * FROM billing_sinks WHERE name = $1`, name); err != nil {
		return nil, mapErr(err, fmt.Sprintf("billing sink %q", name))
	}
	return fillSink(&k), nil
}

// AllSinks returns every billing sink by name.
func (s *Store) AllSinks(ctx context.Context) ([]Sink, error) {
	rows := []Sink{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM billing_sinks ORDER BY name`); err != nil {
		return nil, fmt.Errorf("load billing sinks: %w", err)
	}
	for i := range rows {
		fillSink(&rows[i])
	}
	return rows, nil
}

// UpdateSink applies change to a billing sink.
func (s *Store) UpdateSink(ctx context.Context, actor, id string, change func(*SinkInput) error) (*Sink, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("billing sink %s: %w", id, ErrNotFound)
	}
	var k Sink
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &k, `SELECT * FROM billing_sinks WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "billing sink "+id)
		}
		before := *fillSink(&k)
		in := SinkInput{SinkSpec: k.SinkSpec}
		if err := change(&in); err != nil {
			return err
		}
		if err := in.SinkSpec.Normalize(); err != nil {
			return err
		}
		k.SinkSpec = in.SinkSpec
		if err := s.sealSink(&k, in.Secret); err != nil {
			return err
		}
		err := tx.GetContext(ctx, &k, `UPDATE billing_sinks SET name = $2, type = $3, url = $4, config = $5, secret_enc = $6,
			secret_hint = $7, enabled = $8, updated_at = now() WHERE id = $1 RETURNING *`,
			id, k.Name, k.Type, k.URL, k.Config, k.SecretSealed, k.SecretHint, k.Enabled)
		if err != nil {
			return mapErr(err, fmt.Sprintf("billing sink %q", k.Name))
		}
		return audit(ctx, tx, actor, "sink.update", "sink", id, before, fillSink(&k))
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// DeleteSink removes a billing sink and its delivery records.
func (s *Store) DeleteSink(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("billing sink %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var k Sink
		if err := tx.GetContext(ctx, &k, `DELETE FROM billing_sinks WHERE id = $1 RETURNING *`, id); err != nil {
			return mapErr(err, "billing sink "+id)
		}
		return audit(ctx, tx, actor, "sink.delete", "sink", id, fillSink(&k), nil)
	})
}

// announceTeam queues a business-unit announcement of the team for every
// enabled sink, in the caller's transaction.
func announceTeam(ctx context.Context, tx *sqlx.Tx, t *Team) error {
	_, err := tx.ExecContext(ctx, `
		WITH ev AS (
			INSERT INTO meter_events (id, kind, created_at, team_id, team_name, business_unit, customer_id)
			SELECT 'bu-' || t.id || '-' || (extract(epoch FROM clock_timestamp()) * 1e6)::bigint, 'business_unit', now(), t.id, t.name,
			       COALESCE(NULLIF(t.metadata->>'business_unit_id', ''), t.name), COALESCE(t.metadata->>'billing_customer_id', '')
			FROM teams t WHERE t.id = $1
			RETURNING id
		)
		INSERT INTO meter_deliveries (event_id, sink_id) SELECT ev.id, s.id FROM ev CROSS JOIN billing_sinks s WHERE s.enabled`, t.ID)
	if err != nil {
		return fmt.Errorf("announce business unit: %w", err)
	}
	return nil
}

// businessUnitChanged reports whether a team update changes what billing
// systems know of it.
func businessUnitChanged(before, after *Team) bool {
	unit := func(t *Team) [2]string {
		var m map[string]any
		json.Unmarshal(t.Metadata, &m)
		bu, _ := m["business_unit_id"].(string)
		cu, _ := m["billing_customer_id"].(string)
		return [2]string{bu, cu}
	}
	return before.Name != after.Name || unit(before) != unit(after)
}

// LeaseDeliveries takes up to limit due events for a sink, oldest first,
// and moves them lease ahead, so that no other pusher takes them while
// they are being sent. A pusher that dies leaves them due again after
// the lease.
func (s *Store) LeaseDeliveries(ctx context.Context, sinkID string, limit int, lease time.Duration) ([]MeterEvent, error) {
	rows := []MeterEvent{}
	err := s.db.SelectContext(ctx, &rows, `
		WITH due AS (
			SELECT event_id FROM meter_deliveries
			WHERE sink_id = $1 AND status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, event_id
			LIMIT $2
			FOR UPDATE SKIP LOCKED
		), leased AS (
			UPDATE meter_deliveries d SET next_attempt_at = now() + $3 * interval '1 millisecond'
			FROM due WHERE d.sink_id = $1 AND d.event_id = due.event_id
			RETURNING d.event_id
		)
		SELECT e.* FROM meter_events e JOIN leased l ON l.event_id = e.id ORDER BY e.created_at, e.id`,
		sinkID, limit, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("lease meter events: %w", err)
	}
	return rows, nil
}

// MarkDelivered records that the sink acknowledged these events.
func (s *Store) MarkDelivered(ctx context.Context, sinkID string, eventIDs []string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE meter_deliveries SET status = 'delivered', delivered_at = now(), attempts = attempts + 1, last_error = ''
		WHERE sink_id = $1 AND event_id = ANY($2) AND status = 'pending'`, sinkID, pq.Array(eventIDs))
	if err != nil {
		return fmt.Errorf("mark meter events delivered: %w", err)
	}
	return nil
}

// MarkAttemptFailed records a failed send. Each event is due again after
// an exponential backoff (base × 2^attempts, at most max, ±20% jitter so
// retries of many events spread out), or failed for good once it reached
// maxAttempts; it returns how many became failed.
func (s *Store) MarkAttemptFailed(ctx context.Context, sinkID string, eventIDs []string, errMsg string, base, max time.Duration, maxAttempts int) (int, error) {
	var failed int
	err := s.db.GetContext(ctx, &failed, `
		WITH marked AS (
			UPDATE meter_deliveries SET attempts = attempts + 1, last_error = $3,
				next_attempt_at = now() + least($4 * power(2, least(attempts, 30)), $5) * (0.8 + 0.4 * random()) * interval '1 millisecond',
				status = CASE WHEN attempts + 1 >= $6 THEN 'failed' ELSE 'pending' END
			WHERE sink_id = $1 AND event_id = ANY($2) AND status = 'pending'
			RETURNING status
		)
		SELECT count(*) FROM marked WHERE status = 'failed'`,
		sinkID, pq.Array(eventIDs), errMsg, float64(base.Milliseconds()), float64(max.Milliseconds()), maxAttempts)
	if err != nil {
		return 0, fmt.Errorf("record failed meter push: %w", err)
	}
	return failed, nil
}

// ReplayFailed makes a sink's failed events pending again, due now.
func (s *Store) ReplayFailed(ctx context.Context, actor, sinkID string) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE meter_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()
			WHERE sink_id = $1 AND status = 'failed'`, sinkID)
		if err != nil {
			return fmt.Errorf("replay failed meter events: %w", err)
		}
		n, _ = res.RowsAffected()
		return audit(ctx, tx, actor, "sink.replay", "sink", sinkID, nil, map[string]any{"replayed": n})
	})
	return n, err
}

// SinkStatus is how a sink's deliveries stand.
type SinkStatus struct {
	SinkID        string     `db:"sink_id" json:"sink_id"`
	Delivered     int64      `db:"delivered" json:"delivered"`
	Pending       int64      `db:"pending" json:"pending"`
	Failed        int64      `db:"failed" json:"failed"`
	OldestPending *time.Time `db:"oldest_pending" json:"oldest_pending"` // created_at of the oldest pending event
	LastError     string     `db:"last_error" json:"last_error"`
	LastDelivered *time.Time `db:"last_delivered" json:"last_delivered"`
}

// SinkStatuses reports every sink's deliveries, by sink id.
func (s *Store) SinkStatuses(ctx context.Context) (map[string]SinkStatus, error) {
	rows := []SinkStatus{}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT s.id AS sink_id,
		       (SELECT count(*) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'delivered') AS delivered,
		       (SELECT count(*) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'pending') AS pending,
		       (SELECT count(*) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'failed') AS failed,
		       (SELECT min(d.created_at) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'pending') AS oldest_pending,
		       COALESCE((SELECT d.last_error FROM meter_deliveries d WHERE d.sink_id = s.id AND d.last_error <> ''
		                 ORDER BY d.next_attempt_at DESC LIMIT 1), '') AS last_error,
		       (SELECT max(d.delivered_at) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'delivered') AS last_delivered
		FROM billing_sinks s`)
	if err != nil {
		return nil, fmt.Errorf("sink statuses: %w", err)
	}
	out := make(map[string]SinkStatus, len(rows))
	for _, r := range rows {
		out[r.SinkID] = r
	}
	return out, nil
}

// SinkBacklog is what a sink has yet to take, for metrics.
type SinkBacklog struct {
	SinkID        string     `db:"sink_id"`
	Name          string     `db:"name"`
	Pending       int64      `db:"pending"`
	Failed        int64      `db:"failed"`
	OldestPending *time.Time `db:"oldest_pending"`
}

// SinkBacklogs reads every sink's backlog from the partial indexes only,
// cheap enough for each metrics scrape.
func (s *Store) SinkBacklogs(ctx context.Context) ([]SinkBacklog, error) {
	rows := []SinkBacklog{}
	err := s.db.SelectContext(ctx, &rows, `
		SELECT s.id AS sink_id, s.name,
		       (SELECT count(*) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'pending') AS pending,
		       (SELECT count(*) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'failed') AS failed,
		       (SELECT min(d.created_at) FROM meter_deliveries d WHERE d.sink_id = s.id AND d.status = 'pending') AS oldest_pending
		FROM billing_sinks s ORDER BY s.name`)
	if err != nil {
		return nil, fmt.Errorf("sink backlogs: %w", err)
	}
	return rows, nil
}
