//! `GET /metrics`: Prometheus text exposition (format 0.0.4, as `promtool check metrics` reads it)
//! of every connection's status: per mapping and per connection counters and gauges, and the
//! outbox waiting for Kafka. Encoded by the `prometheus` crate (names checked, label values
//! escaped); values are read from the connectors' status at each scrape. Units are base units
//! (`_seconds`).

use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use pipeline::{Connectivity, Health};
use prometheus::{Encoder, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::error::ApiError;
use crate::state::AppState;

/// The routes of this module (public).
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Prometheus text exposition of every connection's status.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics of every connection",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        (status = 500, description = "the metrics could not be encoded", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn metrics(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let out = Exposition::default();
    let snaps: Vec<(String, pipeline::ConnectorStatus)> = st
        .connections
        .values()
        .map(|c| (c.name.clone(), c.connector.status().snapshot()))
        .collect();
    let per_table = |f: &dyn Fn(&pipeline::TableStatus) -> Option<f64>| -> Vec<(Vec<String>, f64)> {
        snaps
            .iter()
            .flat_map(|(c, s)| {
                s.tables
                    .iter()
                    .filter_map(move |(m, t)| f(t).map(|v| (vec![c.clone(), m.clone(), t.table.clone()], v)))
            })
            .collect()
    };
    let table = &["connection", "mapping", "table"];
    out.counter(
        "erp_bridge_rows_seen_total",
        "Rows read from M3.",
        table,
        per_table(&|t| Some(t.rows_seen as f64)),
    )?;
    out.counter(
        "erp_bridge_messages_total",
        "Messages appended to the outbox.",
        table,
        per_table(&|t| Some(t.messages as f64)),
    )?;
    out.counter(
        "erp_bridge_unchanged_total",
        "Rows dropped because no mapped field changed.",
        table,
        per_table(&|t| Some(t.unchanged as f64)),
    )?;
    out.counter(
        "erp_bridge_stale_total",
        "Changes dropped because a newer version was stored.",
        table,
        per_table(&|t| Some(t.stale as f64)),
    )?;
    out.counter(
        "erp_bridge_rejected_rows_total",
        "Rows that could not be mapped.",
        table,
        per_table(&|t| Some(t.rejected_rows as f64)),
    )?;
    out.counter(
        "erp_bridge_deletes_found_total",
        "Deletes found by key reconciliation.",
        table,
        per_table(&|t| Some(t.deletes_found as f64)),
    )?;
    out.counter(
        "erp_bridge_errors_total",
        "Failed connector steps.",
        table,
        per_table(&|t| Some(t.errors as f64)),
    )?;
    out.gauge(
        "erp_bridge_lag_seconds",
        "Time since the last complete poll started; grows while M3 cannot be read.",
        table,
        per_table(&|t| t.lag_ms.map(|v| v as f64 / 1000.0)),
    )?;
    out.gauge(
        "erp_bridge_mapping_failing",
        "1 when the mapping makes no progress (see its status for why).",
        table,
        per_table(&|t| Some(f64::from(u8::from(t.health == Health::Failing)))),
    )?;
    out.gauge(
        "erp_bridge_source_dead_letters",
        "Rows M3 gave that could not be split or mapped, kept as source dead letters.",
        table,
        per_table(&|t| Some(t.dead_letters as f64)),
    )?;
    out.gauge(
        "erp_bridge_held_deletes",
        "Deletes held back because too many keys vanished in one reconciliation pass.",
        table,
        per_table(&|t| Some(t.held_deletes as f64)),
    )?;
    out.counter(
        "erp_bridge_repaired_rows_total",
        "Rows repaired by reconciliation (missing, late or different in the store).",
        table,
        per_table(&|t| Some(t.repaired as f64)),
    )?;
    let per_conn = |f: &dyn Fn(&pipeline::ConnectorStatus) -> Option<f64>| -> Vec<(Vec<String>, f64)> {
        snaps
            .iter()
            .filter_map(|(c, s)| f(s).map(|v| (vec![c.clone()], v)))
            .collect()
    };
    let conn = &["connection"];
    out.gauge(
        "erp_bridge_m3_up",
        "1 when the last M3 call succeeded.",
        conn,
        per_conn(&|s| Some(f64::from(u8::from(s.m3 == Connectivity::Healthy)))),
    )?;
    out.counter(
        "erp_bridge_webhooks_received_total",
        "Webhook events applied.",
        conn,
        per_conn(&|s| Some(s.webhooks.received as f64)),
    )?;
    out.counter(
        "erp_bridge_webhooks_unauthorized_total",
        "Webhook calls refused for credentials.",
        conn,
        per_conn(&|s| Some(s.webhooks.unauthorized as f64)),
    )?;
    out.counter(
        "erp_bridge_relay_published_total",
        "Messages acknowledged by Kafka.",
        conn,
        per_conn(&|s| s.relay.as_ref().map(|r| r.published as f64)),
    )?;
    out.gauge(
        "erp_bridge_outbox_unpublished",
        "Messages waiting for Kafka.",
        conn,
        outbox_pending(&st).await,
    )?;
    let sizes = outbox_sizes(&st).await;
    let size = |f: &dyn Fn(&store::OutboxStats) -> Option<f64>| -> Vec<(Vec<String>, f64)> {
        sizes
            .iter()
            .filter_map(|(c, s)| f(s).map(|v| (vec![c.clone()], v)))
            .collect()
    };
    out.gauge(
        "erp_bridge_outbox_messages",
        "Messages held in the outbox (the message log), after retention.",
        conn,
        size(&|s| Some(s.messages as f64)),
    )?;
    out.gauge(
        "erp_bridge_outbox_bytes",
        "Estimated bytes the outbox's messages take (rows times the newest rows' size).",
        conn,
        size(&|s| Some(s.bytes as f64)),
    )?;
    out.gauge(
        "erp_bridge_outbox_oldest_seq",
        "The oldest message position the outbox holds (absent while it is empty).",
        conn,
        size(&|s| s.oldest.map(|v| v as f64)),
    )?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        out.encode()?,
    ))
}

/// The messages waiting for Kafka, per connection that relays to Kafka.
async fn outbox_pending(st: &AppState) -> Vec<(Vec<String>, f64)> {
    let mut v = Vec::new();
    for c in st.connections.values() {
        if c.connector.status().snapshot().relay.is_some() {
            if let Ok(n) = st.store.unpublished_count(&c.name).await {
                v.push((vec![c.name.clone()], n as f64));
            }
        }
    }
    v
}

/// The size of every connection's message log (one count per connection per scrape).
async fn outbox_sizes(st: &AppState) -> Vec<(String, store::OutboxStats)> {
    let mut v = Vec::new();
    for c in st.connections.values() {
        if let Ok(s) = st.store.outbox_stats(&c.name).await {
            v.push((c.name.clone(), s));
        }
    }
    v
}

/// One scrape's metric families, in a registry of their own.
#[derive(Default)]
struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// A counter family (`name` ends in `_total`); whole values.
    fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        samples: Vec<(Vec<String>, f64)>,
    ) -> Result<(), ApiError> {
        let family = IntCounterVec::new(Opts::new(name, help), labels).map_err(internal)?;
        for (values, v) in samples {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            family
                .get_metric_with_label_values(&values)
                .map_err(internal)?
                .inc_by(v as u64);
        }
        self.registry.register(Box::new(family)).map_err(internal)
    }

    /// A gauge family.
    fn gauge(&self, name: &str, help: &str, labels: &[&str], samples: Vec<(Vec<String>, f64)>) -> Result<(), ApiError> {
        let family = GaugeVec::new(Opts::new(name, help), labels).map_err(internal)?;
        for (values, v) in samples {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            family.get_metric_with_label_values(&values).map_err(internal)?.set(v);
        }
        self.registry.register(Box::new(family)).map_err(internal)
    }

    /// The text exposition of every family with samples.
    fn encode(&self) -> Result<String, ApiError> {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .map_err(internal)?;
        String::from_utf8(buf).map_err(internal)
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("metrics: {e}"))
}
