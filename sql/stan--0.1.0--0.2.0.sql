-- stan 0.1.0 -> 0.2.0. The catalog is rebuilt in 0.2.0's layout (sql/catalog.sql), so an
-- upgraded database and a fresh one are the same (scripts/test_operations.sh compares them):
--   * roles and the training relation are stored by name (a restore keeps names, not OIDs);
--     each role name is resolved to its OID when a row is written;
--   * each version records its stored format (0.1.0's models are format 1, read by their own
--     loader);
--   * stan.models is one line per version, stan.model_details has the rest;
--   * stan_generate(..., version => n), stan_drop(model, version), stan_reassign, stan.progress.
\echo Use "ALTER EXTENSION stan UPDATE TO '0.2.0'" to load this file. \quit

ALTER TABLE stan.model_store RENAME TO model_store_0_1;
ALTER INDEX stan.model_store_pkey RENAME TO model_store_0_1_pkey;
ALTER TABLE stan.model_grants RENAME TO model_grants_0_1;
ALTER INDEX stan.model_grants_pkey RENAME TO model_grants_0_1_pkey;
DROP VIEW stan.models;

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

-- 0.1.0 kept roles as regrole (an OID). A model whose owner was dropped since has no owner
-- (an empty name, a NULL OID): it stays an orphan for superusers.
-- The training relation by its current name where it still exists (0.1.0 followed its OID).
INSERT INTO stan.model_store
    (name, version, format, source, stream_by, codecs, config, options, metrics, device, rows,
     streams, training_seconds, trained_at, owner, owner_oid, weights)
SELECT m.name, m.version, 1,
       COALESCE((SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                        OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
                   FROM pg_catalog.pg_class c
                   JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
                  WHERE c.oid OPERATOR(pg_catalog.=) m.source_relid), m.source),
       m.stream_by, m.codecs, m.config, m.options, m.metrics,
       m.device, m.rows, m.streams, m.training_seconds, m.trained_at,
       COALESCE(r.rolname::pg_catalog.text, ''), r.oid, m.weights
  FROM stan.model_store_0_1 m
  LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.owner::pg_catalog.oid;
INSERT INTO stan.model_grants (name, grantee, grantee_oid, granted_by, granted_at)
SELECT g.name, r.rolname::pg_catalog.text, r.oid,
       COALESCE((SELECT b.rolname::pg_catalog.text FROM pg_catalog.pg_roles b
                  WHERE b.oid OPERATOR(pg_catalog.=) g.granted_by::pg_catalog.oid), ''),
       g.granted_at
  FROM stan.model_grants_0_1 g
  JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) g.grantee::pg_catalog.oid;
ALTER EXTENSION stan DROP TABLE stan.model_store_0_1;
ALTER EXTENSION stan DROP TABLE stan.model_grants_0_1;
DROP TABLE stan.model_store_0_1, stan.model_grants_0_1;

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

CREATE VIEW stan.models AS
SELECT d.name, d.version, d.owner, d.source, d.trained_at, d.rows, d.streams,
       (d.metrics -> 'training' ->> 'epochs_run')::integer AS epochs,
       (d.metrics -> 'training' ->> 'best_validation_loss')::float8 AS validation_loss,
       d.training_seconds, d.device, d.weight_bytes
  FROM stan.model_details d;
COMMENT ON VIEW stan.models IS 'stan models the caller owns or may generate from, one line per version (stan.model_details has the rest)';

REVOKE ALL ON stan.model_store, stan.model_grants FROM PUBLIC;
GRANT SELECT ON stan.model_details, stan.models TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('stan.model_store', '');
SELECT pg_catalog.pg_extension_config_dump('stan.model_grants', '');

-- Functions whose signatures changed, and the new ones (as 0.2.0's install script defines them).
DROP FUNCTION stan_generate(anyelement, interval, text, bigint, timestamptz, integer, interval);
DROP FUNCTION stan.generate_rows(oid, double precision, text, bigint, double precision, integer, double precision);
DROP FUNCTION stan_drop(text);
DROP FUNCTION stan.drop_model(text);
CREATE FUNCTION stan."generate_rows"(
	"rowtype" oid, /* pg_sys :: Oid */
	"span_seconds" double precision, /* Option < f64 > */
	"model" TEXT, /* Option < String > */
	"seed" bigint, /* Option < i64 > */
	"start_epoch" double precision, /* Option < f64 > */
	"streams" INT, /* Option < i32 > */
	"warmup_seconds" double precision, /* Option < f64 > */
	"version" INT /* Option < i32 > */
) RETURNS SETOF jsonb /* JsonB */

LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'generate_rows_wrapper';

CREATE FUNCTION stan."drop_model"(
	"model" TEXT, /* Option < & str > */
	"version" INT, /* Option < i32 > */
	"every_version" bool /* bool */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_model_wrapper';

CREATE FUNCTION stan."reassign_model"(
	"model" TEXT, /* & str */
	"new_owner" oid /* pg_sys :: Oid */
) RETURNS bigint /* i64 */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'reassign_model_wrapper';

CREATE FUNCTION stan."progress_rows"() RETURNS TABLE (
	"pid" INT,  /* i32 */
	"datname" TEXT,  /* Option < String > */
	"model" TEXT,  /* String */
	"owner" TEXT,  /* Option < String > */
	"phase" TEXT,  /* Option < String > */
	"epoch" bigint,  /* Option < i64 > */
	"epochs" bigint,  /* Option < i64 > */
	"rows" bigint,  /* Option < i64 > */
	"rows_per_s" double precision,  /* Option < f64 > */
	"loss" double precision,  /* Option < f64 > */
	"validation_loss" double precision,  /* Option < f64 > */
	"elapsed_s" double precision,  /* f64 */
	"eta_s" double precision,  /* Option < f64 > */
	"started_at" timestamp with time zone  /* Option < TimestampWithTimeZone > */
)
STRICT 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'progress_rows_wrapper';

CREATE VIEW stan.progress AS
SELECT p.pid, p.datname, p.model, p.owner, p.phase, p.epoch, p.epochs, p.rows,
       p.rows_per_s, p.loss, p.validation_loss, p.elapsed_s, p.eta_s, p.started_at
  FROM stan.progress_rows() p;
COMMENT ON VIEW stan.progress IS
    'stan trainings running now: phase (reading, fitting, training, storing), epoch, loss, rows per second, elapsed and estimated remaining seconds; NULL until the first epoch';

GRANT SELECT ON stan.progress TO PUBLIC;

CREATE FUNCTION stan_generate(
    rowtype anyelement,
    span interval,
    model text DEFAULT NULL,
    seed bigint DEFAULT NULL,
    start timestamptz DEFAULT NULL,
    streams integer DEFAULT NULL,
    warmup interval DEFAULT NULL,
    version integer DEFAULT NULL
) RETURNS SETOF anyelement
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_populate_record(rowtype, r)
      FROM stan.generate_rows(pg_catalog.pg_typeof(rowtype)::oid,
                              EXTRACT(epoch FROM span)::pg_catalog.float8, model, seed,
                              EXTRACT(epoch FROM start)::pg_catalog.float8, streams,
                              EXTRACT(epoch FROM warmup)::pg_catalog.float8, version) AS r
$$;
COMMENT ON FUNCTION stan_generate(anyelement, interval, text, bigint, timestamptz, integer, interval, integer) IS
    'Synthetic rows of the given row type covering span of generated time (from the latest version, or the one given)';

CREATE FUNCTION stan_drop(model text) RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT stan.drop_model(model, NULL, true) $$;
COMMENT ON FUNCTION stan_drop(text) IS
    'Remove every version of a model and its grants (owner only); returns how many versions';

-- A separate function, not a default: a version that comes out NULL is an error, never "all".
CREATE FUNCTION stan_drop(model text, version integer) RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT stan.drop_model(model, version, false) $$;
COMMENT ON FUNCTION stan_drop(text, integer) IS
    'Remove one version of a model (owner only); returns 1';

CREATE FUNCTION stan_reassign(model text, role regrole) RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT stan.reassign_model(model, role::pg_catalog.oid) $$;
COMMENT ON FUNCTION stan_reassign(text, regrole) IS
    'Give every version of a model to another role (owner, who must belong to that role, or a superuser); returns how many versions';
