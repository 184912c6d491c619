//! SQL integration tests against a real PostgreSQL with the extension installed.

mod access;
mod corpus;
mod foundation;
mod model;
mod safety;
