package limits_test

import (
	"context"
	"strconv"
	"testing"

	"tollgate/gateway/limits"
	"tollgate/store/storetest"
)

// BenchmarkAllow is one request against a key's RPM and TPM limits.
func BenchmarkAllow(b *testing.B) {
	ctx := context.Background()
	rdb := storetest.Redis(b)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(b, rdb)})
	rpm := []limits.Rate{{Name: "key:k1:rpm", Limit: 1 << 40}}
	tpm := []limits.Rate{{Name: "key:k1:tpm", Limit: 1 << 40}}
	for b.Loop() {
		if d := g.Allow(ctx, rpm, tpm, 500); !d.Allowed {
			b.Fatal(d)
		}
	}
}

// BenchmarkReserveSettle is one request's budget work against a key and a team budget.
func BenchmarkReserveSettle(b *testing.B) {
	ctx := context.Background()
	rdb := storetest.Redis(b)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(b, rdb)})
	budgets := []limits.Budget{{Name: "key:k1:1", Max: 1e6}, {Name: "team:t1:1", Max: 1e6}}
	i := 0
	for b.Loop() {
		i++
		id := strconv.Itoa(i)
		if ok, _, _, err := g.Reserve(ctx, budgets, id, 0.01); !ok || err != nil {
			b.Fatal(ok, err)
		}
		g.Settle(ctx, budgets, id, 0.005)
	}
}
