package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"tollgate/store"
)

// bearerKey reads the virtual key from Authorization: Bearer, api-key
// (Azure clients) or x-api-key (Anthropic clients).
func bearerKey(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, token, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
	}
	if k := r.Header.Get("api-key"); k != "" {
		return strings.TrimSpace(k)
	}
	return strings.TrimSpace(r.Header.Get("x-api-key"))
}

// authenticate finds the caller's key and team and checks they may call.
func (s *Server) authenticate(r *http.Request) (*store.Key, *store.Team, *apiError) {
	secret := bearerKey(r)
	if secret == "" {
		return nil, nil, unauthorized("Missing API key. Pass your Tollgate virtual key as 'Authorization: Bearer <key>' (or in an 'api-key' or 'x-api-key' header).")
	}
	key, err := s.cache.Key(r.Context(), store.HashKey(secret))
	if errors.Is(err, errUnknownKey) {
		return nil, nil, unauthorized("Invalid API key: no Tollgate key matches the one provided. Check it, or ask an admin for a new one.")
	}
	if err != nil {
		s.log.Error("authenticate", "request_id", requestID(r.Context()), "err", err)
		return nil, nil, &apiError{Status: http.StatusServiceUnavailable, Type: "service_unavailable", Code: "auth_unavailable",
			Message: "The gateway cannot verify API keys right now; retry shortly."}
	}
	if key.Blocked {
		return nil, nil, unauthorized("This API key is blocked. Ask an admin to unblock it.")
	}
	if key.Expired(time.Now()) {
		return nil, nil, unauthorized("This API key expired at " + key.ExpiresAt.UTC().Format(time.RFC3339) + ". Ask an admin for a new one.")
	}
	if u := s.cache.User(key.UserID); u != nil && u.Blocked {
		return nil, nil, unauthorized("This API key's owner is blocked, and so are their keys. Ask an admin.")
	}
	var team *store.Team
	if key.TeamID != nil {
		if team, err = s.cache.Team(r.Context(), *key.TeamID); err != nil {
			s.log.Error("load team", "request_id", requestID(r.Context()), "err", err)
			return nil, nil, internalError()
		}
		if team == nil {
			return nil, nil, unauthorized("This API key's team no longer exists.")
		}
		if team.Blocked {
			return nil, nil, unauthorized("Team " + team.Name + " is blocked, and so are its keys. Ask an admin.")
		}
	}
	if key.KeyType == store.KeyTypeManagement {
		return nil, nil, forbidden("Management keys may not call LLM endpoints. Use a key of type llm_api or default.")
	}
	return key, team, nil
}
