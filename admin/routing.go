package admin

import (
	"net/http"

	"github.com/gorilla/mux"

	"tollgate/store"
)

// routingRoutes serve per-model routing settings and model aliases. PUT
// creates or replaces, keyed by the name in the path.
func (s *Server) routingRoutes(r *mux.Router) {
	r.HandleFunc("/model-groups", func(w http.ResponseWriter, r *http.Request) {
		rows, err := s.st.AllModelGroups(r.Context())
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeList(w, rows, "")
	}).Methods(http.MethodGet).Name("model-groups.list")
	r.HandleFunc("/model-groups/{name}", func(w http.ResponseWriter, r *http.Request) {
		g := store.ModelGroup{}
		if err := decodeBody(r, &g); err != nil {
			s.writeErr(w, r, err)
			return
		}
		g.ModelName = mux.Vars(r)["name"]
		out, err := s.st.PutModelGroup(r.Context(), principalFrom(r.Context()).Actor, g)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}).Methods(http.MethodPut).Name("model-groups.put")
	r.HandleFunc("/model-groups/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.st.DeleteModelGroup(r.Context(), principalFrom(r.Context()).Actor, mux.Vars(r)["name"]); err != nil {
			s.writeErr(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}).Methods(http.MethodDelete).Name("model-groups.delete")

	r.HandleFunc("/model-aliases", func(w http.ResponseWriter, r *http.Request) {
		rows, err := s.st.AllModelAliases(r.Context())
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeList(w, rows, "")
	}).Methods(http.MethodGet).Name("model-aliases.list")
	r.HandleFunc("/model-aliases/{alias}", func(w http.ResponseWriter, r *http.Request) {
		a := store.ModelAlias{}
		if err := decodeBody(r, &a); err != nil {
			s.writeErr(w, r, err)
			return
		}
		a.Alias = mux.Vars(r)["alias"]
		out, err := s.st.PutModelAlias(r.Context(), principalFrom(r.Context()).Actor, a)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}).Methods(http.MethodPut).Name("model-aliases.put")
	r.HandleFunc("/model-aliases/{alias}", func(w http.ResponseWriter, r *http.Request) {
		if err := s.st.DeleteModelAlias(r.Context(), principalFrom(r.Context()).Actor, mux.Vars(r)["alias"]); err != nil {
			s.writeErr(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}).Methods(http.MethodDelete).Name("model-aliases.delete")
}
