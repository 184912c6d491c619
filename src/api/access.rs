//! Who may do what with a model, and the one way stan's own catalog is touched.
//!
//! `stan.model_store` and `stan.model_grants` belong to the extension's owner and no one else has
//! any privilege on them. The SQL functions run as their caller, so the source table is read with
//! the caller's rights (ACLs and row-level security apply) and the caller is known exactly
//! (`GetUserId`, which a SECURITY DEFINER wrapper would hide). Only the fixed, parameterised
//! catalog statements below run as the catalog's owner, the way PostgreSQL runs its own
//! foreign-key checks: user id switched with SECURITY_LOCAL_USERID_CHANGE and
//! SECURITY_RESTRICTED_OPERATION, and `search_path` pinned to `pg_catalog, pg_temp`, so no object
//! a user creates can stand in for the names those statements use.

use super::error::fail;
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;

/// The role calling the SQL function (the current user, not the session user).
pub fn caller() -> pg_sys::Oid {
    unsafe { pg_sys::GetUserId() }
}

struct PinnedSearchPath {
    nest_level: i32,
}

impl PinnedSearchPath {
    fn new() -> Self {
        unsafe {
            let nest_level = pg_sys::NewGUCNestLevel();
            pg_sys::set_config_option(
                c"search_path".as_ptr(),
                c"pg_catalog, pg_temp".as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_SAVE,
                true,
                0,
                false,
            );
            PinnedSearchPath { nest_level }
        }
    }
}

impl Drop for PinnedSearchPath {
    fn drop(&mut self) {
        unsafe { pg_sys::AtEOXact_GUC(true, self.nest_level) }
    }
}

/// Runs `f` with `search_path` set to `pg_catalog, pg_temp`, as the caller.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    let _pinned = PinnedSearchPath::new();
    f()
}

struct SwitchedUser {
    saved_user: pg_sys::Oid,
    saved_context: i32,
}

impl Drop for SwitchedUser {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.saved_user, self.saved_context) }
    }
}

/// Runs `f` as the owner of stan's catalog tables, with `search_path` pinned. `f` must only run
/// fixed SQL with parameters: never text that came from the caller.
pub fn as_catalog_owner<R>(f: impl FnOnce() -> R) -> R {
    // Pinned before the owner is looked up, so the lookup itself cannot be redirected.
    let _pinned = PinnedSearchPath::new();
    let owner: pg_sys::Oid = Spi::get_one(
        "SELECT c.relowner FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'stan' AND c.relname = 'model_store'",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        fail(
            Code::ERRCODE_UNDEFINED_TABLE,
            "stan: the model catalog stan.model_store is missing; reinstall the extension".into(),
        )
    });
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    unsafe { pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context) };
    let _switched = SwitchedUser {
        saved_user,
        saved_context,
    };
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        )
    };
    f()
}

/// What the caller may do with an existing model.
pub struct ModelAccess {
    pub owner_name: String,
    /// The caller has the owner's privileges (is the owner, a member of it, or a superuser).
    pub is_owner: bool,
    /// The caller holds a grant, directly or through a role it belongs to.
    pub may_generate: bool,
    /// The caller is the owner role itself: only then is the trainer's own SQL (`stream_by`)
    /// run again, so a trainer's expression never runs with a superuser's or another member's rights.
    pub is_trainer: bool,
}

/// The caller's rights on a model, or None when no version of it exists.
pub fn model_access(model: &str) -> Option<ModelAccess> {
    let who = caller();
    as_catalog_owner(|| {
        Spi::connect(|client| {
            let mut rows = client
                .select(
                    "SELECT m.owner::text,
                            pg_catalog.pg_has_role($2, m.owner::oid, 'USAGE'),
                            EXISTS (SELECT 1 FROM stan.model_grants g
                                     WHERE g.name = m.name
                                       AND pg_catalog.pg_has_role($2, g.grantee::oid, 'USAGE')),
                            m.owner::pg_catalog.oid OPERATOR(pg_catalog.=) $2
                       FROM stan.model_store m WHERE m.name = $1
                      ORDER BY m.version DESC LIMIT 1",
                    Some(1),
                    &[model.to_string().into(), who.into()],
                )
                .unwrap_or_else(|e| {
                    fail(
                        Code::ERRCODE_INTERNAL_ERROR,
                        format!("stan: reading the model catalog: {e}"),
                    )
                });
            rows.next().map(|r| {
                let is_owner = r.get::<bool>(2).ok().flatten().unwrap_or(false);
                ModelAccess {
                    owner_name: r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    is_owner,
                    may_generate: is_owner || r.get::<bool>(3).ok().flatten().unwrap_or(false),
                    is_trainer: r.get::<bool>(4).ok().flatten().unwrap_or(false),
                }
            })
        })
    })
}

fn caller_name() -> String {
    Spi::get_one_with_args::<String>("SELECT $1::pg_catalog.regrole::text", &[caller().into()])
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The caller's rights on a model that must exist.
fn existing_model_access(model: &str) -> ModelAccess {
    model_access(model).unwrap_or_else(|| {
        fail(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("stan: model \"{model}\" does not exist"),
        )
    })
}

/// Raises unless the model exists and the caller has its owner's rights; `action` completes
/// "must be the owner of model X to ...".
pub fn require_owner(model: &str, action: &str) -> ModelAccess {
    let access = existing_model_access(model);
    if !access.is_owner {
        fail(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "stan: must be the owner of model \"{model}\" ({}) to {action}; role {} is not",
                access.owner_name,
                with_pinned_search_path(caller_name)
            ),
        );
    }
    access
}

/// Raises unless the model exists and the caller may generate from it.
pub fn require_generate(model: &str) {
    let access = existing_model_access(model);
    if !access.may_generate {
        fail(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "stan: permission denied for model \"{model}\": role {} has no grant; its owner ({}) can run stan_grant('{model}', role)",
                with_pinned_search_path(caller_name),
                access.owner_name
            ),
        );
    }
}
