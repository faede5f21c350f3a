//! The HTTP API of erp-bridge: health and readiness, the message log, read models and JSON Schemas.

pub mod auth;
pub mod channel;
mod checks;
mod commands;
pub mod connections;
mod error;
pub mod hub;
mod mappings;
mod openapi;
mod routes;
pub mod schema;
mod ui;

pub use error::ApiError;
pub use hub::{Connections, Hosting, LaunchSpec, Launcher};
pub use routes::{router, AppState, ConnectionRuntime, WebhookAuth};
