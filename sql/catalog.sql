-- The model catalog. Weights live in stan.model_store; stan.models shows everything but them.
CREATE SCHEMA IF NOT EXISTS stan;

CREATE TABLE stan.model_store (
    name             text        NOT NULL,
    version          integer     NOT NULL,
    source_relid     oid,                   -- the training relation, while it exists
    source           text        NOT NULL,  -- its name when trained
    source_type      oid,                   -- its row type: stan_generate(NULL::t, ...) finds the model by it
    codecs           jsonb       NOT NULL,  -- fitted codecs per column (hold real category values)
    config           jsonb       NOT NULL,  -- the network's shape
    options          jsonb       NOT NULL,
    metrics          jsonb       NOT NULL,
    device           text        NOT NULL,
    rows             bigint      NOT NULL,
    streams          integer     NOT NULL,
    training_seconds float8,
    trained_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    owner            name        NOT NULL DEFAULT CURRENT_USER,
    weights          bytea       NOT NULL,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE stan.model_store IS 'stan models: one row per trained version, with weights';

CREATE VIEW stan.models AS
SELECT name, version, source, codecs, options, metrics, device, rows, streams,
       training_seconds, trained_at, owner, pg_catalog.octet_length(weights) AS weight_bytes
  FROM stan.model_store;
COMMENT ON VIEW stan.models IS 'stan models, one row per version, without the weights';

-- Models are data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('stan.model_store', '');
