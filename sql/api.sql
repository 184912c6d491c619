-- The public SQL surface (the contract in DESIGN.md), as thin wrappers over the Rust functions
-- in schema stan. Kept in SQL so the signatures carry the contract's types.
--
-- None is SECURITY DEFINER: each runs as its caller, so the source table is read with the
-- caller's rights and the Rust code knows exactly who calls (see src/api/access.rs for how the
-- catalog is written). Every name is qualified and search_path is pinned where no user
-- expression is evaluated (stan_train's stream_by is the caller's own SQL, run with its rights).

CREATE FUNCTION stan_train(
    relation regclass,
    model text DEFAULT NULL,
    order_by text DEFAULT NULL,
    stream_by text DEFAULT NULL,
    columns jsonb DEFAULT '{}',
    options jsonb DEFAULT '{}'
) RETURNS text
LANGUAGE sql VOLATILE
AS $$ SELECT stan.train(relation::pg_catalog.oid, model, order_by, stream_by, columns, options) $$;
COMMENT ON FUNCTION stan_train(regclass, text, text, text, jsonb, jsonb) IS
    'Learn a table of flows; stores a new model version and returns the model name';

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

CREATE FUNCTION stan_grant(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT stan.grant_model(model, role::pg_catalog.oid) $$;
COMMENT ON FUNCTION stan_grant(text, regrole) IS
    'Let a role (and its members) generate from a model, and nothing else (owner only); false if it already could';

CREATE FUNCTION stan_revoke(model text, role regrole) RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT stan.revoke_model(model, role::pg_catalog.oid) $$;
COMMENT ON FUNCTION stan_revoke(text, regrole) IS
    'Withdraw a stan_grant; the role''s next stan_generate is refused (owner only); false if there was none';

CREATE FUNCTION stan_reassign(model text, role regrole) RETURNS bigint
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT stan.reassign_model(model, role::pg_catalog.oid) $$;
COMMENT ON FUNCTION stan_reassign(text, regrole) IS
    'Give every version of a model to another role (owner, who must belong to that role, or a superuser); returns how many versions';

CREATE FUNCTION stan_demo_flows(
    hosts integer DEFAULT 20,
    span interval DEFAULT '1 day',
    seed bigint DEFAULT 1,
    start timestamp DEFAULT '2016-04-11 00:00:00'
) RETURNS TABLE (te timestamp, td float8, sa inet, da inet, sp integer, dp integer,
                 pr text, flg text, pkt bigint, byt bigint)
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_catalog.to_timestamp(f.te) AT TIME ZONE 'UTC', f.td, f.sa::pg_catalog.inet,
           f.da::pg_catalog.inet, f.sp, f.dp, f.pr, f.flg, f.pkt, f.byt
      FROM stan.demo_flows_raw(hosts, EXTRACT(epoch FROM span)::pg_catalog.float8, seed,
                               EXTRACT(epoch FROM start AT TIME ZONE 'UTC')::pg_catalog.float8) AS f
     ORDER BY f.te, f.sa::pg_catalog.inet
$$;
COMMENT ON FUNCTION stan_demo_flows(integer, interval, bigint, timestamp) IS
    'Deterministic simulated flows (DNS, HTTP/S, SSH, NTP, SNMP, ICMP) for demos and tests';

CREATE FUNCTION stan_evaluate(
    model text,
    holdout regclass,
    span interval DEFAULT NULL,
    seed bigint DEFAULT 1,
    streams integer DEFAULT NULL,
    synthetic regclass DEFAULT NULL
) RETURNS TABLE (metric text, column_name text, synthetic float8, "real" float8, detail text)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM stan.evaluate(model, holdout::pg_catalog.oid,
                                EXTRACT(epoch FROM span)::pg_catalog.float8, seed, streams,
                                synthetic::pg_catalog.oid)
$$;
COMMENT ON FUNCTION stan_evaluate(text, regclass, interval, bigint, integer, regclass) IS
    'Compare a sample generated over the held-out rows'' span (or the synthetic table given) with them: divergences, domain checks, ports, streams, privacy (owner only)';

CREATE FUNCTION stan_report(
    model text,
    holdout regclass,
    span interval DEFAULT NULL,
    seed bigint DEFAULT 1,
    streams integer DEFAULT NULL,
    synthetic regclass DEFAULT NULL
) RETURNS text
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT stan.report(model, holdout::pg_catalog.oid,
                       EXTRACT(epoch FROM span)::pg_catalog.float8, seed, streams,
                       synthetic::pg_catalog.oid)
$$;
COMMENT ON FUNCTION stan_report(text, regclass, interval, bigint, integer, regclass) IS
    'stan_evaluate as a self-contained HTML page with a chart per column (owner only)';
