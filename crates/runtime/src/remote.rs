//! Studio's data side of a self-hosted connector's channel: the channel's live state
//! ([`RemoteState`], shown by the API and the wizard), the M3 calls waiting for the connector's
//! answer ([`PendingCalls`]) and the exactly-once ingest of the messages it sends ([`ingest`]).
//! The WebSocket itself is served by Studio; its lease follows [`crate::LeasePolicy`].

use std::collections::HashMap;
use std::sync::Mutex;

use channel::{Tuning, UplinkItem};
use pipeline::remote_mi::{M3Answer, MiFailure, RemoteMi};
use pipeline::{Shutdown, ShutdownTrigger};
use serde::Serialize;
use serde_json::{json, Value};
use store::{Change, ChangeOp, NewMessage, Store, StoreError};
use tokio::sync::oneshot;

/// Live channel state of a self-hosted connection.
#[derive(Debug)]
pub struct RemoteState {
    info: Mutex<RemoteInfo>,
    stop: ShutdownTrigger,
    /// Studio's M3 calls for this connection (commands, table search, previews), run by the connector.
    mi: RemoteMi,
    /// Tuning sent with the configuration.
    settings: Tuning,
}

/// Where a connection's channel stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelState {
    /// Its connector never called home.
    #[default]
    Waiting,
    /// Its connector's channel is open.
    Connected,
    /// Its connector called home and went away.
    Disconnected,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoteInfo {
    state: ChannelState,
    holder: Option<String>,
    version: Option<String>,
    connected_since: Option<String>,
    last_seen: Option<String>,
    refused: u64,
    last_refusal: Option<String>,
    messages_ingested: u64,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl RemoteState {
    /// The state of a connection whose connector has not called home yet; `mi` carries
    /// command transactions to it, `settings` is its tuning (see [`channel::ConnectorConfig::settings`]).
    pub fn new(mi: RemoteMi, settings: Tuning) -> Self {
        Self {
            info: Mutex::new(RemoteInfo::default()),
            stop: ShutdownTrigger::new().0,
            mi,
            settings,
        }
    }

    /// The API's view: `{"state", "holder", "connectedSince", "lastSeen", "refused", ...}`.
    pub fn describe(&self) -> Value {
        json!(self.info.lock().expect("lock").clone())
    }

    /// How the connection reaches M3 now, for its light (see [`pipeline::status::Link`]).
    pub fn link(&self) -> pipeline::status::Link {
        let i = self.info.lock().expect("lock");
        match i.state {
            ChannelState::Waiting => pipeline::status::Link::NeverCalled,
            ChannelState::Connected => pipeline::status::Link::Connected,
            ChannelState::Disconnected => pipeline::status::Link::Gone {
                last_seen: i.last_seen.clone(),
            },
        }
    }

    /// Since when the connector's channel is open and when a frame last came from it (RFC 3339).
    pub fn connected_times(&self) -> (Option<String>, Option<String>) {
        let i = self.info.lock().expect("lock");
        (i.connected_since.clone(), i.last_seen.clone())
    }

    /// Close the open channel (the connection stops or Studio shuts down).
    pub fn close(&self) {
        self.stop.fire();
    }

    /// Fires when the channel must close (see [`RemoteState::close`]).
    pub fn closing(&self) -> Shutdown {
        self.stop.subscribe()
    }

    /// The M3 calls Studio makes through the connector.
    pub fn mi(&self) -> &RemoteMi {
        &self.mi
    }

    /// The tuning the connector runs with.
    pub fn settings(&self) -> &Tuning {
        &self.settings
    }

    /// A connector was refused (`reason` is what it was told).
    pub fn refused(&self, reason: &str) {
        self.update(|i| {
            i.refused += 1;
            i.last_refusal = Some(format!("{}: {reason}", now()));
        });
    }

    /// `holder`'s connector (at `version`) holds the channel now.
    pub fn connected(&self, holder: &str, version: &str) {
        self.update(|i| {
            i.state = ChannelState::Connected;
            i.holder = Some(holder.to_string());
            i.version = Some(version.to_string());
            i.connected_since = Some(now());
            i.last_seen = Some(now());
        });
    }

    /// A frame came from the connector.
    pub fn seen(&self) {
        self.update(|i| i.last_seen = Some(now()));
    }

    /// `n` new messages were stored.
    pub fn ingested(&self, n: u64) {
        self.update(|i| i.messages_ingested += n);
    }

    /// `holder`'s channel closed (a newer holder's state is left alone).
    pub fn disconnected(&self, holder: &str) {
        self.update(|i| {
            if i.holder.as_deref() == Some(holder) {
                i.state = ChannelState::Disconnected;
            }
        });
    }

    fn update(&self, f: impl FnOnce(&mut RemoteInfo)) {
        f(&mut self.info.lock().expect("lock"));
    }
}

/// The M3 calls sent to a connector and waiting for its answer, by call id.
#[derive(Default)]
pub struct PendingCalls {
    waiting: HashMap<u64, oneshot::Sender<Result<M3Answer, MiFailure>>>,
    last: u64,
}

impl PendingCalls {
    /// Remember a call's reply channel; returns the id the call goes out with.
    pub fn register(&mut self, reply: oneshot::Sender<Result<M3Answer, MiFailure>>) -> u64 {
        self.last += 1;
        self.waiting.insert(self.last, reply);
        self.last
    }

    /// Hand the connector's answer to call `id` to its caller (unknown ids are ignored).
    pub fn answer(&mut self, id: u64, result: Result<M3Answer, MiFailure>) {
        if let Some(reply) = self.waiting.remove(&id) {
            let _ = reply.send(result);
        }
    }
}

/// Store a connector's messages exactly once; returns how many were new and the position to
/// acknowledge.
pub async fn ingest(store: &Store, connection: &str, items: Vec<UplinkItem>) -> Result<(u64, i64), StoreError> {
    let changes: Vec<(i64, String, Change)> = items
        .into_iter()
        .map(|m| {
            let op = if m.deleted {
                ChangeOp::Delete
            } else {
                ChangeOp::Upsert {
                    hash: xxhash_rust::xxh3::xxh3_64(m.payload.as_bytes()),
                    state: m.payload.clone(),
                }
            };
            let change = Change {
                key: m.subject.clone(),
                op,
                position: None,
                message: NewMessage {
                    id: m.id,
                    ty: m.ty,
                    source: m.source,
                    subject: m.subject,
                    time: m.time,
                    dataschema: m.dataschema,
                    payload: m.payload,
                },
            };
            (m.seq, m.mapping, change)
        })
        .collect();
    let (applied, up_to) = store.ingest(connection, &changes).await?;
    Ok((applied.emitted as u64, up_to))
}
