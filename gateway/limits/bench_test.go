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
	benchReserveSettle(b, []limits.Budget{{Name: "key:k1:1", Max: 1e6}, {Name: "team:t1:1", Max: 1e6}}, 0)
}

// benchReserveSettle reserves and settles on budgets, one request at a
// time, with inFlight other requests holding reservations meanwhile.
func benchReserveSettle(b *testing.B, budgets []limits.Budget, inFlight int) {
	ctx := context.Background()
	rdb := storetest.Redis(b)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(b, rdb)})
	for i := range inFlight {
		if ok, _, _, err := g.Reserve(ctx, budgets, "held-"+strconv.Itoa(i), 0.01); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
	b.ReportAllocs()
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

// BenchmarkAllowKeyTeamUser is one fully governed request's rate check:
// RPM and TPM limits on its key, its team and its user.
func BenchmarkAllowKeyTeamUser(b *testing.B) {
	ctx := context.Background()
	rdb := storetest.Redis(b)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(b, rdb)})
	rpm := []limits.Rate{{Name: "key:k1:rpm", Limit: 1 << 40}, {Name: "team:t1:rpm", Limit: 1 << 40}, {Name: "user:u1:rpm", Limit: 1 << 40}}
	tpm := []limits.Rate{{Name: "key:k1:tpm", Limit: 1 << 40}, {Name: "team:t1:tpm", Limit: 1 << 40}, {Name: "user:u1:tpm", Limit: 1 << 40}}
	b.ReportAllocs()
	for b.Loop() {
		if d := g.Allow(ctx, rpm, tpm, 500); !d.Allowed {
			b.Fatal(d)
		}
	}
}

// BenchmarkReserveSettleKeyTeamUser is one fully governed request's budget
// work: reserve the worst case on the key's, team's and user's budgets,
// then settle the actual cost.
func BenchmarkReserveSettleKeyTeamUser(b *testing.B) {
	benchReserveSettle(b, []limits.Budget{{Name: "key:k1:1", Max: 1e6}, {Name: "team:t1:1", Max: 1e6}, {Name: "user:u1:1", Max: 1e6}}, 0)
}

// BenchmarkReserveSettleInFlight is BenchmarkReserveSettle with 1,000 other
// requests holding reservations on the same budgets, as with 1,000 streams
// in flight: a check must not cost more because others are running.
func BenchmarkReserveSettleInFlight(b *testing.B) {
	benchReserveSettle(b, []limits.Budget{{Name: "key:k1:1", Max: 1e6}, {Name: "team:t1:1", Max: 1e6}}, 1000)
}

// BenchmarkGovernKeyTeamUser is all of one fully governed request's limit
// work: admit against the six rates, two slots and three budgets, then
// settle, release and correct the token limits.
func BenchmarkGovernKeyTeamUser(b *testing.B) {
	ctx := context.Background()
	rdb := storetest.Redis(b)
	g := limits.New(rdb, limits.Options{Prefix: newPrefix(b, rdb)})
	a := limits.Admission{
		Requests:    []limits.Rate{{Name: "key:k1:rpm", Limit: 1 << 40}, {Name: "team:t1:rpm", Limit: 1 << 40}, {Name: "user:u1:rpm", Limit: 1 << 40}},
		TokenLimits: []limits.Rate{{Name: "key:k1:tpm", Limit: 1 << 40}, {Name: "team:t1:tpm", Limit: 1 << 40}, {Name: "user:u1:tpm", Limit: 1 << 40}},
		Tokens:      500,
		Slots:       []limits.Slot{{Name: "key:k1", Max: 1 << 20}, {Name: "team:t1", Max: 1 << 20}},
		Budgets:     []limits.Budget{{Name: "key:k1:1", Max: 1e6}, {Name: "team:t1:1", Max: 1e6}, {Name: "user:u1:1", Max: 1e6}},
		Amount:      0.01,
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		a.RequestID = strconv.Itoa(i)
		if res, err := g.Admit(ctx, a); !res.OK() || err != nil {
			b.Fatal(res, err)
		}
		g.Finish(ctx, limits.Settlement{Budgets: a.Budgets, RequestID: a.RequestID, Cost: 0.005,
			Slots: a.Slots, TokenLimits: a.TokenLimits, Delta: -200})
	}
}
