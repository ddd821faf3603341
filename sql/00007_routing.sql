-- +goose Up
-- Routing settings per public model name, and aliases for model names.

-- How a model's deployments are chosen, and where calls go when all of
-- them fail. A model without a row is routed by weight, with no fallbacks.
CREATE TABLE model_groups (
    id         uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    model_name text PRIMARY KEY,
    strategy   text NOT NULL DEFAULT 'weighted'
               CHECK (strategy IN ('weighted', 'least_busy', 'lowest_latency', 'usage_based')),
    fallbacks  text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Names such as "fast" or "smart" that callers may send as the model.
CREATE TABLE model_aliases (
    id         uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    alias      text PRIMARY KEY,
    model_name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER model_groups_notify AFTER INSERT OR UPDATE OR DELETE ON model_groups
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();
CREATE TRIGGER model_aliases_notify AFTER INSERT OR UPDATE OR DELETE ON model_aliases
    FOR EACH ROW EXECUTE FUNCTION tollgate_notify_change();

-- +goose Down
DROP TABLE model_aliases;
DROP TABLE model_groups;
