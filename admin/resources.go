package admin

import (
	"context"
	"net/http"

	"github.com/gorilla/mux"

	"tollgate/store"
)

// resource wires the five CRUD endpoints of one kind of record to the
// store. In is what callers write, Out what they read back.
type resource[In, Out any] struct {
	defaults func() In // a new record before the caller's fields are applied
	create   func(ctx context.Context, actor string, in In) (*Out, error)
	get      func(ctx context.Context, id string) (*Out, error)
	list     func(r *http.Request, page store.Page) ([]Out, string, error)
	update   func(ctx context.Context, actor, id string, change func(*In) error) (*Out, error)
	remove   func(ctx context.Context, actor, id string) error
}

func register[In, Out any](s *Server, r *mux.Router, path string, res resource[In, Out]) {
	item := path + "/{id}"
	if res.create != nil {
		r.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			in := res.defaults()
			if err := decodeBody(r, &in); err != nil {
				s.writeErr(w, r, err)
				return
			}
			out, err := res.create(r.Context(), masterActor, in)
			if err != nil {
				s.writeErr(w, r, err)
				return
			}
			writeJSON(w, http.StatusCreated, out)
		}).Methods(http.MethodPost)
	}
	r.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		page, err := pageOf(r)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		rows, next, err := res.list(r, page)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeList(w, rows, next)
	}).Methods(http.MethodGet)
	r.HandleFunc(item, func(w http.ResponseWriter, r *http.Request) {
		out, err := res.get(r.Context(), pathID(r))
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}).Methods(http.MethodGet)
	r.HandleFunc(item, func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		out, err := res.update(r.Context(), masterActor, pathID(r), func(in *In) error { return decodeInto(body, in) })
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}).Methods(http.MethodPatch)
	r.HandleFunc(item, func(w http.ResponseWriter, r *http.Request) {
		if err := res.remove(r.Context(), masterActor, pathID(r)); err != nil {
			s.writeErr(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}).Methods(http.MethodDelete)
}

func (s *Server) providerRoutes(r *mux.Router) {
	register(s, r, "/providers", resource[store.ProviderInput, store.Provider]{
		defaults: func() store.ProviderInput { return store.ProviderInput{} },
		create:   s.st.CreateProvider,
		get:      s.st.GetProvider,
		list: func(r *http.Request, page store.Page) ([]store.Provider, string, error) {
			return s.st.ListProviders(r.Context(), page)
		},
		update: s.st.UpdateProvider,
		remove: s.st.DeleteProvider,
	})
}

func (s *Server) modelRoutes(r *mux.Router) {
	register(s, r, "/models", resource[store.ModelSpec, store.Model]{
		defaults: func() store.ModelSpec { return store.ModelSpec{Weight: 1, Enabled: true} },
		create:   s.st.CreateModel,
		get:      s.st.GetModel,
		list: func(r *http.Request, page store.Page) ([]store.Model, string, error) {
			q := r.URL.Query()
			return s.st.ListModels(r.Context(), store.ModelFilter{ModelName: q.Get("model_name"), ProviderID: q.Get("provider_id"), Page: page})
		},
		update: s.st.UpdateModel,
		remove: s.st.DeleteModel,
	})
}

func (s *Server) teamRoutes(r *mux.Router) {
	register(s, r, "/teams", resource[store.TeamSpec, store.Team]{
		defaults: func() store.TeamSpec { return store.TeamSpec{} },
		create:   s.st.CreateTeam,
		get:      s.st.GetTeam,
		list: func(r *http.Request, page store.Page) ([]store.Team, string, error) {
			return s.st.ListTeams(r.Context(), page)
		},
		update: s.st.UpdateTeam,
		remove: s.st.DeleteTeam,
	})
	r.HandleFunc("/teams/{id}/members", s.listMembers).Methods(http.MethodGet)
	r.HandleFunc("/teams/{id}/members", s.addMember).Methods(http.MethodPost)
	r.HandleFunc("/teams/{id}/members/{user_id}", s.removeMember).Methods(http.MethodDelete)
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request) {
	users, err := s.st.TeamMembers(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeList(w, users, "")
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID string `json:"user_id"`
	}
	if err := decodeBody(r, &in); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.st.AddTeamMember(r.Context(), masterActor, pathID(r), in.UserID); err != nil {
		s.writeErr(w, r, err)
		return
	}
	users, err := s.st.TeamMembers(r.Context(), pathID(r))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, listResponse[store.User]{Data: users})
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request) {
	if err := s.st.RemoveTeamMember(r.Context(), masterActor, pathID(r), mux.Vars(r)["user_id"]); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) userRoutes(r *mux.Router) {
	register(s, r, "/users", resource[store.UserInput, store.User]{
		defaults: func() store.UserInput { return store.UserInput{} },
		create:   s.st.CreateUser,
		get:      s.st.GetUser,
		list: func(r *http.Request, page store.Page) ([]store.User, string, error) {
			return s.st.ListUsers(r.Context(), page)
		},
		update: s.st.UpdateUser,
		remove: s.st.DeleteUser,
	})
}
