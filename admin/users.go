package admin

import (
	"net/http"

	"tollgate/store"
)

// me answers who the caller is: their user record with their teams.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p := principalFrom(r.Context())
	if p.UserID == "" {
		writeProblem(w, http.StatusNotFound, "not_found", "You are calling with the master key or an ownerless key, which belongs to no user.")
		return
	}
	u, err := s.st.GetUser(r.Context(), p.UserID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// blockUser blocks or unblocks a user; blocking ends their sessions.
func (s *Server) blockUser(blocked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := s.setBlocked(r, blocked)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, u)
	}
}

// setBlocked applies a block or unblock by the caller, who may not block
// themselves out.
func (s *Server) setBlocked(r *http.Request, blocked bool) (*store.User, error) {
	p := principalFrom(r.Context())
	if blocked && p.UserID != "" && p.UserID == pathID(r) {
		return nil, &errForbidden{"You cannot block yourself; ask another admin."}
	}
	return s.st.SetUserBlocked(r.Context(), p.Actor, pathID(r), blocked)
}
