package store_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"tollgate/store"
	"tollgate/store/storetest"
)

// testActor is who the tests' mutations are recorded as.
const testActor = "test-admin"

func newStore(t *testing.T) (*store.Store, context.Context) {
	t.Helper()
	return storetest.New(t), context.Background()
}

func ptr[T any](v T) *T { return &v }

func mustTeam(t *testing.T, st *store.Store, name string) *store.Team {
	t.Helper()
	team, err := st.CreateTeam(context.Background(), testActor, store.TeamSpec{Name: name})
	if err != nil {
		t.Fatalf("create team %q: %v", name, err)
	}
	return team
}

func mustKey(t *testing.T, st *store.Store, spec store.KeySpec) (*store.Key, string) {
	t.Helper()
	k, secret, err := st.CreateKey(context.Background(), testActor, spec, "")
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return k, secret
}

func mustUser(t *testing.T, st *store.Store, email string) *store.User {
	t.Helper()
	u, err := st.CreateUser(context.Background(), testActor, store.UserInput{UserSpec: store.UserSpec{Email: email}})
	if err != nil {
		t.Fatalf("create user %q: %v", email, err)
	}
	return u
}

func mustProvider(t *testing.T, st *store.Store, name, apiKey string) *store.Provider {
	t.Helper()
	p, err := st.CreateProvider(context.Background(), testActor, store.ProviderInput{
		ProviderSpec: store.ProviderSpec{Name: name, Type: "openai_compatible", APIBase: "http://127.0.0.1:9/v1"},
		APIKey:       &apiKey,
	})
	if err != nil {
		t.Fatalf("create provider %q: %v", name, err)
	}
	return p
}

func mustModel(t *testing.T, st *store.Store, name, providerID string) *store.Model {
	t.Helper()
	m, err := st.CreateModel(context.Background(), testActor, store.ModelSpec{
		ModelName: name, ProviderID: providerID, InputCostPerMillion: 1, OutputCostPerMillion: 2, Enabled: true,
	})
	if err != nil {
		t.Fatalf("create model %q: %v", name, err)
	}
	return m
}

// count runs a count(*) style query.
func count(t *testing.T, st *store.Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := st.DB().Get(&n, query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func approxEqual(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// asValidation returns err as a *store.ValidationError or fails the test.
func asValidation(t *testing.T, err error) *store.ValidationError {
	t.Helper()
	var ve *store.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a *store.ValidationError, got %T: %v", err, err)
	}
	return ve
}
