//! The index conformance suite: every test runs against SQLite and PostgreSQL.
#![cfg(test)]

pub(crate) async fn run_all() {}
