package limits

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"tollgate/store/storetest"
)

// countPipelines counts the pipelines a client sends.
type countPipelines struct{ n atomic.Int64 }

func (h *countPipelines) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countPipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (h *countPipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// Concurrent calls share pipelines, each gets its own answer, and a script
// Redis has never seen (NOSCRIPT) is loaded on the way.
func TestPipelinerBatches(t *testing.T) {
	t.Parallel()
	rdb := storetest.Redis(t)
	hook := &countPipelines{}
	rdb.AddHook(hook)
	p := &pipeliner{rdb: rdb}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	// A script of this test's own, so Redis cannot know it yet.
	script := redis.NewScript(fmt.Sprintf("-- %x\nredis.call('TIME')\nreturn 'echo:' .. ARGV[1]", nonce))

	const calls = 300
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range calls {
		wg.Go(func() {
			<-start
			want := fmt.Sprintf("echo:%d", i)
			got, err := p.run(t.Context(), script, nil, i).Text()
			if err != nil || got != want {
				t.Errorf("call %d = %q %v, want %q", i, got, err, want)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := hook.n.Load(); n >= calls {
		t.Errorf("%d calls took %d pipelines: none were shared", calls, n)
	} else {
		t.Logf("%d calls took %d pipelines", calls, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy != 0 || len(p.queue) > 0 {
		t.Errorf("after the calls: busy %v, %d queued; want idle", p.busy, len(p.queue))
	}
}

// When Redis does not answer, the calls queued behind those on the wire
// fail with their error instead of being sent again and waiting out a
// timeout of their own.
func TestPipelinerUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	go func() { // accepts, reads nothing, answers nothing
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: time.Second,
		WriteTimeout: time.Second, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer rdb.Close()
	hook := &countPipelines{}
	rdb.AddHook(hook)
	p := &pipeliner{rdb: rdb}
	script := redis.NewScript("return 1")

	// Fill the wire, then queue more behind it.
	var first sync.WaitGroup
	for range maxPipelines {
		first.Go(func() {
			if err := p.run(t.Context(), script, nil).Err(); err == nil {
				t.Error("a call succeeded against a Redis that never answers")
			}
		})
	}
	for {
		p.mu.Lock()
		busy := p.busy
		p.mu.Unlock()
		if busy == maxPipelines {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if err := p.run(t.Context(), script, nil).Err(); err == nil {
				t.Error("a queued call succeeded against a Redis that never answers")
			}
		})
	}
	wg.Wait()
	first.Wait()
	if n := hook.n.Load(); n != maxPipelines {
		t.Errorf("%d pipelines sent, want %d: the queued calls should fail with the first ones' error", n, maxPipelines)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy != 0 || len(p.queue) > 0 {
		t.Errorf("after the failures: %d on the wire, %d queued; want none", p.busy, len(p.queue))
	}
}
