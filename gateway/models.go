package gateway

import "net/http"

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// listModels answers GET /v1/models with the models this key may use.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request) {
	key, team, aerr := s.authenticate(r)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	data := []modelEntry{}
	for _, name := range s.cache.ModelNames() {
		if !CanUseModel(key, team, name) {
			continue
		}
		ds := s.cache.Deployments(name)
		if len(ds) == 0 { // removed since ModelNames was read
			continue
		}
		data = append(data, modelEntry{ID: name, Object: "model", Created: ds[0].CreatedAt.Unix(), OwnedBy: "tollgate"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
