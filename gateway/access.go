package gateway

import (
	"slices"

	"tollgate/store"
)

// allModels in a key's or team's model list means "no restriction".
const allTeamModels = "all-team-models"

func unrestricted(models []string) bool {
	return len(models) == 0 || slices.Contains(models, "*") || slices.Contains(models, allTeamModels)
}

// CanUseModel applies the model rules: a key may use its own list of models
// (empty: all of its team's), and never a model outside its team's list.
func CanUseModel(key *store.Key, team *store.Team, model string) bool {
	if team != nil && !unrestricted(team.Models) && !slices.Contains(team.Models, model) {
		return false
	}
	return unrestricted(key.Models) || slices.Contains(key.Models, model)
}
