package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"tollgate/views"
)

// The playground talks to the gateway over HTTP, like any app would: the
// admin app never imports the gateway.

// SetGatewayURL tells the playground where the gateway listens
// (TOLLGATE_GATEWAY_URL).
func (s *Server) SetGatewayURL(u string) { s.gatewayURL = strings.TrimRight(u, "/") }

func (s *Server) playgroundPages(r *mux.Router) {
	r.HandleFunc("/playground", func(w http.ResponseWriter, r *http.Request) {
		s.page(w, r, "Playground", "playground", views.PlaygroundPage())
	}).Methods(http.MethodGet)
	// Read-only for the caller's data, so finance users may use it too.
	r.HandleFunc("/playground/models", s.playgroundModels).Methods(http.MethodPost)
	r.HandleFunc("/playground/chat", s.playgroundChat).Methods(http.MethodPost)
}

type playgroundRequest struct {
	Key     string `json:"key"`
	Model   string `json:"model"`
	Message string `json:"message"`
}

func readPlayground(r *http.Request) (playgroundRequest, error) {
	var in playgroundRequest
	if err := decodeBody(r, &in); err != nil {
		return in, err
	}
	if strings.TrimSpace(in.Key) == "" {
		return in, &badInput{"enter one of your virtual keys"}
	}
	return in, nil
}

func (s *Server) playgroundModels(w http.ResponseWriter, r *http.Request) {
	in, err := readPlayground(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.relayToGateway(w, r, http.MethodGet, "/v1/models", in.Key, nil)
}

func (s *Server) playgroundChat(w http.ResponseWriter, r *http.Request) {
	in, err := readPlayground(r)
	if err == nil && (in.Model == "" || strings.TrimSpace(in.Message) == "") {
		err = &badInput{"choose a model and write a message"}
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	body, _ := json.Marshal(map[string]any{
		"model": in.Model, "stream": true,
		"messages": []map[string]string{{"role": "user", "content": in.Message}},
	})
	s.relayToGateway(w, r, http.MethodPost, "/v1/chat/completions", in.Key, body)
}

// relayToGateway calls the gateway with the caller's key and streams its
// answer back as it comes.
func (s *Server) relayToGateway(w http.ResponseWriter, r *http.Request, method, path, key string, body []byte) {
	req, err := http.NewRequestWithContext(r.Context(), method, s.gatewayURL+path, bytes.NewReader(body))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		writeProblem(w, http.StatusBadGateway, "gateway_unreachable", "The gateway at "+s.gatewayURL+" did not answer; check TOLLGATE_GATEWAY_URL.")
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			rc.Flush()
		}
		if err == io.EOF || err != nil {
			return
		}
	}
}
