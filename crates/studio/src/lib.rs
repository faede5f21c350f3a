//! The HTTP API of erp-bridge: health and readiness, the message log, read models and JSON Schemas.
//!
//! `state` holds what every route shares; `routes` has one module per resource and the
//! router. The other modules are what the routes use: authentication ([`auth`]), live credential
//! checks and message schemas ([`schema`]); stored connections' secrets are opened by
//! `runtime::stored`. The live connections, how they start and stop, and the data side of the
//! self-hosted connector's channel are the `runtime` crate's; studio calls it directly.

pub mod auth;
mod checks;
mod error;
mod routes;
pub mod schema;
pub mod server;
mod state;

pub use checks::Outbound;
pub use error::ApiError;
pub use routes::router;
pub use state::AppState;
