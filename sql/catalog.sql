-- The model catalog. Weights live in stan.model_store; stan.models shows everything but them.
-- Only the extension's owner has privileges on the tables: the Rust functions check who the caller
-- is and touch the tables as that owner, with fixed parameterised statements (src/api/access.rs).
CREATE SCHEMA IF NOT EXISTS stan;

CREATE TABLE stan.model_store (
    name             text        NOT NULL,
    version          integer     NOT NULL,
    source_relid     oid,                   -- the training relation, while it exists
    source           text        NOT NULL,  -- its name when trained
    source_type      oid,                   -- its row type: stan_generate(NULL::t, ...) finds the model by it
    stream_by        text,                  -- the stream expression as read (stan_evaluate reuses it)
    codecs           jsonb       NOT NULL,  -- fitted codecs per column (hold real category values)
    config           jsonb       NOT NULL,  -- the network's shape
    options          jsonb       NOT NULL,
    metrics          jsonb       NOT NULL,
    device           text        NOT NULL,
    rows             bigint      NOT NULL,
    streams          integer     NOT NULL,
    training_seconds float8,
    trained_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    owner            regrole     NOT NULL,  -- the trainer; only it (and superusers) may drop, grant, revoke
    weights          bytea       NOT NULL,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE stan.model_store IS 'stan models: one row per trained version, with weights';

-- Roles allowed to generate from a model (every version of it), besides its owner.
CREATE TABLE stan.model_grants (
    name       text        NOT NULL,
    grantee    regrole     NOT NULL,
    granted_by regrole     NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (name, grantee)
);
COMMENT ON TABLE stan.model_grants IS 'stan_grant: roles that may generate from a model';

-- What the caller may see: its own models in full; models it was granted without the fitted
-- codecs (they hold real category values), the stream expression (it may hold real addresses)
-- and the grant list; nothing else. The weights
-- never. security_barrier keeps a caller's own functions in WHERE from seeing hidden rows.
CREATE VIEW stan.models WITH (security_barrier) AS
SELECT m.name, m.version, m.source,
       CASE WHEN a.is_owner THEN m.stream_by END AS stream_by,
       CASE WHEN a.is_owner THEN m.codecs END AS codecs,
       m.options, m.metrics, m.device, m.rows, m.streams, m.training_seconds, m.trained_at, m.owner,
       pg_catalog.octet_length(m.weights) AS weight_bytes,
       CASE WHEN a.is_owner THEN
           ARRAY(SELECT g.grantee FROM stan.model_grants g WHERE g.name = m.name ORDER BY g.granted_at)
       END AS granted_to
  FROM stan.model_store m,
       LATERAL (SELECT pg_catalog.pg_has_role(m.owner::pg_catalog.oid, 'USAGE') AS is_owner) a
 WHERE a.is_owner
    OR EXISTS (SELECT 1 FROM stan.model_grants g
                WHERE g.name = m.name AND pg_catalog.pg_has_role(g.grantee::pg_catalog.oid, 'USAGE'));
COMMENT ON VIEW stan.models IS 'stan models the caller owns or may generate from, one row per version, without the weights';

REVOKE ALL ON stan.model_store, stan.model_grants FROM PUBLIC;
GRANT USAGE ON SCHEMA stan TO PUBLIC;
GRANT SELECT ON stan.models TO PUBLIC;

-- Models are data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('stan.model_store', '');
SELECT pg_catalog.pg_extension_config_dump('stan.model_grants', '');
