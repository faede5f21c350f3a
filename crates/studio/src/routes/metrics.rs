//! `GET /metrics`: Prometheus text exposition of every connection's status (per mapping and per
//! connection counters and gauges, and the outbox waiting for Kafka).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use pipeline::{Connectivity, Health};

use crate::state::AppState;

/// The routes of this module (public).
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus text exposition of every connection's status.
async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let snaps: Vec<(String, pipeline::ConnectorStatus)> = st
        .connections
        .values()
        .map(|c| (c.name.clone(), c.connector.status().snapshot()))
        .collect();
    let per_table = |f: &dyn Fn(&pipeline::TableStatus) -> Option<f64>| -> Vec<(String, f64)> {
        snaps
            .iter()
            .flat_map(|(c, s)| {
                s.tables.iter().filter_map(move |(m, t)| {
                    f(t).map(|v| (format!("connection=\"{c}\",mapping=\"{m}\",table=\"{}\"", t.table), v))
                })
            })
            .collect()
    };
    family(
        "erp_bridge_rows_seen_total",
        "counter",
        "Rows read from M3.",
        per_table(&|t| Some(t.rows_seen as f64)),
    );
    family(
        "erp_bridge_messages_total",
        "counter",
        "Messages appended to the outbox.",
        per_table(&|t| Some(t.messages as f64)),
    );
    family(
        "erp_bridge_unchanged_total",
        "counter",
        "Rows dropped because no mapped field changed.",
        per_table(&|t| Some(t.unchanged as f64)),
    );
    family(
        "erp_bridge_stale_total",
        "counter",
        "Changes dropped because a newer version was stored.",
        per_table(&|t| Some(t.stale as f64)),
    );
    family(
        "erp_bridge_rejected_rows_total",
        "counter",
        "Rows that could not be mapped.",
        per_table(&|t| Some(t.rejected_rows as f64)),
    );
    family(
        "erp_bridge_deletes_found_total",
        "counter",
        "Deletes found by key reconciliation.",
        per_table(&|t| Some(t.deletes_found as f64)),
    );
    family(
        "erp_bridge_errors_total",
        "counter",
        "Failed connector steps.",
        per_table(&|t| Some(t.errors as f64)),
    );
    family(
        "erp_bridge_lag_milliseconds",
        "gauge",
        "Time since the last complete poll started; grows while M3 cannot be read.",
        per_table(&|t| t.lag_ms.map(|v| v as f64)),
    );
    family(
        "erp_bridge_mapping_failing",
        "gauge",
        "1 when the mapping makes no progress (see its status for why).",
        per_table(&|t| Some(f64::from(u8::from(t.health == Health::Failing)))),
    );
    family(
        "erp_bridge_source_dead_letters",
        "gauge",
        "Rows M3 gave that could not be split or mapped, kept as source dead letters.",
        per_table(&|t| Some(t.dead_letters as f64)),
    );
    family(
        "erp_bridge_held_deletes",
        "gauge",
        "Deletes held back because too many keys vanished in one reconciliation pass.",
        per_table(&|t| Some(t.held_deletes as f64)),
    );
    family(
        "erp_bridge_repaired_rows_total",
        "counter",
        "Rows repaired by reconciliation (missing, late or different in the store).",
        per_table(&|t| Some(t.repaired as f64)),
    );
    let per_conn = |f: &dyn Fn(&pipeline::ConnectorStatus) -> Option<f64>| -> Vec<(String, f64)> {
        snaps
            .iter()
            .filter_map(|(c, s)| f(s).map(|v| (format!("connection=\"{c}\""), v)))
            .collect()
    };
    family(
        "erp_bridge_m3_up",
        "gauge",
        "1 when the last M3 call succeeded.",
        per_conn(&|s| Some(f64::from(u8::from(s.m3 == Connectivity::Healthy)))),
    );
    family(
        "erp_bridge_webhooks_received_total",
        "counter",
        "Webhook events applied.",
        per_conn(&|s| Some(s.webhooks.received as f64)),
    );
    family(
        "erp_bridge_webhooks_unauthorized_total",
        "counter",
        "Webhook calls refused for credentials.",
        per_conn(&|s| Some(s.webhooks.unauthorized as f64)),
    );
    family(
        "erp_bridge_relay_published_total",
        "counter",
        "Messages acknowledged by Kafka.",
        per_conn(&|s| s.relay.as_ref().map(|r| r.published as f64)),
    );
    let pending = futures_pending(&st).await;
    family(
        "erp_bridge_outbox_unpublished",
        "gauge",
        "Messages waiting for Kafka.",
        pending,
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

async fn futures_pending(st: &AppState) -> Vec<(String, f64)> {
    let mut v = Vec::new();
    for c in st.connections.values() {
        if c.connector.status().snapshot().relay.is_some() {
            if let Ok(n) = st.store.unpublished_count(&c.name).await {
                v.push((format!("connection=\"{}\"", c.name), n as f64));
            }
        }
    }
    v
}
