package store

import (
	"context"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// ProviderInput is what callers send: the spec plus the write-only API key
// (nil keeps the stored key, "" removes it).
type ProviderInput struct {
	ProviderSpec
	APIKey *string `json:"api_key"`
}

func (s *Store) sealInto(p *Provider, apiKey *string) error {
	return s.sealSecret("provider API key", apiKey, &p.APIKeySealed, &p.APIKeyHint)
}

// ProviderAPIKey decrypts a provider's API key for an upstream call.
func (s *Store) ProviderAPIKey(p *Provider) (string, error) {
	return s.openSecret("provider "+p.Name+" API key", p.APIKeySealed)
}

// sealSecret seals a write-only secret into sealed and hint: nil keeps
// what is stored, "" removes it.
func (s *Store) sealSecret(what string, secret *string, sealed *[]byte, hint *string) error {
	if secret == nil {
		return nil
	}
	if *secret == "" {
		*sealed, *hint = nil, ""
		return nil
	}
	if s.sealer == nil {
		return fmt.Errorf("cannot store a %s: TOLLGATE_SECRET_KEY is not set", what)
	}
	b, err := s.sealer.Seal(*secret)
	if err != nil {
		return fmt.Errorf("seal %s: %w", what, err)
	}
	*sealed, *hint = b, SecretHint(*secret)
	return nil
}

// openSecret decrypts a sealed secret; none sealed is "".
func (s *Store) openSecret(what string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	if s.sealer == nil {
		return "", fmt.Errorf("the %s is sealed but TOLLGATE_SECRET_KEY is not set", what)
	}
	return s.sealer.Open(sealed)
}

func fillProvider(p *Provider) *Provider {
	p.HasAPIKey = len(p.APIKeySealed) > 0
	return p
}

// CreateProvider stores a new provider credential.
func (s *Store) CreateProvider(ctx context.Context, actor string, in ProviderInput) (*Provider, error) {
	if err := in.ProviderSpec.Normalize(); err != nil {
		return nil, err
	}
	p := &Provider{ProviderSpec: in.ProviderSpec}
	if err := s.sealInto(p, in.APIKey); err != nil {
		return nil, err
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, p, `
			INSERT INTO providers (name, type, api_base, api_key_enc, api_key_hint, config)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
			p.Name, p.Type, p.APIBase, p.APIKeySealed, p.APIKeyHint, p.Config)
		if err != nil {
			return mapErr(err, fmt.Sprintf("provider %q", in.Name))
		}
		return audit(ctx, tx, actor, "provider.create", "provider", p.ID, nil, fillProvider(p))
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// GetProvider reads one provider.
func (s *Store) GetProvider(ctx context.Context, id string) (*Provider, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("provider %s: %w", id, ErrNotFound)
	}
	var p Provider
	if err := s.db.GetContext(ctx, &p, `SELECT * FROM providers WHERE id = $1`, id); err != nil {
		return nil, mapErr(err, "provider "+id)
	}
	return fillProvider(&p), nil
}

// ProviderByName reads one provider by its unique name.
func (s *Store) ProviderByName(ctx context.Context, name string) (*Provider, error) {
	var p Provider
	if err := s.db.GetContext(ctx, &p, `SELECT * FROM providers WHERE name = $1`, name); err != nil {
		return nil, mapErr(err, fmt.Sprintf("provider %q", name))
	}
	return fillProvider(&p), nil
}

// ListProviders returns a page of providers.
func (s *Store) ListProviders(ctx context.Context, page Page) ([]Provider, string, error) {
	rows, next, err := listPage[Provider](ctx, s, `SELECT * FROM providers`, "created_at", "id", query{}, page)
	if err != nil {
		return nil, "", fmt.Errorf("list providers: %w", err)
	}
	for i := range rows {
		fillProvider(&rows[i])
	}
	return rows, next, nil
}

// AllProviders returns every provider, for the gateway's cache.
func (s *Store) AllProviders(ctx context.Context) ([]Provider, error) {
	rows := []Provider{}
	if err := s.db.SelectContext(ctx, &rows, `SELECT * FROM providers`); err != nil {
		return nil, fmt.Errorf("load providers: %w", err)
	}
	for i := range rows {
		fillProvider(&rows[i])
	}
	return rows, nil
}

// UpdateProvider applies change to the stored provider and saves it.
func (s *Store) UpdateProvider(ctx context.Context, actor, id string, change func(*ProviderInput) error) (*Provider, error) {
	if !isUUID(id) {
		return nil, fmt.Errorf("provider %s: %w", id, ErrNotFound)
	}
	var p Provider
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &p, `SELECT * FROM providers WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "provider "+id)
		}
		before := *fillProvider(&p)
		in := ProviderInput{ProviderSpec: p.ProviderSpec}
		if err := change(&in); err != nil {
			return err
		}
		if err := in.ProviderSpec.Normalize(); err != nil {
			return err
		}
		p.ProviderSpec = in.ProviderSpec
		if err := s.sealInto(&p, in.APIKey); err != nil {
			return err
		}
		err := tx.GetContext(ctx, &p, `
			UPDATE providers SET name = $2, type = $3, api_base = $4, api_key_enc = $5, api_key_hint = $6, config = $7, updated_at = now()
			WHERE id = $1 RETURNING *`,
			id, p.Name, p.Type, p.APIBase, p.APIKeySealed, p.APIKeyHint, p.Config)
		if err != nil {
			return mapErr(err, fmt.Sprintf("provider %q", p.Name))
		}
		return audit(ctx, tx, actor, "provider.update", "provider", id, before, fillProvider(&p))
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteProvider removes a provider that no model uses.
func (s *Store) DeleteProvider(ctx context.Context, actor, id string) error {
	if !isUUID(id) {
		return fmt.Errorf("provider %s: %w", id, ErrNotFound)
	}
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var p Provider
		if err := tx.GetContext(ctx, &p, `SELECT * FROM providers WHERE id = $1 FOR UPDATE`, id); err != nil {
			return mapErr(err, "provider "+id)
		}
		var used int
		if err := tx.GetContext(ctx, &used, `SELECT count(*) FROM models WHERE provider_id = $1`, id); err != nil {
			return fmt.Errorf("count models of provider: %w", err)
		}
		if used > 0 {
			return &ConflictError{Message: fmt.Sprintf("provider %q is used by %d model(s); delete those models or move them to another provider first", p.Name, used)}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM providers WHERE id = $1`, id); err != nil {
			return mapErr(err, "provider "+id)
		}
		return audit(ctx, tx, actor, "provider.delete", "provider", id, fillProvider(&p), nil)
	})
}
