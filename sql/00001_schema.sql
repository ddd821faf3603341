-- +goose Up
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- Provider credentials. The API key is sealed with AES-256-GCM under
-- TOLLGATE_SECRET_KEY; only a short hint is kept in clear.
CREATE TABLE providers (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE,
    type         text NOT NULL,
    api_base     text NOT NULL DEFAULT '',
    api_key_enc  bytea,
    api_key_hint text NOT NULL DEFAULT '',
    config       jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Deployments: several rows may share one public model_name.
CREATE TABLE models (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    model_name               text NOT NULL,
    provider_id              uuid NOT NULL REFERENCES providers(id) ON DELETE RESTRICT,
    upstream_model           text NOT NULL,
    input_cost_per_million   numeric(20,10) NOT NULL DEFAULT 0 CHECK (input_cost_per_million >= 0),
    output_cost_per_million  numeric(20,10) NOT NULL DEFAULT 0 CHECK (output_cost_per_million >= 0),
    rpm_limit                integer CHECK (rpm_limit >= 0),
    tpm_limit                bigint CHECK (tpm_limit >= 0),
    weight                   integer NOT NULL DEFAULT 1 CHECK (weight > 0),
    context_window           integer CHECK (context_window >= 0),
    params                   jsonb NOT NULL DEFAULT '{}',
    enabled                  boolean NOT NULL DEFAULT true,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX models_model_name ON models (model_name);
CREATE INDEX models_provider_id ON models (provider_id);

-- Teams are cost centers; name is the billing business-unit id.
CREATE TABLE teams (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    models          text[] NOT NULL DEFAULT '{}',
    max_budget      numeric(20,10) CHECK (max_budget >= 0),
    soft_budget     numeric(20,10) CHECK (soft_budget >= 0),
    budget_duration text,
    rpm_limit       integer CHECK (rpm_limit >= 0),
    tpm_limit       bigint CHECK (tpm_limit >= 0),
    blocked         boolean NOT NULL DEFAULT false,
    metadata        jsonb NOT NULL DEFAULT '{}',
    spend           numeric(20,10) NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email      text NOT NULL,
    name       text NOT NULL DEFAULT '',
    role       text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'finance', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE team_members (
    team_id    uuid NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

-- Virtual keys: only the SHA-256 of the secret is stored.
CREATE TABLE keys (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    key_hash              text NOT NULL UNIQUE,
    key_hint              text NOT NULL,
    alias                 text NOT NULL DEFAULT '',
    team_id               uuid REFERENCES teams(id) ON DELETE RESTRICT,
    user_id               uuid REFERENCES users(id) ON DELETE SET NULL,
    models                text[] NOT NULL DEFAULT '{}',
    key_type              text NOT NULL DEFAULT 'llm_api' CHECK (key_type IN ('llm_api', 'management', 'default')),
    max_budget            numeric(20,10) CHECK (max_budget >= 0),
    soft_budget           numeric(20,10) CHECK (soft_budget >= 0),
    budget_duration       text,
    rpm_limit             integer CHECK (rpm_limit >= 0),
    tpm_limit             bigint CHECK (tpm_limit >= 0),
    max_parallel_requests integer CHECK (max_parallel_requests >= 0),
    expires_at            timestamptz,
    blocked               boolean NOT NULL DEFAULT false,
    metadata              jsonb NOT NULL DEFAULT '{}',
    spend                 numeric(20,10) NOT NULL DEFAULT 0,
    last_used_at          timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX keys_team_id ON keys (team_id);
CREATE INDEX keys_user_id ON keys (user_id);

-- Append-only, one partition per month. The primary key makes a retried
-- batch insert idempotent (ON CONFLICT DO NOTHING).
CREATE TABLE spend_logs (
    request_id    text NOT NULL,
    created_at    timestamptz NOT NULL,
    key_id        uuid,
    team_id       uuid,
    user_id       uuid,
    model         text NOT NULL DEFAULT '',
    provider      text NOT NULL DEFAULT '',
    deployment_id uuid,
    endpoint      text NOT NULL DEFAULT '',
    input_tokens  integer NOT NULL DEFAULT 0,
    output_tokens integer NOT NULL DEFAULT 0,
    cost          numeric(20,10) NOT NULL DEFAULT 0,
    latency_ms    integer NOT NULL DEFAULT 0,
    status        text NOT NULL,
    status_code   integer NOT NULL DEFAULT 0,
    error         text NOT NULL DEFAULT '',
    cache_hit     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (request_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX spend_logs_created_at ON spend_logs (created_at);
CREATE INDEX spend_logs_team ON spend_logs (team_id, created_at);
CREATE INDEX spend_logs_key ON spend_logs (key_id, created_at);

-- Creates the monthly partition holding ts, if missing. Called by the
-- migration, by the partition job, and by the spend writer when an insert
-- finds no partition.
-- +goose StatementBegin
CREATE FUNCTION tollgate_ensure_spend_partition(ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    start_month date := date_trunc('month', ts AT TIME ZONE 'UTC')::date;
    part text := format('spend_logs_%s', to_char(start_month, 'YYYY_MM'));
BEGIN
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF spend_logs FOR VALUES FROM (%L) TO (%L)',
        part,
        (start_month::timestamp AT TIME ZONE 'UTC'),
        ((start_month + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
END;
$$;
-- +goose StatementEnd

SELECT tollgate_ensure_spend_partition(now() - interval '1 month');
SELECT tollgate_ensure_spend_partition(now());
SELECT tollgate_ensure_spend_partition(now() + interval '1 month');
SELECT tollgate_ensure_spend_partition(now() + interval '2 months');

CREATE TABLE audit_logs (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL,
    before        jsonb,
    after         jsonb
);
CREATE INDEX audit_logs_created_at ON audit_logs (created_at);
CREATE INDEX audit_logs_resource ON audit_logs (resource_type, resource_id);

-- One row per job tick: the replica whose insert wins runs the job, so a
-- cron job runs exactly once across replicas.
CREATE TABLE job_runs (
    job         text NOT NULL,
    tick        timestamptz NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    error       text NOT NULL DEFAULT '',
    PRIMARY KEY (job, tick)
);

-- Gateways cache keys, teams, models and providers and drop their copies as
-- soon as a row changes. Bookkeeping columns (spend, last_used_at) are
-- ignored so that spend accounting does not flush the caches.
-- +goose StatementBegin
CREATE FUNCTION tollgate_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row_id uuid;
BEGIN
    IF TG_OP = 'UPDATE' AND
       (to_jsonb(NEW) - 'spend' - 'last_used_at' - 'updated_at') =
       (to_jsonb(OLD) - 'spend' - 'last_used_at' - 'updated_at') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        row_id := OLD.id;
    ELSE
        row_id := NEW.id;
    END IF;
    PERFORM pg_notify('tollgate_changes', TG_TABLE_NAME || ':' || TG_OP || ':' || row_id::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER providers_notify AFTER INSERT OR UPDATE OR DELETE ON providers
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();
CREATE TRIGGER models_notify AFTER INSERT OR UPDATE OR DELETE ON models
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();
CREATE TRIGGER teams_notify AFTER INSERT OR UPDATE OR DELETE ON teams
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();
CREATE TRIGGER keys_notify AFTER INSERT OR UPDATE OR DELETE ON keys
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();

-- +goose Down
DROP TABLE job_runs;
DROP TABLE audit_logs;
DROP TABLE spend_logs;
DROP FUNCTION tollgate_ensure_spend_partition(timestamptz);
DROP TABLE keys;
DROP TABLE team_members;
DROP TABLE users;
DROP TABLE teams;
DROP TABLE models;
DROP TABLE providers;
DROP FUNCTION tollgate_notify_change();
