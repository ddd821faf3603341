package limits_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"tollgate/gateway/limits"
	"tollgate/store/storetest"
)

// newPrefix returns a key prefix of the test's own, since the test Redis
// is shared with other packages running at the same time, and deletes its
// keys when the test ends (budget counters would otherwise stay 35 days).
func newPrefix(t testing.TB, rdb *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "tgtest:" + hex.EncodeToString(b) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		for _, match := range []string{prefix + "*", "rate:" + prefix + "*"} {
			iter := rdb.Scan(ctx, 0, match, 1000).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
		}
	})
	return prefix
}

// run runs g.Run until the test ends.
func run(t testing.TB, g *limits.Guard) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// waitUp waits until g.RedisUp() is want and returns how long it took.
func waitUp(t testing.TB, g *limits.Guard, want bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for g.RedisUp() != want {
		if time.Since(start) > within {
			t.Fatalf("RedisUp still %v after %v", !want, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// redisOptions are the test Redis's client options, with Addr replaced.
func redisOptions(t testing.TB, addr string) *redis.Options {
	t.Helper()
	opts, err := redis.ParseURL(storetest.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	if addr != "" {
		opts.Addr = addr
	}
	return opts
}

// closedAddr is a loopback address nothing listens on: connections are refused.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proxy forwards TCP connections to Redis and can be stopped and started
// again on the same port, to take Redis away from a client and give it back.
type proxy struct {
	target, addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	p := &proxy{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *proxy) start(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *proxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // stopped meanwhile
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	go func() {
		io.Copy(u, c)
		u.Close()
	}()
	io.Copy(c, u)
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// stop closes the listener and every connection through it.
func (p *proxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}
