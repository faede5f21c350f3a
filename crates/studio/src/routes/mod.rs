//! The router: one module per resource, each with its `routes()`, assembled here behind the
//! token middleware and the body limit. Handlers reach the shared state through
//! [`crate::state`], never through each other.

mod asyncapi;
mod checks;
mod command_mappings;
mod commands;
mod connections;
mod connector;
mod dead_letters;
mod health;
mod mappings;
mod messages;
mod metrics;
mod middleware;
mod openapi;
mod query;
mod read_models;
mod schemas;
mod tokens;
mod ui;
mod webhooks;

use axum::Router;

use crate::state::AppState;

/// The API router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(connections::routes())
        .merge(connector::routes())
        .merge(messages::routes())
        .merge(dead_letters::routes())
        .merge(webhooks::routes())
        .merge(metrics::routes())
        .merge(commands::routes())
        .merge(schemas::routes())
        .merge(read_models::routes())
        .merge(mappings::routes())
        .merge(asyncapi::routes())
        .merge(command_mappings::routes())
        .merge(checks::routes())
        .merge(openapi::routes())
        .merge(ui::routes())
        .merge(tokens::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_token,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}
