-- +goose Up
-- Daily rollup of spend_logs, one row per UTC day and (team, key, user,
-- model, provider), so dashboards never scan the logs. InsertSpendLogs adds
-- the rows it actually inserts in the same statement, so the rollup is
-- always exact and a retried batch is not counted twice.
CREATE TABLE spend_daily (
    day           date NOT NULL,
    team_id       uuid,
    key_id        uuid,
    user_id       uuid,
    model         text NOT NULL,
    provider      text NOT NULL,
    requests      bigint NOT NULL DEFAULT 0,
    failures      bigint NOT NULL DEFAULT 0,
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cost          numeric(20,10) NOT NULL DEFAULT 0
);
-- Requests without a key, team or user must still fold into one row per
-- group: NULLS NOT DISTINCT makes ON CONFLICT match them.
CREATE UNIQUE INDEX spend_daily_group ON spend_daily (day, team_id, key_id, user_id, model, provider) NULLS NOT DISTINCT;
-- A member's dashboard is restricted to their teams or to themselves.
CREATE INDEX spend_daily_team ON spend_daily (team_id, day);
CREATE INDEX spend_daily_user ON spend_daily (user_id, day);

INSERT INTO spend_daily (day, team_id, key_id, user_id, model, provider,
                         requests, failures, input_tokens, output_tokens, cost)
SELECT (created_at AT TIME ZONE 'UTC')::date, team_id, key_id, user_id, model, provider,
       count(*), count(*) FILTER (WHERE status = 'failure'),
       sum(input_tokens), sum(output_tokens), sum(cost)
FROM spend_logs
GROUP BY 1, 2, 3, 4, 5, 6;

-- +goose Down
DROP TABLE spend_daily;
