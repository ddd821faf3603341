package store_test

import (
	"errors"
	"slices"
	"testing"

	"tollgate/store"
)

func membershipSources(t *testing.T, st *store.Store, userID string) map[string]string {
	t.Helper()
	var rows []struct {
		Team   string `db:"name"`
		Source string `db:"source"`
	}
	if err := st.DB().Select(&rows, `SELECT t.name, m.source FROM team_members m JOIN teams t ON t.id = m.team_id WHERE m.user_id = $1`, userID); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r.Team] = r.Source
	}
	return out
}

func TestSignInSSO(t *testing.T) {
	st, ctx := newStore(t)
	eng, ops := mustTeam(t, st, "eng"), mustTeam(t, st, "ops")
	in := store.SSOSignIn{Issuer: "https://idp.example", Subject: "s1", Email: "a@corp.example", Name: "A", Groups: true,
		Role: store.RoleFinance, Teams: []string{"eng", "ghost"}, DefaultTeam: "nowhere", SignIn: true}
	res, err := st.SignInSSO(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	u := res.User
	if !res.Created || u.Role != store.RoleFinance || u.RoleSource != store.RoleFromSSO || u.LastSignInAt == nil ||
		!slices.Equal(res.UnknownTeams, []string{"ghost"}) || !slices.Equal([]string(u.Teams), []string{eng.ID}) {
		t.Errorf("first sign-in: %+v, user %+v", res, u)
	}

	// An admin adds ops; the groups then lose eng: eng goes, ops stays.
	if err := st.AddTeamMember(ctx, testActor, ops.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	in.Teams = nil
	if res, err = st.SignInSSO(ctx, in); err != nil {
		t.Fatal(err)
	}
	if got := membershipSources(t, st, u.ID); len(got) != 1 || got["ops"] != "admin" {
		t.Errorf("memberships after the groups went: %v", got)
	}
	// No team group matched: the default team is reported when missing.
	if !slices.Equal(res.UnknownTeams, []string{"nowhere"}) {
		t.Errorf("unknown teams %v", res.UnknownTeams)
	}

	// Editing the user's teams by hand keeps a membership's source.
	in.Teams = []string{"eng"}
	st.SignInSSO(ctx, in)
	if _, err := st.UpdateUser(ctx, testActor, u.ID, func(ui *store.UserInput) error {
		ui.Teams = &[]string{eng.ID, ops.ID}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := membershipSources(t, st, u.ID); got["eng"] != "sso" || got["ops"] != "admin" {
		t.Errorf("memberships after a hand edit: %v", got)
	}
	// An admin adding the group-made eng membership makes it theirs.
	if err := st.AddTeamMember(ctx, testActor, eng.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if got := membershipSources(t, st, u.ID); got["eng"] != "admin" {
		t.Errorf("eng after an admin added it: %v", got)
	}

	// Without groups (an API token without the claim) role and teams stay.
	if res, err = st.SignInSSO(ctx, store.SSOSignIn{Issuer: in.Issuer, Subject: "s1", Email: in.Email, Role: store.RoleAdmin}); err != nil ||
		res.Created || res.User.Role != store.RoleFinance || len(res.User.Teams) != 2 {
		t.Errorf("sign-in without groups: %v %+v", err, res)
	}

	// Blocked: refused, nothing changes.
	if _, err := st.SetUserBlocked(ctx, testActor, u.ID, true); err != nil {
		t.Fatal(err)
	}
	in.Role = store.RoleAdmin
	if _, err := st.SignInSSO(ctx, in); !errors.Is(err, store.ErrUserBlocked) {
		t.Errorf("blocked: %v", err)
	}
	if after, _ := st.GetUser(ctx, u.ID); after.Role != store.RoleFinance || !after.SessionsValidAfter.After(*u.LastSignInAt) {
		t.Errorf("blocked user changed or sessions not cut: %+v", after)
	}

	// Another identity with the same email is a conflict; a bad email
	// is refused.
	other := in
	other.Subject = "s2"
	if _, err := st.SignInSSO(ctx, other); !errors.Is(err, store.ErrConflict) {
		t.Errorf("email of another identity: %v", err)
	}
	other.Email = "not an email"
	if _, err := st.SignInSSO(ctx, other); asValidation(t, err).Field != "email" {
		t.Errorf("bad email: %v", err)
	}
}

func TestUserRoleSource(t *testing.T) {
	st, ctx := newStore(t)
	sso := store.RoleFromSSO
	u, err := st.CreateUser(ctx, testActor, store.UserInput{UserSpec: store.UserSpec{Email: "b@corp.example"}, RoleSource: &sso})
	if err != nil || u.RoleSource != sso || u.Blocked {
		t.Fatalf("create: %v %+v", err, u)
	}
	update := func(change func(*store.UserInput)) *store.User {
		t.Helper()
		u, err := st.UpdateUser(ctx, testActor, u.ID, func(in *store.UserInput) error { change(in); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	// Saving without a role change keeps sso; changing the role makes it
	// admin's, even with role_source still saying sso.
	if u := update(func(in *store.UserInput) { in.Name = "B" }); u.RoleSource != sso {
		t.Errorf("name change: %s", u.RoleSource)
	}
	if u := update(func(in *store.UserInput) { in.Role = store.RoleAdmin; in.RoleSource = &sso }); u.RoleSource != store.RoleFromAdmin {
		t.Errorf("role change: %s", u.RoleSource)
	}
	// Switching to sso, with or without a role change, sticks.
	if u := update(func(in *store.UserInput) { in.Role = store.RoleFinance; *in.RoleSource = sso }); u.RoleSource != sso || u.Role != store.RoleFinance {
		t.Errorf("back to sso: %+v", u)
	}
	bad := "idp"
	if _, err := st.UpdateUser(ctx, testActor, u.ID, func(in *store.UserInput) error { in.RoleSource = &bad; return nil }); asValidation(t, err).Field != "role_source" {
		t.Errorf("bad role_source: %v", err)
	}
	// Blocking through an update cuts sessions; unblocking does not move the cut.
	u = update(func(in *store.UserInput) { in.Blocked = true })
	cut := u.SessionsValidAfter
	if !u.Blocked || cut.Year() < 2000 {
		t.Errorf("blocked: %+v", u)
	}
	if u = update(func(in *store.UserInput) { in.Blocked = false }); u.Blocked || !u.SessionsValidAfter.Equal(cut) {
		t.Errorf("unblocked: %+v", u)
	}
}
