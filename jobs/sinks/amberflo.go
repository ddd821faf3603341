package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"tollgate/store"
)

const (
	amberfloMaxRecords = 100
	// amberfloRecordsPerEvent is the most records one usage event makes:
	// call, duration, input and output tokens, cost, error details.
	amberfloRecordsPerEvent = 6
)

type amberflo struct {
	c         *conn
	base      string
	costMeter string
	region    string
}

func newAmberflo(c *conn, base string, cfg config) (*amberflo, error) {
	c.system = "Amberflo"
	c.urlHint = "Use Amberflo's API base URL without a path, like https://app.amberflo.io: Tollgate adds /ingest and /customers."
	c.keyHint = "copy the API key again from your Amberflo account settings and save it in this sink."
	costMeter, err := cfg.str("cost_meter", "llm_cost_usd")
	if err != nil {
		return nil, err
	}
	region, err := cfg.str("region", "global")
	if err != nil {
		return nil, err
	}
	return &amberflo{c: c, base: base, costMeter: costMeter, region: region}, nil
}

func (a *amberflo) MaxEvents() int { return amberfloMaxRecords / amberfloRecordsPerEvent }

// amberfloRecord is one meter record of Amberflo's ingest API.
type amberfloRecord struct {
	UniqueID          string            `json:"uniqueId"`
	MeterAPIName      string            `json:"meterApiName"`
	MeterValue        float64           `json:"meterValue"`
	MeterTimeInMillis int64             `json:"meterTimeInMillis"`
	CustomerID        string            `json:"customerId,omitempty"`
	Dimensions        map[string]string `json:"dimensions"`
}

func (a *amberflo) Send(ctx context.Context, events []store.MeterEvent) error {
	// Customers first, so that usage never names one Amberflo lacks.
	var records []amberfloRecord
	for _, e := range events {
		if e.Kind == store.EventBusinessUnit {
			if err := a.upsertCustomer(ctx, e); err != nil {
				return err
			}
			continue
		}
		records = append(records, a.records(e)...)
	}
	header := jsonHeader("application/json", "X-API-KEY", a.c.secret)
	for _, batch := range chunks(records, amberfloMaxRecords) {
		body, err := json.Marshal(batch)
		if err != nil {
			return &Error{Message: fmt.Sprintf("encode Amberflo meter records: %v", err)}
		}
		if _, err := a.c.call(ctx, http.MethodPost, a.base+"/ingest", header, body); err != nil {
			return err
		}
	}
	return nil
}

// records is a usage event as the meter set Amberflo's AI-usage dashboards
// read.
func (a *amberflo) records(e store.MeterEvent) []amberfloRecord {
	dims := map[string]string{
		"business_unit_id": orUnknown(e.BusinessUnit),
		"team":             orUnknown(e.TeamName),
		"key_name":         orUnknown(e.KeyAlias),
		"user":             orUnknown(e.UserEmail),
		"model":            orUnknown(e.Model),
		"provider":         orUnknown(e.Provider),
		"region":           a.region,
		"usecase":          orUnknown(e.Endpoint),
		"gateway":          "tollgate",
	}
	record := func(meter string, value float64, extra ...string) amberfloRecord {
		d := maps.Clone(dims)
		for i := 0; i+1 < len(extra); i += 2 {
			d[extra[i]] = extra[i+1]
		}
		return amberfloRecord{UniqueID: e.ID, MeterAPIName: meter, MeterValue: value,
			MeterTimeInMillis: e.CreatedAt.UnixMilli(), CustomerID: e.CustomerID, Dimensions: d}
	}
	errorCode := "n"
	if e.StatusCode >= 400 {
		errorCode = strconv.Itoa(e.StatusCode)
	}
	out := []amberfloRecord{
		record("llm_api_call", 1, "error_code", errorCode),
		record("llm_api_call_ms", float64(e.LatencyMS), "error_code", errorCode),
		record("llm_text_tokens", float64(e.InputTokens), "type", "in", "cache", "n"),
		record("llm_text_tokens", float64(e.OutputTokens), "type", "out", "cache", "n"),
		record(a.costMeter, e.Cost),
	}
	if e.StatusCode >= 400 {
		out = append(out, record("llm_error_details", 1, "code", strconv.Itoa(e.StatusCode), "class", errorClass(e.StatusCode)))
	}
	return out
}

// errorClass names a failed request's status the way LLM client libraries
// name their exceptions, which is what Amberflo's error dashboards group by.
func errorClass(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "RateLimitError"
	case status == 499:
		return "ClientClosed"
	case status == http.StatusGatewayTimeout:
		return "TimeoutError"
	case status == http.StatusBadGateway:
		return "APIConnectionError"
	case status >= 500:
		return "InternalServerError"
	default:
		return "InvalidRequestError"
	}
}

// upsertCustomer makes the announced business unit an Amberflo customer,
// or brings the existing one up to date.
func (a *amberflo) upsertCustomer(ctx context.Context, e store.MeterEvent) error {
	id := e.CustomerID
	if id == "" {
		id = orUnknown(e.BusinessUnit)
	}
	traits := map[string]any{"business_unit_id": orUnknown(e.BusinessUnit), "team": e.TeamName, "gateway": "tollgate"}
	header := jsonHeader("application/json", "X-API-KEY", a.c.secret)
	for attempt := 0; ; attempt++ {
		existing, err := a.customer(ctx, id)
		if err != nil {
			return err
		}
		method, customer := http.MethodPost, map[string]any{"customerId": id, "customerName": e.TeamName, "traits": traits}
		if existing != nil {
			// PUT replaces the whole customer: keep what we do not set.
			method, customer = http.MethodPut, existing
			merged, _ := existing["traits"].(map[string]any)
			if merged == nil {
				merged = map[string]any{}
			}
			maps.Copy(merged, traits)
			customer["customerId"], customer["customerName"], customer["traits"] = id, e.TeamName, merged
		}
		body, err := json.Marshal(customer)
		if err != nil {
			return &Error{Message: fmt.Sprintf("encode Amberflo customer: %v", err)}
		}
		ans, err := a.c.do(ctx, method, a.base+"/customers", header, body)
		if err != nil {
			return err
		}
		if method == http.MethodPost && attempt == 0 && alreadyExists(ans) {
			continue // created meanwhile by someone else: replace it instead
		}
		if err := a.c.check(ans); err != nil {
			return err
		}
		return nil
	}
}

// customer reads an Amberflo customer; nil when there is none, which
// Amberflo answers with an empty object.
func (a *amberflo) customer(ctx context.Context, id string) (map[string]any, error) {
	ans, err := a.c.do(ctx, http.MethodGet, a.base+"/customers/?customerId="+url.QueryEscape(id),
		jsonHeader("application/json", "X-API-KEY", a.c.secret), nil)
	if err != nil {
		return nil, err
	}
	if ans.status == http.StatusNotFound && !ans.html {
		return nil, nil
	}
	if err := a.c.check(ans); err != nil {
		return nil, err
	}
	var c map[string]any
	if err := json.Unmarshal(ans.body, &c); err != nil {
		return nil, &Error{Status: ans.status, Message: fmt.Sprintf("Amberflo at %s answered the customer lookup with something other than JSON: %s", a.c.host, a.c.snippet(ans))}
	}
	if got, _ := c["customerId"].(string); got != id {
		return nil, nil
	}
	return c, nil
}

// alreadyExists reports whether a create was refused because the customer
// exists.
func alreadyExists(a *answer) bool {
	if a.status == http.StatusConflict {
		return true
	}
	return a.status == http.StatusBadRequest && strings.Contains(strings.ToLower(string(a.body)), "already exist")
}
