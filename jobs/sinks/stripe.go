package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tollgate/store"
)

const (
	stripeMaxEvents   = 50
	stripeConcurrency = 8
	// stripeWindow is how old a meter event Stripe still takes (35
	// days), less a margin for the time the send itself takes.
	stripeWindow = 35*24*time.Hour - 5*time.Minute
)

// stripeValues are the quantities a Stripe meter can be fed.
var stripeValues = map[string]func(store.MeterEvent) int64{
	"tokens":        func(e store.MeterEvent) int64 { return e.InputTokens + e.OutputTokens },
	"input_tokens":  func(e store.MeterEvent) int64 { return e.InputTokens },
	"output_tokens": func(e store.MeterEvent) int64 { return e.OutputTokens },
	"requests":      func(store.MeterEvent) int64 { return 1 },
	// Stripe takes whole numbers only.
	"cost_cents": func(e store.MeterEvent) int64 { return int64(math.Round(e.Cost * 100)) },
}

type stripe struct {
	c         *conn
	base      string
	eventName string
	value     func(store.MeterEvent) int64
	now       func() time.Time
	skipped   atomic.Int64
	customers sync.Map // customer id → *sync.Mutex held while sending its events
}

func newStripe(c *conn, base string, cfg config) (*stripe, error) {
	c.system = "Stripe"
	c.urlHint = "Use https://api.stripe.com: Tollgate adds /v1/billing/meter_events."
	c.keyHint = "check the secret key in the Stripe Dashboard under Developers → API keys (live and test keys see different meters; " +
		"a restricted key needs write access to billing meter events, and read access to billing meters for the test)."
	eventName, err := cfg.str("event_name", "llm_usage")
	if err != nil {
		return nil, err
	}
	valueName, err := cfg.str("value", "tokens")
	if err != nil {
		return nil, err
	}
	value, ok := stripeValues[valueName]
	if !ok {
		names := slices.Sorted(maps.Keys(stripeValues))
		return nil, fmt.Errorf("config value %q is not one of %s", valueName, strings.Join(names, ", "))
	}
	return &stripe{c: c, base: base, eventName: eventName, value: value, now: time.Now}, nil
}

func (s *stripe) MaxEvents() int { return stripeMaxEvents }

func (s *stripe) Skipped() int64 { return s.skipped.Load() }

func (s *stripe) Send(ctx context.Context, events []store.MeterEvent) error {
	oldest := s.now().Add(-stripeWindow)
	byCustomer := map[string][]store.MeterEvent{}
	var customers []string
	var skipped int64
	for _, e := range events {
		if e.Kind != store.EventUsage || e.CustomerID == "" || e.CreatedAt.Before(oldest) {
			skipped++
			continue
		}
		if _, seen := byCustomer[e.CustomerID]; !seen {
			customers = append(customers, e.CustomerID)
		}
		byCustomer[e.CustomerID] = append(byCustomer[e.CustomerID], e)
	}
	// Stripe takes one request at a time per customer and meter: run a few
	// customers at once, each one's events in turn, and a customer whose
	// events another Send is sending waits for it.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		slots = make(chan struct{}, stripeConcurrency)
	)
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return first != nil
	}
	for _, cust := range customers {
		slots <- struct{}{}
		if failed() {
			<-slots
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			lock, _ := s.customers.LoadOrStore(cust, &sync.Mutex{})
			lock.(*sync.Mutex).Lock()
			defer lock.(*sync.Mutex).Unlock()
			for _, e := range byCustomer[cust] {
				if failed() {
					return
				}
				if err := s.sendOne(ctx, e); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	s.skipped.Add(skipped)
	return nil
}

func (s *stripe) sendOne(ctx context.Context, e store.MeterEvent) error {
	form := url.Values{
		"event_name":                  {s.eventName},
		"identifier":                  {s.identifier(e)},
		"timestamp":                   {strconv.FormatInt(e.CreatedAt.Unix(), 10)},
		"payload[stripe_customer_id]": {e.CustomerID},
		"payload[value]":              {strconv.FormatInt(s.value(e), 10)},
	}
	header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {"Bearer " + s.c.secret}}
	ans, err := s.c.do(ctx, http.MethodPost, s.base+"/v1/billing/meter_events", header, []byte(form.Encode()))
	if err != nil {
		return err
	}
	if isStripeDuplicate(ans) {
		return nil // sent before: Stripe already has this request
	}
	return s.c.check(ans)
}

// identifier is the request id, so a re-sent event is the same event to
// Stripe. Stripe wants identifiers unique across all of an account's meter
// events, so two Stripe sinks on one account must not share requests (the
// second would be answered "duplicate"); docs/metering.md says so.
func (s *stripe) identifier(e store.MeterEvent) string { return e.ID }

// stripeError is the body of a Stripe error answer.
type stripeError struct {
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// isStripeDuplicate reports Stripe's answer to an identifier it already
// holds: 400 invalid_request_error, "An event already exists with
// identifier …".
func isStripeDuplicate(a *answer) bool {
	if a.status != http.StatusBadRequest {
		return false
	}
	var se stripeError
	if json.Unmarshal(a.body, &se) != nil {
		return false
	}
	return strings.Contains(strings.ToLower(se.Error.Message), "already exists with identifier")
}

// test checks the key and the URL by listing the active meters, and that
// one of them takes this sink's event name. A synthetic meter event would
// need a real Stripe customer, and one with a made-up customer would land
// in the meter's error report.
func (s *stripe) test(ctx context.Context) error {
	header := http.Header{"Authorization": {"Bearer " + s.c.secret}}
	after := ""
	for range 20 {
		q := url.Values{"status": {"active"}, "limit": {"100"}}
		if after != "" {
			q.Set("starting_after", after)
		}
		ans, err := s.c.call(ctx, http.MethodGet, s.base+"/v1/billing/meters?"+q.Encode(), header, nil)
		if err != nil {
			return err
		}
		var page struct {
			Data []struct {
				ID        string `json:"id"`
				EventName string `json:"event_name"`
			} `json:"data"`
			HasMore bool `json:"has_more"`
		}
		if err := json.Unmarshal(ans.body, &page); err != nil {
			return &Error{Status: ans.status, Message: fmt.Sprintf("%s answered the meter list with something other than Stripe's JSON: the URL is wrong. %s", s.c.host, s.c.urlHint)}
		}
		for _, m := range page.Data {
			if m.EventName == s.eventName {
				return nil
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			break
		}
		after = page.Data[len(page.Data)-1].ID
	}
	return &Error{Status: http.StatusOK, Message: fmt.Sprintf("Stripe took the key, but has no active meter with the event name %q: "+
		"create one in the Stripe Dashboard (Billing → Meters), or set this sink's event_name to the event name of an existing meter", s.eventName)}
}
