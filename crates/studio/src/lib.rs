//! The HTTP API of erp-bridge: health and readiness, the message log, read models and JSON Schemas.

pub mod auth;
mod checks;
mod commands;
mod error;
mod mappings;
mod routes;
pub mod schema;
mod ui;

pub use error::ApiError;
pub use routes::{router, AppState, ConnectionRuntime, WebhookAuth};
