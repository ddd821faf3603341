package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// A deployment's own timeouts bound each attempt on it, inside the
// gateway-wide TOLLGATE_UPSTREAM_TIMEOUT that bounds the whole request:
//   - connect: dialing a new connection (read by the transport's dialer);
//   - first byte: from sending the request to the response headers, so a
//     hung provider is retried or fallen back from before anything reached
//     the caller;
//   - total: the whole attempt, body or stream included.

// timeoutError is the cause of an attempt cancelled by one of its timeouts.
type timeoutError struct {
	what  string // "connect", "first byte" or "total"
	after time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no %s within %s", map[string]string{"connect": "connection", "first byte": "response", "total": "complete answer"}[e.what], e.after)
}

type connectTimeoutKey struct{}

// attemptCtx is the context of one attempt on a deployment. stop must be
// called once the attempt's answer has been read or dropped.
type attemptCtx struct {
	ctx       context.Context
	cancel    context.CancelCauseFunc
	stopTotal context.CancelFunc
	firstByte *time.Timer
}

func ms(v *int64) time.Duration {
	if v == nil {
		return 0
	}
	return time.Duration(*v) * time.Millisecond
}

// startAttempt derives the context of one attempt on d from the request's.
func startAttempt(parent context.Context, d *Deployment) *attemptCtx {
	a := &attemptCtx{stopTotal: func() {}}
	if t := ms(d.ConnectTimeoutMS); t > 0 {
		parent = context.WithValue(parent, connectTimeoutKey{}, t)
	}
	if t := ms(d.TimeoutMS); t > 0 {
		parent, a.stopTotal = context.WithTimeoutCause(parent, t, &timeoutError{"total", t})
	}
	a.ctx, a.cancel = context.WithCancelCause(parent)
	if t := ms(d.FirstByteTimeoutMS); t > 0 {
		a.firstByte = time.AfterFunc(t, func() { a.cancel(&timeoutError{"first byte", t}) })
	}
	return a
}

// gotHeaders ends the first-byte wait. It reports false when the timer
// fired first: the answer's context is already cancelled.
func (a *attemptCtx) gotHeaders() bool {
	return a == nil || a.firstByte == nil || a.firstByte.Stop()
}

func (a *attemptCtx) stop() {
	if a == nil {
		return
	}
	a.gotHeaders()
	a.cancel(nil)
	a.stopTotal()
}

// timedOut says which of the deployment's timeouts, if any, ended the
// attempt.
func (a *attemptCtx) timedOut(err error) *timeoutError {
	var te *timeoutError
	if errors.As(err, &te) {
		return te
	}
	if a != nil && errors.As(context.Cause(a.ctx), &te) {
		return te
	}
	return nil
}

// dialer honours a deployment's connect timeout carried in the context;
// other dials keep the transport's default.
func dialer(def *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if t, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && t < def.Timeout {
			d := *def
			d.Timeout = t
			conn, err := d.DialContext(ctx, network, addr)
			if isTimeout(err) && ctx.Err() == nil {
				return nil, fmt.Errorf("dial %s: %w", addr, &timeoutError{"connect", t})
			}
			return conn, err
		}
		return def.DialContext(ctx, network, addr)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
