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

use super::error::{fail, internal};
use super::spi::select_one;
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
        // Undone as on abort, like PostgreSQL's own restricted operations: a setting that code
        // run inside changed (even with set_config(..., false)) never outlives the call.
        unsafe { pg_sys::AtEOXact_GUC(false, self.nest_level) }
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

/// Runs `f` as `role` inside a security-restricted operation with `search_path` pinned to
/// `pg_catalog, pg_temp`, the way PostgreSQL runs REFRESH MATERIALIZED VIEW or an index
/// expression for autovacuum: code that `f`'s statements reach (a view's functions, a stream
/// expression, an operator) runs with `role`'s rights and cannot SET ROLE, RESET ROLE or SET
/// SESSION AUTHORIZATION its way back to the session's user, nor create temporary objects that
/// outlive it. `role` may be the caller itself: then nothing changes but the restriction.
pub fn restricted_as<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let _pinned = PinnedSearchPath::new();
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    unsafe { pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context) };
    let _switched = SwitchedUser {
        saved_user,
        saved_context,
    };
    unsafe {
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        )
    };
    f()
}

/// Runs `f` as the owner of stan's catalog tables (see [`restricted_as`]). `f` must only run
/// fixed SQL with parameters: never text that came from the caller.
pub fn as_catalog_owner<R>(f: impl FnOnce() -> R) -> R {
    // Looked up with search_path pinned, so the lookup itself cannot be redirected.
    let owner: Option<pg_sys::Oid> = with_pinned_search_path(|| {
        select_one(
            "SELECT c.relowner FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'stan' AND c.relname = 'model_store'",
            &[],
        )
        .unwrap_or_else(|e| internal("reading the catalog", e))
    });
    let owner = owner.unwrap_or_else(|| {
        fail(
            Code::ERRCODE_UNDEFINED_TABLE,
            "stan: the model catalog stan.model_store is missing; reinstall the extension".into(),
        )
    });
    restricted_as(owner, f)
}

/// What the caller may do with an existing model.
pub struct ModelAccess {
    /// The role that owns the model; None when that role was dropped (then only superusers
    /// may use the model, and `stan_reassign` gives it a new owner).
    pub owner: Option<pg_sys::Oid>,
    /// The owner's name (as it was stored, when the role was dropped).
    pub owner_name: String,
    /// The caller has the owner's privileges (is the owner, a member of it, or a superuser).
    pub is_owner: bool,
    /// The caller holds a grant, directly or through a role it belongs to.
    pub may_generate: bool,
    /// The caller is the owner role itself: only then is the trainer's own SQL (`stream_by`)
    /// run on relations the caller names, and then inside a security-restricted operation, so
    /// a trainer's expression never runs with a superuser's or another member's rights (not
    /// even after a superuser's SET ROLE to the trainer).
    pub is_trainer: bool,
}

/// The caller's rights on a model, or None when no version of it exists. Rights follow the
/// owner's and grantees' OIDs: a dropped role's OID (0 here) gives rights to superusers only.
pub fn model_access(model: &str) -> Option<ModelAccess> {
    let who = caller();
    as_catalog_owner(|| {
        Spi::connect(|client| {
            let mut rows = client
                .select(
                    "SELECT COALESCE(r.rolname::pg_catalog.text, m.owner OPERATOR(pg_catalog.||) ' (dropped)'),
                            pg_catalog.pg_has_role($2, COALESCE(r.oid, 0), 'USAGE'),
                            EXISTS (SELECT 1 FROM stan.model_grants g
                                     WHERE g.name OPERATOR(pg_catalog.=) m.name
                                       AND pg_catalog.pg_has_role($2, COALESCE(g.grantee_oid, 0), 'USAGE')),
                            r.oid OPERATOR(pg_catalog.=) $2,
                            r.oid
                       FROM stan.model_store m
                       LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.owner_oid
                      WHERE m.name OPERATOR(pg_catalog.=) $1
                      ORDER BY m.version DESC LIMIT 1",
                    Some(1),
                    &[model.to_string().into(), who.into()],
                )
                .unwrap_or_else(|e| internal("reading the model catalog", e));
            rows.next().map(|r| {
                let is_owner = r.get::<bool>(2).ok().flatten().unwrap_or(false);
                ModelAccess {
                    owner: r.get::<pg_sys::Oid>(5).ok().flatten(),
                    owner_name: r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    is_owner,
                    may_generate: is_owner || r.get::<bool>(3).ok().flatten().unwrap_or(false),
                    is_trainer: r.get::<bool>(4).ok().flatten().unwrap_or(false),
                }
            })
        })
    })
}

/// The name of the role with this OID, if there is one.
pub fn role_name(role: pg_sys::Oid) -> Option<String> {
    with_pinned_search_path(|| {
        select_one::<String>(
            "SELECT r.rolname::pg_catalog.text FROM pg_catalog.pg_roles r WHERE r.oid = $1",
            &[role.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog", e))
    })
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
                caller_role_name()
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
                caller_role_name(),
                access.owner_name
            ),
        );
    }
}

/// The lock tag's fourth field for a model name. PostgreSQL's SQL advisory-lock functions use
/// 1 and 2 there, so no role can take or hold this lock through them.
const MODEL_LOCK_SPACE: u16 = 0x5354;

/// Takes the transaction's lock on a model name (one trainer per name at a time); false when
/// another session holds it. Only stan_train takes it: unlike `pg_advisory_lock`, no role can
/// hold it against a trainer.
pub fn try_lock_model_name(name: &str) -> bool {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let tag = pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: (hash >> 32) as u32,
        locktag_field3: hash as u32,
        locktag_field4: MODEL_LOCK_SPACE,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    };
    let result = unsafe {
        pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false, true)
    };
    result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// Raises unless the caller may give a model this name: 1 to 63 characters, and a name with a
/// dot is `role.rest` (as default names are) for a role the caller belongs to. Among roles whose
/// name and a dot begin it, the longest decides (`ops.eu.flows` belongs to role `ops.eu`, not
/// `ops`). So no role can take the name another role's `stan_train('flows')` will store under,
/// not even before that role exists.
pub fn check_model_name(name: &str) {
    if name.is_empty() || name.len() > 63 {
        fail(
            Code::ERRCODE_INVALID_NAME,
            format!("stan: model name \"{name}\" must have 1 to 63 characters; choose one with model => '...'"),
        );
    }
    if !name.contains('.') {
        return;
    }
    let owner: Option<(String, bool)> = with_pinned_search_path(|| {
        Spi::connect(|client| {
            let mut rows = client
                .select(
                    "SELECT r.rolname::pg_catalog.text, pg_catalog.pg_has_role($2, r.oid, 'MEMBER')
                       FROM pg_catalog.pg_roles r
                      WHERE pg_catalog.starts_with($1, r.rolname::pg_catalog.text OPERATOR(pg_catalog.||) '.')
                      ORDER BY pg_catalog.length(r.rolname) DESC LIMIT 1",
                    Some(1),
                    &[name.to_string().into(), caller().into()],
                )
                .unwrap_or_else(|e| internal("reading the catalog", e));
            rows.next().map(|r| {
                (
                    r.get::<String>(1).ok().flatten().unwrap_or_default(),
                    r.get::<bool>(2).ok().flatten().unwrap_or(false),
                )
            })
        })
    });
    match owner {
        Some((_, true)) => {}
        Some((role, false)) => fail(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "stan: model names that start with \"{role}.\" belong to role {role}; choose another name with model => '...'"
            ),
        ),
        None => fail(
            Code::ERRCODE_INVALID_NAME,
            format!(
                "stan: model name \"{name}\" has a dot, so it must start with the name of a role you belong to and a dot (as default names do, {}.table); choose another name",
                caller_role_name()
            ),
        ),
    }
}

/// The name a model trained on `relation` gets by default: `role.table` for a table in schema
/// public, `role.schema.table` for others (so `s1.flows` and `s2.flows` make two models).
pub fn default_model_name(relation: pg_sys::Oid) -> Option<String> {
    // Quoted where needed (`"x.y".z` and `x."y.z"` stay apart); a temporary table's schema
    // differs by session, so it is left out like public.
    let table: Option<String> = with_pinned_search_path(|| {
        select_one::<String>(
            "SELECT CASE WHEN n.nspname = 'public' OR c.relpersistence = 't'
                         THEN pg_catalog.quote_ident(c.relname)
                         ELSE pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                              OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) END
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            &[relation.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog", e))
    });
    Some(format!("{}.{}", caller_role_name(), table?))
}

/// The name of the role calling, for default model names.
pub fn caller_role_name() -> String {
    role_name(caller()).unwrap_or_default()
}
