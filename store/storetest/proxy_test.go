package storetest

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"tollgate/store"
)

func TestProxyURL(t *testing.T) {
	p := &Proxy{addr: "127.0.0.1:4242"}
	for _, c := range []struct{ in, want string }{
		{"postgres://postgres@127.0.0.1:5432/tollgate_t_1?sslmode=disable", "postgres://postgres@127.0.0.1:4242/tollgate_t_1?sslmode=disable"},
		{"postgres://u:p%40ss@db.internal/app", "postgres://u:p%40ss@127.0.0.1:4242/app"},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:4242/0"},
		{"redis://:secret@cache:6380", "redis://:secret@127.0.0.1:4242"},
	} {
		if got := ProxyURL(c.in, p); got != c.want {
			t.Errorf("ProxyURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestProxyCutRestore shows a real PostgreSQL client failing while the
// proxy is cut and working again after Restore, on the same address.
func TestProxyCutRestore(t *testing.T) {
	dsn := NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(t, u.Host)
	ctx := context.Background()
	st, err := store.Open(ctx, ProxyURL(dsn, p), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	query := func() error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var one int
		return st.DB().GetContext(ctx, &one, `SELECT 1`)
	}
	if err := query(); err != nil {
		t.Fatalf("query through the proxy: %v", err)
	}
	addr := p.Addr()

	p.Cut()
	start := time.Now()
	if err := query(); err == nil {
		t.Fatal("query succeeded while the proxy was cut")
	} else {
		t.Logf("while cut: %v (after %v)", err, time.Since(start))
	}
	if err := query(); err == nil {
		t.Fatal("a second query succeeded while the proxy was cut")
	}

	p.Restore()
	if p.Addr() != addr {
		t.Fatalf("address changed across Cut/Restore: %s then %s", addr, p.Addr())
	}
	if err := query(); err != nil {
		t.Fatalf("query after Restore: %v", err)
	}
	// Cut and restore again: the proxy is reusable.
	p.Cut()
	if err := query(); err == nil {
		t.Fatal("query succeeded after the second cut")
	}
	p.Restore()
	if err := query(); err != nil {
		t.Fatalf("query after the second Restore: %v", err)
	}
}

// TestProxyRedis: the same for Redis.
func TestProxyRedis(t *testing.T) {
	rdb := Redis(t)
	p := NewProxy(t, rdb.Options().Addr)
	opts, err := redis.ParseURL(ProxyURL(RedisURL(), p))
	if err != nil {
		t.Fatal(err)
	}
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping through the proxy: %v", err)
	}
	p.Cut()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded while the proxy was cut")
	}
	p.Restore()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after Restore: %v", err)
	}
}
