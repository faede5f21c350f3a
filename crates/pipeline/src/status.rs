//! Live status of a connector: M3 connectivity and per-table progress, read by the API.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// M3 connectivity as last observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Connectivity {
    /// Nothing tried yet.
    #[default]
    Unknown,
    /// The last call succeeded.
    Healthy,
    /// The last call failed for a transient reason (outage, throttling, 5xx).
    Failing,
    /// The authorization server refused the credentials.
    AuthenticationFailed,
    /// The gateway refused the call (403 / 401 after refresh).
    AuthorizationFailed,
}

/// Progress of one mapping's table.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TableStatus {
    /// Source table.
    pub table: String,
    /// `initial-load`, `polling`.
    pub phase: String,
    /// Rows read from M3.
    pub rows_seen: u64,
    /// Messages appended.
    pub messages: u64,
    /// Rows dropped because nothing mapped changed.
    pub unchanged: u64,
    /// Changes dropped because a newer version was already stored (late webhooks).
    pub stale: u64,
    /// Rows that could not be mapped (bad values), skipped and counted.
    pub rejected_rows: u64,
    /// Deletes found by key reconciliation.
    pub deletes_found: u64,
    /// Errors since start.
    pub errors: u64,
    /// Last error text.
    pub last_error: Option<String>,
    /// When the last poll finished (RFC 3339).
    pub last_poll: Option<String>,
    /// Milliseconds between the newest change seen and the end of the last poll.
    pub lag_ms: Option<i64>,
}

/// Connector status, shared between the connector tasks and the API.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ConnectorStatus {
    /// M3 connectivity.
    pub m3: Connectivity,
    /// Message of the last M3 failure.
    pub m3_message: Option<String>,
    /// Per mapping name.
    pub tables: BTreeMap<String, TableStatus>,
    /// The Kafka relay, when Kafka is configured.
    pub relay: Option<RelayStatus>,
    /// Webhook calls.
    pub webhooks: WebhookStatus,
}

/// Webhook calls received.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WebhookStatus {
    /// Accepted events.
    pub received: u64,
    /// Calls refused for missing or wrong credentials.
    pub unauthorized: u64,
}

/// What the outbox -> Kafka relay has done.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RelayStatus {
    /// Events topic.
    pub topic: String,
    /// Messages acknowledged by the broker since start.
    pub published: u64,
    /// Whether the last attempt reached the broker.
    pub healthy: bool,
    /// Last broker error.
    pub last_error: Option<String>,
}

/// A handle on the shared status.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<RwLock<ConnectorStatus>>);

impl StatusBoard {
    /// A copy of the current status.
    pub fn snapshot(&self) -> ConnectorStatus {
        self.0.read().expect("status lock").clone()
    }

    /// Update the status.
    pub fn update(&self, f: impl FnOnce(&mut ConnectorStatus)) {
        f(&mut self.0.write().expect("status lock"));
    }

    /// Update one table's status.
    pub fn table(&self, mapping: &str, f: impl FnOnce(&mut TableStatus)) {
        self.update(|s| f(s.tables.entry(mapping.to_string()).or_default()));
    }
}
