//! [`Store`], the one public face of the store: it opens a SQLite file or connects to a
//! PostgreSQL server, and hands every call to that back end, a `Db` of SQLite or PostgreSQL: the
//! queries written once (`shared.rs`) and what each dialect does its own way (`sqlite.rs`,
//! `postgres.rs`), with the same semantics (see `postgres.rs` for how PostgreSQL gets SQLite's
//! writer order).

use std::path::Path;
use std::time::Duration;

use crate::error::StoreError;
use crate::model::{
    ApiToken, Applied, Batch, Change, CommandMappingVersion, ConnectionRecord, Cursor, LeaseOutcome, MappingRecord,
    MappingVersion, ReadModelPage, SourceDeadLetter, StoredMessage,
};
use crate::postgres::PgStore;
use crate::sqlite::SqliteStore;

/// The store. Cheap to clone (a connection pool inside).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) backend: Backend,
}

/// The back end a [`Store`] talks to.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Open (creating if needed) the SQLite store file at `path` and migrate it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            backend: Backend::Sqlite(SqliteStore::open(path).await?),
        })
    }

    /// Open the store named by `url` and migrate it:
    ///
    /// - `postgres://user:password@host:port/database?...` (or `postgresql://`): a PostgreSQL
    ///   database, which must exist (the schema is created in it);
    /// - `sqlite://path` (or `sqlite:path`), or a plain file path: a SQLite file, as [`Store::open`]
    ///   (a file: an in-memory `:memory:` database would be one per pooled connection).
    ///
    /// A PostgreSQL URL's password never appears in the error.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self {
                backend: Backend::Postgres(PgStore::connect(url).await?),
            });
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Self::open(Path::new(path)).await
    }

    /// Which back end this store uses: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

impl Store {
    /// [`Store::apply_batch`] of a batch the caller gives up (SQLite's writer takes it to its
    /// thread without copying the payloads).
    pub async fn apply_owned(&self, batch: Batch) -> Result<Applied, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.apply_owned(batch).await,
            Backend::Postgres(p) => p.apply_batch(&batch).await,
        }
    }
}

/// Public methods that call the back end's method of the same name with the same arguments.
macro_rules! delegate {
    ($( $(#[$attr:meta])* fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty; )*) => {
        impl Store {
            $(
                $(#[$attr])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    match &self.backend {
                        Backend::Sqlite(s) => s.$name($($arg),*).await,
                        Backend::Postgres(p) => p.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

delegate! {
    /// Whether the store answers.
    fn ping(&self) -> ();

    /// The stored cursor of a mapping.
    fn cursor(&self, connection: &str, mapping: &str) -> Option<Cursor>;

    /// Apply a batch atomically: changed entities are updated and their messages appended; no-op
    /// changes are dropped by content hash; the cursor is stored in the same transaction.
    /// Writers of one connection are serialised, so message sequence numbers follow commit order.
    ///
    /// A message is stored with the caller's id, except a delete's: its id is derived from the
    /// caller's and the version of the entity it removes (the log position of the message that
    /// wrote it), so a key deleted, re-created and deleted again gets two ids, while applying the
    /// same batch to the same stored state (a replay after a crash before commit) gives the same.
    fn apply_batch(&self, batch: &Batch) -> Applied;

    /// Messages of a connection after `after` (exclusive), oldest first, optionally of one type or subject.
    fn messages(
        &self,
        connection: &str,
        after: i64,
        limit: u32,
        ty: Option<&str>,
        subject: Option<&str>,
    ) -> Vec<StoredMessage>;

    /// The highest message sequence number (0 when empty). No message committed later gets a
    /// smaller one.
    fn last_seq(&self) -> i64;

    /// Refresh the query planner's statistics of the tables a load filled (PostgreSQL
    /// `ANALYZE`, SQLite `PRAGMA optimize`).
    fn analyze(&self) -> ();

    /// The current state of one entity.
    fn entity(&self, connection: &str, mapping: &str, key: &str) -> Option<String>;

    /// A page of entities in key order (byte order) after `after`, where every `(field, value)`
    /// filter matches the field's value rendered as text. Field names must have been validated by
    /// the caller.
    fn entities(
        &self,
        connection: &str,
        mapping: &str,
        after: Option<&str>,
        limit: u32,
        filters: &[(String, String)],
    ) -> ReadModelPage;

    /// Number of entities of a mapping.
    fn entity_count(&self, connection: &str, mapping: &str) -> i64;

    /// Key reconciliation, step 1: mark these keys as present in M3 in round `round`.
    fn mark_seen(&self, connection: &str, mapping: &str, round: i64, keys: &[String]) -> ();

    /// Key reconciliation, step 2: keys not seen in round `round` whose last change is not newer
    /// than `max_seq` (the log position when the round started): these vanished from M3.
    fn unseen_keys(&self, connection: &str, mapping: &str, round: i64, max_seq: i64) -> Vec<String>;

    /// [`Store::unseen_keys`] with each entity's stored source position (`None`: unknown).
    fn unseen_entities(&self, connection: &str, mapping: &str, round: i64, max_seq: i64) -> Vec<(String, Option<i64>)>;

    /// The entities of a mapping whose stored source position `p` satisfies `from <= p < to` (an
    /// open bound when `None`), with that position, in no particular order. Entities whose
    /// position is unknown (`None`; stored as 0) belong to the windows with an open start only.
    /// Served by an index on `(connection, mapping, position)`.
    fn window_entities(
        &self,
        connection: &str,
        mapping: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Vec<(String, Option<i64>)>;

    /// Record a source row that could not be split or mapped (`key` `""` when unknown). The same
    /// row (connection, mapping, key and raw text) again bumps its attempts and last sighting and
    /// takes the new reason.
    fn put_source_dead_letter(&self, connection: &str, mapping: &str, key: &str, raw: &str, reason: &str) -> ();

    /// A connection's source dead letters (of one mapping, or all), most recently seen first.
    fn source_dead_letters(&self, connection: &str, mapping: Option<&str>, limit: u32) -> Vec<SourceDeadLetter>;

    /// Number of source dead letters of a mapping.
    fn source_dead_letter_count(&self, connection: &str, mapping: &str) -> i64;

    /// Forget the source dead letters of these keys (their rows read fine now); returns how many
    /// were removed.
    fn clear_source_dead_letters(&self, connection: &str, mapping: &str, keys: &[String]) -> u64;

    /// Messages of a connection not yet acknowledged by the broker, oldest first.
    fn unpublished(&self, connection: &str, limit: u32) -> Vec<StoredMessage>;

    /// Like `unpublished`, but only messages after `after_seq` (those before it are in flight).
    fn unpublished_after(&self, connection: &str, after_seq: i64, limit: u32) -> Vec<StoredMessage>;

    /// Mark every message of a connection up to `seq` as acknowledged by the broker.
    fn mark_published(&self, connection: &str, up_to_seq: i64) -> u64;

    /// Number of messages of a connection waiting for the broker.
    fn unpublished_count(&self, connection: &str) -> i64;

    /// The receipt of an already processed command, if any.
    fn command_receipt(&self, connection: &str, command_id: &str) -> Option<String>;

    /// An already processed command, if any: its receipt and the hash of the request it answered
    /// (`None` for commands recorded without one, e.g. before hashes were kept).
    fn stored_command(&self, connection: &str, command_id: &str) -> Option<(String, Option<String>)>;

    /// Record a processed command, its receipt and the hash of its canonical request (compared
    /// when the id comes again). Returns false if the id was already recorded.
    fn record_command(
        &self,
        connection: &str,
        command_id: &str,
        command: &str,
        status: &str,
        receipt: &str,
        request_hash: Option<&str>,
    ) -> bool;

    /// Save a new version of a mapping; returns its version number (1 for a new mapping).
    fn save_mapping(&self, connection: &str, name: &str, spec: &serde_json::Value, by: &str) -> i64;

    /// Every version of a mapping, oldest first (empty if unknown).
    fn mapping_versions(&self, connection: &str, name: &str) -> Vec<MappingVersion>;

    /// Every mapping of a connection: latest version and deployment, by name.
    fn mappings(&self, connection: &str) -> Vec<MappingRecord>;

    /// Record that `version` of a mapping is deployed.
    fn set_deployed(&self, connection: &str, name: &str, version: i64, by: &str) -> ();

    /// Record that a mapping is not deployed (its messages and read model stay).
    fn set_undeployed(&self, connection: &str, name: &str) -> bool;

    /// Delete a mapping: its versions, deployment, cursor, read model and source dead letters.
    /// Messages already in the log stay (they were published facts).
    fn delete_mapping(&self, connection: &str, name: &str) -> bool;

    /// Start a mapping's export over: forget its cursor and content hashes (its read model stays
    /// until rows are re-read), so the next initial load emits every row again.
    fn reset_export(&self, connection: &str, mapping: &str) -> ();

    /// Store a new API token (its secret's hash only).
    fn create_token(&self, t: &ApiToken) -> ();

    /// One token by id (revoked ones included).
    fn token(&self, id: &str) -> Option<ApiToken>;

    /// Every token, newest first.
    fn tokens(&self) -> Vec<ApiToken>;

    /// Revoke a token. Returns false if it does not exist or was revoked already.
    fn revoke_token(&self, id: &str) -> bool;

    /// Record that a token was accepted now (its last-used time).
    fn touch_token(&self, id: &str) -> ();

    /// Whether any usable admin token exists.
    fn has_admin_token(&self) -> bool;

    /// Save a new version of a command mapping; returns its version number (1 for a new one;
    /// after a deletion the numbering goes on).
    fn save_command_mapping(&self, connection: &str, name: &str, spec: &serde_json::Value, by: &str) -> i64;

    /// Delete a command mapping by appending a tombstone version; its history stays. `false` if
    /// it does not exist (or is deleted already).
    fn delete_command_mapping(&self, connection: &str, name: &str, by: &str) -> bool;

    /// Every version of a command mapping, oldest first, deletions included (empty if unknown).
    fn command_mapping_versions(&self, connection: &str, name: &str) -> Vec<CommandMappingVersion>;

    /// The latest version of every command mapping of a connection that is not deleted, by name.
    fn command_mappings(&self, connection: &str) -> Vec<CommandMappingVersion>;

    /// Whether any command mapping was ever stored for a connection (deleted ones count).
    fn has_command_mappings(&self, connection: &str) -> bool;

    /// Ingest messages a self-hosted connector produced (its outbox, in its order): each item is
    /// `(connector sequence number, mapping, change)`. Items at or below the stored uplink
    /// position were ingested already (a resend after a lost acknowledgement) and are skipped;
    /// the rest are applied like [`Store::apply_batch`] and the position moves in the same
    /// transaction. Returns what was applied and the position now stored.
    fn ingest(&self, connection: &str, items: &[(i64, String, Change)]) -> (Applied, i64);

    /// Store a new connection; false if the name is taken.
    fn create_connection(&self, c: &ConnectionRecord) -> bool;

    /// One stored connection.
    fn connection(&self, name: &str) -> Option<ConnectionRecord>;

    /// Every stored connection, by name.
    fn connections(&self) -> Vec<ConnectionRecord>;

    /// Replace a connection's settings and sealed secrets; false if it does not exist.
    fn update_connection(&self, c: &ConnectionRecord) -> bool;

    /// Delete a stored connection, its lease and source dead letters, and revoke the tokens bound
    /// to it; false if unknown.
    fn delete_connection(&self, name: &str) -> bool;

    /// Take or renew the lease on a connection's connector for `ttl`: granted when nobody holds
    /// it, when it expired, or when `holder` holds it already. Of concurrent callers, one wins.
    fn acquire_lease(&self, connection: &str, holder: &str, ttl: Duration) -> LeaseOutcome;

    /// Give a lease back (a clean stop); false if `holder` did not hold it.
    fn release_lease(&self, connection: &str, holder: &str) -> bool;

    /// Announce (or renew) `holder` as a live replica for `ttl`; returns every live replica's
    /// holder id, sorted, this one included.
    fn replica_heartbeat(&self, holder: &str, ttl: Duration) -> Vec<String>;

    /// Remove `holder` from the live replicas (a clean stop).
    fn replica_leave(&self, holder: &str) -> ();
}
