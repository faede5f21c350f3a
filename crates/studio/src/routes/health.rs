//! `GET /healthz` (the process answers) and `GET /readyz` (the store answers, every connection's
//! light ([`pipeline::status::Light`], the one every view shows) is `Healthy` and no mapping is
//! failing; 503 listing the problems otherwise). A connection whose last step failed is probed
//! (one M3 call) rather than reported as its last step saw it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use pipeline::status::ConnectionState;
use pipeline::{Connectivity, Health};
use serde_json::json;

use crate::state::AppState;

/// The routes of this module (public).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    summary = "the process answers",
    tag = "operations",
    responses(
        (status = 200, description = "alive", body = crate::routes::openapi::schemas::Health)
    )
)]
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    summary = "the store answers, every connection reaches M3 and no mapping fails",
    tag = "operations",
    responses(
        (status = 200, description = "ready", body = crate::routes::openapi::schemas::Readiness),
        (status = 503, description = "not ready; `problems` says why", body = crate::routes::openapi::schemas::Readiness)
    )
)]
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let store_ok = st.store.ping().await.is_ok();
    let mut problems = Vec::new();
    if !store_ok {
        problems.push("store: not answering".to_string());
    }
    for c in st.connections.values() {
        // A connection still being set up (a self-hosted one runs before its .ionapi file is
        // saved, so that its connector can call home) does not hold readiness, as a stored one
        // without the file never did.
        if !c.configured {
            continue;
        }
        probe_if_failing(&c).await;
        let s = c.connector.status().snapshot();
        // The same light as every view: ready only when it is Healthy.
        let light = c.light();
        if light.state != ConnectionState::Healthy
            && !(light.state == ConnectionState::Failing && s.m3 == Connectivity::Healthy)
        {
            problems.push(format!(
                "connection {}: {}{}",
                c.name,
                light.state.as_str(),
                light.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ));
        }
        problems.extend(failing_mappings(&c.name, &s));
    }
    let code = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({"ready": problems.is_empty(), "problems": problems})))
}

/// The longest a readiness probe waits for M3.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// When the connection's last M3 step failed (M3 down or refusing, or a mapping failing), ask
/// M3 now (one cheap authenticated call, [`pipeline::status::probe`]) rather than report what
/// the last step saw until its backoff ends; when M3 answers, the failed mappings retry at once,
/// so readiness follows M3 within a step.
async fn probe_if_failing(c: &runtime::ConnectionRuntime) {
    let s = c.connector.status().snapshot();
    let failing = s.m3 != Connectivity::Healthy || s.tables.values().any(|t| t.health == Health::Failing);
    let reachable = matches!(
        c.light().state,
        ConnectionState::Failing | ConnectionState::AuthenticationFailed | ConnectionState::AuthorizationFailed
    );
    if !(failing && reachable) {
        return;
    }
    let board = c.connector.status();
    let probed = tokio::time::timeout(PROBE_TIMEOUT, pipeline::status::probe(&c.connector.m3(), &board)).await;
    if probed.is_ok() && board.snapshot().m3 == Connectivity::Healthy {
        c.connector.retry_failed_now();
    }
}

/// One readiness problem per mapping of `connection` whose health is `Failing` (a mapping not
/// checked yet is not failing), with since when and why.
fn failing_mappings(connection: &str, s: &pipeline::ConnectorStatus) -> Vec<String> {
    s.tables
        .iter()
        .filter(|(_, t)| t.health == Health::Failing)
        .map(|(m, t)| {
            format!(
                "connection {connection}: mapping {m} ({}) failing since {}: {}",
                t.table,
                t.health_since.as_deref().unwrap_or("an unknown time"),
                t.health_message.as_deref().unwrap_or("no reason given")
            )
        })
        .collect()
}
