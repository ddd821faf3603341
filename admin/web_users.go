package admin

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"tollgate/views"
)

// userAccessPages are the users page's block and unblock buttons.
func (s *Server) userAccessPages(r *mux.Router) {
	r.HandleFunc("/users/{id}/block", s.blockUserForm(true)).Methods(http.MethodPost)
	r.HandleFunc("/users/{id}/unblock", s.blockUserForm(false)).Methods(http.MethodPost)
}

func (s *Server) blockUserForm(blocked bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !adminOnly(w, r, "users") {
			return
		}
		u, err := s.setBlocked(r, blocked)
		if err != nil {
			msg, err := userMessage(err)
			var ferr *errForbidden
			switch {
			case errors.As(err, &ferr):
				refuse(w, ferr.msg)
			case err != nil:
				s.writeErr(w, r, err)
			default:
				refuse(w, msg)
			}
			return
		}
		v, err := s.usersView(r, views.UserForm{})
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if blocked {
			toast(w, "success", u.Email+" is blocked: their sessions have ended")
		} else {
			toast(w, "success", u.Email+" is unblocked")
		}
		render(w, r, http.StatusOK, views.UsersList(v.Rows, true, false))
	}
}
