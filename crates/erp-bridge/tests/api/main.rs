//! erp-bridge's integration tests, linked into one test binary (`--test api`) instead of one per
//! file: each module is what used to be its own `tests/*.rs`, and `helpers` is the shared support
//! (simulated M3, app on port 0, HTTP helpers, tansu broker, the consistency checker).
//!
//! Tests read only `TANSU_BIN`, `ERP_BRIDGE_TEST_PG_URL`, `ERP_BRIDGE_TEST_PG_CA` and
//! `ERP_BRIDGE_TEST_SEED` from the environment and never set variables or process-wide state,
//! so `cargo test` (every test in this one process) and nextest (each test in its own process)
//! run them the same way.

mod helpers;

mod auth;
mod bench_table;
mod checks;
mod cli;
mod command_mappings;
mod commands_http;
mod conformance;
mod connections;
mod consistency;
mod edges;
mod fuzz_http;
mod kafka;
mod mappings;
mod openapi;
mod ops;
mod read_models;
mod replicas;
mod resync;
mod retention;
mod ui;
mod walking_skeleton;
mod webhooks;
