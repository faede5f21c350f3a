//! The wire protocol of the connector channel: the one WebSocket a self-hosted connector opens
//! to Studio (`GET /api/connections/{c}/connector/channel`). Both ends use these types, so a
//! frame Studio writes is the frame the connector reads: [`FromConnector`] (hello, status,
//! outbox messages, answers to M3 calls) and [`ToConnector`] (configuration with its typed
//! [`Tuning`], acknowledgements, M3 calls, refusals with a [`RefusalCode`]), their JSON text
//! encoding, and the frame limits. The WebSocket handling itself stays with each end (Studio's
//! server, the connector's client).
//!
//! Compatibility: a connector and a Studio of different versions talk to each other, so names
//! on the wire do not change, fields added later are optional, and unknown refusal codes are
//! read as [`RefusalCode::Unknown`].

mod tuning;

use std::fmt;

use pipeline::remote_mi::{M3Answer, M3Call, MiFailure};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use tuning::Tuning;

/// Largest WebSocket message (and frame) Studio accepts on the channel.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Most outbox messages the connector sends in one [`FromConnector::Messages`] frame.
pub const BATCH_MAX_ITEMS: u32 = 500;
/// Payload bytes the connector puts in one [`FromConnector::Messages`] frame at most (well
/// under [`MAX_FRAME_BYTES`], whatever the payload sizes), counting [`ITEM_OVERHEAD_BYTES`]
/// per message for its envelope.
pub const BATCH_MAX_BYTES: usize = 4 << 20;
/// Bytes counted for one message's envelope (ids, type, subject, ...) besides its payload.
pub const ITEM_OVERHEAD_BYTES: usize = 512;
/// Longest [`FromConnector::Hello`] `holder` Studio accepts.
pub const MAX_HOLDER_LEN: usize = 200;

/// Errors of the channel protocol.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// A frame is not valid JSON or not one of the messages of its direction.
    #[error("{direction}: not understood: {source}")]
    Decode {
        /// Which way the frame went.
        direction: Direction,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// A frame cannot be written as JSON.
    #[error("{direction}: cannot be written: {source}")]
    Encode {
        /// Which way the frame goes.
        direction: Direction,
        /// What serde found.
        #[source]
        source: serde_json::Error,
    },
    /// The tuning's `fullResync` is not a cron schedule.
    #[error("tuning: fullResync: expected a cron schedule (minute hour day-of-month month day-of-week): {0}")]
    FullResync(#[source] pipeline::schedule::ScheduleError),
}

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Studio to connector ([`ToConnector`]).
    ToConnector,
    /// Connector to Studio ([`FromConnector`]).
    FromConnector,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::ToConnector => "frame from Studio to the connector",
            Direction::FromConnector => "frame from the connector to Studio",
        })
    }
}

/// The channel's path for a connection (the connector prefixes Studio's URL, `ws(s)://`).
pub fn channel_path(connection: &str) -> String {
    format!("/api/connections/{connection}/connector/channel")
}

/// How many of a batch's outbox messages, given their payload lengths in order, go in one
/// [`FromConnector::Messages`] frame: as many as fit [`BATCH_MAX_BYTES`], and always the first
/// (a frame always makes progress).
pub fn fitting_batch(payload_lens: impl IntoIterator<Item = usize>) -> usize {
    let mut bytes = 0;
    let fits = payload_lens
        .into_iter()
        .take_while(|len| {
            bytes += len + ITEM_OVERHEAD_BYTES;
            bytes <= BATCH_MAX_BYTES
        })
        .count();
    fits.max(1)
}

fn encode<T: Serialize>(frame: &T, direction: Direction) -> Result<String, ChannelError> {
    serde_json::to_string(frame).map_err(|source| ChannelError::Encode { direction, source })
}

fn decode<T: DeserializeOwned>(text: &str, direction: Direction) -> Result<T, ChannelError> {
    serde_json::from_str(text).map_err(|source| ChannelError::Decode { direction, source })
}

/// What a connector sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FromConnector {
    /// First frame: who is calling (a stable id per connector installation).
    Hello {
        /// Stable id of the connector installation (its lease holder name).
        holder: String,
        /// erp-bridge version of the connector.
        version: String,
    },
    /// Its live status (M3 connectivity, per-table counts, last errors).
    Status {
        /// The connector's status board.
        status: pipeline::ConnectorStatus,
    },
    /// Messages from its outbox, in order.
    Messages {
        /// The messages.
        items: Vec<UplinkItem>,
    },
    /// The answer to a [`ToConnector::Call`].
    CallResult {
        /// The call's id.
        id: u64,
        /// The answer, or the failure.
        result: Result<M3Answer, MiFailure>,
    },
}

impl FromConnector {
    /// The frame as JSON text.
    pub fn encode(&self) -> Result<String, ChannelError> {
        encode(self, Direction::FromConnector)
    }

    /// Read a frame's JSON text.
    pub fn decode(text: &str) -> Result<FromConnector, ChannelError> {
        decode(text, Direction::FromConnector)
    }
}

/// One message of a connector's outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkItem {
    /// Position in the connector's outbox (increasing).
    pub seq: i64,
    /// Mapping that produced it.
    pub mapping: String,
    /// Whether it ends the entity (`...Deleted`); otherwise the payload is its new state.
    pub deleted: bool,
    /// CloudEvents `id`.
    pub id: String,
    /// CloudEvents `type`.
    #[serde(rename = "type")]
    pub ty: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `subject` (the entity key).
    pub subject: String,
    /// CloudEvents `time`.
    pub time: String,
    /// CloudEvents `dataschema`.
    pub dataschema: String,
    /// JSON payload.
    pub payload: String,
}

impl From<store::StoredMessage> for UplinkItem {
    /// A message of the connector's outbox; `...Deleted` types end their entity.
    fn from(m: store::StoredMessage) -> Self {
        UplinkItem {
            seq: m.seq,
            deleted: m.ty.ends_with("Deleted"),
            mapping: m.mapping,
            id: m.id,
            ty: m.ty,
            source: m.source,
            subject: m.subject,
            time: m.time,
            dataschema: m.dataschema,
            payload: m.payload,
        }
    }
}

/// What Studio sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ToConnector {
    /// The connection's configuration; sent after the lease is granted and on every change.
    Config(ConnectorConfig),
    /// Messages up to this connector sequence number are stored: drop them from the outbox.
    Ack {
        /// Highest connector sequence number stored by Studio.
        up_to: i64,
    },
    /// Make one M3 call for Studio (a command's transaction, a table search, a preview) and
    /// answer with [`FromConnector::CallResult`].
    Call {
        /// Call id, echoed in the answer.
        id: u64,
        /// The call.
        call: M3Call,
    },
    /// The channel is refused or ends (lease held elsewhere, token revoked, Studio stopping).
    Refused {
        /// What kind of refusal (the connector stops for good only on
        /// [`RefusalCode::TokenRevoked`]).
        code: RefusalCode,
        /// Why, for people.
        reason: String,
    },
}

impl ToConnector {
    /// The frame as JSON text.
    pub fn encode(&self) -> Result<String, ChannelError> {
        encode(self, Direction::ToConnector)
    }

    /// Read a frame's JSON text.
    pub fn decode(text: &str) -> Result<ToConnector, ChannelError> {
        decode(text, Direction::ToConnector)
    }
}

/// Why Studio refuses or ends a channel ([`ToConnector::Refused`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalCode {
    /// The first frame was not a valid [`FromConnector::Hello`].
    BadHello,
    /// Another connector holds the connection's lease.
    LeaseHeld,
    /// The lease passed to another connector while the channel was open.
    LeaseLost,
    /// The connector token was revoked: the connector stops for good.
    TokenRevoked,
    /// A code of a newer Studio that this connector does not know (handled as a transient refusal).
    #[serde(other)]
    Unknown,
}

impl RefusalCode {
    /// Whether the connector must stop for good (its token no longer opens the channel) rather
    /// than call home again later.
    pub fn is_final(self) -> bool {
        self == RefusalCode::TokenRevoked
    }
}

/// Configuration of a self-hosted connector.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectorConfig {
    /// Connection name.
    pub connection: String,
    /// The `.ionapi` file text (opened from the vault for this connector only).
    pub ionapi: String,
    /// On-premises Metadata Publisher.
    pub mdp: Option<MdpCredentials>,
    /// Company (`cono`).
    pub company: Option<u32>,
    /// Deployed mapping definitions.
    pub mappings: Vec<Value>,
    /// Tuning and schedules.
    #[serde(default)]
    pub settings: Tuning,
}

impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("connection", &self.connection)
            .field("ionapi", &"<redacted>")
            .field("mdp", &self.mdp.as_ref().map(|m| m.url.as_str()))
            .field("company", &self.company)
            .field("mappings", &self.mappings.len())
            .field("settings", &self.settings)
            .finish()
    }
}

/// An on-premises Metadata Publisher and its credentials, as the connector receives them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdpCredentials {
    /// Base URL up to and including `/mdprest`.
    pub url: String,
    /// HTTP Basic user.
    pub username: String,
    /// HTTP Basic password.
    pub password: String,
}

impl fmt::Debug for MdpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MdpCredentials")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests;
