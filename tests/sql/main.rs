//! SQL integration tests against a real PostgreSQL with the extension installed.

mod access;
mod corpus;
mod evaluate;
mod flows;
mod foundation;
mod hardening;
mod model;
mod operations;
mod safety;
