//! `GET /healthz` (the process answers) and `GET /readyz` (the store answers, every connection
//! reaches M3 and no mapping is failing; 503 listing the problems otherwise).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use pipeline::{Connectivity, Health};
use serde_json::json;

use crate::state::AppState;

/// The routes of this module (public).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let store_ok = st.store.ping().await.is_ok();
    let mut problems = Vec::new();
    if !store_ok {
        problems.push("store: not answering".to_string());
    }
    for c in st.connections.values() {
        let s = c.connector.status().snapshot();
        if s.m3 != Connectivity::Healthy {
            problems.push(format!(
                "connection {}: M3 {:?}{}",
                c.name,
                s.m3,
                s.m3_message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
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
