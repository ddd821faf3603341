-- +goose Up
-- The last health probe of each deployment. Gateways are told only when a
-- deployment turns healthy or unhealthy, not at every probe.
CREATE TABLE deployment_health (
    id         uuid PRIMARY KEY REFERENCES models(id) ON DELETE CASCADE,
    healthy    boolean NOT NULL,
    latency_ms integer NOT NULL DEFAULT 0,
    error      text NOT NULL DEFAULT '',
    checked_at timestamptz NOT NULL,
    changed_at timestamptz NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION tollgate_notify_health() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.healthy = OLD.healthy THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('tollgate_changes', 'deployment_health:' || TG_OP || ':' || COALESCE(NEW.id, OLD.id)::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER deployment_health_notify AFTER INSERT OR UPDATE OR DELETE ON deployment_health
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_health();

-- +goose Down
DROP TABLE deployment_health;
DROP FUNCTION tollgate_notify_health();
