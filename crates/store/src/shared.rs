//! The store operations whose SQL is the same on both back ends, written once: [`Db`] is generic
//! over the sqlx database, and `sqlite.rs` / `postgres.rs` keep only what really differs, through
//! [`Dialect`] (how writers of a connection and of a lease are serialised) and their own
//! `impl Db<..>` blocks (opening, writing pages of changes, `last_seq`'s barrier, JSON filters,
//! version numbering, source dead letters' `touched` order, key lists).
//!
//! One SQL text serves both dialects:
//!
//! - placeholders are PostgreSQL's `$1`, `$2`, ...: sqlx's SQLite driver binds `$N` by its number
//!   too, so a repeated `$1` is one value, as on PostgreSQL;
//! - a nullable text parameter is tested with `CAST($n AS TEXT) IS NULL`, which PostgreSQL needs
//!   to know its type and SQLite reads as written;
//! - limits are bound as `i64` (PostgreSQL has no unsigned integers);
//! - a boolean column is tested with `NOT column` (SQLite stores it as 0 / 1).

use std::future::Future;

use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Transaction, Type};

use crate::error::StoreError;
use crate::model::{
    ApiToken, CommandMappingVersion, ConnectionRecord, Cursor, LeaseOutcome, MappingRecord, MappingVersion,
    SourceDeadLetter, StoredMessage,
};
use crate::plan::known_position;

/// What a back end does its own way, for the operations written once in [`Db`].
pub(crate) trait Dialect: Database {
    /// A transaction that writes `connection`'s outbox, entities or cursors, serialised with the
    /// connection's other writers (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: advisory locks, see
    /// `postgres.rs`), so its reads see the previous writer's commit and `seq` follows commit
    /// order.
    fn connection_tx(
        pool: &Pool<Self>,
        connection: &str,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, StoreError>> + Send;

    /// A transaction that reads and writes `connection`'s connector lease, serialised with other
    /// lease takers of that connection.
    fn lease_tx(
        pool: &Pool<Self>,
        connection: &str,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, StoreError>> + Send;

    /// A transaction that numbers a new version of the `kind` named `name` after its highest
    /// one, serialised with other savers of that name so that two saves never take the same
    /// number.
    fn version_tx(
        pool: &Pool<Self>,
        kind: Versioned,
        connection: &str,
        name: &str,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, StoreError>> + Send;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// What is saved as numbered versions (the table of its versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versioned {
    /// A mapping (`mappings`).
    Mapping,
    /// A command mapping (`command_mappings`).
    CommandMapping,
}

impl Versioned {
    /// The table holding its versions.
    pub(crate) fn table(self) -> &'static str {
        match self {
            Versioned::Mapping => "mappings",
            Versioned::CommandMapping => "command_mappings",
        }
    }
}

/// A store on the database `DB`. Cheap to clone (a connection pool inside).
pub(crate) struct Db<DB: Database> {
    pub(crate) pool: Pool<DB>,
    /// SQLite only: the connections that read read models on the caller's thread.
    pub(crate) readers: Option<std::sync::Arc<crate::sqlite::Readers>>,
    /// SQLite only: the connection that writes pages of changes.
    pub(crate) writer: Option<crate::sqlite_writer::Writer>,
    /// PostgreSQL only: the pool that reads read models, with planner settings of its own.
    pub(crate) read_pool: Option<Pool<DB>>,
}

impl<DB: Database> Clone for Db<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            readers: self.readers.clone(),
            writer: self.writer.clone(),
            read_pool: self.read_pool.clone(),
        }
    }
}

impl<DB: Database> std::fmt::Debug for Db<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("pool", &self.pool).finish()
    }
}

/// The time stamps the store writes: RFC 3339, UTC, milliseconds.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Name of the cursor that remembers how far a self-hosted connector's messages were ingested.
pub(crate) const UPLINK_CURSOR: &str = "$uplink";

/// Appends a version of a mapping numbered after its highest one; returns the number. Run in a
/// [`Dialect::version_tx`].
const INSERT_MAPPING_VERSION: &str = "INSERT INTO mappings (connection, name, version, spec, created_at, created_by)
     SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5 FROM mappings WHERE connection = $1 AND name = $2
     RETURNING version";

/// Appends a version of a command mapping (`$4`: a deletion) numbered after its highest one;
/// returns the number. Run in a [`Dialect::version_tx`].
const INSERT_COMMAND_MAPPING_VERSION: &str =
    "INSERT INTO command_mappings (connection, name, version, spec, deleted, created_at, created_by)
     SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5, $6
     FROM command_mappings WHERE connection = $1 AND name = $2
     RETURNING version";

const MESSAGE_COLUMNS: &str = "seq, id, type, source, subject, time, dataschema, mapping, payload";
const TOKEN_COLUMNS: &str = "id, name, scope, connection, hash, created_at, revoked_at, expires_at, last_used_at";
const CONNECTION_COLUMNS: &str = "name, hosting, settings, secrets, created_at, created_by, updated_at";

impl<DB> Db<DB>
where
    DB: Dialect,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
{
    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The stored cursor of a mapping, read through the pool (each back end's `cursor` may read
    /// it another way).
    pub(crate) async fn cursor_pooled(&self, connection: &str, mapping: &str) -> Result<Option<Cursor>, StoreError> {
        let row = sqlx::query("SELECT fingerprint, position FROM cursors WHERE connection = $1 AND mapping = $2")
            .bind(connection)
            .bind(mapping)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| cursor_from(r.get(0), &r.get::<String, _>(1))).transpose()
    }

    /// Messages of a connection after `after` (exclusive), oldest first, optionally of one type or subject.
    pub async fn messages(
        &self,
        connection: &str,
        after: i64,
        limit: u32,
        ty: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM outbox
             WHERE connection = $1 AND seq > $2 AND (CAST($3 AS TEXT) IS NULL OR type = $3)
               AND (CAST($4 AS TEXT) IS NULL OR subject = $4)
             ORDER BY seq LIMIT $5"
        );
        let rows = sqlx::query(&sql)
            .bind(connection)
            .bind(after)
            .bind(ty)
            .bind(subject)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(message_from_row).collect())
    }

    /// Number of entities of a mapping.
    pub async fn entity_count(&self, connection: &str, mapping: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM entities WHERE connection = $1 AND mapping = $2")
                .bind(connection)
                .bind(mapping)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Key reconciliation, step 1: mark these keys as present in M3 in round `round`.
    pub async fn mark_seen(
        &self,
        connection: &str,
        mapping: &str,
        round: i64,
        keys: &[String],
    ) -> Result<(), StoreError> {
        // 500 keys a statement: one round trip per chunk instead of one per key.
        const CHUNK: usize = 500;
        let mut tx = DB::connection_tx(&self.pool, connection).await?;
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "UPDATE entities SET seen = $1 WHERE connection = $2 AND mapping = $3 AND key IN {}",
                crate::plan::placeholders(1, chunk.len(), Some(4))
            );
            let mut q = sqlx::query(&sql).bind(round).bind(connection).bind(mapping);
            for k in chunk {
                q = q.bind(k.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Key reconciliation, step 2: keys not seen in round `round` whose last change is not newer
    /// than `max_seq` (the log position when the round started): these vanished from M3.
    pub async fn unseen_keys(
        &self,
        connection: &str,
        mapping: &str,
        round: i64,
        max_seq: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT key FROM entities WHERE connection = $1 AND mapping = $2 AND seen <> $3 AND seq <= $4 ORDER BY key",
        )
        .bind(connection)
        .bind(mapping)
        .bind(round)
        .bind(max_seq)
        .fetch_all(&self.pool)
        .await?)
    }

    /// [`Self::unseen_keys`] with each entity's stored source position (`None`: unknown).
    pub async fn unseen_entities(
        &self,
        connection: &str,
        mapping: &str,
        round: i64,
        max_seq: i64,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key, position FROM entities WHERE connection = $1 AND mapping = $2 AND seen <> $3 AND seq <= $4 ORDER BY key",
        )
        .bind(connection)
        .bind(mapping)
        .bind(round)
        .bind(max_seq)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(k, p)| (k, known_position(p))).collect())
    }

    /// The entities of a mapping whose stored source position is in `[from, to)` (unknown
    /// positions with an open `from` only), with that position.
    pub async fn window_entities(
        &self,
        connection: &str,
        mapping: &str,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let mut n = 2;
        let (condition, bounds) = crate::plan::window_condition(from, to, || {
            n += 1;
            format!("${n}")
        });
        let sql = format!("SELECT key, position FROM entities WHERE connection = $1 AND mapping = $2{condition}");
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql).bind(connection).bind(mapping);
        for b in bounds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(k, p)| (k, known_position(p))).collect())
    }

    /// A connection's source dead letters (of one mapping, or all), most recently seen first.
    pub async fn source_dead_letters(
        &self,
        connection: &str,
        mapping: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SourceDeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT connection, mapping, key, raw, reason, first_seen, last_seen, attempts
             FROM source_dead_letters WHERE connection = $1 AND (CAST($2 AS TEXT) IS NULL OR mapping = $2)
             ORDER BY touched DESC LIMIT $3",
        )
        .bind(connection)
        .bind(mapping)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SourceDeadLetter {
                connection: r.get(0),
                mapping: r.get(1),
                key: r.get(2),
                raw: r.get(3),
                reason: r.get(4),
                first_seen: r.get(5),
                last_seen: r.get(6),
                attempts: r.get(7),
            })
            .collect())
    }

    /// Number of source dead letters of a mapping.
    pub async fn source_dead_letter_count(&self, connection: &str, mapping: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM source_dead_letters WHERE connection = $1 AND mapping = $2")
                .bind(connection)
                .bind(mapping)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Messages of a connection not yet acknowledged by the broker, oldest first.
    pub async fn unpublished(&self, connection: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        self.unpublished_after(connection, i64::MIN, limit).await
    }

    /// Like [`unpublished`](Self::unpublished), but only messages after `after_seq`: the relay
    /// reads the next batch while the broker still acknowledges the ones before it.
    pub async fn unpublished_after(
        &self,
        connection: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        // The larger bound is computed here, not in SQL: with two lower bounds on `seq` the
        // index walk could start at the smaller one and filter every published row.
        let from = after_seq.max(self.published_through(connection).await?);
        let sql =
            format!("SELECT {MESSAGE_COLUMNS} FROM outbox WHERE connection = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        // PostgreSQL: through the read models' pool, whose sessions walk the index in order (see
        // `postgres.rs`). Planned from the statistics of a table still filling (a load beside the
        // relay, before autovacuum analyses it), the statement fetched every message after `$2`
        // and sorted them: 40-70 ms per batch of 500 at 200,000 messages.
        let rows = sqlx::query(&sql)
            .bind(connection)
            .bind(from)
            .bind(i64::from(limit))
            .fetch_all(self.read_pool.as_ref().unwrap_or(&self.pool))
            .await?;
        Ok(rows.into_iter().map(message_from_row).collect())
    }

    /// The connection's messages the broker acknowledged: every one with `seq` up to this
    /// (0: none yet).
    async fn published_through(&self, connection: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar::<_, i64>("SELECT seq FROM outbox_published WHERE connection = $1")
                .bind(connection)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    /// Mark every message of a connection up to `seq` as acknowledged by the broker; returns
    /// how many were not marked before. One row per connection records the acknowledged
    /// prefix (`outbox_published`), so a mark writes one row however many messages it covers.
    /// It only ever moves forward.
    pub async fn mark_published(&self, connection: &str, up_to_seq: i64) -> Result<u64, StoreError> {
        // Counted before the mark (a concurrent mark of the same connection, which the relay's
        // lease rules out, could only make this count too high).
        let newly: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE connection = $1 AND seq <= $2
               AND seq > COALESCE((SELECT p.seq FROM outbox_published p WHERE p.connection = $1), 0)",
        )
        .bind(connection)
        .bind(up_to_seq)
        .fetch_one(&self.pool)
        .await?;
        sqlx::query(
            "INSERT INTO outbox_published (connection, seq) VALUES ($1, $2)
             ON CONFLICT (connection) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > outbox_published.seq",
        )
        .bind(connection)
        .bind(up_to_seq)
        .execute(&self.pool)
        .await?;
        Ok(u64::try_from(newly).unwrap_or(0))
    }

    /// Number of messages of a connection waiting for the broker.
    pub async fn unpublished_count(&self, connection: &str) -> Result<i64, StoreError> {
        let from = self.published_through(connection).await?;
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE connection = $1 AND seq > $2")
                .bind(connection)
                .bind(from)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The receipt of an already processed command, if any.
    pub async fn command_receipt(&self, connection: &str, command_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT receipt FROM commands WHERE connection = $1 AND command_id = $2")
                .bind(connection)
                .bind(command_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// An already processed command, if any: its receipt and the hash of the request it answered
    /// (`None` for commands recorded without one).
    pub async fn stored_command(
        &self,
        connection: &str,
        command_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT receipt, request_hash FROM commands WHERE connection = $1 AND command_id = $2",
        )
        .bind(connection)
        .bind(command_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Record a processed command, its receipt and the hash of its request (see
    /// [`Store::stored_command`](crate::Store::stored_command)). Returns false if the id was
    /// already recorded.
    pub async fn record_command(
        &self,
        connection: &str,
        command_id: &str,
        command: &str,
        status: &str,
        receipt: &str,
        request_hash: Option<&str>,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO commands (connection, command_id, command, status, receipt, created_at, request_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(connection)
        .bind(command_id)
        .bind(command)
        .bind(status)
        .bind(receipt)
        .bind(now())
        .bind(request_hash)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Save a new version of a mapping; returns its version number (1 for a new mapping).
    pub async fn save_mapping(
        &self,
        connection: &str,
        name: &str,
        spec: &serde_json::Value,
        by: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = DB::version_tx(&self.pool, Versioned::Mapping, connection, name).await?;
        let version = sqlx::query_scalar(INSERT_MAPPING_VERSION)
            .bind(connection)
            .bind(name)
            .bind(spec.to_string())
            .bind(now())
            .bind(by)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Every version of a mapping, oldest first (empty if unknown).
    pub async fn mapping_versions(&self, connection: &str, name: &str) -> Result<Vec<MappingVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, spec, created_at, created_by FROM mappings
             WHERE connection = $1 AND name = $2 ORDER BY version",
        )
        .bind(connection)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(version_from_row).collect()
    }

    /// Every mapping of a connection: latest version and deployment, by name.
    pub async fn mappings(&self, connection: &str) -> Result<Vec<MappingRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.name, m.version, m.spec, m.created_at, m.created_by, d.version, d.deployed_at, d.deployed_by
             FROM mappings m
             LEFT JOIN deployments d ON d.connection = m.connection AND d.name = m.name
             WHERE m.connection = $1
               AND m.version = (SELECT MAX(version) FROM mappings x WHERE x.connection = $1 AND x.name = m.name)
             ORDER BY m.name",
        )
        .bind(connection)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(MappingRecord {
                    deployed_version: r.get(5),
                    deployed_at: r.get(6),
                    deployed_by: r.get(7),
                    latest: version_from_row(r)?,
                })
            })
            .collect()
    }

    /// Record that `version` of a mapping is deployed.
    pub async fn set_deployed(&self, connection: &str, name: &str, version: i64, by: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deployments (connection, name, version, deployed_at, deployed_by) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (connection, name) DO UPDATE SET version = excluded.version,
                 deployed_at = excluded.deployed_at, deployed_by = excluded.deployed_by",
        )
        .bind(connection)
        .bind(name)
        .bind(version)
        .bind(now())
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record that a mapping is not deployed (its messages and read model stay).
    pub async fn set_undeployed(&self, connection: &str, name: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM deployments WHERE connection = $1 AND name = $2")
            .bind(connection)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Delete a mapping: its versions, deployment, cursor, read model and source dead letters, in
    /// the connection's write transaction. Messages already in the log stay (they were published
    /// facts).
    pub async fn delete_mapping(&self, connection: &str, name: &str) -> Result<bool, StoreError> {
        let mut tx = DB::connection_tx(&self.pool, connection).await?;
        let mut found = false;
        for table in ["mappings", "deployments", "cursors", "entities", "source_dead_letters"] {
            let col = if matches!(table, "cursors" | "entities" | "source_dead_letters") {
                "mapping"
            } else {
                "name"
            };
            let r = sqlx::query(&format!("DELETE FROM {table} WHERE connection = $1 AND {col} = $2"))
                .bind(connection)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            found |= table == "mappings" && DB::rows_affected(&r) > 0;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Start a mapping's export over: forget its cursor and content hashes (its read model stays
    /// until rows are re-read), so the next initial load emits every row again.
    pub async fn reset_export(&self, connection: &str, mapping: &str) -> Result<(), StoreError> {
        let mut tx = DB::connection_tx(&self.pool, connection).await?;
        sqlx::query("DELETE FROM cursors WHERE connection = $1 AND mapping = $2")
            .bind(connection)
            .bind(mapping)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE entities SET hash = 0, position = 0 WHERE connection = $1 AND mapping = $2")
            .bind(connection)
            .bind(mapping)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store a new API token (its secret's hash only).
    pub async fn create_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, scope, connection, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.scope)
        .bind(&t.connection)
        .bind(&t.hash)
        .bind(now())
        .bind(&t.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One token by id (revoked ones included).
    pub async fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(token_from_row))
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(token_from_row).collect())
    }

    /// Revoke a token. Returns false if it does not exist or was revoked already.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Record that a token was accepted now (its last-used time).
    pub async fn touch_token(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether any usable admin token exists.
    pub async fn has_admin_token(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Save a new version of a command mapping; returns its version number (1 for a new one;
    /// after a deletion the numbering goes on).
    pub async fn save_command_mapping(
        &self,
        connection: &str,
        name: &str,
        spec: &serde_json::Value,
        by: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = DB::version_tx(&self.pool, Versioned::CommandMapping, connection, name).await?;
        let version = Self::append_command_mapping(&mut tx, connection, name, spec, false, by).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Delete a command mapping by appending a tombstone version; its history stays. `false` if
    /// it does not exist (or is deleted already). The check and the append are one transaction.
    pub async fn delete_command_mapping(&self, connection: &str, name: &str, by: &str) -> Result<bool, StoreError> {
        let mut tx = DB::version_tx(&self.pool, Versioned::CommandMapping, connection, name).await?;
        let latest_deleted: Option<bool> = sqlx::query_scalar(
            "SELECT deleted FROM command_mappings WHERE connection = $1 AND name = $2 ORDER BY version DESC LIMIT 1",
        )
        .bind(connection)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let live = latest_deleted == Some(false);
        if live {
            Self::append_command_mapping(&mut tx, connection, name, &serde_json::Value::Null, true, by).await?;
            tx.commit().await?;
        }
        Ok(live)
    }

    /// Append a version of a command mapping in a [`Dialect::version_tx`]; returns its number.
    async fn append_command_mapping(
        conn: &mut DB::Connection,
        connection: &str,
        name: &str,
        spec: &serde_json::Value,
        deleted: bool,
        by: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(INSERT_COMMAND_MAPPING_VERSION)
            .bind(connection)
            .bind(name)
            .bind(spec.to_string())
            .bind(deleted)
            .bind(now())
            .bind(by)
            .fetch_one(conn)
            .await?)
    }

    /// Every version of a command mapping, oldest first, deletions included (empty if unknown).
    pub async fn command_mapping_versions(
        &self,
        connection: &str,
        name: &str,
    ) -> Result<Vec<CommandMappingVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, spec, deleted, created_at, created_by FROM command_mappings
             WHERE connection = $1 AND name = $2 ORDER BY version",
        )
        .bind(connection)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(command_version_from_row).collect()
    }

    /// The latest version of every command mapping of a connection that is not deleted, by name.
    pub async fn command_mappings(&self, connection: &str) -> Result<Vec<CommandMappingVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.name, c.version, c.spec, c.deleted, c.created_at, c.created_by FROM command_mappings c
             WHERE c.connection = $1 AND NOT c.deleted
               AND c.version = (SELECT MAX(version) FROM command_mappings x WHERE x.connection = $1 AND x.name = c.name)
             ORDER BY c.name",
        )
        .bind(connection)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(command_version_from_row).collect()
    }

    /// Whether any command mapping was ever stored for a connection (deleted ones count).
    pub async fn has_command_mappings(&self, connection: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM command_mappings WHERE connection = $1")
            .bind(connection)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Store a new connection; false if the name is taken.
    pub async fn create_connection(&self, c: &ConnectionRecord) -> Result<bool, StoreError> {
        let r = sqlx::query(&format!(
            "INSERT INTO connections ({CONNECTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING"
        ))
        .bind(&c.name)
        .bind(&c.hosting)
        .bind(c.settings.to_string())
        .bind(serde_json::to_string(&c.secrets).unwrap_or_else(|_| "{}".into()))
        .bind(now())
        .bind(&c.created_by)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// One stored connection.
    pub async fn connection(&self, name: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(connection_from_row).transpose()
    }

    /// Every stored connection, by name.
    pub async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(connection_from_row).collect()
    }

    /// Replace a connection's settings and sealed secrets; false if it does not exist.
    pub async fn update_connection(&self, c: &ConnectionRecord) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE connections SET hosting = $1, settings = $2, secrets = $3, updated_at = $4 WHERE name = $5",
        )
        .bind(&c.hosting)
        .bind(c.settings.to_string())
        .bind(serde_json::to_string(&c.secrets).unwrap_or_else(|_| "{}".into()))
        .bind(now())
        .bind(&c.name)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Delete a stored connection, its lease (in the lease's transaction) and source dead
    /// letters, and revoke the tokens bound to it; false if unknown.
    pub async fn delete_connection(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = DB::lease_tx(&self.pool, name).await?;
        let r = sqlx::query("DELETE FROM connections WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM connector_leases WHERE connection = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM source_dead_letters WHERE connection = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE connection = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Take or renew the lease on a connection's connector for `ttl`: granted when nobody holds
    /// it, when it expired, or when `holder` holds it already. The read and the upsert are one
    /// lease transaction, so of two racing connectors only one is granted.
    pub async fn acquire_lease(
        &self,
        connection: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        // One statement, atomic on both back ends (the conflicting row is locked while the
        // `WHERE` is checked): taken when free, expired or already ours. A renewal is one round
        // trip, which matters with hundreds of connections renewing every few seconds.
        let taken = sqlx::query(
            "INSERT INTO connector_leases (connection, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (connection) DO UPDATE SET
                 acquired_at = CASE WHEN connector_leases.holder = excluded.holder THEN connector_leases.acquired_at ELSE excluded.acquired_at END,
                 holder = excluded.holder, expires_at = excluded.expires_at
             WHERE connector_leases.holder = excluded.holder OR connector_leases.expires_at <= $5",
        )
        .bind(connection)
        .bind(holder)
        .bind(now())
        .bind(now_ms + ttl.as_millis() as i64)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if DB::rows_affected(&taken) == 1 {
            return Ok(LeaseOutcome::Granted);
        }
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, expires_at FROM connector_leases WHERE connection = $1")
                .bind(connection)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match current {
            Some((holder, expires_at_ms)) => LeaseOutcome::HeldBy { holder, expires_at_ms },
            // Released between the two statements: free now, taken at the next renewal.
            None => LeaseOutcome::HeldBy {
                holder: String::new(),
                expires_at_ms: now_ms,
            },
        })
    }

    /// Give a lease back (a clean stop); false if `holder` did not hold it.
    pub async fn release_lease(&self, connection: &str, holder: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM connector_leases WHERE connection = $1 AND holder = $2")
            .bind(connection)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Announce (or renew) `holder` as a live replica for `ttl`; returns every live replica's
    /// holder id, sorted, this one included. Replicas gone for a while are forgotten.
    pub async fn replica_heartbeat(&self, holder: &str, ttl: std::time::Duration) -> Result<Vec<String>, StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        sqlx::query(
            "INSERT INTO replicas (holder, expires_at) VALUES ($1, $2)
             ON CONFLICT (holder) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(holder)
        .bind(now_ms + ttl.as_millis() as i64)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM replicas WHERE expires_at < $1")
            .bind(now_ms - 3_600_000)
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT holder FROM replicas WHERE expires_at > $1 ORDER BY holder")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Remove `holder` from the live replicas (a clean stop).
    pub async fn replica_leave(&self, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM replicas WHERE holder = $1")
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The connection's highest log position (0 when none), for [`Numbering::before`]; in the
    /// connection's write transaction, so no writer of it is between taking a `seq` and
    /// committing.
    pub(crate) async fn last_connection_seq(conn: &mut DB::Connection, connection: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE connection = $1")
                .bind(connection)
                .fetch_one(conn)
                .await?,
        )
    }
}

/// A stored cursor from its columns (the position is JSON text).
pub(crate) fn cursor_from(fingerprint: String, position: &str) -> Result<Cursor, StoreError> {
    Ok(Cursor {
        fingerprint,
        position: serde_json::from_str(position).map_err(|e| StoreError::Corrupt {
            what: "cursor",
            detail: e.to_string(),
        })?,
    })
}

fn message_from_row<R: Row>(r: R) -> StoredMessage
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    StoredMessage {
        seq: r.get(0),
        id: r.get(1),
        ty: r.get(2),
        source: r.get(3),
        subject: r.get(4),
        time: r.get(5),
        dataschema: r.get(6),
        mapping: r.get(7),
        payload: r.get(8),
    }
}

fn version_from_row<R: Row>(r: R) -> Result<MappingVersion, StoreError>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let spec: String = r.get(2);
    Ok(MappingVersion {
        name: r.get(0),
        version: r.get(1),
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt {
            what: "mapping",
            detail: e.to_string(),
        })?,
        created_at: r.get(3),
        created_by: r.get(4),
    })
}

fn command_version_from_row<R: Row>(r: R) -> Result<CommandMappingVersion, StoreError>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let spec: String = r.get(2);
    Ok(CommandMappingVersion {
        name: r.get(0),
        version: r.get(1),
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt {
            what: "command mapping",
            detail: e.to_string(),
        })?,
        deleted: r.get(3),
        created_at: r.get(4),
        created_by: r.get(5),
    })
}

fn token_from_row<R: Row>(r: R) -> ApiToken
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    ApiToken {
        id: r.get(0),
        name: r.get(1),
        scope: r.get(2),
        connection: r.get(3),
        hash: r.get(4),
        created_at: r.get(5),
        revoked_at: r.get(6),
        expires_at: r.get(7),
        last_used_at: r.get(8),
    }
}

fn connection_from_row<R: Row>(r: R) -> Result<ConnectionRecord, StoreError>
where
    usize: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let settings: String = r.get(2);
    let secrets: String = r.get(3);
    let name: String = r.get(0);
    let corrupt = |e: serde_json::Error| StoreError::Corrupt {
        what: "connection",
        detail: format!("{name}: {e}"),
    };
    Ok(ConnectionRecord {
        settings: serde_json::from_str(&settings).map_err(corrupt)?,
        secrets: serde_json::from_str(&secrets).map_err(corrupt)?,
        hosting: r.get(1),
        created_at: r.get(4),
        created_by: r.get(5),
        updated_at: r.get(6),
        name,
    })
}
