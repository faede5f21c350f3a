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

/// What a mapping's source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Deployed, nothing read yet.
    #[default]
    Starting,
    /// Reading every row of the table (a new or changed mapping).
    InitialLoad,
    /// A scheduled full re-read (only differences are emitted).
    FullResync,
    /// Caught up: polling the change timestamp.
    Polling,
    /// Another process holds the connection's lease.
    Standby,
}

/// Whether a mapping makes progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Health {
    /// Nothing checked yet.
    #[default]
    Unknown,
    /// The last step read M3 and wrote what it found.
    Healthy,
    /// The last step failed (M3 refused or did not answer, the store failed, deletes were held
    /// for confirmation...): see `health_message`.
    Failing,
}

/// Progress of one mapping's table.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TableStatus {
    /// Source table.
    pub table: String,
    /// What the source is doing.
    pub phase: Phase,
    /// Whether it makes progress; never `Healthy` unless a read succeeded since the last failure.
    #[serde(default)]
    pub health: Health,
    /// Why it is failing (M3's own message when M3 answered), or what needs attention.
    #[serde(default)]
    pub health_message: Option<String>,
    /// Since when the health is what it is (RFC 3339).
    #[serde(default)]
    pub health_since: Option<String>,
    /// When M3 was last read successfully for this mapping (RFC 3339).
    #[serde(default)]
    pub last_success: Option<String>,
    /// When the last complete poll started (epoch ms): every change committed before is read.
    #[serde(default)]
    pub caught_up_at: Option<i64>,
    /// Rows M3 returned that could not be split or mapped, kept as source dead letters.
    #[serde(default)]
    pub dead_letters: u64,
    /// Deletes found by reconciliation but held back: too many keys vanished in one pass.
    #[serde(default)]
    pub held_deletes: u64,
    /// Why the deletes are held (the mapping stays `Failing` while they are).
    #[serde(default)]
    pub held_message: Option<String>,
    /// Rows repaired by reconciliation (missing, late or different in the store).
    #[serde(default)]
    pub repaired: u64,
    /// The largest answer M3 gave (its row cap, once an answer was cut).
    #[serde(default)]
    pub row_cap_seen: u64,
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
    /// Milliseconds since the last complete poll started: changes younger than this may not
    /// have been read yet. It grows while M3 cannot be read.
    pub lag_ms: Option<i64>,
}

impl TableStatus {
    /// Record a successful read. Held deletes keep the mapping `Failing`: they need a person.
    pub fn succeeded(&mut self) {
        let now = now_rfc3339();
        if let Some(held) = self.held_message.clone().filter(|_| self.held_deletes > 0) {
            self.last_success = Some(now);
            self.failed(held);
            return;
        }
        if self.health != Health::Healthy {
            self.health_since = Some(now.clone());
        }
        self.health = Health::Healthy;
        self.health_message = None;
        self.last_success = Some(now);
    }

    /// Record a failure (or something that needs attention) with its reason.
    pub fn failed(&mut self, reason: String) {
        if self.health != Health::Failing {
            self.health_since = Some(now_rfc3339());
        }
        self.health = Health::Failing;
        self.health_message = Some(reason);
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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
    /// A copy of the current status, lags computed for now.
    pub fn snapshot(&self) -> ConnectorStatus {
        let mut s = self.0.read().expect("status lock").clone();
        let now = chrono::Utc::now().timestamp_millis();
        for t in s.tables.values_mut() {
            if let Some(at) = t.caught_up_at {
                t.lag_ms = Some((now - at).max(0));
            }
        }
        s
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
