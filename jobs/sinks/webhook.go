package sinks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"tollgate/store"
)

const webhookMaxEvents = 100

type webhook struct {
	c   *conn
	url string
	now func() time.Time
}

func newWebhook(c *conn, target string) (*webhook, error) {
	c.system = "the webhook receiver"
	c.urlHint = "Use the full URL the receiver listens on, like https://billing.example.com/tollgate/events."
	c.keyHint = "check that the receiver verifies X-Tollgate-Signature with the same secret as this sink."
	return &webhook{c: c, url: target, now: time.Now}, nil
}

func (w *webhook) MaxEvents() int { return webhookMaxEvents }

func (w *webhook) Send(ctx context.Context, events []store.MeterEvent) error {
	for _, batch := range chunks(events, webhookMaxEvents) {
		body, err := json.Marshal(struct {
			Events []store.MeterEvent `json:"events"`
		}{batch})
		if err != nil {
			return &Error{Message: fmt.Sprintf("encode webhook body: %v", err)}
		}
		ts := strconv.FormatInt(w.now().Unix(), 10)
		header := jsonHeader("application/json",
			"X-Tollgate-Timestamp", ts,
			"X-Tollgate-Signature", Signature(w.c.secret, ts, body),
			"Idempotency-Key", IdempotencyKey(batch))
		if _, err := w.c.call(ctx, http.MethodPost, w.url, header, body); err != nil {
			return err
		}
	}
	return nil
}

// Signature is the X-Tollgate-Signature of a webhook body sent at
// timestamp (unix seconds): "sha256=" and the hex HMAC-SHA256 of
// timestamp + "." + body under the sink's secret; empty without a secret.
// Signing the timestamp lets a receiver refuse replays of old bodies.
func Signature(secret, timestamp string, body []byte) string {
	if secret == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp + "."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// IdempotencyKey is the same for every send of the same batch, so that a
// receiver can drop a batch it already took.
func IdempotencyKey(events []store.MeterEvent) string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return hex.EncodeToString(sum[:])
}
