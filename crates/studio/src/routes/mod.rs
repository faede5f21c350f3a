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

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;

use crate::error::{error_response, json_error_body};
use crate::state::AppState;

/// Largest request body accepted (1 MiB); larger ones are answered 413.
pub(crate) const BODY_LIMIT: usize = 1024 * 1024;

/// Longest request target (path and query) accepted; longer ones are answered 414.
pub(crate) const URI_LIMIT: usize = 8 * 1024;

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
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(limit_uri))
        .layer(axum::middleware::map_response(json_error_body))
        .with_state(state)
}

/// Refuse a request target longer than [`URI_LIMIT`] with our 414 (hyper answers targets over
/// 64 KiB by itself, before any of this runs).
async fn limit_uri(req: Request, next: Next) -> Response {
    let len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if len > URI_LIMIT {
        return error_response(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!("request target of {len} bytes: at most {URI_LIMIT}"),
        );
    }
    next.run(req).await
}
