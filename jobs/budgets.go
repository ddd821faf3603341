package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"tollgate/store"
)

// Alerts sends budget alerts to webhooks.
type Alerts struct {
	URLs        []string
	Secret      string // HMAC-SHA256 key for X-Tollgate-Signature; empty sends unsigned
	MaxAttempts int
	Client      *http.Client
	Log         *slog.Logger
}

// BudgetJobs reset budget periods and raise and deliver budget alerts.
func BudgetJobs(st *store.Store, a *Alerts) []Job {
	return []Job{{
		Name:     "budget-reset",
		Schedule: "0 * * * * *", // each minute: periods end on the minute at the latest a minute late
		Run: func(ctx context.Context) error {
			done, err := st.ResetBudgets(ctx, "budget-reset", time.Now())
			for _, d := range done {
				a.Log.Info("budget period reset", "subject", d.SubjectType, "id", d.SubjectID, "spend", d.Spend, "next_reset", d.NextReset)
			}
			return err
		},
	}, {
		Name:     "budget-alerts",
		Schedule: "*/15 * * * * *",
		Run:      func(ctx context.Context) error { return a.Run(ctx, st) },
	}}
}

// Run records newly crossed budgets and delivers undelivered alerts.
func (a *Alerts) Run(ctx context.Context, st *store.Store) error {
	fresh, err := st.RecordBudgetAlerts(ctx)
	if err != nil {
		return err
	}
	for _, al := range fresh {
		a.Log.Warn("budget alert", "kind", al.Kind, "subject", al.SubjectType, "name", al.SubjectName, "spend", al.Spend, "threshold", al.Threshold)
	}
	if len(a.URLs) == 0 {
		return nil
	}
	pending, err := st.UndeliveredAlerts(ctx, a.MaxAttempts, 100)
	if err != nil {
		return err
	}
	var errs []error
	for _, al := range pending {
		msg := ""
		if err := a.send(ctx, al); err != nil {
			msg = err.Error()
			errs = append(errs, fmt.Errorf("alert %d: %w", al.ID, err))
		}
		if err := st.MarkAlert(ctx, al.ID, msg); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// AlertEvent is the JSON body of a budget alert webhook.
type AlertEvent struct {
	Type  string            `json:"type"` // budget.soft_exceeded or budget.hard_exceeded
	Alert store.BudgetAlert `json:"alert"`
}

// Sign is the X-Tollgate-Signature of body sent at timestamp ts:
// "sha256=" + hex(HMAC-SHA256(secret, ts + "." + body)). Receivers should
// also reject timestamps far from their clock, against replays.
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "%d.", ts)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (a *Alerts) send(ctx context.Context, al store.BudgetAlert) error {
	body, err := json.Marshal(AlertEvent{Type: "budget." + al.Kind + "_exceeded", Alert: al})
	if err != nil {
		return err
	}
	ts := time.Now().Unix()
	for _, u := range a.URLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("webhook URL %s is unusable", hostOf(u))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "tollgate-alerts")
		req.Header.Set("Idempotency-Key", "budget-alert-"+strconv.FormatInt(al.ID, 10))
		req.Header.Set("X-Tollgate-Timestamp", strconv.FormatInt(ts, 10))
		if a.Secret != "" {
			req.Header.Set("X-Tollgate-Signature", Sign(a.Secret, ts, body))
		}
		resp, err := a.Client.Do(req)
		if err != nil {
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err // its text repeats the URL
			}
			return fmt.Errorf("webhook %s: %w", hostOf(u), err)
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("webhook %s answered HTTP %d", hostOf(u), resp.StatusCode)
		}
	}
	return nil
}

// hostOf names a webhook by scheme and host only: its path and query may
// hold a token (chat webhooks often do), and errors are shown in the dashboard.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}
