//! Model lifecycle and synthetic-only access: drop, grant, revoke, reassign (owner only).
//! The catalog keeps roles by name (what a restore keeps) and resolves each to its OID when a
//! row is written (sql/catalog.sql); the functions here write names only.

use super::access::{
    as_catalog_owner, caller, caller_role_name, require_owner, role_name, with_pinned_search_path,
};
use super::error::{fail, internal};
use super::spi::select_one;
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;

fn catalog_error(e: pgrx::spi::SpiError) -> ! {
    internal("writing the model catalog", e)
}

/// The name of an existing role, or an error (a regrole argument can be `-`, OID 0, or the OID
/// of a role dropped since).
fn require_role(role: pg_sys::Oid) -> String {
    role_name(role).unwrap_or_else(|| {
        fail(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("stan: role with OID {} does not exist", role.to_u32()),
        )
    })
}

/// Brings the stored role names up to date before a catalog write, so that what pg_dump keeps
/// names the roles the OIDs mean: a renamed role's new name replaces its old one, and grants of
/// dropped roles go (they give nothing, and their names would stand in a new grant's way).
/// A dropped owner's OID becomes NULL: that model stays an orphan, also after a restore.
pub(crate) fn refresh_role_names() {
    for statement in [
        "UPDATE stan.model_store m SET owner_oid = NULL
          WHERE m.owner_oid IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                             WHERE r.oid OPERATOR(pg_catalog.=) m.owner_oid)",
        "UPDATE stan.model_store m SET owner = r.rolname
           FROM pg_catalog.pg_roles r
          WHERE r.oid OPERATOR(pg_catalog.=) m.owner_oid
            AND m.owner OPERATOR(pg_catalog.<>) r.rolname::pg_catalog.text",
        "DELETE FROM stan.model_grants g
          WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                             WHERE r.oid OPERATOR(pg_catalog.=) g.grantee_oid)",
        // One row per grantee (a role granted under two names it had), then its current name,
        // through a name no role can have so that no two rows collide on the way.
        "DELETE FROM stan.model_grants g USING stan.model_grants h
          WHERE g.name OPERATOR(pg_catalog.=) h.name
            AND g.grantee_oid OPERATOR(pg_catalog.=) h.grantee_oid
            AND g.ctid OPERATOR(pg_catalog.>) h.ctid",
        "UPDATE stan.model_grants g SET grantee = E'\\x01' OPERATOR(pg_catalog.||) g.grantee_oid::pg_catalog.text
           FROM pg_catalog.pg_roles r
          WHERE r.oid OPERATOR(pg_catalog.=) g.grantee_oid
            AND g.grantee OPERATOR(pg_catalog.<>) r.rolname::pg_catalog.text",
        "UPDATE stan.model_grants g SET grantee = r.rolname
           FROM pg_catalog.pg_roles r
          WHERE r.oid OPERATOR(pg_catalog.=) g.grantee_oid
            AND g.grantee OPERATOR(pg_catalog.<>) r.rolname::pg_catalog.text",
    ] {
        Spi::run(statement).unwrap_or_else(|e| catalog_error(e));
    }
}

#[pg_schema]
mod stan {
    use super::*;

    /// Implements stan_drop: removes one version of a model (`every_version` false: `version`
    /// must be given), or every version and then its grants too; returns how many versions.
    #[pg_extern(name = "drop_model")]
    fn drop_model(model: Option<&str>, version: Option<i32>, every_version: bool) -> i64 {
        let model = super::super::error::required(model, "model");
        if !every_version {
            super::super::error::required(version, "version");
        }
        require_owner(model, "drop it");
        as_catalog_owner(|| {
            refresh_role_names();
            let dropped = Spi::get_one_with_args::<i64>(
                "WITH d AS (DELETE FROM stan.model_store
                             WHERE name OPERATOR(pg_catalog.=) $1
                               AND ($2::pg_catalog.int4 IS NULL OR version OPERATOR(pg_catalog.=) $2)
                            RETURNING 1)
                 SELECT pg_catalog.count(*) FROM d",
                &[model.to_string().into(), version.into()],
            )
            .unwrap_or_else(|e| catalog_error(e))
            .unwrap_or(0);
            if dropped == 0 {
                if let Some(v) = version {
                    fail(
                        Code::ERRCODE_UNDEFINED_OBJECT,
                        format!("stan: model \"{model}\" has no version {v}"),
                    );
                }
            }
            Spi::run_with_args(
                "DELETE FROM stan.model_grants g
                  WHERE g.name OPERATOR(pg_catalog.=) $1
                    AND NOT EXISTS (SELECT 1 FROM stan.model_store m
                                     WHERE m.name OPERATOR(pg_catalog.=) $1)",
                &[model.to_string().into()],
            )
            .unwrap_or_else(|e| catalog_error(e));
            dropped
        })
    }

    /// Implements stan_grant: lets `grantee` (and its members) generate from every version of
    /// the model. Returns false when the grant already existed.
    #[pg_extern(name = "grant_model")]
    fn grant_model(model: &str, grantee: pg_sys::Oid) -> bool {
        require_owner(model, "grant it");
        let name = require_role(grantee);
        let by = caller_role_name();
        as_catalog_owner(|| {
            refresh_role_names();
            Spi::get_one_with_args::<bool>(
                "WITH i AS (INSERT INTO stan.model_grants (name, grantee, grantee_oid, granted_by)
                            VALUES ($1, $2, $4, $3)
                            ON CONFLICT (name, grantee) DO NOTHING RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM i)",
                &[
                    model.to_string().into(),
                    name.into(),
                    by.into(),
                    grantee.into(),
                ],
            )
            .unwrap_or_else(|e| catalog_error(e))
            .unwrap_or(false)
        })
    }

    /// Implements stan_revoke: the role's next stan_generate call on the model is refused.
    /// Returns false when there was no such grant.
    #[pg_extern(name = "revoke_model")]
    fn revoke_model(model: &str, grantee: pg_sys::Oid) -> bool {
        require_owner(model, "revoke it");
        require_role(grantee);
        as_catalog_owner(|| {
            refresh_role_names();
            Spi::get_one_with_args::<bool>(
                "WITH d AS (DELETE FROM stan.model_grants
                             WHERE name OPERATOR(pg_catalog.=) $1
                               AND grantee_oid OPERATOR(pg_catalog.=) $2 RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM d)",
                &[model.to_string().into(), grantee.into()],
            )
            .unwrap_or_else(|e| catalog_error(e))
            .unwrap_or(false)
        })
    }

    /// Implements stan_reassign: every version of the model passes to `new_owner`; returns how
    /// many versions. Like ALTER
    /// ... OWNER TO, the caller must have the model's owner rights and belong to the new owner
    /// (a superuser may do both, also for a model whose owner role was dropped).
    #[pg_extern(name = "reassign_model")]
    fn reassign_model(model: &str, new_owner: pg_sys::Oid) -> i64 {
        require_owner(model, "reassign it");
        let name = require_role(new_owner);
        let member: bool = with_pinned_search_path(|| {
            select_one::<bool>(
                "SELECT pg_catalog.pg_has_role($1, $2, 'MEMBER')",
                &[caller().into(), new_owner.into()],
            )
            .unwrap_or_else(|e| internal("reading the catalog", e))
            .unwrap_or(false)
        });
        if !member {
            fail(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "stan: must be a member of role {name} to give it model \"{model}\"; role {} is not",
                    caller_role_name()
                ),
            );
        }
        // A stream expression is its trainer's SQL: it never runs for the new owner (evaluation
        // then treats the rows as one stream). A plain column name stays.
        as_catalog_owner(|| {
            refresh_role_names();
            Spi::get_one_with_args::<i64>(
                "WITH u AS (UPDATE stan.model_store m
                               SET owner = $2, owner_oid = $3,
                                   stream_by = CASE WHEN m.stream_by IN (
                                                       SELECT pg_catalog.quote_ident(c ->> 'name')
                                                         FROM pg_catalog.jsonb_array_elements(m.codecs -> 'columns') c)
                                                    THEN m.stream_by END
                             WHERE m.name OPERATOR(pg_catalog.=) $1 RETURNING 1)
                 SELECT pg_catalog.count(*) FROM u",
                &[model.to_string().into(), name.into(), new_owner.into()],
            )
            .unwrap_or_else(|e| catalog_error(e))
            .unwrap_or(0)
        })
    }
}
