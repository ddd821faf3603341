package gateway

import (
	"slices"

	"tollgate/store"
)

// CanUseModel applies the model rules: a key may use its own list of models
// (empty: all of its team's), and never a model outside its team's list.
func CanUseModel(key *store.Key, team *store.Team, model string) bool {
	if team != nil && !store.Unrestricted(team.Models) && !slices.Contains(team.Models, model) {
		return false
	}
	return store.Unrestricted(key.Models) || slices.Contains(key.Models, model)
}
