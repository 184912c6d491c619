//! The pgrx-free core of stan: everything between the rows Postgres hands over and the rows it
//! gets back. `schema` maps column types to codec kinds, `codec` turns values into model slots and
//! back, `model` is the STAN network with its training loop and sampler, `store` serialises a
//! trained model, `sample` picks the streams of a `max_rows` sample, and `sim` is the built-in flow simulator used by the demo and the tests.
//!
//! This crate never imports pgrx, so it is tested with plain `cargo test` and driven directly by
//! the benchmarks (also on a GPU machine that has no PostgreSQL).

pub mod codec;
pub mod error;
pub mod evaluate;
pub mod interrupt;
pub mod model;
pub mod options;
pub mod pipeline;
pub mod report;
pub mod sample;
pub mod schema;
pub mod sim;
pub mod store;

pub use error::{Error, Result};
