-- +goose Up
-- Metering: billing sinks, the meter-event outbox and its deliveries.

-- A billing system usage is pushed to. The secret (API key, token or
-- webhook signing key) is sealed like provider keys.
CREATE TABLE billing_sinks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    type        text NOT NULL CHECK (type IN ('amberflo', 'openmeter', 'stripe', 'webhook')),
    url         text NOT NULL,
    config      jsonb NOT NULL DEFAULT '{}',
    secret_enc  bytea,
    secret_hint text NOT NULL DEFAULT '',
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The outbox: one row per billed request (kind usage), written in the same
-- statement as its spend log, and one per business-unit announcement.
CREATE TABLE meter_events (
    id            text PRIMARY KEY, -- the request id, or bu-<team id>-<n> for announcements
    kind          text NOT NULL DEFAULT 'usage' CHECK (kind IN ('usage', 'business_unit')),
    created_at    timestamptz NOT NULL,
    team_id       uuid,
    team_name     text NOT NULL DEFAULT '',
    business_unit text NOT NULL DEFAULT '',
    customer_id   text NOT NULL DEFAULT '',
    key_id        uuid,
    key_alias     text NOT NULL DEFAULT '',
    user_id       uuid,
    user_email    text NOT NULL DEFAULT '',
    model         text NOT NULL DEFAULT '',
    provider      text NOT NULL DEFAULT '',
    endpoint      text NOT NULL DEFAULT '',
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cost          numeric(20,10) NOT NULL DEFAULT 0,
    latency_ms    bigint NOT NULL DEFAULT 0,
    status_code   integer NOT NULL DEFAULT 200,
    error         text NOT NULL DEFAULT ''
);
CREATE INDEX meter_events_created_at ON meter_events (created_at);

-- One row per event and sink. A pending row is due at next_attempt_at; a
-- pusher leases it by moving next_attempt_at ahead before sending, so a
-- crash between sending and marking only re-sends (the sink dedups by id).
CREATE TABLE meter_deliveries (
    event_id        text NOT NULL REFERENCES meter_events(id) ON DELETE CASCADE,
    sink_id         uuid NOT NULL REFERENCES billing_sinks(id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (sink_id, event_id)
);
CREATE INDEX meter_deliveries_due ON meter_deliveries (sink_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX meter_deliveries_failed ON meter_deliveries (sink_id) WHERE status = 'failed';
CREATE INDEX meter_deliveries_event ON meter_deliveries (event_id);

-- +goose Down
DROP TABLE meter_deliveries;
DROP TABLE meter_events;
DROP TABLE billing_sinks;
