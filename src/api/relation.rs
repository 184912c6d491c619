//! Every read stan makes of a user's relation, and what it accepts as one.
//!
//! Who reads: a relation the caller names (the table to train on, a holdout, a synthetic table)
//! is read with the caller's own rights; the relation and stream expression a model's trainer
//! stored are read as the model's owner. Either way the read runs inside a security-restricted
//! operation with `search_path` pinned (`access::restricted_as`), so code the relation or the
//! expression reaches cannot SET ROLE or RESET ROLE to anyone else. Values come out through
//! their type's output function (`format('%s', ...)`) or built-in casts of built-in types,
//! never through a cast a user created.

use super::access::{restricted_as, with_pinned_search_path};
use super::error::{fail, internal, ok};
use super::spi::select_one;
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use stan_core::codec::ColumnValues;
use stan_core::options::TrainOptions;
use stan_core::sample::sample_streams;
use stan_core::schema::{ColumnInfo, ColumnPlan, Kind, ReadAs};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

const FETCH_ROWS: i64 = 10_000;

/// Relation kinds stan reads rows from: tables, partitioned tables, views, materialized views
/// and foreign tables. A view is read with the rights of whoever the read runs as (the caller,
/// or the model's owner when stan re-reads a model's training relation), never anyone else's.
const READABLE_KINDS: &str = "rpvmf";

/// Raises unless `relation` exists and is a kind of relation rows can be read from.
pub fn check_readable(relation: pg_sys::Oid) {
    let kind: Option<String> = with_pinned_search_path(|| {
        select_one(
            "SELECT (SELECT c.relkind::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid = $1)",
            &[relation.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog", e))
    });
    match kind {
        None => fail(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!(
                "stan: relation with OID {} does not exist",
                relation.to_u32()
            ),
        ),
        Some(k) if READABLE_KINDS.contains(k.as_str()) => {}
        Some(_) => fail(
            Code::ERRCODE_WRONG_OBJECT_TYPE,
            format!(
                "stan: \"{}\" is not a table, view, materialized view or foreign table",
                relation_name(relation)
            ),
        ),
    }
}

/// Raises if any column of the row type `relation` defines has a domain with a CHECK
/// constraint anywhere in its type (the column's own type, a domain's base, an array's
/// element, a composite's fields, a range's subtype): PostgreSQL runs those checks, which can
/// call any function, as whoever builds a row of the type, and stan builds generated rows for
/// callers other than the model's trainer.
pub fn refuse_constrained_domains(relation: pg_sys::Oid) {
    let found: Option<(String, String)> = with_pinned_search_path(|| {
        Spi::connect(|client| {
            let mut rows = client
                .select(
                    "WITH RECURSIVE reach(col, typ) AS (
                         SELECT a.attname::pg_catalog.text, a.atttypid
                           FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                         UNION
                         SELECT r.col, n.typ
                           FROM reach r
                           JOIN pg_catalog.pg_type t ON t.oid = r.typ
                           CROSS JOIN LATERAL (
                               SELECT t.typbasetype AS typ WHERE t.typtype = 'd'
                               UNION ALL SELECT t.typelem WHERE t.typelem <> 0
                               UNION ALL SELECT f.atttypid FROM pg_catalog.pg_attribute f
                                          WHERE f.attrelid = t.typrelid AND t.typrelid <> 0
                                            AND f.attnum > 0 AND NOT f.attisdropped
                               UNION ALL SELECT g.rngsubtype FROM pg_catalog.pg_range g
                                          WHERE g.rngtypid = t.oid
                               UNION ALL SELECT g.rngtypid FROM pg_catalog.pg_range g
                                          WHERE g.rngmultitypid = t.oid
                           ) n
                     )
                     SELECT r.col, pg_catalog.format_type(c.contypid, NULL)
                       FROM reach r
                       JOIN pg_catalog.pg_constraint c ON c.contypid = r.typ AND c.contype = 'c'
                      ORDER BY 1 LIMIT 1",
                    Some(1),
                    &[relation.into()],
                )
                .unwrap_or_else(|e| internal("reading the catalog", e));
            rows.next().map(|r| {
                (
                    r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    r.get::<String>(2).ok().flatten().unwrap_or_default(),
                )
            })
        })
    });
    if let Some((column, domain)) = found {
        fail(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "stan: column \"{column}\" of {} uses domain {domain}, which has a CHECK constraint; stan does not build rows whose types run code on input: use the domain's base type (a view can cast to it)",
                relation_name(relation)
            ),
        );
    }
}

pub fn table_columns(relation: pg_sys::Oid) -> Vec<ColumnInfo> {
    with_pinned_search_path(|| {
        Spi::connect(|client| {
            let rows = client
            .select(
                "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), t.typtype = 'e'
                   FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                  WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attnum",
                None,
                &[relation.into()],
            )
            .unwrap_or_else(|e| internal("reading the catalog", e));
            rows.map(|r| ColumnInfo {
                name: r.get::<String>(1).ok().flatten().unwrap_or_default(),
                type_name: r.get::<String>(2).ok().flatten().unwrap_or_default(),
                is_enum: r.get::<bool>(3).ok().flatten().unwrap_or(false),
            })
            .collect()
        })
    })
}

/// A value as text through its type's output function, NULL kept NULL; never a user's cast.
fn as_text(expression: &str) -> String {
    format!(
        "CASE WHEN ({expression}) IS NULL THEN NULL::pg_catalog.text ELSE pg_catalog.format('%s', ({expression})) END"
    )
}

pub(crate) fn read_expression(plan: &ColumnPlan) -> String {
    // Qualified throughout; the types read through casts are PostgreSQL's own (schema::plan
    // accepts only built-in type names there), so only built-in casts run.
    let c = pgrx::spi::quote_identifier(&plan.name);
    if plan.kind == Kind::Skip {
        return "NULL::pg_catalog.text".into();
    }
    match plan.read_as {
        ReadAs::Epoch | ReadAs::IntervalSeconds => {
            format!("EXTRACT(epoch FROM {c})::pg_catalog.float8")
        }
        ReadAs::Int => format!("{c}::pg_catalog.int8"),
        ReadAs::Float => format!("{c}::pg_catalog.float8"),
        ReadAs::Text => as_text(&c),
        ReadAs::Ipv4 => format!(
            "CASE WHEN pg_catalog.family({c}) OPERATOR(pg_catalog.=) 4
                  THEN {c} OPERATOR(pg_catalog.-) '0.0.0.0'::pg_catalog.inet ELSE -1 END"
        ),
    }
}

fn stream_key(text: Option<String>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// The rows a `max_rows` sample keeps: whole streams, and at most one stream up to a time.
pub(crate) struct RowFilter {
    whole: HashSet<u64>,
    /// (stream, time column index, first time not kept).
    partial: Option<(u64, usize, f64)>,
}

impl RowFilter {
    fn keeps(&self, key: u64, row: &pgrx::spi::SpiHeapTupleData<'_>) -> bool {
        if self.whole.contains(&key) {
            return true;
        }
        match self.partial {
            Some((k, time_column, cutoff)) if k == key => row
                .get::<f64>(time_column + 1)
                .ok()
                .flatten()
                .is_some_and(|t| t < cutoff),
            _ => false,
        }
    }
}

pub(crate) fn relation_name(relation: pg_sys::Oid) -> String {
    with_pinned_search_path(|| {
        select_one(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[relation.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog", e))
        .unwrap_or_else(|| {
            fail(
                Code::ERRCODE_UNDEFINED_TABLE,
                format!(
                    "stan: relation with OID {} does not exist",
                    relation.to_u32()
                ),
            )
        })
    })
}

/// How rows are read: as whom, and with which stream expression (SQL of the model's trainer,
/// or a quoted column name).
pub(crate) struct Reader<'a> {
    pub role: pg_sys::Oid,
    pub stream_by: Option<&'a str>,
    /// How many relations the call reads: each may hold this share of `stan.max_memory_mb`.
    pub reads: u64,
}

/// Per value as read: the Option and its payload, or a String's header.
const VALUE_BYTES: usize = 24;

impl Reader<'_> {
    /// The stream key as text, the expression evaluated once per row: `%L` quotes a value and
    /// spells NULL as NULL, so NULL and '' stay different streams without a second evaluation.
    fn key_expression(&self) -> Option<String> {
        self.stream_by
            .map(|expr| format!("pg_catalog.format('%L', ({expr}))"))
    }

    /// With `max_rows`, counts rows per stream and picks a seeded sample of whole streams that
    /// fits; None when the table already fits.
    pub fn plan_sample(
        &self,
        relation: pg_sys::Oid,
        plans: &[ColumnPlan],
        options: &TrainOptions,
        model: &str,
    ) -> Option<RowFilter> {
        if options.max_rows == 0 {
            return None;
        }
        let relname = relation_name(relation);
        let key_expr = self
            .key_expression()
            .unwrap_or_else(|| "NULL::pg_catalog.text".to_string());
        let counts: Vec<(Option<String>, u64)> = restricted_as(self.role, || {
            Spi::connect(|client| {
                client
                    .select(
                        &format!(
                            "SELECT {key_expr}, pg_catalog.count(*) FROM {relname} GROUP BY 1"
                        ),
                        None,
                        &[],
                    )
                    .unwrap_or_else(|e| {
                        fail(
                            Code::ERRCODE_INVALID_PARAMETER_VALUE,
                            format!("stan: cannot read {relname}: {e}"),
                        )
                    })
                    .map(|r| {
                        (
                            r.get::<String>(1).ok().flatten(),
                            r.get::<i64>(2).ok().flatten().unwrap_or(0) as u64,
                        )
                    })
                    .collect()
            })
        });
        let total: u64 = counts.iter().map(|c| c.1).sum();
        if total <= options.max_rows {
            return None;
        }
        let keyed: Vec<(u64, u64)> = counts
            .iter()
            .map(|(k, n)| (stream_key(k.clone()), *n))
            .collect();
        let sample = sample_streams(&keyed, options.max_rows, options.seed);
        let partial = sample.partial.and_then(|(key, rows)| {
            let time_column = plans.iter().position(|p| p.kind == Kind::Order)?;
            let text = counts
                .iter()
                .find(|(k, _)| stream_key(k.clone()) == key)
                .and_then(|(k, _)| k.clone());
            let cutoff: f64 = restricted_as(self.role, || {
                select_one(
                    &format!(
                        "SELECT (SELECT t FROM (SELECT {} AS t FROM {relname} WHERE {key_expr} IS NOT DISTINCT FROM $1::pg_catalog.text) s
                                  ORDER BY t OFFSET $2 LIMIT 1)",
                        read_expression(&plans[time_column])
                    ),
                    &[text.into(), (rows as i64).into()],
                )
                .unwrap_or_else(|e| {
                    fail(
                        Code::ERRCODE_INVALID_PARAMETER_VALUE,
                        format!("stan: cannot read {relname}: {e}"),
                    )
                })
            })
            .unwrap_or(f64::INFINITY);
            Some((key, time_column, cutoff))
        });
        notice!(
            "stan_train \"{model}\": max_rows {}: reading {} of {} streams{} (about {} of {total} rows)",
            options.max_rows,
            sample.whole.len() + usize::from(partial.is_some()),
            counts.len(),
            if partial.is_some() { ", the last one up to a point in time" } else { "" },
            sample.rows
        );
        Some(RowFilter {
            whole: sample.whole,
            partial,
        })
    }

    /// Reads the planned columns (and the stream key) through a cursor, keeping the rows the
    /// filter keeps; at most `stan.max_training_rows` of them.
    pub fn read(
        &self,
        relation: pg_sys::Oid,
        plans: &[ColumnPlan],
        filter: Option<&RowFilter>,
    ) -> (Vec<ColumnValues>, Vec<u64>) {
        let mut select: Vec<String> = plans.iter().map(read_expression).collect();
        let key_expr = self.key_expression();
        select.extend(key_expr.clone());
        let relname = relation_name(relation);
        let query = format!("SELECT {} FROM {relname}", select.join(", "));
        let limit = crate::MAX_TRAINING_ROWS.get().max(0) as usize;
        let max_bytes = ((crate::MAX_MEMORY_MB.get().max(1) as u64) << 20) / self.reads.max(1);
        let mut bytes = 0usize;
        let mut values: Vec<ColumnValues> = plans.iter().map(ColumnValues::empty_for).collect();
        let mut keys = Vec::new();
        let mut kept = 0usize;
        restricted_as(self.role, || {
            Spi::connect(|client| {
                let mut cursor = client
                    .try_open_cursor(query.as_str(), &[])
                    .unwrap_or_else(|e| {
                        fail(
                            Code::ERRCODE_INVALID_PARAMETER_VALUE,
                            format!("stan: cannot read {relname}: {e}"),
                        )
                    });
                // A fetch holds its rows in SPI's memory at once: start with one row and grow
                // while the rows seen so far say a batch stays well inside the budget.
                let mut fetch = 1i64;
                loop {
                    check_for_interrupts!();
                    let table = cursor.fetch(fetch).unwrap_or_else(|e| {
                        fail(
                            Code::ERRCODE_INVALID_PARAMETER_VALUE,
                            format!("stan: reading {relname}: {e}"),
                        )
                    });
                    if table.is_empty() {
                        break;
                    }
                    for row in table {
                        let key = key_expr
                            .is_some()
                            .then(|| stream_key(row.get::<String>(plans.len() + 1).ok().flatten()));
                        if let Some(f) = filter {
                            if !f.keeps(key.unwrap_or_else(|| stream_key(None)), &row) {
                                continue;
                            }
                        }
                        kept += 1;
                        if kept > limit {
                            ok::<()>(Err(stan_core::Error::LimitExceeded(format!(
                                "{relname} has more than {limit} rows to read (stan.max_training_rows); train on a sample of whole streams with options => '{{\"max_rows\": {limit}}}', or ask a superuser to raise the setting"
                            ))));
                        }
                        for (i, v) in values.iter_mut().enumerate() {
                            match v {
                                ColumnValues::Float(out) => {
                                    out.push(row.get::<f64>(i + 1).ok().flatten())
                                }
                                ColumnValues::Int(out) => {
                                    out.push(row.get::<i64>(i + 1).ok().flatten())
                                }
                                ColumnValues::Text(out) => {
                                    let text = row.get::<String>(i + 1).ok().flatten();
                                    bytes += text.as_ref().map_or(0, String::len);
                                    out.push(text)
                                }
                            }
                        }
                        bytes += VALUE_BYTES * values.len();
                        if bytes as u64 > max_bytes {
                            ok::<()>(Err(stan_core::Error::LimitExceeded(format!(
                                "the values read from {relname} pass {} MB after {kept} rows, their share of stan.max_memory_mb; skip wide text columns (columns => '{{\"col\": \"skip\"}}'), sample with options => '{{\"max_rows\": n}}', or ask a superuser to raise the setting",
                                max_bytes >> 20
                            ))));
                        }
                        keys.extend(key);
                    }
                    let row_bytes = (bytes / kept.max(1)).max(1) as u64;
                    let fits = (max_bytes / 8 / row_bytes).clamp(1, FETCH_ROWS as u64) as i64;
                    fetch = fetch.saturating_mul(8).min(fits);
                    // Each fetch's tuples would otherwise stay in SPI's memory until SPI_finish,
                    // so reading a large table would hold all of it twice; keep one batch.
                    unsafe {
                        if !pg_sys::SPI_tuptable.is_null() {
                            pg_sys::SPI_freetuptable(pg_sys::SPI_tuptable);
                            pg_sys::SPI_tuptable = std::ptr::null_mut();
                        }
                    }
                }
            })
        });
        (values, keys)
    }
}
