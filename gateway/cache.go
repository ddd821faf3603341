package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tollgate/gateway/guardrails"
	"tollgate/store"
)

// Deployment is a model row with its provider and decrypted credential,
// ready for an upstream call.
type Deployment struct {
	store.Model
	Provider *store.Provider
	APIKey   string
}

// catalog is an immutable snapshot of providers, deployments and teams.
// It is swapped whole on any change, so readers never lock.
type catalog struct {
	deployments map[string][]*Deployment // by public model name, enabled only
	modelNames  []string                 // sorted public names with an enabled deployment
	teams       map[string]*store.Team
	users       map[string]*store.User
	budgets     map[string]*store.Budget // budget profiles by id
	global      *store.GlobalBudget
	groups      map[string]*store.ModelGroup // routing settings by model name
	aliases     map[string]string            // alias -> model name
	unhealthy   map[string]bool              // deployment ids whose last health probe failed
	guardrails  []*guardrails.Rule           // every guardrail that compiles, enabled or not, by name
	guardByName map[string]*guardrails.Rule
}

// Cache keeps what the hot path reads in memory and drops it as soon as
// PostgreSQL announces a change (LISTEN/NOTIFY).
type Cache struct {
	st  *store.Store
	log *slog.Logger

	catalog atomic.Pointer[catalog]

	mu       sync.RWMutex
	keys     map[string]cachedKey // by key hash
	keyHash  map[string]string    // key id -> hash, to drop on change
	unknown  map[string]time.Time // hashes known not to exist
	keyEpoch uint64               // bumped on every key change; stale loads are not cached
}

type cachedKey struct {
	key      *store.Key
	loadedAt time.Time
}

const (
	keyTTL        = 5 * time.Minute // belt and braces: notifications are the real invalidation
	unknownTTL    = 5 * time.Second
	maxUnknownMap = 10000
)

// NewCache makes an empty cache; Load fills it.
func NewCache(st *store.Store, log *slog.Logger) *Cache {
	c := &Cache{st: st, log: log}
	c.resetKeys()
	c.catalog.Store(&catalog{deployments: map[string][]*Deployment{}, teams: map[string]*store.Team{},
		users: map[string]*store.User{}, budgets: map[string]*store.Budget{}, global: &store.GlobalBudget{}})
	return c
}

// resetKeys makes every cached key due for a fresh lookup, after a
// (re)connection that may have missed notifications. The entries stay, so
// that a lookup failing while PostgreSQL is still settling serves them, as
// any other failed refresh does.
func (c *Cache) resetKeys() {
	c.mu.Lock()
	if c.keys == nil {
		c.keys, c.keyHash = map[string]cachedKey{}, map[string]string{}
	}
	for hash, ck := range c.keys {
		ck.loadedAt = time.Time{}
		c.keys[hash] = ck
	}
	c.unknown = map[string]time.Time{}
	c.keyEpoch++
	c.mu.Unlock()
}

// Load reads providers, models and teams into a fresh snapshot.
func (c *Cache) Load(ctx context.Context) error {
	providers, err := c.st.AllProviders(ctx)
	if err != nil {
		return err
	}
	models, err := c.st.AllModels(ctx)
	if err != nil {
		return err
	}
	teams, err := c.st.AllTeams(ctx)
	if err != nil {
		return err
	}
	users, err := c.st.AllUsers(ctx)
	if err != nil {
		return err
	}
	budgets, err := c.st.AllBudgets(ctx)
	if err != nil {
		return err
	}
	global, err := c.st.GetGlobalBudget(ctx)
	if err != nil {
		return err
	}
	groups, err := c.st.AllModelGroups(ctx)
	if err != nil {
		return err
	}
	aliases, err := c.st.AllModelAliases(ctx)
	if err != nil {
		return err
	}
	health, err := c.st.AllHealth(ctx)
	if err != nil {
		return err
	}
	defs, err := c.st.AllGuardrails(ctx)
	if err != nil {
		return err
	}
	byID := map[string]*store.Provider{}
	keys := map[string]string{}
	for i := range providers {
		p := &providers[i]
		byID[p.ID] = p
		if keys[p.ID], err = c.st.ProviderAPIKey(p); err != nil {
			c.log.Error("provider credential unusable; its models are skipped", "provider", p.Name, "err", err)
			delete(byID, p.ID)
		}
	}
	cat := &catalog{deployments: map[string][]*Deployment{}, teams: map[string]*store.Team{},
		users: map[string]*store.User{}, budgets: map[string]*store.Budget{}, global: global,
		groups: map[string]*store.ModelGroup{}, aliases: map[string]string{}, unhealthy: map[string]bool{},
		guardByName: map[string]*guardrails.Rule{}}
	for _, g := range defs {
		// The admin API refuses definitions that do not compile; one that
		// got in anyway (an older gateway's rules) is left out, not fatal.
		r, err := guardrails.Compile(g)
		if err != nil {
			c.log.Error("guardrail does not compile; it is skipped", "guardrail", g.Name, "err", err)
			continue
		}
		cat.guardrails = append(cat.guardrails, r)
		cat.guardByName[r.Name] = r
	}
	for id, h := range health {
		if !h.Healthy {
			cat.unhealthy[id] = true
		}
	}
	for i := range groups {
		cat.groups[groups[i].ModelName] = &groups[i]
	}
	for _, a := range aliases {
		cat.aliases[a.Alias] = a.ModelName
	}
	for i := range models {
		m := models[i]
		p, ok := byID[m.ProviderID]
		if !ok || !m.Enabled {
			continue
		}
		cat.deployments[m.ModelName] = append(cat.deployments[m.ModelName], &Deployment{Model: m, Provider: p, APIKey: keys[p.ID]})
	}
	for name := range cat.deployments {
		cat.modelNames = append(cat.modelNames, name)
	}
	slices.Sort(cat.modelNames)
	for i := range teams {
		cat.teams[teams[i].ID] = &teams[i]
	}
	for i := range users {
		cat.users[users[i].ID] = &users[i]
	}
	for i := range budgets {
		cat.budgets[budgets[i].ID] = &budgets[i]
	}
	c.catalog.Store(cat)
	return nil
}

// Deployments returns the enabled deployments of a public model name.
func (c *Cache) Deployments(model string) []*Deployment {
	return c.catalog.Load().deployments[model]
}

// Profile returns a budget profile by id; nil when id is nil or unknown.
func (c *Cache) Profile(id *string) *store.Budget {
	if id == nil {
		return nil
	}
	return c.catalog.Load().budgets[*id]
}

// User returns a user by id; nil when id is nil or unknown.
func (c *Cache) User(id *string) *store.User {
	if id == nil {
		return nil
	}
	return c.catalog.Load().users[*id]
}

// Unhealthy reports whether a deployment's last health probe failed.
func (c *Cache) Unhealthy(id string) bool { return c.catalog.Load().unhealthy[id] }

// Group returns a model's routing settings; nil means by weight, no fallbacks.
func (c *Cache) Group(model string) *store.ModelGroup { return c.catalog.Load().groups[model] }

// Resolve turns an alias into its model name; other names are returned as they are.
func (c *Cache) Resolve(model string) string {
	if m, ok := c.catalog.Load().aliases[model]; ok {
		return m
	}
	return model
}

// Guardrails returns every guardrail that compiled, enabled or not, by name.
func (c *Cache) Guardrails() []*guardrails.Rule { return c.catalog.Load().guardrails }

// Guardrail returns a guardrail by name; nil when there is none.
func (c *Cache) Guardrail(name string) *guardrails.Rule { return c.catalog.Load().guardByName[name] }

// Global returns the global budget.
func (c *Cache) Global() *store.GlobalBudget { return c.catalog.Load().global }

// ModelNames returns the public model names that have a deployment.
func (c *Cache) ModelNames() []string { return c.catalog.Load().modelNames }

// Team returns a team by id. A team newer than the snapshot (its NOTIFY
// still on the way) is read from the store; nil means it does not exist.
func (c *Cache) Team(ctx context.Context, id string) (*store.Team, error) {
	if t := c.catalog.Load().teams[id]; t != nil {
		return t, nil
	}
	t, err := c.st.GetTeam(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return t, err
}

// errUnknownKey means no key has this hash.
var errUnknownKey = errors.New("unknown key")

// Key finds the key with this hash, from memory when it can.
func (c *Cache) Key(ctx context.Context, hash string) (*store.Key, error) {
	now := time.Now()
	c.mu.RLock()
	ck, hit := c.keys[hash]
	missAt, known := c.unknown[hash]
	epoch := c.keyEpoch
	c.mu.RUnlock()
	if hit && now.Sub(ck.loadedAt) < keyTTL {
		return ck.key, nil
	}
	if known && now.Sub(missAt) < unknownTTL {
		return nil, errUnknownKey
	}
	k, err := c.st.KeyByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		c.mu.Lock()
		if hit {
			delete(c.keys, hash) // deleted while notifications were missed
		}
		if c.keyEpoch == epoch {
			if len(c.unknown) >= maxUnknownMap {
				c.unknown = map[string]time.Time{}
			}
			c.unknown[hash] = now
		}
		c.mu.Unlock()
		return nil, errUnknownKey
	}
	if err != nil {
		if hit {
			// PostgreSQL is away: a key we knew keeps working (changes to it
			// arrive by notification once the database is back).
			return ck.key, nil
		}
		return nil, fmt.Errorf("look up key: %w", err)
	}
	c.mu.Lock()
	// A change that arrived while we read may make this row stale.
	if c.keyEpoch == epoch {
		c.keys[hash] = cachedKey{key: k, loadedAt: now}
		c.keyHash[k.ID] = hash
	}
	c.mu.Unlock()
	return k, nil
}

// apply reacts to one announced change.
func (c *Cache) apply(ctx context.Context, ch store.Change) {
	if ch.Table == "keys" {
		c.mu.Lock()
		if hash, ok := c.keyHash[ch.ID]; ok {
			delete(c.keys, hash)
			delete(c.keyHash, ch.ID)
		}
		// A new or regenerated key may have been looked up as unknown.
		clear(c.unknown)
		c.keyEpoch++
		c.mu.Unlock()
		return
	}
	if err := c.Load(ctx); err != nil {
		c.log.Error("reload catalog after change", "table", ch.Table, "err", err)
	}
}

// resync drops everything after a (re)connection: notifications may have
// been missed.
func (c *Cache) resync(ctx context.Context) {
	c.resetKeys()
	if err := c.Load(ctx); err != nil {
		c.log.Error("reload catalog", "err", err)
	}
}

// Run listens for changes until ctx ends, reconnecting as needed.
func (c *Cache) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.st.ListenChanges(ctx,
			func(ch store.Change) { c.apply(ctx, ch) },
			func() { c.resync(ctx) })
		if err != nil && ctx.Err() == nil {
			c.log.Error("listen for changes; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}
