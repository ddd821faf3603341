package admin

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"tollgate/config"
	"tollgate/store"
)

// resource wires the five CRUD endpoints of one kind of record to the
// store. In is what callers write, Out what they read back. Routes are
// named "<path>.<verb>" (keys.create …) for the role checks.
type resource[In, Out any] struct {
	defaults func() In // a new record before the caller's fields are applied
	create   func(ctx context.Context, actor string, in In) (*Out, error)
	get      func(ctx context.Context, id string) (*Out, error)
	list     func(r *http.Request, page store.Page) ([]Out, string, error)
	update   func(ctx context.Context, actor, id string, change func(*In) error) (*Out, error)
	remove   func(ctx context.Context, actor, id string) error
	// visible limits what a caller may read and change: records it hides
	// answer 404, as if they did not exist. nil shows everything. What a
	// caller may write is the create and update functions' business.
	visible func(p *principal, out *Out) bool
}

// load reads one record the caller may see; noun names it in errors.
func (res *resource[In, Out]) load(r *http.Request, noun string) (*Out, error) {
	out, err := res.get(r.Context(), pathID(r))
	if err != nil {
		return nil, err
	}
	if res.visible != nil && !res.visible(principalFrom(r.Context()), out) {
		return nil, fmt.Errorf("%s %s: %w", noun, pathID(r), store.ErrNotFound)
	}
	return out, nil
}

func register[In, Out any](s *Server, r *mux.Router, path string, res resource[In, Out]) {
	name := strings.TrimPrefix(path, "/")
	noun := strings.TrimSuffix(name, "s")
	item := path + "/{id}"
	if res.create != nil {
		r.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			in := res.defaults()
			if err := decodeBody(r, &in); err != nil {
				s.writeErr(w, r, err)
				return
			}
			out, err := res.create(r.Context(), principalFrom(r.Context()).Actor, in)
			if err != nil {
				s.writeErr(w, r, err)
				return
			}
			writeJSON(w, http.StatusCreated, out)
		}).Methods(http.MethodPost).Name(name + ".create")
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
	}).Methods(http.MethodGet).Name(name + ".list")
	r.HandleFunc(item, func(w http.ResponseWriter, r *http.Request) {
		out, err := res.load(r, noun)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}).Methods(http.MethodGet).Name(name + ".get")
	r.HandleFunc(item, func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err == nil {
			_, err = res.load(r, noun)
		}
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		out, err := res.update(r.Context(), principalFrom(r.Context()).Actor, pathID(r), func(in *In) error {
			return decodeInto(body, in)
		})
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}).Methods(http.MethodPatch).Name(name + ".update")
	r.HandleFunc(item, func(w http.ResponseWriter, r *http.Request) {
		_, err := res.load(r, noun)
		if err == nil {
			err = res.remove(r.Context(), principalFrom(r.Context()).Actor, pathID(r))
		}
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}).Methods(http.MethodDelete).Name(name + ".delete")
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

// modelInput is a deployment as callers write it; the prices are pointers
// so that a model created without them takes the list price.
type modelInput struct {
	store.ModelSpec
	Input  *float64 `json:"input_cost_per_million"`
	Output *float64 `json:"output_cost_per_million"`
}

func (s *Server) modelRoutes(r *mux.Router) {
	register(s, r, "/models", resource[modelInput, store.Model]{
		defaults: func() modelInput { return modelInput{ModelSpec: store.ModelSpec{Weight: 1, Enabled: true}} },
		create: func(ctx context.Context, actor string, in modelInput) (*store.Model, error) {
			config.FillPrices(&in.ModelSpec, in.Input, in.Output)
			return s.st.CreateModel(ctx, actor, in.ModelSpec)
		},
		get: s.st.GetModel,
		list: func(r *http.Request, page store.Page) ([]store.Model, string, error) {
			q := r.URL.Query()
			f := store.ModelFilter{ModelName: q.Get("model_name"), ProviderID: q.Get("provider_id"), Page: page}
			var err error
			if f.ModelNames, err = s.memberModels(r); err != nil {
				return nil, "", err
			}
			return s.st.ListModels(r.Context(), f)
		},
		update: func(ctx context.Context, actor, id string, change func(*modelInput) error) (*store.Model, error) {
			return s.st.UpdateModel(ctx, actor, id, func(spec *store.ModelSpec) error {
				in := modelInput{ModelSpec: *spec}
				if err := change(&in); err != nil {
					return err
				}
				if in.Input != nil {
					in.InputCostPerMillion = *in.Input
				}
				if in.Output != nil {
					in.OutputCostPerMillion = *in.Output
				}
				*spec = in.ModelSpec
				return nil
			})
		},
		remove: s.st.DeleteModel,
	})
}

func (s *Server) teamRoutes(r *mux.Router) {
	register(s, r, "/teams", resource[store.TeamSpec, store.Team]{
		defaults: func() store.TeamSpec { return store.TeamSpec{} },
		create:   s.st.CreateTeam,
		get:      s.st.GetTeam,
		list: func(r *http.Request, page store.Page) ([]store.Team, string, error) {
			f := store.TeamFilter{Page: page}
			if p := principalFrom(r.Context()); p.Role == store.RoleMember {
				f.IDs = append([]string{}, p.TeamIDs...)
			}
			return s.st.ListTeams(r.Context(), f)
		},
		visible: func(p *principal, t *store.Team) bool { return p.inTeam(t.ID) },
		update:  s.st.UpdateTeam,
		remove:  s.st.DeleteTeam,
	})
	r.HandleFunc("/teams/{id}/members", s.listMembers).Methods(http.MethodGet).Name("teams.members.list")
	r.HandleFunc("/teams/{id}/members", s.addMember).Methods(http.MethodPost).Name("teams.members.add")
	r.HandleFunc("/teams/{id}/members/{user_id}", s.removeMember).Methods(http.MethodDelete).Name("teams.members.remove")
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
	if err := s.st.AddTeamMember(r.Context(), principalFrom(r.Context()).Actor, pathID(r), in.UserID); err != nil {
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
	if err := s.st.RemoveTeamMember(r.Context(), principalFrom(r.Context()).Actor, pathID(r), mux.Vars(r)["user_id"]); err != nil {
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
		update:  s.st.UpdateUser,
		remove:  s.st.DeleteUser,
		visible: func(p *principal, u *store.User) bool { return p.Role != store.RoleMember || u.ID == p.UserID },
	})
	r.HandleFunc("/me", s.me).Methods(http.MethodGet).Name("users.me")
	r.HandleFunc("/users/{id}/block", s.blockUser(true)).Methods(http.MethodPost).Name("users.block")
	r.HandleFunc("/users/{id}/unblock", s.blockUser(false)).Methods(http.MethodPost).Name("users.unblock")
}

// memberModels is nil for callers who see every model, and otherwise the
// public model names a member's teams may use.
func (s *Server) memberModels(r *http.Request) ([]string, error) {
	p := principalFrom(r.Context())
	if p.Role != store.RoleMember {
		return nil, nil
	}
	names := []string{}
	for _, id := range p.TeamIDs {
		t, err := s.st.GetTeam(r.Context(), id)
		if err != nil {
			return nil, err
		}
		if store.Unrestricted(t.Models) {
			return nil, nil
		}
		names = append(names, t.Models...)
	}
	return names, nil
}
