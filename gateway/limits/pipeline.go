package limits

import (
	"context"
	"errors"
	"sync"

	"github.com/redis/go-redis/v9"
)

// pipeliner sends the scripts of concurrent requests to Redis together.
// While fewer than maxPipelines are on the wire a call sends itself at
// once, so at a light load a request waits no longer than with a plain
// call. Past that, calls queue up, and when a pipeline returns the first
// of them sends them all in one write. Under load this turns many round
// trips, each costing a write, a read and a wake-up on both sides, into
// one.
//
// There is no goroutine of its own: the caller at the head of the queue
// does the sending, and waiters are woken with their answers.
type pipeliner struct {
	rdb *redis.Client

	mu    sync.Mutex
	busy  int           // pipelines on the wire
	queue []*scriptCall // waiting for the next one
}

// maxPipelines bounds the pipelines on the wire at once. One would batch
// the most, but a call arriving just after it left would wait for its
// return and then a round trip of its own; a few let light traffic through
// untouched while heavy traffic still queues into batches.
const maxPipelines = 4

// scriptCall is one script run and, once wake is signalled, its answer.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
	wake   chan struct{}
	lead   []*scriptCall // set when woken to send this batch (it holds the call itself)
}

// run runs script and returns its answer. It waits for the answer even
// when ctx ends: a script that was sent may have taken slots or
// reservations, and the caller must learn it to give them back. Redis's
// own timeouts bound the wait.
func (p *pipeliner) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	c := &scriptCall{script: script, keys: keys, args: args}
	p.mu.Lock()
	if p.busy < maxPipelines {
		p.busy++
		p.mu.Unlock()
		p.send(ctx, []*scriptCall{c})
		return c.cmd
	}
	c.wake = make(chan struct{}, 1)
	p.queue = append(p.queue, c)
	p.mu.Unlock()
	<-c.wake
	if c.lead != nil {
		p.send(ctx, c.lead)
	}
	return c.cmd
}

// send runs a batch in one pipeline, wakes the batch's other callers with
// their answers, then hands the queue to its first caller, or frees the
// wire when nobody waits.
func (p *pipeliner) send(ctx context.Context, batch []*scriptCall) {
	ctx = context.WithoutCancel(ctx)
	pipe := p.rdb.Pipeline()
	for _, c := range batch {
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		// Scripts Redis does not know yet (first use, or after a restart)
		// go again in full, which loads them.
		var again []*scriptCall
		for _, c := range batch {
			if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
				again = append(again, c)
			}
		}
		if len(again) > 0 {
			pipe = p.rdb.Pipeline()
			for _, c := range again {
				c.cmd = c.script.Eval(ctx, pipe, c.keys, c.args...)
			}
			_, err = pipe.Exec(ctx) // each call's error is in its cmd
		}
	}
	// Redis unreachable or too slow: those queued meanwhile fail with the
	// same error now rather than each batch waiting out its own timeout.
	var reply redis.Error
	unreachable := err != nil && !errors.As(err, &reply)
	p.mu.Lock()
	next := p.queue
	p.queue = nil
	if len(next) == 0 || unreachable {
		p.busy-- // else the first of next takes this pipeline's place
	}
	p.mu.Unlock()
	for _, c := range batch {
		if c.wake != nil && c != batch[0] {
			c.wake <- struct{}{}
		}
	}
	if len(next) == 0 {
		return
	}
	if unreachable {
		for _, c := range next {
			c.cmd = redis.NewCmd(ctx)
			c.cmd.SetErr(err)
			c.wake <- struct{}{}
		}
		return
	}
	next[0].lead = next
	next[0].wake <- struct{}{}
}
