//! Live status of a connector: M3 connectivity and per-table progress, read by the API; the one
//! status model behind every light ([`ConnectionState`] and [`Light`], computed once by
//! [`ConnectorStatus::light`]); and the last hour of message counts ([`History`]) for the chart.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use m3::M3Error;

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

impl Connectivity {
    /// What an M3 answer says about connectivity, and M3's message when it is not plain success.
    pub fn of<T>(r: &Result<T, M3Error>) -> (Connectivity, Option<String>) {
        match r {
            Ok(_) => (Connectivity::Healthy, None),
            Err(e @ M3Error::Authentication { .. }) => (Connectivity::AuthenticationFailed, Some(e.to_string())),
            Err(e @ M3Error::NotAuthorised { .. }) => (Connectivity::AuthorizationFailed, Some(e.to_string())),
            Err(e) if e.is_transient() => (Connectivity::Failing, Some(e.to_string())),
            // M3 answered (NOK or odd shape): it is reachable and the credentials work.
            Err(e) => (Connectivity::Healthy, Some(e.to_string())),
        }
    }
}

/// The one state every light shows (connections list, dashboard, wizard, the status route and
/// `/readyz`). A closed set: the UI maps these, and only these, to colours. Nothing is
/// `Healthy` unless it was checked and passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConnectionState {
    /// M3 was reached with these credentials and no deployed mapping is failing.
    Healthy,
    /// M3 does not answer (outage, throttling, 5xx) or a mapping is failing: retrying.
    Failing,
    /// The authorization server refused the credentials (the `.ionapi` file).
    AuthenticationFailed,
    /// The gateway refused the calls (the app lacks rights).
    AuthorizationFailed,
    /// The self-hosted connector is not calling home (never did, or went away).
    Disconnected,
    /// The connection cannot run yet (no `.ionapi` file saved).
    NotConfigured,
    /// Configured and running, but nothing was checked yet (a check is under way).
    Unchecked,
}

impl ConnectionState {
    /// Its name as serialized (`"Healthy"`, `"Disconnected"`...).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Healthy => "Healthy",
            ConnectionState::Failing => "Failing",
            ConnectionState::AuthenticationFailed => "AuthenticationFailed",
            ConnectionState::AuthorizationFailed => "AuthorizationFailed",
            ConnectionState::Disconnected => "Disconnected",
            ConnectionState::NotConfigured => "NotConfigured",
            ConnectionState::Unchecked => "Unchecked",
        }
    }
}

/// A connection's light: its state, the message of M3 or of the connector that explains it,
/// since when it is so, and when it was last seen to be so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Light {
    /// The state.
    pub state: ConnectionState,
    /// M3's or the connector's own words (or what to do next).
    pub message: Option<String>,
    /// Since when the state holds (RFC 3339), when known.
    pub since: Option<String>,
    /// When the state was last observed to be true (RFC 3339), when known.
    pub at: Option<String>,
}

impl Light {
    /// A connection that cannot run yet.
    pub fn not_configured(message: impl Into<String>) -> Light {
        Light {
            state: ConnectionState::NotConfigured,
            message: Some(message.into()),
            since: None,
            at: None,
        }
    }
}

/// How a connection reaches M3, as far as its light is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// From this process (hosted).
    InProcess,
    /// Through a self-hosted connector whose channel is open.
    Connected,
    /// Through a self-hosted connector that never called home.
    NeverCalled,
    /// Through a self-hosted connector that called home and went away (`last_seen`, RFC 3339).
    Gone {
        /// When a frame last came from it.
        last_seen: Option<String>,
    },
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
    /// Since when `m3` is what it is (RFC 3339).
    #[serde(default)]
    pub m3_since: Option<String>,
    /// When `m3` was last observed (RFC 3339).
    #[serde(default)]
    pub m3_checked_at: Option<String>,
    /// Per mapping name.
    pub tables: BTreeMap<String, TableStatus>,
    /// The Kafka relay, when Kafka is configured.
    pub relay: Option<RelayStatus>,
    /// Webhook calls.
    pub webhooks: WebhookStatus,
}

impl ConnectorStatus {
    /// Record what an M3 call said about connectivity (`message`: M3's words, if any).
    pub fn m3_observed(&mut self, state: Connectivity, message: Option<String>) {
        let now = now_rfc3339();
        if self.m3 != state || self.m3_since.is_none() {
            self.m3_since = Some(now.clone());
        }
        self.m3 = state;
        self.m3_checked_at = Some(now);
        if message.is_some() || state != Connectivity::Healthy {
            self.m3_message = message;
        }
    }

    /// The connection's light, from this status and how M3 is reached (see [`ConnectionState`]).
    pub fn light(&self, link: &Link) -> Light {
        match link {
            Link::NeverCalled => {
                return Light {
                    state: ConnectionState::Disconnected,
                    message: Some(
                        "the self-hosted connector has not called home: download its bundle and start it".into(),
                    ),
                    since: None,
                    at: None,
                }
            }
            Link::Gone { last_seen } => {
                return Light {
                    state: ConnectionState::Disconnected,
                    message: Some(
                        "the self-hosted connector stopped calling home; what it last reported may be stale".into(),
                    ),
                    since: last_seen.clone(),
                    at: None,
                }
            }
            Link::InProcess | Link::Connected => {}
        }
        let m3 = |state| Light {
            state,
            message: self.m3_message.clone(),
            since: self.m3_since.clone(),
            at: self.m3_checked_at.clone(),
        };
        match self.m3 {
            Connectivity::Unknown => Light {
                state: ConnectionState::Unchecked,
                message: Some("M3 is being checked".into()),
                since: None,
                at: None,
            },
            Connectivity::Failing => m3(ConnectionState::Failing),
            Connectivity::AuthenticationFailed => m3(ConnectionState::AuthenticationFailed),
            Connectivity::AuthorizationFailed => m3(ConnectionState::AuthorizationFailed),
            Connectivity::Healthy => match self.tables.iter().find(|(_, t)| t.health == Health::Failing) {
                Some((name, t)) => Light {
                    state: ConnectionState::Failing,
                    message: Some(format!(
                        "mapping {name} ({}): {}",
                        t.table,
                        t.health_message.as_deref().unwrap_or("failing")
                    )),
                    since: t.health_since.clone(),
                    at: t.last_poll.clone(),
                },
                None => Light {
                    message: None,
                    at: self
                        .tables
                        .values()
                        .filter_map(|t| t.last_success.clone())
                        .chain(self.m3_checked_at.clone())
                        .max(),
                    ..m3(ConnectionState::Healthy)
                },
            },
        }
    }
}

/// Check M3 once (an access token, then one MI call) and record the outcome on `board`: a
/// connection shows its state before any message type is deployed.
pub async fn probe(m3: &crate::remote_mi::M3Access, board: &StatusBoard) {
    let r = m3.execute("MMS200MI", "LstItmByItm", &[], 1).await;
    let (state, message) = Connectivity::of(&r);
    board.update(|s| s.m3_observed(state, message));
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

/// One sample of the message count (for the messages-per-minute chart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When (epoch ms).
    pub t: i64,
    /// Messages written by all mappings so far (as reported then).
    pub messages: u64,
}

/// The last hour of message counts, one sample per [`History::EVERY_MS`] at most, kept in memory.
#[derive(Debug, Default)]
pub struct History(Mutex<VecDeque<Sample>>);

impl History {
    /// The shortest time between two samples.
    pub const EVERY_MS: i64 = 10_000;
    /// How far back samples are kept.
    pub const SPAN_MS: i64 = 3_600_000;

    /// Record `messages` at `t`. Samples are [`History::EVERY_MS`] apart but for the newest,
    /// which always says now (it moves until the next one is due); samples older than
    /// [`History::SPAN_MS`] are dropped.
    pub fn record(&self, t: i64, messages: u64) {
        let mut q = self.0.lock().expect("history lock");
        let n = q.len();
        let sample = Sample { t, messages };
        // The newest still moves while it is less than EVERY_MS after the one before it.
        match (n >= 2).then(|| q[n - 1].t - q[n - 2].t) {
            Some(gap) if gap < Self::EVERY_MS => q[n - 1] = sample,
            _ => q.push_back(sample),
        }
        while q.front().is_some_and(|first| t - first.t > Self::SPAN_MS) {
            q.pop_front();
        }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        self.0.lock().expect("history lock").iter().copied().collect()
    }
}

/// A handle on the shared status.
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<RwLock<ConnectorStatus>>, Arc<History>);

impl StatusBoard {
    /// The last hour of message counts (see [`History`]); a sample is taken on each update.
    pub fn history(&self) -> Vec<Sample> {
        self.record_sample();
        self.1.samples()
    }

    fn record_sample(&self) {
        let total = self
            .0
            .read()
            .expect("status lock")
            .tables
            .values()
            .map(|t| t.messages)
            .sum();
        self.1.record(chrono::Utc::now().timestamp_millis(), total);
    }

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
        self.record_sample();
    }

    /// Update one table's status.
    pub fn table(&self, mapping: &str, f: impl FnOnce(&mut TableStatus)) {
        self.update(|s| f(s.tables.entry(mapping.to_string()).or_default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(health: Health) -> TableStatus {
        TableStatus {
            table: "MITMAS".into(),
            health,
            health_message: Some("M3 said no".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_light_is_green_only_when_m3_was_checked_and_passed_and_no_mapping_fails() {
        let mut s = ConnectorStatus::default();
        assert_eq!(s.light(&Link::InProcess).state, ConnectionState::Unchecked);
        s.m3_observed(Connectivity::AuthenticationFailed, Some("invalid_client".into()));
        let l = s.light(&Link::InProcess);
        assert_eq!(
            (l.state, l.message.as_deref()),
            (ConnectionState::AuthenticationFailed, Some("invalid_client"))
        );
        assert!(l.at.is_some() && l.since.is_some());
        s.m3_observed(Connectivity::Healthy, None);
        assert_eq!(s.light(&Link::InProcess).state, ConnectionState::Healthy);
        s.tables.insert("Item".into(), table(Health::Failing));
        let l = s.light(&Link::Connected);
        assert_eq!(l.state, ConnectionState::Failing);
        assert!(l.message.unwrap().contains("M3 said no"));
        s.tables.insert("Item".into(), table(Health::Healthy));
        assert_eq!(s.light(&Link::Connected).state, ConnectionState::Healthy);
        // What a connector last reported says nothing once it is gone.
        for link in [Link::NeverCalled, Link::Gone { last_seen: None }] {
            assert_eq!(s.light(&link).state, ConnectionState::Disconnected);
        }
    }

    #[test]
    fn the_history_keeps_an_hour_of_samples_spaced_apart_with_the_newest_always_now() {
        let h = History::default();
        h.record(0, 0);
        h.record(1_000, 5);
        h.record(2_000, 9);
        assert_eq!(
            h.samples(),
            vec![Sample { t: 0, messages: 0 }, Sample { t: 2_000, messages: 9 }]
        );
        h.record(12_000, 20);
        h.record(13_000, 21);
        assert_eq!(
            h.samples().iter().map(|x| x.t).collect::<Vec<_>>(),
            vec![0, 12_000, 13_000]
        );
        assert_eq!(
            h.samples().last(),
            Some(&Sample {
                t: 13_000,
                messages: 21
            })
        );
        h.record(History::SPAN_MS + 5_000, 30);
        assert!(h.samples().iter().all(|x| x.t >= 5_000), "{:?}", h.samples());
    }
}
