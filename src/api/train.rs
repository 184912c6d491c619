//! stan_train: read the table with the caller's privileges (ACLs and row-level security apply),
//! fit codecs, train, and store a new model version in the same transaction (so a cancelled or
//! failed training leaves nothing behind).

use super::access::{as_catalog_owner, caller, model_access, with_pinned_search_path};
use super::error::{fail, ok};
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::JsonB;
use stan_core::codec::ColumnValues;
use stan_core::model::train::Progress;
use stan_core::options::TrainOptions;
use stan_core::sample::sample_streams;
use stan_core::schema::{modelling_order, plan_columns, ColumnInfo, ColumnPlan, Kind, ReadAs};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

const FETCH_ROWS: i64 = 10_000;

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
            .unwrap_or_else(|e| fail(Code::ERRCODE_INTERNAL_ERROR, format!("stan: reading the catalog: {e}")));
            rows.map(|r| ColumnInfo {
                name: r.get::<String>(1).ok().flatten().unwrap_or_default(),
                type_name: r.get::<String>(2).ok().flatten().unwrap_or_default(),
                is_enum: r.get::<bool>(3).ok().flatten().unwrap_or(false),
            })
            .collect()
        })
    })
}

pub(crate) fn read_expression(plan: &ColumnPlan) -> String {
    // Qualified throughout: the trainer's search_path applies here (stream_by is its SQL).
    let c = quote_identifier(&plan.name);
    if plan.kind == Kind::Skip {
        return "NULL::pg_catalog.text".into();
    }
    match plan.read_as {
        ReadAs::Epoch | ReadAs::IntervalSeconds => {
            format!("EXTRACT(epoch FROM {c})::pg_catalog.float8")
        }
        ReadAs::Int => format!("{c}::pg_catalog.int8"),
        ReadAs::Float => format!("{c}::pg_catalog.float8"),
        ReadAs::Text => format!("{c}::pg_catalog.text"),
        ReadAs::Ipv4 => format!(
            "CASE WHEN pg_catalog.family({c}) OPERATOR(pg_catalog.=) 4
                  THEN {c} OPERATOR(pg_catalog.-) '0.0.0.0'::pg_catalog.inet ELSE -1 END"
        ),
    }
}

fn parse_columns(columns: &serde_json::Value) -> Vec<(String, String)> {
    match columns {
        serde_json::Value::Null => vec![],
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(s) => (k.clone(), s.to_string()),
                None => fail(
                    Code::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("stan: option \"columns\": the kind of column \"{k}\" must be a string, not {v}"),
                ),
            })
            .collect(),
        other => fail(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("stan: option \"columns\": {other} is not a JSON object like {{\"sp\": \"port\"}}"),
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
        Spi::get_one_with_args(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[relation.into()],
        )
        .ok()
        .flatten()
        .unwrap_or_default()
    })
}

/// With `max_rows`, counts rows per stream (with the caller's rights, like the read itself) and
/// picks a seeded sample of whole streams that fits; None when the table already fits.
fn plan_sample(
    relation: pg_sys::Oid,
    plans: &[ColumnPlan],
    stream_by: Option<&str>,
    options: &TrainOptions,
    model: &str,
) -> Option<RowFilter> {
    if options.max_rows == 0 {
        return None;
    }
    let relname = relation_name(relation);
    let key_expr = stream_by.map_or("NULL::pg_catalog.text".to_string(), |e| {
        format!("({e})::pg_catalog.text")
    });
    let counts: Vec<(Option<String>, u64)> = Spi::connect(|client| {
        client
            .select(
                &format!("SELECT {key_expr}, pg_catalog.count(*) FROM {relname} GROUP BY 1"),
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
        let cutoff: f64 = Spi::get_one_with_args(
            &format!(
                "SELECT t FROM (SELECT {} AS t FROM {relname} WHERE {key_expr} IS NOT DISTINCT FROM $1::pg_catalog.text) s
                  ORDER BY t OFFSET $2 LIMIT 1",
                read_expression(&plans[time_column])
            ),
            &[text.into(), (rows as i64).into()],
        )
        .ok()
        .flatten()
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

/// Reads the planned columns (and the stream expression) through a cursor, keeping the rows the
/// filter keeps.
pub(crate) fn read_table(
    relation: pg_sys::Oid,
    plans: &[ColumnPlan],
    stream_by: Option<&str>,
    filter: Option<&RowFilter>,
) -> (Vec<ColumnValues>, Vec<u64>) {
    let mut select: Vec<String> = plans.iter().map(read_expression).collect();
    if let Some(expr) = stream_by {
        select.push(format!("({expr})::pg_catalog.text"));
    }
    let relname = relation_name(relation);
    let query = format!("SELECT {} FROM {relname}", select.join(", "));
    let mut values: Vec<ColumnValues> = plans.iter().map(ColumnValues::empty_for).collect();
    let mut keys = Vec::new();
    Spi::connect(|client| {
        let mut cursor = client
            .try_open_cursor(query.as_str(), &[])
            .unwrap_or_else(|e| {
                fail(
                    Code::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("stan: cannot read {relname}: {e}"),
                )
            });
        loop {
            check_for_interrupts!();
            let table = cursor.fetch(FETCH_ROWS).unwrap_or_else(|e| {
                fail(
                    Code::ERRCODE_INTERNAL_ERROR,
                    format!("stan: reading {relname}: {e}"),
                )
            });
            if table.is_empty() {
                break;
            }
            for row in table {
                let key = stream_by
                    .is_some()
                    .then(|| stream_key(row.get::<String>(plans.len() + 1).ok().flatten()));
                if let Some(f) = filter {
                    if !f.keeps(key.unwrap_or_else(|| stream_key(None)), &row) {
                        continue;
                    }
                }
                for (i, v) in values.iter_mut().enumerate() {
                    match v {
                        ColumnValues::Float(out) => out.push(row.get::<f64>(i + 1).ok().flatten()),
                        ColumnValues::Int(out) => out.push(row.get::<i64>(i + 1).ok().flatten()),
                        ColumnValues::Text(out) => {
                            out.push(row.get::<String>(i + 1).ok().flatten())
                        }
                    }
                }
                keys.extend(key);
            }
            // Each fetch's tuples would otherwise stay in SPI's memory until SPI_finish, so
            // reading a large table would hold all of it twice; keep one batch at a time.
            unsafe {
                if !pg_sys::SPI_tuptable.is_null() {
                    pg_sys::SPI_freetuptable(pg_sys::SPI_tuptable);
                    pg_sys::SPI_tuptable = std::ptr::null_mut();
                }
            }
        }
    });
    (values, keys)
}

fn stream_expression(stream_by: &str, columns: &[ColumnInfo]) -> String {
    if columns.iter().any(|c| c.name == stream_by) {
        quote_identifier(stream_by).to_string()
    } else {
        stream_by.to_string()
    }
}

#[pg_schema]
mod stan {
    use super::*;

    /// Implements stan_train (see sql/api.sql for the public signature).
    #[pg_extern(name = "train")]
    fn train(
        relation: pg_sys::Oid,
        model: Option<String>,
        order_by: Option<String>,
        stream_by: Option<String>,
        columns: Option<JsonB>,
        options: Option<JsonB>,
    ) -> String {
        let options = ok(TrainOptions::parse(
            &options.map(|j| j.0).unwrap_or_default(),
        ));
        let overrides = parse_columns(&columns.map(|j| j.0).unwrap_or_default());
        let relname: String = with_pinned_search_path(|| {
            Spi::get_one_with_args(
                "SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid = $1",
                &[relation.into()],
            )
            .ok()
            .flatten()
            .unwrap_or_default()
        });
        let info = table_columns(relation);
        if info.is_empty() {
            fail(
                Code::ERRCODE_UNDEFINED_TABLE,
                format!("stan: relation \"{relname}\" has no columns"),
            );
        }
        let name = model.unwrap_or_else(|| relname.clone());
        if name.is_empty() || name.len() > 63 {
            fail(
                Code::ERRCODE_INVALID_NAME,
                format!("stan: model name \"{name}\" must have 1 to 63 characters"),
            );
        }
        // One trainer per model name at a time.
        let locked: bool = with_pinned_search_path(|| {
            Spi::get_one_with_args(
                "SELECT pg_catalog.pg_try_advisory_xact_lock(
                            pg_catalog.hashtext(pg_catalog.concat('stan.model:', $1)))",
                &[name.clone().into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false)
        });
        if !locked {
            fail(
                Code::ERRCODE_LOCK_NOT_AVAILABLE,
                format!("stan: model \"{name}\" is being trained by another session; try again when it is done"),
            );
        }
        // A model name belongs to whoever trained it first: others may not add versions to it.
        if let Some(access) = model_access(&name) {
            if !access.is_owner {
                fail(
                    Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!(
                        "stan: model \"{name}\" belongs to {}; choose another name with model => '...'",
                        access.owner_name
                    ),
                );
            }
        }
        let plans = modelling_order(ok(plan_columns(&info, order_by.as_deref(), &overrides)));
        let stream_expr = stream_by.as_deref().map(|s| stream_expression(s, &info));
        let filter = plan_sample(relation, &plans, stream_expr.as_deref(), &options, &name);
        let (values, keys) = read_table(relation, &plans, stream_expr.as_deref(), filter.as_ref());
        let device = super::super::prepare_torch(&options.device);
        let started = std::time::Instant::now();
        let rows = values.first().map_or(0, |v| v.len());
        let mut progress = |p: Progress| -> stan_core::Result<()> {
            check_for_interrupts!();
            if let Progress::Epoch(e) = p {
                notice!(
                    "stan_train \"{name}\": epoch {}/{}: loss {:.4} (validation {:.4}), {:.0} rows/s, {:.0} s elapsed, about {:.0} s left",
                    e.epoch, e.epochs, e.train_loss, e.validation_loss, e.windows_per_s, e.elapsed_s, e.remaining_s
                );
            }
            Ok(())
        };
        notice!(
            "stan_train \"{name}\": {rows} rows, {} columns, device {}",
            plans.len(),
            stan_core::model::device::name(device)
        );
        let trained = ok(stan_core::pipeline::train_model(
            &plans,
            &values,
            &keys,
            &options,
            device,
            &mut progress,
        ));
        let metrics = serde_json::json!({ "training": trained.summary });
        let owner = caller();
        let inserted = as_catalog_owner(|| Spi::get_one_with_args::<i32>(
            "INSERT INTO stan.model_store
                (name, version, source_relid, source, source_type, codecs, config, options, metrics,
                 device, rows, streams, training_seconds, weights, owner, stream_by)
             SELECT $1, COALESCE((SELECT pg_catalog.max(m.version) FROM stan.model_store m WHERE m.name = $1), 0) + 1,
                    $2, $2::pg_catalog.regclass::pg_catalog.text,
                    (SELECT c.reltype FROM pg_catalog.pg_class c WHERE c.oid = $2),
                    $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::pg_catalog.regrole, $13
             RETURNING version",
            &[
                name.clone().into(),
                relation.into(),
                JsonB(serde_json::to_value(&trained.codec).expect("serialisable")).into(),
                JsonB(serde_json::to_value(&trained.config).expect("serialisable")).into(),
                JsonB(serde_json::to_value(&trained.options).expect("serialisable")).into(),
                JsonB(metrics).into(),
                stan_core::model::device::name(device).to_string().into(),
                (trained.rows as i64).into(),
                (trained.streams as i32).into(),
                started.elapsed().as_secs_f64().into(),
                trained.weights.into(),
                owner.into(),
                stream_expr.clone().into(),
            ],
        ))
        .unwrap_or_else(|e| fail(Code::ERRCODE_INTERNAL_ERROR, format!("stan: storing model \"{name}\": {e}")));
        notice!(
            "stan_train \"{name}\": stored version {} ({} epochs, best validation loss {:.4}, {:.1} s){}",
            inserted.unwrap_or_default(),
            trained.summary.epochs_run,
            trained.summary.best_validation_loss,
            started.elapsed().as_secs_f64(),
            if trained.summary.stopped_by == "max_time" {
                format!(
                    "; stopped by max_time ({} s): a larger max_time in options gives a closer fit",
                    trained.options.max_time
                )
            } else {
                String::new()
            }
        );
        name
    }
}
