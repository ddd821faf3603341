package admin

import (
	"fmt"
	"net/http"
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
		update:  s.st.UpdateKey,
		remove:  s.st.DeleteKey,
		visible: func(p *principal, k *store.Key) bool { return p.seesKey(k) },
		check:   memberKeyRules,
	})
	r.HandleFunc("/keys", s.createKey).Methods(http.MethodPost).Name("keys.create")
	r.HandleFunc("/keys/{id}/block", s.blockKey(true)).Methods(http.MethodPost).Name("keys.block")
	r.HandleFunc("/keys/{id}/unblock", s.blockKey(false)).Methods(http.MethodPost).Name("keys.unblock")
	r.HandleFunc("/keys/{id}/regenerate", s.regenerateKey).Methods(http.MethodPost).Name("keys.regenerate")
}

// memberKeyRules keeps a member's keys theirs: owned by them, in one of
// their teams, and never of type management.
func memberKeyRules(p *principal, k *store.KeySpec) error {
	if p.Role != store.RoleMember {
		return nil
	}
	if k.UserID == nil || *k.UserID != p.UserID {
		return &errForbidden{"Members may only hold keys of their own (user_id must be yours)."}
	}
	if k.TeamID == nil || !p.inTeam(*k.TeamID) {
		return &store.ValidationError{Field: "team_id", Message: "team_id must be one of your teams"}
	}
	if k.KeyType == store.KeyTypeManagement {
		return &errForbidden{"Members may not create management keys."}
	}
	return nil
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
		err = memberKeyRules(p, &in.KeySpec)
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
