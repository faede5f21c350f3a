//! The HTTP API of erp-bridge: health and readiness, the message log, read models and JSON Schemas.
//!
//! [`state`] holds what every route shares; [`routes`] has one module per resource and the
//! router. The other modules are what the routes use: authentication ([`auth`]), stored
//! connections and their secrets ([`connections`]), live credential checks, message schemas
//! ([`schema`]), the live connections ([`hub`]) and the self-hosted connector's channel
//! ([`channel`]).

pub mod auth;
pub mod channel;
mod checks;
pub mod connections;
mod error;
pub mod hub;
mod routes;
pub mod schema;
mod state;

pub use error::ApiError;
pub use hub::{Connections, Hosting, LaunchSpec, Launcher};
pub use routes::router;
pub use state::{AppState, ConnectionRuntime, WebhookAuth};
