package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"tollgate/store"
)

const openMeterMaxEvents = 100

type openMeter struct {
	c         *conn
	base      string
	eventType string
	skipped   atomic.Int64
}

func newOpenMeter(c *conn, base string, cfg config) (*openMeter, error) {
	c.system = "OpenMeter"
	c.urlHint = "Use the OpenMeter base URL without a path, like https://openmeter.cloud, or http://openmeter:8888 for a self-hosted one: Tollgate adds /api/v1/events."
	c.keyHint = "create an API token in your OpenMeter account and save it in this sink (a self-hosted OpenMeter without authentication needs none)."
	eventType, err := cfg.str("event_type", "llm.request")
	if err != nil {
		return nil, err
	}
	return &openMeter{c: c, base: base, eventType: eventType}, nil
}

func (o *openMeter) MaxEvents() int { return openMeterMaxEvents }

func (o *openMeter) Skipped() int64 { return o.skipped.Load() }

// cloudEvent is a CloudEvents 1.0 event in its JSON format.
type cloudEvent struct {
	SpecVersion     string        `json:"specversion"`
	ID              string        `json:"id"`
	Source          string        `json:"source"`
	Type            string        `json:"type"`
	Subject         string        `json:"subject"`
	Time            string        `json:"time"`
	DataContentType string        `json:"datacontenttype"`
	Data            openMeterData `json:"data"`
}

// openMeterData is what OpenMeter meters aggregate and group by.
type openMeterData struct {
	Model        string  `json:"model"`
	Provider     string  `json:"provider"`
	Team         string  `json:"team"`
	KeyName      string  `json:"key_name"`
	User         string  `json:"user"`
	Usecase      string  `json:"usecase"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	TotalTokens  int64   `json:"total_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	DurationMS   int64   `json:"duration_ms"`
	StatusCode   int     `json:"status_code"`
}

// openMeterSubject is one item of OpenMeter's subject upsert.
type openMeterSubject struct {
	Key         string            `json:"key"`
	DisplayName string            `json:"displayName"`
	Metadata    map[string]string `json:"metadata"`
}

func (o *openMeter) Send(ctx context.Context, events []store.MeterEvent) error {
	var usage []cloudEvent
	var subjects []openMeterSubject
	for _, e := range events {
		if e.Kind == store.EventBusinessUnit {
			md := map[string]string{"team": e.TeamName, "gateway": "tollgate"}
			if e.CustomerID != "" {
				md["billing_customer_id"] = e.CustomerID
			}
			subjects = append(subjects, openMeterSubject{Key: orUnknown(e.BusinessUnit), DisplayName: e.TeamName, Metadata: md})
			continue
		}
		usage = append(usage, o.event(e))
	}
	// Events first: when they are taken, a 404 from the subjects API means
	// an OpenMeter without one, not a wrong URL.
	for _, batch := range chunks(usage, openMeterMaxEvents) {
		body, err := json.Marshal(batch)
		if err != nil {
			return &Error{Message: fmt.Sprintf("encode CloudEvents: %v", err)}
		}
		header := jsonHeader("application/cloudevents-batch+json", "Authorization", o.bearer())
		if _, err := o.c.call(ctx, http.MethodPost, o.base+"/api/v1/events", header, body); err != nil {
			return err
		}
	}
	if len(subjects) == 0 {
		return nil
	}
	body, err := json.Marshal(subjects)
	if err != nil {
		return &Error{Message: fmt.Sprintf("encode OpenMeter subjects: %v", err)}
	}
	ans, err := o.c.do(ctx, http.MethodPost, o.base+"/api/v1/subjects", jsonHeader("application/json", "Authorization", o.bearer()), body)
	if err != nil {
		return err
	}
	if ans.status == http.StatusNotFound && len(usage) > 0 && !ans.html {
		o.skipped.Add(int64(len(subjects)))
		return nil
	}
	return o.c.check(ans)
}

func (o *openMeter) event(e store.MeterEvent) cloudEvent {
	return cloudEvent{
		SpecVersion:     "1.0",
		ID:              e.ID,
		Source:          "tollgate",
		Type:            o.eventType,
		Subject:         orUnknown(e.BusinessUnit),
		Time:            e.CreatedAt.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json",
		Data: openMeterData{
			Model: e.Model, Provider: e.Provider, Team: e.TeamName, KeyName: e.KeyAlias, User: orUnknown(e.UserEmail),
			Usecase: e.Endpoint, InputTokens: e.InputTokens, OutputTokens: e.OutputTokens,
			TotalTokens: e.InputTokens + e.OutputTokens, CostUSD: e.Cost, DurationMS: e.LatencyMS, StatusCode: e.StatusCode,
		},
	}
}

// bearer is the Authorization value; none for a self-hosted OpenMeter
// without authentication.
func (o *openMeter) bearer() string {
	if o.c.secret == "" {
		return ""
	}
	return "Bearer " + o.c.secret
}
