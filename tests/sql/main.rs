//! SQL integration tests against a real PostgreSQL with the extension installed.

mod foundation;
mod model;
mod safety;
