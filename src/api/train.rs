//! stan_train: read the table with the caller's privileges (ACLs and row-level security apply;
//! see `relation` for how),
//! fit codecs, train, and store a new model version in the same transaction (so a cancelled or
//! failed training leaves nothing behind).

use super::access::{
    as_catalog_owner, caller, caller_role_name, check_model_name, default_model_name, model_access,
    try_lock_model_name,
};
use super::catalog::refresh_role_names;
use super::error::{fail, ok, required};
use super::generate::qualified_name;
use super::progress::{Phase, TrainingProgress};
use super::relation::{check_readable, refuse_constrained_domains, table_columns, Reader};
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::JsonB;
use stan_core::model::train::Progress;
use stan_core::options::TrainOptions;
use stan_core::schema::{modelling_order, plan_columns, ColumnInfo};

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
        relation: Option<pg_sys::Oid>,
        model: Option<String>,
        order_by: Option<String>,
        stream_by: Option<String>,
        columns: Option<JsonB>,
        options: Option<JsonB>,
    ) -> String {
        let relation = required(relation, "relation");
        let options = ok(TrainOptions::parse(
            &options.map(|j| j.0).unwrap_or_default(),
        ));
        let overrides = parse_columns(&columns.map(|j| j.0).unwrap_or_default());
        check_readable(relation);
        refuse_constrained_domains(relation);
        let source = qualified_name(relation).unwrap_or_default();
        let info = table_columns(relation);
        if info.is_empty() {
            fail(
                Code::ERRCODE_UNDEFINED_TABLE,
                format!("stan: relation \"{source}\" has no columns"),
            );
        }
        // By default a model is named after its trainer and table: `role.table` names belong
        // to that role (access::check_model_name), so no one else can take them first.
        let name = model.unwrap_or_else(|| default_model_name(relation).unwrap_or_default());
        check_model_name(&name);
        if !try_lock_model_name(&name) {
            fail(
                Code::ERRCODE_LOCK_NOT_AVAILABLE,
                format!("stan: model \"{name}\" is being trained by another session; try again when it is done"),
            );
        }
        // A model name belongs to whoever trained it first: others may not add versions to it,
        // and a member of that role (or a superuser) who does adds them in the owner's name.
        let existing = model_access(&name);
        if let Some(access) = &existing {
            if !access.is_owner {
                fail(
                    Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!(
                        "stan: model \"{name}\" belongs to {}; choose another name with model => '...'",
                        access.owner_name
                    ),
                );
            }
            if access.owner.is_none() {
                fail(
                    Code::ERRCODE_UNDEFINED_OBJECT,
                    format!(
                        "stan: the owner of model \"{name}\", {}, no longer exists; stan_reassign('{name}', role) first, or choose another name",
                        access.owner_name
                    ),
                );
            }
        }
        let progress_record = TrainingProgress::start(
            &name,
            existing
                .as_ref()
                .and_then(|a| a.owner)
                .unwrap_or_else(caller),
        );
        let plans = modelling_order(ok(plan_columns(&info, order_by.as_deref(), &overrides)));
        let stream_expr = stream_by.as_deref().map(|s| stream_expression(s, &info));
        // The caller's own rights on the table it named, inside a restricted operation.
        let reader = Reader {
            role: caller(),
            stream_by: stream_expr.as_deref(),
            reads: 1,
        };
        let filter = reader.plan_sample(relation, &plans, &options, &name);
        let (values, keys) = reader.read(relation, &plans, filter.as_ref());
        let device = super::super::prepare_torch(&options.device);
        let started = std::time::Instant::now();
        let rows = values.first().map_or(0, |v| v.len());
        progress_record.rows(rows);
        progress_record.phase(Phase::Fitting);
        let mut progress = |p: Progress| -> stan_core::Result<()> {
            check_for_interrupts!();
            if let Progress::Epoch(e) = p {
                progress_record.epoch(&e);
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
        for column in &trained.codec.columns {
            let planned_skip = plans
                .iter()
                .any(|p| p.name == column.name && p.kind == stan_core::schema::Kind::Skip);
            if column.codec == stan_core::codec::Codec::Skip && !planned_skip {
                notice!(
                    "stan_train \"{name}\": column \"{}\" has no value that recurs {} times (an id?), so it is not modelled and generated rows have NULL there",
                    column.name, trained.options.min_category_count
                );
            }
        }
        let metrics = serde_json::json!({ "training": trained.summary });
        progress_record.phase(Phase::Storing);
        let (owner, owner_oid) = match existing {
            Some(access) => (access.owner_name, access.owner.unwrap_or_else(caller)),
            None => (caller_role_name(), caller()),
        };
        let (codecs, config) = ok(stan_core::store::encode(&trained.codec, &trained.config));
        let inserted = as_catalog_owner(|| {
            refresh_role_names();
            Spi::get_one_with_args::<i32>(
                "INSERT INTO stan.model_store
                (name, version, format, source, codecs, config, options, metrics,
                 device, rows, streams, training_seconds, weights, owner, stream_by, owner_oid)
             SELECT $1, COALESCE((SELECT pg_catalog.max(m.version) FROM stan.model_store m
                                   WHERE m.name OPERATOR(pg_catalog.=) $1), 0) + 1,
                    $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
             RETURNING version",
                &[
                    name.clone().into(),
                    stan_core::store::MODEL_FORMAT.into(),
                    source.clone().into(),
                    JsonB(codecs).into(),
                    JsonB(config).into(),
                    JsonB(serde_json::to_value(&trained.options).expect("serialisable")).into(),
                    JsonB(metrics).into(),
                    stan_core::model::device::name(device).to_string().into(),
                    (trained.rows as i64).into(),
                    (trained.streams as i32).into(),
                    started.elapsed().as_secs_f64().into(),
                    trained.weights.into(),
                    owner.into(),
                    stream_expr.clone().into(),
                    owner_oid.into(),
                ],
            )
        })
        .unwrap_or_else(|e| {
            fail(
                Code::ERRCODE_INTERNAL_ERROR,
                format!("stan: storing model \"{name}\": {e}"),
            )
        });
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
