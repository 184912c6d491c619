-- The public SQL surface (the contract in DESIGN.md), as thin wrappers over the Rust functions
-- in schema stan. Kept in SQL so the signatures carry the contract's types.

CREATE FUNCTION stan_train(
    relation regclass,
    model text DEFAULT NULL,
    order_by text DEFAULT NULL,
    stream_by text DEFAULT NULL,
    columns jsonb DEFAULT '{}',
    options jsonb DEFAULT '{}'
) RETURNS text
LANGUAGE sql VOLATILE
AS $$ SELECT stan.train(relation::oid, model, order_by, stream_by, columns, options) $$;
COMMENT ON FUNCTION stan_train(regclass, text, text, text, jsonb, jsonb) IS
    'Learn a table of flows; stores a new model version and returns the model name';

CREATE FUNCTION stan_generate(
    rowtype anyelement,
    span interval,
    model text DEFAULT NULL,
    seed bigint DEFAULT NULL,
    start timestamptz DEFAULT NULL,
    streams integer DEFAULT NULL
) RETURNS SETOF anyelement
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_catalog.jsonb_populate_record(rowtype, r)
      FROM stan.generate_rows(pg_catalog.pg_typeof(rowtype)::oid,
                              extract(epoch FROM span)::float8, model, seed,
                              extract(epoch FROM start)::float8, streams) AS r
$$;
COMMENT ON FUNCTION stan_generate(anyelement, interval, text, bigint, timestamptz, integer) IS
    'Synthetic rows of the given row type covering span of generated time';

CREATE FUNCTION stan_drop(model text) RETURNS bigint
LANGUAGE sql VOLATILE
AS $$ SELECT stan.drop_model(model) $$;
COMMENT ON FUNCTION stan_drop(text) IS 'Remove every version of a model; returns how many';

CREATE FUNCTION stan_demo_flows(
    hosts integer DEFAULT 20,
    span interval DEFAULT '1 day',
    seed bigint DEFAULT 1,
    start timestamp DEFAULT '2016-04-11 00:00:00'
) RETURNS TABLE (te timestamp, td float8, sa inet, da inet, sp integer, dp integer,
                 pr text, flg text, pkt bigint, byt bigint)
LANGUAGE sql VOLATILE
AS $$
    SELECT pg_catalog.to_timestamp(f.te) AT TIME ZONE 'UTC', f.td, f.sa::inet, f.da::inet,
           f.sp, f.dp, f.pr, f.flg, f.pkt, f.byt
      FROM stan.demo_flows_raw(hosts, extract(epoch FROM span)::float8, seed,
                               extract(epoch FROM start AT TIME ZONE 'UTC')::float8) AS f
$$;
COMMENT ON FUNCTION stan_demo_flows(integer, interval, bigint, timestamp) IS
    'Deterministic simulated flows (DNS, HTTP/S, SSH, NTP, SNMP, ICMP) for demos and tests';
