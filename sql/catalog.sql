-- The model catalog. Weights live in stan.model_store; stan.models and stan.model_details show
-- the rest. Only the extension's owner has privileges on the tables: the Rust functions check who
-- the caller is and touch the tables as that owner, with fixed parameterised statements
-- (src/api/access.rs).
--
-- Roles and relations are stored by name, which pg_dump and pg_restore keep (OIDs change on
-- restore). Rights are checked against each role's OID, which a restore re-resolves from the
-- name (stan.resolve_owner, stan.resolve_grantee): a role dropped since owns nothing, and a role
-- created later under the same name inherits nothing. Names are brought up to date with the
-- OIDs before each catalog write (src/api/catalog.rs, refresh_role_names).
-- Keep sql/stan--0.1.0--0.2.0.sql in step: an upgraded catalog must equal a fresh one.
CREATE SCHEMA IF NOT EXISTS stan;

CREATE TABLE stan.model_store (
    name             text        NOT NULL,
    version          integer     NOT NULL,
    format           integer     NOT NULL,  -- the stored model's format (codecs, config, weights)
    source           text        NOT NULL,  -- the training relation's qualified name
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
    owner            text        NOT NULL,  -- the owner role's name; only it (and superusers) may drop, grant, revoke
    owner_oid        oid,                   -- that role when the row was written; NULL: no such role
    weights          bytea       NOT NULL,
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE stan.model_store IS 'stan models: one row per trained version, with weights';

-- Roles allowed to generate from a model (every version of it), besides its owner.
CREATE TABLE stan.model_grants (
    name        text        NOT NULL,
    grantee     text        NOT NULL,
    grantee_oid oid,                    -- that role when the grant was written; NULL: no such role
    granted_by  text        NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (name, grantee)
);
COMMENT ON TABLE stan.model_grants IS 'stan_grant: roles that may generate from a model';

CREATE FUNCTION stan.resolve_owner() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$ BEGIN
    -- A restore's rows carry another cluster's OIDs: the name decides. NULL (no such role)
    -- stays NULL, through a dump and restore too, so a role created later under a dropped
    -- role's name gets nothing. stan's own writes give the OID they mean; updates keep theirs.
    IF NEW.owner_oid IS NOT NULL THEN
        NEW.owner_oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = NEW.owner);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER resolve_owner BEFORE INSERT ON stan.model_store
    FOR EACH ROW EXECUTE FUNCTION stan.resolve_owner();

CREATE FUNCTION stan.resolve_grantee() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$ BEGIN
    -- A restore's rows carry another cluster's OIDs: the name decides. NULL (no such role)
    -- stays NULL, through a dump and restore too, so a role created later under a dropped
    -- role's name gets nothing. stan's own writes give the OID they mean; updates keep theirs.
    IF NEW.grantee_oid IS NOT NULL THEN
        NEW.grantee_oid := (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = NEW.grantee);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER resolve_grantee BEFORE INSERT ON stan.model_grants
    FOR EACH ROW EXECUTE FUNCTION stan.resolve_grantee();

-- What the caller may see: its own models in full; models it was granted without the fitted
-- codecs (they hold real category values), the stream expression (it may hold real addresses)
-- and the grant list; nothing else. The weights never. security_barrier keeps a caller's own
-- functions in WHERE from seeing hidden rows. A superuser sees every model, also those whose
-- owner role was dropped (owner NULL).
CREATE VIEW stan.model_details WITH (security_barrier) AS
SELECT m.name, m.version, m.format, m.source,
       CASE WHEN a.is_owner THEN m.stream_by END AS stream_by,
       CASE WHEN a.is_owner THEN m.codecs END AS codecs,
       m.config, m.options, m.metrics, m.device, m.rows, m.streams, m.training_seconds,
       m.trained_at, r.rolname AS owner, m.owner AS trained_by,
       pg_catalog.octet_length(m.weights) AS weight_bytes,
       CASE WHEN a.is_owner THEN
           ARRAY(SELECT gr.rolname FROM stan.model_grants g
                   JOIN pg_catalog.pg_roles gr ON gr.oid = g.grantee_oid
                  WHERE g.name = m.name ORDER BY g.granted_at)
       END AS granted_to
  FROM stan.model_store m
       LEFT JOIN pg_catalog.pg_roles r ON r.oid = m.owner_oid,
       LATERAL (SELECT COALESCE(pg_catalog.pg_has_role(m.owner_oid, 'USAGE'), false)
                       OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles s
                                   WHERE s.rolname = CURRENT_USER AND s.rolsuper) AS is_owner) a
 WHERE a.is_owner
    OR EXISTS (SELECT 1 FROM stan.model_grants g
                WHERE g.name = m.name AND pg_catalog.pg_has_role(g.grantee_oid, 'USAGE'));
COMMENT ON VIEW stan.model_details IS 'stan models the caller owns or may generate from, one row per version with everything but the weights';

-- One line per version, for reading at a terminal.
CREATE VIEW stan.models AS
SELECT d.name, d.version, d.owner, d.source, d.trained_at, d.rows, d.streams,
       (d.metrics -> 'training' ->> 'epochs_run')::integer AS epochs,
       (d.metrics -> 'training' ->> 'best_validation_loss')::float8 AS validation_loss,
       d.training_seconds, d.device, d.weight_bytes
  FROM stan.model_details d;
COMMENT ON VIEW stan.models IS 'stan models the caller owns or may generate from, one line per version (stan.model_details has the rest)';

REVOKE ALL ON stan.model_store, stan.model_grants FROM PUBLIC;
GRANT USAGE ON SCHEMA stan TO PUBLIC;
GRANT SELECT ON stan.model_details, stan.models TO PUBLIC;

-- Models are data: pg_dump keeps them.
SELECT pg_catalog.pg_extension_config_dump('stan.model_store', '');
SELECT pg_catalog.pg_extension_config_dump('stan.model_grants', '');
