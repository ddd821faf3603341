-- +goose Up
-- Budgets and limits: reusable profiles, user and global budgets, the
-- time each budget next resets, and the alerts sent when one is crossed.

-- A budget profile many keys and teams can point to. A field set on the
-- key or team itself wins over its profile's.
CREATE TABLE budgets (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  text NOT NULL UNIQUE,
    max_budget            numeric(20,10) CHECK (max_budget >= 0),
    soft_budget           numeric(20,10) CHECK (soft_budget >= 0),
    budget_duration       text,
    rpm_limit             integer CHECK (rpm_limit >= 0),
    tpm_limit             bigint CHECK (tpm_limit >= 0),
    max_parallel_requests integer CHECK (max_parallel_requests >= 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE keys
    ADD COLUMN budget_id       uuid REFERENCES budgets(id) ON DELETE RESTRICT,
    ADD COLUMN budget_reset_at timestamptz,
    ADD COLUMN model_rpm_limit jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN model_tpm_limit jsonb NOT NULL DEFAULT '{}';
CREATE INDEX keys_budget_id ON keys (budget_id);
CREATE INDEX keys_budget_reset_at ON keys (budget_reset_at) WHERE budget_reset_at IS NOT NULL;

ALTER TABLE teams
    ADD COLUMN budget_id             uuid REFERENCES budgets(id) ON DELETE RESTRICT,
    ADD COLUMN budget_reset_at       timestamptz,
    ADD COLUMN max_parallel_requests integer CHECK (max_parallel_requests >= 0);

ALTER TABLE users
    ADD COLUMN max_budget      numeric(20,10) CHECK (max_budget >= 0),
    ADD COLUMN soft_budget     numeric(20,10) CHECK (soft_budget >= 0),
    ADD COLUMN budget_duration text,
    ADD COLUMN budget_reset_at timestamptz,
    ADD COLUMN rpm_limit       integer CHECK (rpm_limit >= 0),
    ADD COLUMN tpm_limit       bigint CHECK (tpm_limit >= 0),
    ADD COLUMN spend           numeric(20,10) NOT NULL DEFAULT 0;

-- The largest answer a deployment can give, for reserving a request's
-- worst-case cost when the caller sets no max_tokens.
ALTER TABLE models ADD COLUMN max_output_tokens bigint CHECK (max_output_tokens > 0);

-- The one budget over all spend. A fixed id so the change trigger works.
CREATE TABLE global_budget (
    id              uuid PRIMARY KEY DEFAULT '00000000-0000-0000-0000-000000000000' CHECK (id = '00000000-0000-0000-0000-000000000000'),
    max_budget      numeric(20,10) CHECK (max_budget >= 0),
    soft_budget     numeric(20,10) CHECK (soft_budget >= 0),
    budget_duration text,
    budget_reset_at timestamptz,
    spend           numeric(20,10) NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO global_budget DEFAULT VALUES;
UPDATE global_budget SET spend = (SELECT COALESCE(sum(cost), 0) FROM spend_logs);
UPDATE users u SET spend = s.cost FROM (SELECT user_id, sum(cost) AS cost FROM spend_logs WHERE user_id IS NOT NULL GROUP BY user_id) s
WHERE u.id = s.user_id;

-- One row per budget crossed per period; the unique key makes "once per
-- period" hold across replicas. Webhook delivery is tracked on the row.
CREATE TABLE budget_alerts (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    subject_type  text NOT NULL CHECK (subject_type IN ('key', 'team', 'user', 'global')),
    subject_id    text NOT NULL,
    subject_name  text NOT NULL DEFAULT '',
    kind          text NOT NULL CHECK (kind IN ('soft', 'hard')),
    period        text NOT NULL, -- the period's reset time, or 'none'
    spend         numeric(20,10) NOT NULL,
    threshold     numeric(20,10) NOT NULL,
    delivered_at  timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text NOT NULL DEFAULT '',
    UNIQUE (subject_type, subject_id, kind, period)
);
CREATE INDEX budget_alerts_created_at ON budget_alerts (created_at);
CREATE INDEX budget_alerts_undelivered ON budget_alerts (id) WHERE delivered_at IS NULL;

CREATE TRIGGER budgets_notify AFTER INSERT OR UPDATE OR DELETE ON budgets
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();
CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();
CREATE TRIGGER global_budget_notify AFTER INSERT OR UPDATE OR DELETE ON global_budget
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();

-- +goose Down
DROP TABLE budget_alerts;
DROP TABLE global_budget;
ALTER TABLE models DROP COLUMN max_output_tokens;
DROP TRIGGER users_notify ON users;
ALTER TABLE users DROP COLUMN max_budget, DROP COLUMN soft_budget, DROP COLUMN budget_duration,
    DROP COLUMN budget_reset_at, DROP COLUMN rpm_limit, DROP COLUMN tpm_limit, DROP COLUMN spend;
ALTER TABLE teams DROP COLUMN budget_id, DROP COLUMN budget_reset_at, DROP COLUMN max_parallel_requests;
ALTER TABLE keys DROP COLUMN budget_id, DROP COLUMN budget_reset_at, DROP COLUMN model_rpm_limit, DROP COLUMN model_tpm_limit;
DROP TABLE budgets;
