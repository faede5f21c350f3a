//! What goes into and comes out of the store.

use serde::{Deserialize, Serialize};

/// A message to append to the outbox, with its CloudEvents attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Stable CloudEvents `id` (same change -> same id).
    pub id: String,
    /// CloudEvents `type` (`ItemUpdated`).
    pub ty: String,
    /// CloudEvents `source` (`erp-bridge/<connection>/<table>`).
    pub source: String,
    /// CloudEvents `subject`: the entity key.
    pub subject: String,
    /// CloudEvents `time`, RFC 3339.
    pub time: String,
    /// CloudEvents `dataschema`.
    pub dataschema: String,
    /// JSON payload.
    pub payload: String,
}

/// What a change does to an entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOp {
    /// New mapped state with its content hash; skipped if the hash is unchanged.
    Upsert { hash: u64, state: String },
    /// The entity is gone; skipped if it is not known.
    Delete,
}

/// One change of one entity and the message it emits if it is a real change.
#[derive(Debug, Clone)]
pub struct Change {
    /// Entity key (textual form).
    pub key: String,
    /// Upsert or delete.
    pub op: ChangeOp,
    /// Source position of the change (M3's `LMTS`), when known: a change older than the
    /// entity's stored position is stale and dropped. `None` applies unconditionally.
    pub position: Option<i64>,
    /// The message to append if the change is not a no-op.
    pub message: NewMessage,
}

/// A source's position, opaque to the store, with the mapping fingerprint it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Fingerprint of the mapping the cursor was produced with; a different mapping restarts.
    pub fingerprint: String,
    /// Source-defined position (JSON).
    pub position: serde_json::Value,
}

/// Changes of one mapping plus the cursor after them, written atomically.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Connection name.
    pub connection: String,
    /// Mapping (message type) name.
    pub mapping: String,
    /// Changes in order.
    pub changes: Vec<Change>,
    /// The cursor to store with them, if it moved.
    pub cursor: Option<Cursor>,
}

/// A message read back from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Position in the log.
    pub seq: i64,
    /// CloudEvents `id`.
    pub id: String,
    /// CloudEvents `type`.
    #[serde(rename = "type")]
    pub ty: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `subject`.
    pub subject: String,
    /// CloudEvents `time`.
    pub time: String,
    /// CloudEvents `dataschema`.
    pub dataschema: String,
    /// Mapping that produced it.
    pub mapping: String,
    /// JSON payload.
    pub payload: String,
}

/// A page of a read model.
#[derive(Debug, Clone)]
pub struct ReadModelPage {
    /// (key, state JSON) in key order.
    pub items: Vec<(String, String)>,
    /// Key to pass as `after` for the next page, if there is one.
    pub next: Option<String>,
}

impl ReadModelPage {
    /// The page of `limit` items from up to `limit + 1` rows read in key order: a row beyond
    /// `limit` means there is a next page, after the page's last key.
    pub(crate) fn from_rows(mut items: Vec<(String, String)>, limit: u32) -> Self {
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        ReadModelPage { items, next }
    }
}

/// One stored version of a mapping definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingVersion {
    /// Mapping (message type) name.
    pub name: String,
    /// Version, from 1.
    pub version: i64,
    /// The definition (JSON).
    pub spec: serde_json::Value,
    /// When it was saved.
    pub created_at: String,
    /// Who saved it.
    pub created_by: String,
}

/// A mapping's current state: its latest version and what is deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappingRecord {
    /// The latest version.
    pub latest: MappingVersion,
    /// The deployed version, if deployed.
    pub deployed_version: Option<i64>,
    /// When it was deployed.
    pub deployed_at: Option<String>,
    /// Who deployed it.
    pub deployed_by: Option<String>,
}

/// An API token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Public id (the part before the `.` in the token).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// `read`, `read-write`, `admin` or `read-model`.
    pub scope: String,
    /// The one connection it may touch, if restricted.
    pub connection: Option<String>,
    /// SHA-256 of the secret, hex.
    #[serde(skip)]
    pub hash: String,
    /// When it was created.
    pub created_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// When it stops being accepted (RFC 3339), if it expires.
    pub expires_at: Option<String>,
    /// When it was last accepted (RFC 3339; recorded at most every few seconds), if ever.
    pub last_used_at: Option<String>,
}

/// One stored version of a command mapping (command name -> MI transaction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandMappingVersion {
    /// Command name.
    pub name: String,
    /// Version, from 1.
    pub version: i64,
    /// The definition (JSON); `null` for a deletion.
    pub spec: serde_json::Value,
    /// Whether this version records the deletion of the command mapping.
    pub deleted: bool,
    /// When it was saved.
    pub created_at: String,
    /// Who saved it.
    pub created_by: String,
}

/// A connection created through the API, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// Connection name.
    pub name: String,
    /// `hosted` or `self-hosted`.
    pub hosting: String,
    /// What may be shown (JSON object): MDP URL and user, `.ionapi` summary, company.
    pub settings: serde_json::Value,
    /// Sealed secrets by field (`ionapi`, `mdpPassword`, `webhookToken`); opaque to the store.
    pub secrets: std::collections::BTreeMap<String, String>,
    /// When it was created.
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When it last changed.
    pub updated_at: String,
}

/// Outcome of [`crate::Store::acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The caller holds the lease now.
    Granted,
    /// Someone else holds it until `expires_at_ms` (Unix ms).
    HeldBy {
        /// The other holder.
        holder: String,
        /// When its lease ends unless renewed.
        expires_at_ms: i64,
    },
}

/// Outcome of [`crate::Store::apply_batch`] (and of [`crate::Store::ingest`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Messages appended.
    pub emitted: usize,
    /// Changes dropped because nothing mapped changed (or an unknown key was deleted).
    pub unchanged: usize,
    /// Changes dropped because the entity already holds a newer version.
    pub stale: usize,
}

/// A row the source gave that could not be split or mapped (it never blocks the other rows),
/// kept until it reads fine again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceDeadLetter {
    /// Connection name.
    pub connection: String,
    /// Mapping (message type) name.
    pub mapping: String,
    /// The entity key (textual form), or `""` when it could not be read.
    pub key: String,
    /// The raw row as read.
    pub raw: String,
    /// Why it was refused (the latest reason).
    pub reason: String,
    /// When it was first refused, RFC 3339.
    pub first_seen: String,
    /// When it was last refused, RFC 3339.
    pub last_seen: String,
    /// How many times it was refused.
    pub attempts: i64,
}
