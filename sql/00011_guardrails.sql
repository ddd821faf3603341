-- +goose Up
-- Guardrails: checks on prompts and answers, managed by admins. team_ids
-- are the teams whose keys always get the guardrail (a team deleted is
-- removed from the list by the store).
CREATE TABLE guardrails (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    type       text NOT NULL CHECK (type IN ('pii', 'secrets', 'keywords', 'regex', 'prompt_injection', 'max_prompt_size', 'external')),
    mode       text NOT NULL CHECK (mode IN ('pre_call', 'post_call', 'during_call')),
    action     text NOT NULL CHECK (action IN ('block', 'mask', 'log')),
    default_on boolean NOT NULL DEFAULT false,
    enabled    boolean NOT NULL DEFAULT true,
    team_ids   uuid[] NOT NULL DEFAULT '{}',
    config     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER guardrails_notify AFTER INSERT OR UPDATE OR DELETE ON guardrails
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();

-- One row per guardrail, matched type and request: what was found and
-- done, never the matched text.
CREATE TABLE guardrail_hits (
    id           bigserial PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    request_id   text NOT NULL,
    guardrail    text NOT NULL,
    team_id      uuid,
    key_id       uuid,
    mode         text NOT NULL,
    action       text NOT NULL,
    matched_type text NOT NULL,
    count        integer NOT NULL DEFAULT 1,
    UNIQUE (request_id, guardrail, matched_type)
);
CREATE INDEX guardrail_hits_recent ON guardrail_hits (created_at DESC);
CREATE INDEX guardrail_hits_guardrail ON guardrail_hits (guardrail, created_at DESC);

-- The hits of a request, on its spend log row.
ALTER TABLE spend_logs ADD COLUMN guardrails jsonb;

-- +goose Down
ALTER TABLE spend_logs DROP COLUMN guardrails;
DROP TABLE guardrail_hits;
DROP TABLE guardrails;
