//! Model lifecycle and synthetic-only access: drop, grant, revoke (owner only).

use super::access::{as_catalog_owner, caller, require_owner, with_pinned_search_path};
use super::error::{fail, internal};
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;

fn catalog_error(e: pgrx::spi::SpiError) -> ! {
    internal("writing the model catalog", e)
}

/// Raises unless `role` is an existing role (a regrole argument can be `-`, OID 0, or the OID
/// of a role dropped since).
fn require_role(role: pg_sys::Oid) {
    let exists: Option<bool> = with_pinned_search_path(|| {
        Spi::get_one_with_args(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = $1)",
            &[role.into()],
        )
        .unwrap_or_else(|e| catalog_error(e))
    });
    if exists != Some(true) {
        fail(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("stan: role with OID {} does not exist", role.to_u32()),
        );
    }
}

#[pg_schema]
mod stan {
    use super::*;

    /// Implements stan_drop: removes every version of a model and its grants; returns how many
    /// versions.
    #[pg_extern(name = "drop_model")]
    fn drop_model(model: &str) -> i64 {
        require_owner(model, "drop it");
        as_catalog_owner(|| {
            Spi::run_with_args(
                "DELETE FROM stan.model_grants WHERE name = $1",
                &[model.to_string().into()],
            )
            .unwrap_or_else(|e| catalog_error(e));
            Spi::get_one_with_args::<i64>(
                "WITH d AS (DELETE FROM stan.model_store WHERE name = $1 RETURNING 1)
                 SELECT pg_catalog.count(*) FROM d",
                &[model.to_string().into()],
            )
            .unwrap_or_else(|e| catalog_error(e))
            .unwrap_or(0)
        })
    }

    /// Implements stan_grant: lets `grantee` (and its members) generate from every version of
    /// the model. Returns false when the grant already existed.
    #[pg_extern(name = "grant_model")]
    fn grant_model(model: &str, grantee: pg_sys::Oid) -> bool {
        require_owner(model, "grant it");
        require_role(grantee);
        let by = caller();
        as_catalog_owner(|| {
            Spi::get_one_with_args::<bool>(
                "WITH i AS (INSERT INTO stan.model_grants (name, grantee, granted_by)
                            VALUES ($1, $2::pg_catalog.regrole, $3::pg_catalog.regrole)
                            ON CONFLICT (name, grantee) DO NOTHING RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM i)",
                &[model.to_string().into(), grantee.into(), by.into()],
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
        as_catalog_owner(|| {
            Spi::get_one_with_args::<bool>(
                "WITH d AS (DELETE FROM stan.model_grants
                             WHERE name = $1 AND grantee::pg_catalog.oid = $2 RETURNING 1)
                 SELECT EXISTS (SELECT 1 FROM d)",
                &[model.to_string().into(), grantee.into()],
            )
            .unwrap_or_else(|e| catalog_error(e))
            .unwrap_or(false)
        })
    }
}
