package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"tollgate/store"
)

// DeclaredSink is a billing sink set by environment variables. It is
// created or updated at every start, so the environment stays the truth
// for what it sets; sinks made in the dashboard are left alone.
type DeclaredSink struct {
	Name   string
	Type   string
	URL    string
	Secret string
	Config map[string]string
}

// sinksFromEnv reads the sinks the environment declares.
func sinksFromEnv(e *env) []DeclaredSink {
	var out []DeclaredSink
	if key := e.str("TOLLGATE_AMBERFLO_API_KEY", ""); key != "" {
		cfg := map[string]string{}
		if m := e.str("TOLLGATE_AMBERFLO_COST_METER", ""); m != "" {
			cfg["cost_meter"] = m
		}
		out = append(out, DeclaredSink{Name: "amberflo", Type: "amberflo", URL: e.str("TOLLGATE_AMBERFLO_URL", ""), Secret: key, Config: cfg})
	}
	if u := e.str("TOLLGATE_OPENMETER_URL", ""); u != "" || e.str("TOLLGATE_OPENMETER_TOKEN", "") != "" {
		out = append(out, DeclaredSink{Name: "openmeter", Type: "openmeter", URL: u, Secret: e.str("TOLLGATE_OPENMETER_TOKEN", "")})
	}
	if key := e.str("TOLLGATE_STRIPE_API_KEY", ""); key != "" {
		cfg := map[string]string{}
		if n := e.str("TOLLGATE_STRIPE_EVENT_NAME", ""); n != "" {
			cfg["event_name"] = n
		}
		out = append(out, DeclaredSink{Name: "stripe", Type: "stripe", URL: e.str("TOLLGATE_STRIPE_URL", ""), Secret: key, Config: cfg})
	}
	if u := e.str("TOLLGATE_BILLING_WEBHOOK_URL", ""); u != "" {
		out = append(out, DeclaredSink{Name: "webhook", Type: "webhook", URL: u, Secret: e.str("TOLLGATE_BILLING_WEBHOOK_SECRET", "")})
	}
	return out
}

// ApplySinks creates or updates the declared sinks, once across replicas.
func ApplySinks(ctx context.Context, st *store.Store, sinks []DeclaredSink, log *slog.Logger) error {
	if len(sinks) == 0 {
		return nil
	}
	return st.Exclusive(ctx, "declared-sinks", func() error {
		for _, d := range sinks {
			cfg, _ := json.Marshal(d.Config)
			secret := d.Secret
			existing, err := st.SinkByName(ctx, d.Name)
			switch {
			case errors.Is(err, store.ErrNotFound):
				if _, err := st.CreateSink(ctx, actor, store.SinkInput{
					SinkSpec: store.SinkSpec{Name: d.Name, Type: d.Type, URL: d.URL, Config: cfg, Enabled: true}, Secret: &secret}); err != nil {
					return fmt.Errorf("billing sink %s: %w", d.Name, err)
				}
				log.Info("billing sink declared", "sink", d.Name, "type", d.Type)
			case err != nil:
				return err
			case unchanged(st, existing, d, cfg):
			default:
				if _, err := st.UpdateSink(ctx, actor, existing.ID, func(in *store.SinkInput) error {
					in.Type, in.URL, in.Secret = d.Type, d.URL, &secret
					if len(d.Config) > 0 {
						in.Config = cfg
					}
					return nil
				}); err != nil {
					return fmt.Errorf("billing sink %s: %w", d.Name, err)
				}
			}
		}
		return nil
	})
}

// unchanged spares the audit log an update at every start.
func unchanged(st *store.Store, s *store.Sink, d DeclaredSink, cfg []byte) bool {
	spec := store.SinkSpec{Name: d.Name, Type: d.Type, URL: d.URL}
	if spec.Normalize() != nil || spec.Type != s.Type || spec.URL != s.URL {
		return false
	}
	secret, err := st.SinkSecret(s)
	if err != nil || secret != d.Secret {
		return false
	}
	return len(d.Config) == 0 || jsonEqual(json.RawMessage(cfg), json.RawMessage(s.Config))
}
