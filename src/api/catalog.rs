//! Model lifecycle.

use super::error::fail;
use pgrx::pg_sys::errcodes::PgSqlErrorCode as Code;
use pgrx::prelude::*;

#[pg_schema]
mod stan {
    use super::*;

    /// Implements stan_drop: removes every version of a model; returns how many.
    #[pg_extern(name = "drop_model")]
    fn drop_model(model: &str) -> i64 {
        let n: i64 = Spi::get_one_with_args(
            "WITH d AS (DELETE FROM stan.model_store WHERE name = $1 RETURNING 1) SELECT count(*) FROM d",
            &[model.to_string().into()],
        )
        .ok()
        .flatten()
        .unwrap_or(0);
        if n == 0 {
            fail(
                Code::ERRCODE_UNDEFINED_OBJECT,
                format!("stan: model \"{model}\" does not exist"),
            );
        }
        n
    }
}
