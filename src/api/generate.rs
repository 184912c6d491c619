//! stan_generate: rows of the caller's row type from a stored model, produced lazily (one network
//! pass for all streams per step) so memory stays flat however long the span.

use super::access::{
    as_catalog_owner, caller, default_model_name, model_access, require_generate,
    with_pinned_search_path,
};
use super::error::{fail, internal, ok, required};
use super::relation::{refuse_constrained_domains, table_columns};
use super::spi::select_one;
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use pgrx::JsonB;
use stan_core::codec::TableCodec;
use stan_core::model::ModelConfig;
use stan_core::pipeline::{Generator, DEFAULT_WARMUP_SECONDS};

pub(crate) struct StoredModel {
    pub name: String,
    pub version: i32,
    pub codec: TableCodec,
    pub config: ModelConfig,
    pub weights: Vec<u8>,
    pub streams: usize,
    /// The training relation's qualified name when it was trained.
    pub source: Option<String>,
    pub stream_by: Option<String>,
}

/// The training relation's qualified name, as the catalog stores it (`source`).
pub(crate) fn qualified_name(relation: pg_sys::Oid) -> Option<String> {
    with_pinned_search_path(|| {
        select_one::<String>(
            "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            &[relation.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog", e))
    })
}

/// The relation of a row type (0 when it is not a table's).
fn type_relation(rowtype: pg_sys::Oid) -> pg_sys::Oid {
    with_pinned_search_path(|| {
        select_one::<pg_sys::Oid>(
            "SELECT t.typrelid FROM pg_catalog.pg_type t WHERE t.oid = $1",
            &[rowtype.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog", e))
    })
    .unwrap_or(pg_sys::InvalidOid)
}

/// Which model `stan_generate(NULL::t, ...)` uses without `model =>`: among the models trained on
/// the table of this row type (by its qualified name, which a restore keeps) that the caller may
/// use, the one named after the table for the caller (`role.table`, stan_train's default), else
/// the caller's only own one, else the only one granted; an error listing the candidates when
/// the choice is not clear. None when there is no candidate.
fn default_model(rowtype: pg_sys::Oid) -> Option<(String, String)> {
    let who = caller();
    let relation = type_relation(rowtype);
    let source = qualified_name(relation)?;
    let chosen = |name: String| Some((name, source.clone()));
    let candidates: Vec<(String, bool)> = as_catalog_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT m.name, pg_catalog.bool_or(m.owner_oid OPERATOR(pg_catalog.=) $2)
                       FROM stan.model_store m
                      WHERE m.source OPERATOR(pg_catalog.=) $1
                        AND (pg_catalog.pg_has_role($2, COALESCE(m.owner_oid, 0), 'USAGE')
                             OR EXISTS (SELECT 1 FROM stan.model_grants g
                                         WHERE g.name OPERATOR(pg_catalog.=) m.name
                                           AND pg_catalog.pg_has_role($2, COALESCE(g.grantee_oid, 0), 'USAGE')))
                      GROUP BY m.name ORDER BY m.name",
                    None,
                    &[source.clone().into(), who.into()],
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
    let named_default = default_model_name(relation);
    if let Some(name) = named_default.filter(|d| candidates.iter().any(|c| &c.0 == d)) {
        return chosen(name);
    }
    let own: Vec<&String> = candidates.iter().filter(|c| c.1).map(|c| &c.0).collect();
    let pool: Vec<&String> = if own.is_empty() {
        candidates.iter().map(|c| &c.0).collect()
    } else {
        own
    };
    match pool.as_slice() {
        [] => None,
        [one] => chosen((*one).clone()),
        several => fail(
            Code::ERRCODE_AMBIGUOUS_FUNCTION,
            format!(
                "stan: several models of this row type could be meant: {}; choose one with model => '...'",
                several.iter().map(|n| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
            ),
        ),
    }
}

/// A version of the named model (the latest when `version` is None), or of the model
/// `default_model` picks for this row type.
pub(crate) fn load_model(
    model: Option<&str>,
    rowtype: pg_sys::Oid,
    version: Option<i32>,
) -> StoredModel {
    // Chosen by row type, only versions trained on that table count: a name's versions may
    // come from different tables.
    let chosen: Option<(String, Option<String>)> = match model {
        Some(name) => Some((name.to_string(), None)),
        None => default_model(rowtype).map(|(name, source)| (name, Some(source))),
    };
    if let Some((name, _)) = &chosen {
        require_generate(name);
    }
    let found = chosen.as_ref().and_then(|(name, source)| {
        as_catalog_owner(|| {
            Spi::connect(|client| {
                let mut rows = client.select(
                "SELECT name, version, format, codecs, config, weights, streams, source, stream_by
                   FROM stan.model_store
                  WHERE name OPERATOR(pg_catalog.=) $1
                    AND ($2::pg_catalog.int4 IS NULL OR version OPERATOR(pg_catalog.=) $2)
                    AND ($3::pg_catalog.text IS NULL OR source OPERATOR(pg_catalog.=) $3)
                  ORDER BY version DESC LIMIT 1",
                Some(1),
                &[name.clone().into(), version.into(), source.clone().into()],
            ).unwrap_or_else(|e| internal("reading the model catalog", e));
                rows.next().map(|r| {
                    (
                        r.get::<String>(1).ok().flatten().unwrap_or_default(),
                        r.get::<i32>(2).ok().flatten().unwrap_or_default(),
                        r.get::<i32>(3).ok().flatten(),
                        r.get::<JsonB>(4).ok().flatten(),
                        r.get::<JsonB>(5).ok().flatten(),
                        r.get::<Vec<u8>>(6).ok().flatten(),
                        r.get::<i32>(7).ok().flatten(),
                        r.get::<String>(8).ok().flatten(),
                        r.get::<String>(9).ok().flatten(),
                    )
                })
            })
        })
    });
    let Some((name, version, format, codecs, config, weights, streams, source, stream_by)) = found
    else {
        let what = match (&chosen, version) {
            (Some((name, source)), Some(v)) if model_access(name).is_some() => match source {
                Some(table) => {
                    format!("stan: model \"{name}\" has no version {v} trained on {table}")
                }
                None => format!("stan: model \"{name}\" has no version {v}"),
            },
            (Some((name, _)), _) => format!("stan: model \"{name}\" does not exist"),
            (None, _) => {
                let t: String = with_pinned_search_path(|| {
                    select_one::<String>(
                        "SELECT pg_catalog.format_type($1, NULL)",
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
    let corrupt = |what: String| -> ! {
        ok(Err(stan_core::Error::CorruptModel(format!(
            "model \"{name}\" version {version}: {what}"
        ))))
    };
    let (Some(format), Some(codecs), Some(config)) = (format, codecs, config) else {
        corrupt("no codecs or network description".into())
    };
    let (codec, config) = stan_core::store::decode(format, codecs.0, config.0)
        .unwrap_or_else(|e| corrupt(e.to_string()));
    let weights = weights.unwrap_or_else(|| corrupt("no weights".into()));
    let streams = streams
        .filter(|s| *s > 0)
        .unwrap_or_else(|| corrupt("no stream count".into())) as usize;
    StoredModel {
        name,
        version,
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
    let relid = Some(type_relation(rowtype))
        .filter(|r| r.to_u32() != 0)
        .unwrap_or_else(|| {
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
    #[allow(clippy::too_many_arguments)]
    #[pg_extern(name = "generate_rows")]
    fn generate_rows(
        rowtype: pg_sys::Oid,
        span_seconds: Option<f64>,
        model: Option<String>,
        seed: Option<i64>,
        start_epoch: Option<f64>,
        streams: Option<i32>,
        warmup_seconds: Option<f64>,
        version: Option<i32>,
    ) -> SetOfIterator<'static, JsonB> {
        let span_seconds = required(span_seconds, "span");
        let stored = load_model(model.as_deref(), rowtype, version);
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
