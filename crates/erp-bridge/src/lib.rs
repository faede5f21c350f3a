//! erp-bridge as a library: what the `erp-bridge` binary runs once its `cli.rs` has parsed the
//! command line, and what the tests start.
//!
//! - [`app`]: the running product ([`App`]): configuration -> store -> [`runtime::Hub`] ->
//!   Studio's router -> HTTP server, plus the embedded M3 simulator of the demo.
//! - [`commands`]: the bodies of `up`, `studio`, `connector`, `sim` and `bench`: start, print
//!   what runs where, wait for Ctrl-C, stop.
//! - [`config`]: the configuration (file, environment, defaults).
//! - [`mapping_client`]: `erp-bridge mapping ...`, offline checks and the HTTP client.
//! - [`bench`]: `erp-bridge bench`, one file per measure.

pub mod app;
pub mod bench;
pub mod commands;
pub mod config;
pub mod mapping_client;

pub use app::App;
/// Parse one mapping file (JSON, TOML or YAML) strictly (for the `mapping` subcommands).
pub use runtime::files::parse_mapping_file;
