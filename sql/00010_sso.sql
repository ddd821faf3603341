-- +goose Up
-- Single sign-on: a user signed in through OIDC is known by issuer + sub.
-- role_source says who decides the role: 'sso' (the groups claim, at each
-- sign-in) or 'admin' (set by hand; sign-in leaves it alone). A blocked
-- user cannot sign in, their sessions end, and their keys stop working.
ALTER TABLE users
    ADD COLUMN oidc_issuer          text,
    ADD COLUMN oidc_subject         text,
    ADD COLUMN role_source          text NOT NULL DEFAULT 'admin' CHECK (role_source IN ('admin', 'sso')),
    ADD COLUMN blocked              boolean NOT NULL DEFAULT false,
    ADD COLUMN sessions_valid_after timestamptz NOT NULL DEFAULT 'epoch',
    ADD COLUMN last_sign_in_at      timestamptz,
    ADD CONSTRAINT users_oidc_pair CHECK ((oidc_issuer IS NULL) = (oidc_subject IS NULL));
CREATE UNIQUE INDEX users_oidc ON users (oidc_issuer, oidc_subject) WHERE oidc_issuer IS NOT NULL;

-- Memberships from the groups claim are 'sso' and are taken away when the
-- group goes; those an admin adds are 'admin' and stay.
ALTER TABLE team_members
    ADD COLUMN source text NOT NULL DEFAULT 'admin' CHECK (source IN ('admin', 'sso'));

-- Upper bounds on the keys members make for themselves in a team.
ALTER TABLE teams ADD COLUMN member_key_caps jsonb NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE teams DROP COLUMN member_key_caps;
ALTER TABLE team_members DROP COLUMN source;
DROP INDEX users_oidc;
ALTER TABLE users
    DROP CONSTRAINT users_oidc_pair,
    DROP COLUMN oidc_issuer,
    DROP COLUMN oidc_subject,
    DROP COLUMN role_source,
    DROP COLUMN blocked,
    DROP COLUMN sessions_valid_after,
    DROP COLUMN last_sign_in_at;
