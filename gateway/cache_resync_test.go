package gateway

import (
	"context"
	"log/slog"
	"net/url"
	"testing"

	"tollgate/store"
	"tollgate/store/storetest"
)

// After a reconnection the cached keys are due for a fresh lookup, but a
// lookup that fails because PostgreSQL is away again still serves them.
func TestResyncedKeysServeWhilePostgresIsAway(t *testing.T) {
	dsn := storetest.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := storetest.NewProxy(t, u.Host)
	sealer, _ := store.NewSealer(storetest.SecretKey)
	ctx := context.Background()
	st, err := store.Open(ctx, storetest.ProxyURL(dsn, proxy), sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	_, secret, err := st.CreateKey(ctx, "test", store.KeySpec{Alias: "resync"}, "")
	if err != nil {
		t.Fatal(err)
	}
	c := NewCache(st, slog.New(slog.DiscardHandler))
	if _, err := c.Key(ctx, store.HashKey(secret)); err != nil {
		t.Fatal(err)
	}
	c.resetKeys()
	proxy.Cut()
	got, err := c.Key(ctx, store.HashKey(secret))
	if err != nil || got.Alias != "resync" {
		t.Fatalf("after a resync with PostgreSQL away: %v, %v", got, err)
	}
	proxy.Restore()
	// A key deleted while notifications were missed is dropped at the
	// fresh lookup.
	if err := st.DeleteKey(ctx, "test", got.ID); err != nil {
		t.Fatal(err)
	}
	c.resetKeys()
	if _, err := c.Key(ctx, store.HashKey(secret)); err != errUnknownKey {
		t.Fatalf("deleted key after a resync: %v", err)
	}
}
