package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"tollgate/store"
)

// keyInput is a new key: its fields, and a lifetime as an alternative to
// expires_at.
type keyInput struct {
	store.KeySpec
	Duration string `json:"duration"`
}

// keyWithSecret is the one answer that carries a key's secret.
type keyWithSecret struct {
	*store.Key
	Secret string `json:"key"`
}

func (s *Server) keyRoutes(r *mux.Router) {
	register(s, r, "/keys", resource[store.KeySpec, store.Key]{
		get: s.st.GetKey,
		list: func(r *http.Request, page store.Page) ([]store.Key, string, error) {
			q := r.URL.Query()
			f := store.KeyFilter{TeamID: q.Get("team_id"), UserID: q.Get("user_id"), Page: page}
			if p := principalFrom(r.Context()); p.Role == store.RoleMember {
				f.UserID = p.UserID // members see their own keys only
			}
			return s.st.ListKeys(r.Context(), f)
		},
		update:  s.updateKey,
		remove:  s.st.DeleteKey,
		visible: func(p *principal, k *store.Key) bool { return p.seesKey(k) },
	})
	r.HandleFunc("/keys", s.createKey).Methods(http.MethodPost).Name("keys.create")
	r.HandleFunc("/keys/{id}/block", s.blockKey(true)).Methods(http.MethodPost).Name("keys.block")
	r.HandleFunc("/keys/{id}/unblock", s.blockKey(false)).Methods(http.MethodPost).Name("keys.unblock")
	r.HandleFunc("/keys/{id}/regenerate", s.regenerateKey).Methods(http.MethodPost).Name("keys.regenerate")
}

// keyRefusal is a member's key outside their team's rules: a 403 that
// names the field, so the dashboard shows it next to that field.
type keyRefusal struct {
	field string
	*errForbidden
}

func (e *keyRefusal) Unwrap() error { return e.errForbidden }

func refuseKey(field, format string, args ...any) error {
	return &keyRefusal{field: field, errForbidden: &errForbidden{fmt.Sprintf(format, args...)}}
}

// memberKeyRules holds a member's key to their team's rules: owned by them,
// in one of their teams, for models that team allows, within the team's
// caps on member keys, and never of type management. A capped field left
// empty takes the cap, so a member's key is never unbounded where the team
// set a bound. team is the team k names (nil when it names none or one that
// does not exist); before is the key as stored, nil for a new key. On a
// change only what changes is held to the rules, so a key an admin made
// beyond them stays editable. Admins and finance users are not bound. The
// API and the dashboard both call this.
func memberKeyRules(p *principal, team *store.Team, before, k *store.KeySpec) error {
	if p.Role != store.RoleMember {
		return nil
	}
	if k.UserID == nil || *k.UserID != p.UserID {
		return &errForbidden{"Members may only hold keys of their own (user_id must be yours)."}
	}
	if k.KeyType == store.KeyTypeManagement && (before == nil || before.KeyType != store.KeyTypeManagement) {
		return &errForbidden{"Members may not create management keys."}
	}
	fresh := before == nil || !sameValue(before.TeamID, k.TeamID) // new to its team: every rule applies
	switch {
	case k.TeamID == nil && fresh:
		return &store.ValidationError{Field: "team_id", Message: "team_id is required: members create keys for one of their own teams"}
	case k.TeamID == nil:
		return nil // a key an admin made outside any team; no team rules to hold it to
	case fresh && !p.inTeam(*k.TeamID):
		name := *k.TeamID
		if team != nil {
			name = team.Name
		}
		return refuseKey("team_id", "You are not a member of team %s; members create keys only for their own teams.", name)
	case team == nil:
		return &store.ValidationError{Field: "team_id", Message: fmt.Sprintf("team_id %s does not name an existing team", *k.TeamID)}
	}
	if fresh || !slices.Equal(before.Models, k.Models) {
		if !store.Unrestricted(team.Models) && !store.Unrestricted(k.Models) {
			for _, m := range k.Models {
				if !slices.Contains(team.Models, m) {
					return refuseKey("models", "Model %s is not allowed for team %s (its models: %s); members create keys only for their team's models.",
						m, team.Name, strings.Join(team.Models, ", "))
				}
			}
		}
	}
	caps := team.MemberKeyCaps
	var was store.KeySpec
	if before != nil {
		was = *before
	}
	return firstRefusal(
		withinCap("max_budget", &k.MaxBudget, was.MaxBudget, caps.MaxBudget, fresh, team.Name),
		withinPeriod(&k.BudgetDuration, was.BudgetDuration, caps.BudgetDuration, fresh, team.Name),
		withinCap("rpm_limit", &k.RPMLimit, was.RPMLimit, caps.RPMLimit, fresh, team.Name),
		withinCap("tpm_limit", &k.TPMLimit, was.TPMLimit, caps.TPMLimit, fresh, team.Name),
		withinCap("max_parallel_requests", &k.MaxParallelRequests, was.MaxParallelRequests, caps.MaxParallelRequests, fresh, team.Name),
	)
}

// withinCap fills an empty field with the team's cap and refuses a value
// above it. A change that leaves the field as it was, or lowers a bound an
// admin set above the cap, passes.
func withinCap[T int64 | float64](field string, v **T, was, limit *T, fresh bool, team string) error {
	if limit == nil || (!fresh && sameValue(*v, was)) {
		return nil
	}
	if *v == nil {
		c := *limit
		*v = &c
		return nil
	}
	lowered := !fresh && (was == nil || **v <= *was)
	if **v > *limit && !lowered {
		return refuseKey(field, "%s %v is above team %s's cap for member keys (%v). Leave it empty to take the cap, or ask an admin to raise it.",
			field, **v, team, *limit)
	}
	return nil
}

// withinPeriod holds a key's budget period to the one the team sets for
// member keys, filling it in when empty.
func withinPeriod(v **string, was, period *string, fresh bool, team string) error {
	if period == nil || (!fresh && sameValue(*v, was)) {
		return nil
	}
	if *v == nil {
		c := *period
		*v = &c
		return nil
	}
	if **v != *period {
		return refuseKey("budget_duration", "budget_duration %s is not team %s's period for member keys (%s). Leave it empty to take it.",
			**v, team, *period)
	}
	return nil
}

// firstRefusal is the first refusal of checks that all ran; fields they
// filled after a refused one do not matter, as a refusal writes nothing.
func firstRefusal(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func sameValue[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// keyTeam is the team a key names, for memberKeyRules: nil when it names
// none or one that does not exist (the store refuses that later).
func (s *Server) keyTeam(ctx context.Context, k *store.KeySpec) (*store.Team, error) {
	if k.TeamID == nil || !store.IsID(*k.TeamID) {
		return nil, nil
	}
	t, err := s.st.GetTeam(ctx, *k.TeamID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load team of key: %w", err)
	}
	return t, nil
}

// vetKey applies memberKeyRules to a key about to be written.
func (s *Server) vetKey(ctx context.Context, p *principal, before, k *store.KeySpec) error {
	if p.Role != store.RoleMember {
		return nil
	}
	team, err := s.keyTeam(ctx, k)
	if err != nil {
		return err
	}
	return memberKeyRules(p, team, before, k)
}

// updateKey applies a change, holding a member's to their team's rules.
// The member's change is first tried on a copy to learn the team, which is
// loaded before the key is locked: the check then needs no second
// connection while the transaction holds one.
func (s *Server) updateKey(ctx context.Context, actor, id string, change func(*store.KeySpec) error) (*store.Key, error) {
	p := principalFrom(ctx)
	if p.Role != store.RoleMember {
		return s.st.UpdateKey(ctx, actor, id, change)
	}
	cur, err := s.st.GetKey(ctx, id)
	if err != nil {
		return nil, err
	}
	preview := cur.KeySpec.Clone()
	if err := change(&preview); err != nil {
		return nil, err
	}
	team, err := s.keyTeam(ctx, &preview)
	if err != nil {
		return nil, err
	}
	return s.st.UpdateKey(ctx, actor, id, func(spec *store.KeySpec) error {
		before := spec.Clone()
		if err := change(spec); err != nil {
			return err
		}
		if !sameValue(spec.TeamID, preview.TeamID) {
			return &store.ConflictError{Message: "the key was changed by someone else meanwhile; try again"}
		}
		return memberKeyRules(p, team, &before, spec)
	})
}

// ownKey answers 404 unless the caller may see the key in the path.
func (s *Server) ownKey(r *http.Request) error {
	k, err := s.st.GetKey(r.Context(), pathID(r))
	if err != nil {
		return err
	}
	if !principalFrom(r.Context()).seesKey(k) {
		return fmt.Errorf("key %s: %w", pathID(r), store.ErrNotFound)
	}
	return nil
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var in keyInput
	p := principalFrom(r.Context())
	err := decodeBody(r, &in)
	if err == nil {
		if p.Role == store.RoleMember && in.UserID == nil {
			in.UserID = &p.UserID // a member's new key is theirs
		}
		err = s.vetKey(r.Context(), p, nil, &in.KeySpec)
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if in.Duration != "" {
		if in.ExpiresAt != nil {
			s.writeErr(w, r, &store.ValidationError{Field: "duration", Message: "give either expires_at or duration, not both"})
			return
		}
		d, err := store.ParseDuration(in.Duration)
		if err != nil {
			s.writeErr(w, r, &store.ValidationError{Field: "duration", Message: err.Error()})
			return
		}
		at := time.Now().Add(d).UTC()
		in.ExpiresAt = &at
	}
	key, secret, err := s.st.CreateKey(r.Context(), p.Actor, in.KeySpec, "")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, keyWithSecret{Key: key, Secret: secret})
}

func (s *Server) blockKey(blocked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.ownKey(r); err != nil {
			s.writeErr(w, r, err)
			return
		}
		key, err := s.st.SetKeyBlocked(r.Context(), principalFrom(r.Context()).Actor, pathID(r), blocked)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, key)
	}
}

func (s *Server) regenerateKey(w http.ResponseWriter, r *http.Request) {
	if err := s.ownKey(r); err != nil {
		s.writeErr(w, r, err)
		return
	}
	key, secret, err := s.st.RegenerateKey(r.Context(), principalFrom(r.Context()).Actor, pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, keyWithSecret{Key: key, Secret: secret})
}
