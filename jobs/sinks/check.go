package sinks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"tollgate/store"
)

// TestTeam is the team of the synthetic event Test sends.
const TestTeam = "tollgate-test"

// Test sends one synthetic usage event (id "tollgate-test-…", team
// "tollgate-test", no tokens and no cost) through the sink, and returns nil
// or an *Error whose message says what is wrong: the URL, the key, the host
// cannot be reached, or outbound HTTPS is blocked or intercepted.
//
// A Stripe sink is tested without an event: Stripe takes meter events of
// real customers only, so the test lists its active meters instead, which
// checks the URL and the key, and that a meter takes the sink's event name.
func Test(ctx context.Context, s store.Sink, secret string, client *http.Client) error {
	snd, err := New(s, secret, client)
	if err != nil {
		return err
	}
	if st, ok := snd.(*stripe); ok {
		return st.test(ctx)
	}
	return snd.Send(ctx, []store.MeterEvent{testEvent(time.Now())})
}

func testEvent(now time.Time) store.MeterEvent {
	var b [8]byte
	rand.Read(b[:])
	return store.MeterEvent{
		ID:           "tollgate-test-" + hex.EncodeToString(b[:]),
		Kind:         store.EventUsage,
		CreatedAt:    now.UTC(),
		TeamName:     TestTeam,
		BusinessUnit: TestTeam,
		KeyAlias:     TestTeam,
		Model:        TestTeam,
		Provider:     "tollgate",
		Endpoint:     "chat",
		StatusCode:   200,
	}
}
