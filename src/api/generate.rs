//! stan_generate: rows of the caller's row type from a stored model, produced lazily (one network
//! pass for all streams per step) so memory stays flat however long the span.

use super::access::{as_catalog_owner, caller, require_generate, with_pinned_search_path};
use super::error::{fail, internal, ok, required};
use super::relation::{refuse_constrained_domains, table_columns};
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use pgrx::JsonB;
use stan_core::codec::TableCodec;
use stan_core::model::ModelConfig;
use stan_core::pipeline::{Generator, DEFAULT_WARMUP_SECONDS};

pub(crate) struct StoredModel {
    pub name: String,
    pub codec: TableCodec,
    pub config: ModelConfig,
    pub weights: Vec<u8>,
    pub streams: usize,
    /// The training relation, while it exists.
    pub source: Option<pg_sys::Oid>,
    pub stream_by: Option<String>,
}

/// Which model `stan_generate(NULL::t, ...)` uses without `model =>`: among the models trained on
/// a table of this row type that the caller may use, the caller's own (the one named
/// `role.table` first), else the only one granted; never a model someone else trained and
/// granted since when the caller has one of its own, and an error listing the candidates when
/// the choice is not clear. None when there is no candidate.
fn default_model(rowtype: pg_sys::Oid) -> Option<String> {
    let who = caller();
    let candidates: Vec<(String, bool)> = as_catalog_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT m.name, pg_catalog.bool_or(m.owner::pg_catalog.oid OPERATOR(pg_catalog.=) $2)
                       FROM stan.model_store m
                      WHERE m.source_type OPERATOR(pg_catalog.=) $1
                        AND (pg_catalog.pg_has_role($2, m.owner::pg_catalog.oid, 'USAGE')
                             OR EXISTS (SELECT 1 FROM stan.model_grants g
                                         WHERE g.name OPERATOR(pg_catalog.=) m.name
                                           AND pg_catalog.pg_has_role($2, g.grantee::pg_catalog.oid, 'USAGE')))
                      GROUP BY m.name ORDER BY m.name",
                    None,
                    &[rowtype.into(), who.into()],
                )
                .unwrap_or_else(|e| internal("reading the model catalog", e))
                .map(|r| {
                    (
                        r.get::<String>(1).ok().flatten().unwrap_or_default(),
                        r.get::<bool>(2).ok().flatten().unwrap_or(false),
                    )
                })
                .collect()
        })
    });
    let own: Vec<&String> = candidates.iter().filter(|c| c.1).map(|c| &c.0).collect();
    let table: Option<String> = with_pinned_search_path(|| {
        Spi::get_one_with_args(
            "SELECT (SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_type t
                       JOIN pg_catalog.pg_class c ON c.oid = t.typrelid WHERE t.oid = $1)",
            &[rowtype.into()],
        )
        .ok()
        .flatten()
    });
    let named_default = table.map(|t| format!("{}.{t}", super::access::caller_role_name()));
    let pool: Vec<&String> = if own.is_empty() {
        candidates.iter().map(|c| &c.0).collect()
    } else {
        own
    };
    match pool.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        several => match named_default.filter(|d| several.contains(&d)) {
            Some(name) => Some(name),
            None => fail(
                Code::ERRCODE_AMBIGUOUS_FUNCTION,
                format!(
                    "stan: several models of this row type could be meant: {}; choose one with model => '...'",
                    several.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
                ),
            ),
        },
    }
}

/// The latest version of the named model, or of the model `default_model` picks for this row
/// type.
pub(crate) fn load_model(model: Option<&str>, rowtype: pg_sys::Oid) -> StoredModel {
    let chosen = match model {
        Some(name) => Some(name.to_string()),
        None => default_model(rowtype),
    };
    if let Some(name) = &chosen {
        require_generate(name);
    }
    let found = chosen.as_ref().and_then(|name| as_catalog_owner(|| {
        Spi::connect(|client| {
            let mut rows = client.select(
                "SELECT name, codecs, config, weights, streams, source_relid, stream_by FROM stan.model_store
                  WHERE name = $1 ORDER BY version DESC LIMIT 1",
                Some(1),
                &[name.clone().into()],
            ).unwrap_or_else(|e| internal("reading the model catalog", e));
            rows.next().map(|r| {
                (
                    r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    r.get::<JsonB>(2).ok().flatten(),
                    r.get::<JsonB>(3).ok().flatten(),
                    r.get::<Vec<u8>>(4).ok().flatten(),
                    r.get::<i32>(5).ok().flatten(),
                    r.get::<pg_sys::Oid>(6).ok().flatten(),
                    r.get::<String>(7).ok().flatten(),
                )
            })
        })
    }));
    let Some((name, codecs, config, weights, streams, source, stream_by)) = found else {
        let what = match model {
            Some(name) => format!("stan: model \"{name}\" does not exist"),
            None => {
                let t: String = with_pinned_search_path(|| {
                    Spi::get_one_with_args(
                        "SELECT $1::pg_catalog.regtype::pg_catalog.text",
                        &[rowtype.into()],
                    )
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                });
                format!("stan: no model you may use was trained on a table of type {t}; run stan_train first, or ask a model's owner for stan_grant")
            }
        };
        fail(Code::ERRCODE_UNDEFINED_OBJECT, what);
    };
    let corrupt = |what: &str| -> ! {
        ok(Err(stan_core::Error::CorruptModel(format!(
            "model \"{name}\": {what}"
        ))))
    };
    let codec: TableCodec = codecs
        .and_then(|j| serde_json::from_value(j.0).ok())
        .unwrap_or_else(|| corrupt("unreadable codecs"));
    let config: ModelConfig = config
        .and_then(|j| serde_json::from_value(j.0).ok())
        .unwrap_or_else(|| corrupt("unreadable network description"));
    let weights = weights.unwrap_or_else(|| corrupt("no weights"));
    let streams = streams
        .filter(|s| *s > 0)
        .unwrap_or_else(|| corrupt("no stream count")) as usize;
    StoredModel {
        name,
        codec,
        config,
        weights,
        streams,
        source,
        stream_by,
    }
}

/// The row type must have exactly the model's columns, with the same types.
pub(crate) fn check_row_type(rowtype: pg_sys::Oid, model: &StoredModel) {
    let relid: Option<pg_sys::Oid> = with_pinned_search_path(|| {
        Spi::get_one_with_args(
            "SELECT typrelid FROM pg_catalog.pg_type WHERE oid = $1",
            &[rowtype.into()],
        )
        .ok()
        .flatten()
    });
    let relid = relid.filter(|r| r.to_u32() != 0).unwrap_or_else(|| {
        fail(
            Code::ERRCODE_DATATYPE_MISMATCH,
            "stan: the first argument must be a row type, e.g. NULL::flows".to_string(),
        )
    });
    refuse_constrained_domains(relid);
    let mut have: Vec<(String, String)> = table_columns(relid)
        .into_iter()
        .map(|c| (c.name, c.type_name))
        .collect();
    let mut want: Vec<(String, String)> = model
        .codec
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.type_name.clone()))
        .collect();
    have.sort();
    want.sort();
    if have != want {
        let missing: Vec<String> = want
            .iter()
            .filter(|c| !have.contains(c))
            .map(|(n, t)| format!("{n} {t}"))
            .collect();
        let extra: Vec<String> = have
            .iter()
            .filter(|c| !want.contains(c))
            .map(|(n, t)| format!("{n} {t}"))
            .collect();
        ok::<()>(Err(stan_core::Error::RowTypeMismatch(format!(
            "the row type does not match model \"{}\": missing [{}], not in the model [{}]",
            model.name,
            missing.join(", "),
            extra.join(", ")
        ))));
    }
}

#[pg_schema]
mod stan {
    use super::*;

    /// Implements stan_generate (see sql/api.sql): one jsonb object per generated row.
    #[pg_extern(name = "generate_rows")]
    fn generate_rows(
        rowtype: pg_sys::Oid,
        span_seconds: Option<f64>,
        model: Option<String>,
        seed: Option<i64>,
        start_epoch: Option<f64>,
        streams: Option<i32>,
        warmup_seconds: Option<f64>,
    ) -> SetOfIterator<'static, JsonB> {
        let span_seconds = required(span_seconds, "span");
        let stored = load_model(model.as_deref(), rowtype);
        check_row_type(rowtype, &stored);
        let device = super::super::prepare_torch("");
        let seed = seed.map(|s| s as u64).unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let max_streams = crate::MAX_STREAMS.get().max(1) as usize;
        let streams = match streams {
            None if stored.streams > max_streams => fail(
                Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "stan: model \"{}\" learned {} streams, more than stan.max_streams ({max_streams}) lets one call run; pass streams => {max_streams} or fewer, or ask a superuser to raise the setting",
                    stored.name, stored.streams
                ),
            ),
            None => stored.streams,
            Some(n) if n > 0 && n as usize > max_streams => fail(
                Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!(
                    "stan: streams => {n} is more than stan.max_streams ({max_streams}) lets one call run; ask a superuser to raise the setting"
                ),
            ),
            Some(n) if n > 0 => n as usize,
            Some(n) => fail(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("stan: streams must be positive, not {n}"),
            ),
        };
        let max_rows = crate::MAX_ROWS_PER_CALL.get().max(1) as u64;
        let mut returned = 0u64;
        let names: Vec<String> = stored
            .codec
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let model_name = stored.name.clone();
        let mut generator = ok(Generator::new(
            stored.codec,
            stored.config,
            &stored.weights,
            device,
            span_seconds,
            streams,
            seed,
            start_epoch,
            warmup_seconds.unwrap_or(DEFAULT_WARMUP_SECONDS),
        )
        .map_err(|e| match e {
            stan_core::Error::CorruptModel(m) => {
                stan_core::Error::CorruptModel(format!("model \"{model_name}\": {m}"))
            }
            other => other,
        }));
        SetOfIterator::new(std::iter::from_fn(move || {
            check_for_interrupts!();
            let row = ok(generator.next_row())?;
            returned += 1;
            if returned > max_rows {
                fail(
                    Code::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                    format!(
                        "stan: generating more than {max_rows} rows in one call (stan.max_rows_per_call); generate the span in parts (start => ..., span => ...), or ask a superuser to raise the setting"
                    ),
                );
            }
            let object: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(row)
                .map(|(n, v)| {
                    (
                        n.clone(),
                        v.map_or(serde_json::Value::Null, serde_json::Value::String),
                    )
                })
                .collect();
            Some(JsonB(serde_json::Value::Object(object)))
        }))
    }
}
