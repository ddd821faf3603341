package admin

import (
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
			return s.st.ListKeys(r.Context(), store.KeyFilter{TeamID: q.Get("team_id"), UserID: q.Get("user_id"), Page: page})
		},
		update: s.st.UpdateKey,
		remove: s.st.DeleteKey,
	})
	r.HandleFunc("/keys", s.createKey).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}/block", s.blockKey(true)).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}/unblock", s.blockKey(false)).Methods(http.MethodPost)
	r.HandleFunc("/keys/{id}/regenerate", s.regenerateKey).Methods(http.MethodPost)
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var in keyInput
	if err := decodeBody(r, &in); err != nil {
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
	key, secret, err := s.st.CreateKey(r.Context(), masterActor, in.KeySpec, "")
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, keyWithSecret{Key: key, Secret: secret})
}

func (s *Server) blockKey(blocked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, err := s.st.SetKeyBlocked(r.Context(), masterActor, pathID(r), blocked)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, key)
	}
}

func (s *Server) regenerateKey(w http.ResponseWriter, r *http.Request) {
	key, secret, err := s.st.RegenerateKey(r.Context(), masterActor, pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, keyWithSecret{Key: key, Secret: secret})
}
