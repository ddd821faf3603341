-- +goose Up
-- Two replicas may create the same month's partition at once; the loser
-- must not fail. A transaction-scoped advisory lock on the partition name
-- serialises them, and IF NOT EXISTS then does the rest.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tollgate_ensure_spend_partition(ts timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    start_month date := date_trunc('month', ts AT TIME ZONE 'UTC')::date;
    part text := format('spend_logs_%s', to_char(start_month, 'YYYY_MM'));
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext(part));
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF spend_logs FOR VALUES FROM (%L) TO (%L)',
        part,
        (start_month::timestamp AT TIME ZONE 'UTC'),
        ((start_month + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
EXCEPTION WHEN duplicate_table OR unique_violation THEN
    NULL; -- created by a concurrent session: what we wanted
END;
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 1;
