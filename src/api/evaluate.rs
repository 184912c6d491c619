//! stan_evaluate and stan_report: generate a sample over the held-out rows' span and compare
//! (metrics in stan_core::evaluate, the page in stan_core::report). Owner only: they read the
//! training rows.

use super::access::{caller, require_owner, with_pinned_search_path};
use super::error::{fail, internal, required};
use super::generate::{check_row_type, load_model, StoredModel};
use super::relation::{check_readable, relation_name, Reader};
use super::spi::select_one;
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use stan_core::codec::{Codec, ColumnValues};
use stan_core::evaluate::{evaluate, Metric, Rows};
use stan_core::schema::{ColumnPlan, Kind};

/// How a stored codec column is read back from a table.
fn plans(stored: &StoredModel) -> Vec<ColumnPlan> {
    stored
        .codec
        .columns
        .iter()
        .map(|c| ColumnPlan {
            name: c.name.clone(),
            type_name: c.type_name.clone(),
            read_as: c.read_as,
            kind: match c.codec {
                Codec::Gap { .. } => Kind::Order,
                Codec::Ipv4 { .. } => Kind::Ipv4,
                Codec::Port { .. } => Kind::Port,
                Codec::Category { .. } => Kind::Category,
                Codec::Count { .. } => Kind::Count,
                Codec::Continuous { .. } => Kind::Continuous,
                Codec::Skip => Kind::Skip,
            },
        })
        .collect()
}

pub(crate) struct Table {
    pub values: Vec<ColumnValues>,
    pub streams: Vec<u64>,
}

impl Table {
    pub fn rows(&self) -> Rows<'_> {
        Rows {
            values: &self.values,
            streams: &self.streams,
        }
    }
}

pub(crate) struct Evaluation {
    pub stored: StoredModel,
    pub synthetic: Table,
    pub holdout: Table,
    pub training: Option<Table>,
    pub metrics: Vec<Metric>,
}

fn read(relation: pg_sys::Oid, plans: &[ColumnPlan], reader: &Reader) -> Table {
    let (values, streams) = reader.read(relation, plans, None);
    Table { values, streams }
}

fn one<T: IntoDatum + FromDatum>(sql: &str, args: &[pgrx::datum::DatumWithOid]) -> Option<T> {
    with_pinned_search_path(|| select_one::<T>(sql, args).ok().flatten())
}

/// The training relation, if a relation of its name still exists and the model's owner may
/// read it (it is read as the owner: see `relation`).
fn training_relation(stored: &StoredModel, owner: Option<pg_sys::Oid>) -> Option<pg_sys::Oid> {
    let owner = owner?;
    let relid: pg_sys::Oid = one(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[stored.source.clone().into()],
    )?;
    // The catalog keeps the name (what a restore keeps), and another role may have put its own
    // relation under that name since: only one owned by a role whose rights the model's owner
    // has is read, so no one else's code runs as the owner.
    let (readable, trusted): (bool, bool) = with_pinned_search_path(|| {
        Spi::connect(|client| {
            let rows = client
                .select(
                    "SELECT pg_catalog.has_table_privilege($2, c.oid, 'SELECT'),
                            pg_catalog.pg_has_role($2, c.relowner, 'USAGE')
                       FROM pg_catalog.pg_class c WHERE c.oid = $1",
                    Some(1),
                    &[relid.into(), owner.into()],
                )
                .unwrap_or_else(|e| internal("reading the catalog", e));
            if rows.is_empty() {
                return (false, false);
            }
            let (readable, trusted) = rows.first().get_two::<bool, bool>().unwrap_or((None, None));
            (readable.unwrap_or(false), trusted.unwrap_or(false))
        })
    });
    if !trusted {
        notice!("stan_evaluate: the training relation {} now belongs to a role whose rights the model's owner does not have, so it is not read; divergence baselines and exact-match figures are NULL", stored.source.as_deref().unwrap_or_default());
        return None;
    }
    if !readable {
        notice!("stan_evaluate: the model's owner cannot read the training table; divergence baselines and exact-match figures are NULL");
        return None;
    }
    Some(relid)
}

/// Generates the comparison sample over the holdout's span through stan_generate's own path, into
/// a temporary table of the holdout's shape, so it is read back exactly as the holdout is.
#[allow(clippy::too_many_arguments)]
fn generate_sample(
    model: &str,
    version: i32,
    holdout: pg_sys::Oid,
    rowtype: pg_sys::Oid,
    span: f64,
    seed: Option<i64>,
    start: f64,
    streams: Option<i32>,
    plans: &[ColumnPlan],
    reader: &Reader,
) -> Table {
    let type_name: String =
        one("SELECT pg_catalog.format_type($1, NULL)", &[rowtype.into()]).unwrap_or_default();
    let holdout_name = relation_name(holdout);
    // A name no table of the session has: the caller's own temporary tables are never touched.
    // (It needs no cleanup after an error: the failed transaction takes the table with it.)
    let free: Option<i32> = one(
        "SELECT (SELECT n FROM pg_catalog.generate_series(1, 1000) n
                  WHERE pg_catalog.to_regclass(pg_catalog.concat('pg_temp.stan_evaluate_sample_', n)) IS NULL
                  LIMIT 1)",
        &[],
    );
    let name = format!(
        "stan_evaluate_sample_{}",
        free.unwrap_or_else(|| fail(
            Code::ERRCODE_DUPLICATE_TABLE,
            "stan: the session holds 1,000 temporary tables named stan_evaluate_sample_n; drop some".into(),
        ))
    );
    let temp = format!("pg_temp.{name}");
    with_pinned_search_path(|| {
        Spi::run(&format!("CREATE TEMP TABLE {name} (LIKE {holdout_name})"))
            .unwrap_or_else(|e| internal("creating the sample table", e));
        Spi::run_with_args(
            &format!(
                "INSERT INTO {temp}
                 SELECT (pg_catalog.jsonb_populate_record(NULL::{type_name}, r)).*
                   FROM stan.generate_rows($1, $2, $3, $4, $5, $6, NULL, $7) AS r"
            ),
            &[
                rowtype.into(),
                span.into(),
                model.to_string().into(),
                seed.unwrap_or(1).into(),
                start.into(),
                streams.into(),
                version.into(),
            ],
        )
        .unwrap_or_else(|e| internal("generating the sample", e));
    });
    let temp_oid: pg_sys::Oid = one(
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[temp.clone().into()],
    )
    .unwrap_or_else(|| {
        fail(
            Code::ERRCODE_INTERNAL_ERROR,
            "stan: the sample table vanished".into(),
        )
    });
    let synthetic = read(temp_oid, plans, reader);
    with_pinned_search_path(|| Spi::run(&format!("DROP TABLE {temp}")).ok());
    synthetic
}

pub(crate) fn run(
    model: &str,
    holdout: pg_sys::Oid,
    span_seconds: Option<f64>,
    seed: Option<i64>,
    streams: Option<i32>,
    synthetic_table: Option<pg_sys::Oid>,
) -> Evaluation {
    let access = require_owner(model, "evaluate it");
    let stored = load_model(Some(model), pg_sys::InvalidOid, None);
    let rowtype: pg_sys::Oid = one(
        "SELECT c.reltype FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[holdout.into()],
    )
    .unwrap_or_else(|| {
        fail(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("stan: holdout relation {} does not exist", holdout.to_u32()),
        )
    });
    check_row_type(rowtype, &stored);
    check_readable(holdout);
    let plans = plans(&stored);
    // A stored stream_by that is not simply a column is the trainer's SQL: on relations the
    // caller names it runs only for the trainer itself (restricted, so not even a superuser's
    // SET ROLE to the trainer lets it act as anyone else); the training relation and it are
    // read as the model's owner.
    let is_column = |expr: &str| {
        stored
            .codec
            .columns
            .iter()
            .any(|c| quote_identifier(&c.name) == *expr)
    };
    let caller_stream_by = stored.stream_by.as_deref().filter(|expr| {
        if !is_column(expr) && !access.is_trainer {
            notice!(
                "stan_evaluate: model \"{model}\" groups rows into streams with an SQL expression of its trainer ({}), which runs only for that role; per-stream figures treat the rows as one stream",
                access.owner_name
            );
        }
        is_column(expr) || access.is_trainer
    });
    // The holdout, the sample and the training rows are held at once.
    let as_caller = Reader {
        role: caller(),
        stream_by: caller_stream_by,
        reads: 3,
    };
    let as_owner = Reader {
        role: access.owner.unwrap_or_else(caller),
        stream_by: stored.stream_by.as_deref(),
        reads: 3,
    };
    let holdout_rows = read(holdout, &plans, &as_caller);
    let order = plans.iter().position(|p| p.kind == Kind::Order);
    let times: Vec<f64> = order
        .map(|o| stan_core::evaluate::numbers(&holdout_rows.values[o]))
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    if times.is_empty() {
        fail(
            Code::ERRCODE_DATA_EXCEPTION,
            format!(
                "stan: holdout relation {} has no rows with a time to compare with",
                relation_name(holdout)
            ),
        );
    }
    let start = times.iter().copied().fold(f64::INFINITY, f64::min);
    let end = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = match span_seconds {
        Some(s) if s > 0.0 && s.is_finite() => s,
        Some(s) => fail(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("stan: span must be positive, not {s} seconds"),
        ),
        None => (end - start).max(1.0),
    };
    let synthetic = match synthetic_table {
        Some(table) => {
            check_readable(table);
            let t: pg_sys::Oid = one(
                "SELECT c.reltype FROM pg_catalog.pg_class c WHERE c.oid = $1",
                &[table.into()],
            )
            .unwrap_or_default();
            check_row_type(t, &stored);
            read(table, &plans, &as_caller)
        }
        None => generate_sample(
            model,
            stored.version,
            holdout,
            rowtype,
            span,
            seed,
            start,
            streams,
            &plans,
            &as_caller,
        ),
    };
    let training = training_relation(&stored, access.owner).map(|t| read(t, &plans, &as_owner));
    let metrics = evaluate(
        &stored.codec,
        &synthetic.rows(),
        &holdout_rows.rows(),
        training.as_ref().map(|t| t.rows()).as_ref(),
    );
    Evaluation {
        stored,
        synthetic,
        holdout: holdout_rows,
        training,
        metrics,
    }
}

#[pg_schema]
mod stan {
    use super::*;

    /// Implements stan_evaluate (see sql/api.sql).
    // pgrx reads the result columns' names from the signature, so no type alias.
    #[allow(clippy::type_complexity)]
    #[pg_extern(name = "evaluate")]
    fn evaluate_model(
        model: Option<&str>,
        holdout: Option<pg_sys::Oid>,
        span_seconds: Option<f64>,
        seed: Option<i64>,
        streams: Option<i32>,
        synthetic: Option<pg_sys::Oid>,
    ) -> TableIterator<
        'static,
        (
            name!(metric, String),
            name!(column_name, String),
            name!(synthetic, Option<f64>),
            name!(real, Option<f64>),
            name!(detail, String),
        ),
    > {
        let (model, holdout) = (required(model, "model"), required(holdout, "holdout"));
        let result = run(model, holdout, span_seconds, seed, streams, synthetic);
        TableIterator::new(
            result
                .metrics
                .into_iter()
                .map(|m| (m.metric, m.column, m.synthetic, m.real, m.detail)),
        )
    }

    /// Implements stan_report (see sql/api.sql): a self-contained HTML page.
    #[pg_extern(name = "report")]
    fn report(
        model: Option<&str>,
        holdout: Option<pg_sys::Oid>,
        span_seconds: Option<f64>,
        seed: Option<i64>,
        streams: Option<i32>,
        synthetic: Option<pg_sys::Oid>,
    ) -> String {
        let (model, holdout) = (required(model, "model"), required(holdout, "holdout"));
        let e = run(model, holdout, span_seconds, seed, streams, synthetic);
        stan_core::report::html(
            &e.stored.name,
            &relation_name(holdout),
            &e.stored.codec,
            &e.synthetic.rows(),
            &e.holdout.rows(),
            e.training.as_ref().map(|t| t.rows()).as_ref(),
            &e.metrics,
        )
    }
}
