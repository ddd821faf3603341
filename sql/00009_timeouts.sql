-- +goose Up
-- Per-deployment timeouts in milliseconds; NULL means the gateway's
-- TOLLGATE_UPSTREAM_TIMEOUT (total) and no separate connect or first-byte
-- bound beyond the transport's own.
ALTER TABLE models
    ADD COLUMN connect_timeout_ms    integer CHECK (connect_timeout_ms > 0),
    ADD COLUMN first_byte_timeout_ms integer CHECK (first_byte_timeout_ms > 0),
    ADD COLUMN timeout_ms            integer CHECK (timeout_ms > 0);

-- +goose Down
ALTER TABLE models
    DROP COLUMN connect_timeout_ms,
    DROP COLUMN first_byte_timeout_ms,
    DROP COLUMN timeout_ms;
