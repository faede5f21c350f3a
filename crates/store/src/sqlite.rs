//! The SQLite store: one file in the data folder, WAL mode, migrations embedded in the binary.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tracing::instrument;

use crate::error::StoreError;
use crate::model::{
    ApiToken, Applied, Batch, Change, CommandMappingVersion, ConnectionRecord, Cursor, LeaseOutcome, MappingRecord,
    MappingVersion, ReadModelPage, SourceDeadLetter, StoredMessage,
};
use crate::plan::{known_position, Numbering, Stored};

/// The SQLite store. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl SqliteStore {
    /// Open (creating if needed) the store file at `path` and migrate it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`): a
    /// deferred one that reads first would have to upgrade its lock, which SQLite refuses at once
    /// ("database is locked") while another connection writes, instead of waiting its turn.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The stored cursor of a mapping.
    pub async fn cursor(&self, connection: &str, mapping: &str) -> Result<Option<Cursor>, StoreError> {
        let row = sqlx::query("SELECT fingerprint, position FROM cursors WHERE connection = ? AND mapping = ?")
            .bind(connection)
            .bind(mapping)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let position: String = r.get(1);
            Ok(Cursor {
                fingerprint: r.get(0),
                position: serde_json::from_str(&position).map_err(|e| StoreError::Corrupt {
                    what: "cursor",
                    detail: e.to_string(),
                })?,
            })
        })
        .transpose()
    }

    /// Apply a batch atomically: changed entities are updated and their messages appended; no-op
    /// changes are dropped by content hash; the cursor is stored in the same transaction.
    #[instrument(skip_all, fields(connection = %batch.connection, mapping = %batch.mapping, changes = batch.changes.len()))]
    pub async fn apply_batch(&self, batch: &Batch) -> Result<Applied, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut applied = Applied::default();
        let time = now();
        apply_changes(
            &mut tx,
            &batch.connection,
            &batch.mapping,
            &batch.changes,
            &time,
            &mut applied,
            &mut Numbering::default(),
        )
        .await?;
        if let Some(c) = &batch.cursor {
            sqlx::query(
                "INSERT INTO cursors (connection, mapping, fingerprint, position, updated_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (connection, mapping) DO UPDATE SET fingerprint = excluded.fingerprint,
                     position = excluded.position, updated_at = excluded.updated_at",
            )
            .bind(&batch.connection)
            .bind(&batch.mapping)
            .bind(&c.fingerprint)
            .bind(c.position.to_string())
            .bind(&time)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(applied)
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
        let rows = sqlx::query(
            "SELECT seq, id, type, source, subject, time, dataschema, mapping, payload FROM outbox
             WHERE connection = ? AND seq > ? AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR subject = ?4)
             ORDER BY seq LIMIT ?5",
        )
        .bind(connection)
        .bind(after)
        .bind(ty)
        .bind(subject)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(message_from_row).collect())
    }

    /// The highest message sequence number (0 when empty).
    pub async fn last_seq(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox")
            .fetch_one(&self.pool)
            .await?)
    }

    /// The current state of one entity.
    pub async fn entity(&self, connection: &str, mapping: &str, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT state FROM entities WHERE connection = ? AND mapping = ? AND key = ?")
                .bind(connection)
                .bind(mapping)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// A page of entities in key order after `after`, where every `(field, value)` filter matches
    /// the field's value rendered as text. Field names must have been validated by the caller.
    pub async fn entities(
        &self,
        connection: &str,
        mapping: &str,
        after: Option<&str>,
        limit: u32,
        filters: &[(String, String)],
    ) -> Result<ReadModelPage, StoreError> {
        let mut sql = String::from(
            "SELECT key, state FROM entities WHERE connection = ? AND mapping = ? AND (? IS NULL OR key > ?)",
        );
        for _ in filters {
            sql.push_str(" AND CAST(json_extract(state, ?) AS TEXT) = ?");
        }
        sql.push_str(" ORDER BY key LIMIT ?");
        let mut q = sqlx::query(&sql).bind(connection).bind(mapping).bind(after).bind(after);
        for (field, value) in filters {
            q = q.bind(format!("$.\"{field}\"")).bind(value);
        }
        let rows = q.bind(limit + 1).fetch_all(&self.pool).await?;
        let mut items: Vec<(String, String)> = rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        Ok(ReadModelPage { items, next })
    }

    /// Number of entities of a mapping.
    pub async fn entity_count(&self, connection: &str, mapping: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM entities WHERE connection = ? AND mapping = ?")
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
        let mut tx = self.write_tx().await?;
        for k in keys {
            sqlx::query("UPDATE entities SET seen = ? WHERE connection = ? AND mapping = ? AND key = ?")
                .bind(round)
                .bind(connection)
                .bind(mapping)
                .bind(k)
                .execute(&mut *tx)
                .await?;
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
            "SELECT key FROM entities WHERE connection = ? AND mapping = ? AND seen <> ? AND seq <= ? ORDER BY key",
        )
        .bind(connection)
        .bind(mapping)
        .bind(round)
        .bind(max_seq)
        .fetch_all(&self.pool)
        .await?)
    }
}

impl SqliteStore {
    /// Messages of a connection not yet acknowledged by the broker, oldest first.
    pub async fn unpublished(&self, connection: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, id, type, source, subject, time, dataschema, mapping, payload FROM outbox
             WHERE connection = ? AND published_at IS NULL ORDER BY seq LIMIT ?",
        )
        .bind(connection)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(message_from_row).collect())
    }

    /// Mark every message of a connection up to `seq` as acknowledged by the broker.
    pub async fn mark_published(&self, connection: &str, up_to_seq: i64) -> Result<u64, StoreError> {
        let r = sqlx::query(
            "UPDATE outbox SET published_at = ? WHERE connection = ? AND seq <= ? AND published_at IS NULL",
        )
        .bind(now())
        .bind(connection)
        .bind(up_to_seq)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Number of messages of a connection waiting for the broker.
    pub async fn unpublished_count(&self, connection: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE connection = ? AND published_at IS NULL")
                .bind(connection)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// The receipt of an already processed command, if any.
    pub async fn command_receipt(&self, connection: &str, command_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT receipt FROM commands WHERE connection = ? AND command_id = ?")
                .bind(connection)
                .bind(command_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Record a processed command and its receipt. Returns false if the id was already recorded.
    pub async fn record_command(
        &self,
        connection: &str,
        command_id: &str,
        command: &str,
        status: &str,
        receipt: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO commands (connection, command_id, command, status, receipt, created_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(connection)
        .bind(command_id)
        .bind(command)
        .bind(status)
        .bind(receipt)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }
}

impl SqliteStore {
    /// Save a new version of a mapping; returns its version number (1 for a new mapping).
    pub async fn save_mapping(
        &self,
        connection: &str,
        name: &str,
        spec: &serde_json::Value,
        by: &str,
    ) -> Result<i64, StoreError> {
        // One statement: a read-then-write transaction would have to upgrade its lock, which
        // SQLite refuses at once (no busy wait) while the connector is writing.
        Ok(sqlx::query_scalar(
            "INSERT INTO mappings (connection, name, version, spec, created_at, created_by)
             SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5 FROM mappings WHERE connection = ?1 AND name = ?2
             RETURNING version",
        )
        .bind(connection)
        .bind(name)
        .bind(spec.to_string())
        .bind(now())
        .bind(by)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Every version of a mapping, oldest first (empty if unknown).
    pub async fn mapping_versions(&self, connection: &str, name: &str) -> Result<Vec<MappingVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, spec, created_at, created_by FROM mappings
             WHERE connection = ? AND name = ? ORDER BY version",
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
             WHERE m.connection = ?1
               AND m.version = (SELECT MAX(version) FROM mappings x WHERE x.connection = ?1 AND x.name = m.name)
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
            "INSERT INTO deployments (connection, name, version, deployed_at, deployed_by) VALUES (?, ?, ?, ?, ?)
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
        let r = sqlx::query("DELETE FROM deployments WHERE connection = ? AND name = ?")
            .bind(connection)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Delete a mapping: its versions, deployment, cursor and read model. Messages already in the
    /// log stay (they were published facts).
    pub async fn delete_mapping(&self, connection: &str, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut found = false;
        for table in ["mappings", "deployments", "cursors", "entities", "source_dead_letters"] {
            let col = if matches!(table, "cursors" | "entities" | "source_dead_letters") {
                "mapping"
            } else {
                "name"
            };
            let r = sqlx::query(&format!("DELETE FROM {table} WHERE connection = ? AND {col} = ?"))
                .bind(connection)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            found |= table == "mappings" && r.rows_affected() > 0;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Start a mapping's export over: forget its cursor and content hashes (its read model stays
    /// until rows are re-read), so the next initial load emits every row again.
    pub async fn reset_export(&self, connection: &str, mapping: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM cursors WHERE connection = ? AND mapping = ?")
            .bind(connection)
            .bind(mapping)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE entities SET hash = 0, position = 0 WHERE connection = ? AND mapping = ?")
            .bind(connection)
            .bind(mapping)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn version_from_row(r: sqlx::sqlite::SqliteRow) -> Result<MappingVersion, StoreError> {
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

impl SqliteStore {
    /// Store a new API token (its secret's hash only).
    pub async fn create_token(&self, t: &ApiToken) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_tokens (id, name, scope, connection, hash, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.scope)
            .bind(&t.connection)
            .bind(&t.hash)
            .bind(now())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One token by id (revoked ones included).
    pub async fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, scope, connection, hash, created_at, revoked_at FROM api_tokens WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(token_from_row))
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, scope, connection, hash, created_at, revoked_at FROM api_tokens ORDER BY created_at DESC, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(token_from_row).collect())
    }

    /// Revoke a token. Returns false if it does not exist or was revoked already.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Whether any usable admin token exists.
    pub async fn has_admin_token(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}

/// Apply a page of changes with a few statements instead of three per change: the stored hash
/// and position of every key in one query, the decisions made in memory ([`crate::plan`]), then
/// the messages, deletions and final entity states written in multi-row statements.
async fn apply_changes(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    connection: &str,
    mapping: &str,
    changes: &[Change],
    time: &str,
    applied: &mut Applied,
    numbering: &mut Numbering,
) -> Result<(), StoreError> {
    use crate::plan::placeholders;
    if changes.is_empty() {
        return Ok(());
    }
    let keys = crate::plan::keys(changes);
    let mut stored = std::collections::HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(500) {
        let sql = format!(
            "SELECT key, hash, position, seq FROM entities WHERE connection = ? AND mapping = ? AND key IN {}",
            placeholders(1, chunk.len(), None)
        );
        let mut q = sqlx::query_as::<_, (String, i64, i64, i64)>(&sql)
            .bind(connection)
            .bind(mapping);
        for k in chunk {
            q = q.bind(*k);
        }
        stored.extend(
            q.fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(|(k, hash, position, seq)| (k, Stored { hash, position, seq })),
        );
    }
    let plan = crate::plan::plan(changes, &keys, &stored);
    if plan.needs_numbering() && numbering.before.is_none() {
        // Nothing written yet in this transaction (`ingest` reads it before its first run).
        numbering.before = Some(last_connection_seq(tx, connection).await?);
    }
    let ids = plan.message_ids(numbering);
    // Messages: AUTOINCREMENT numbers the rows of one statement in insertion order, and this
    // transaction is the only writer, so the returned numbers, sorted, follow `emitted`.
    let mut seqs: Vec<i64> = Vec::with_capacity(plan.emitted.len());
    for (chunk, ids) in plan.emitted.chunks(100).zip(ids.chunks(100)) {
        let sql = format!(
            "INSERT INTO outbox (connection, mapping, id, type, source, subject, time, dataschema, payload) VALUES {} RETURNING seq",
            placeholders(chunk.len(), 9, None)
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql);
        for (e, id) in chunk.iter().zip(ids) {
            let m = &e.change.message;
            q = q
                .bind(connection)
                .bind(mapping)
                .bind(id.as_ref())
                .bind(&m.ty)
                .bind(&m.source)
                .bind(&m.subject)
                .bind(&m.time)
                .bind(&m.dataschema)
                .bind(&m.payload);
        }
        let mut got = q.fetch_all(&mut **tx).await?;
        got.sort_unstable();
        seqs.extend(got);
    }
    for chunk in plan.deletes.chunks(500) {
        let sql = format!(
            "DELETE FROM entities WHERE connection = ? AND mapping = ? AND key IN {}",
            placeholders(1, chunk.len(), None)
        );
        let mut q = sqlx::query(&sql).bind(connection).bind(mapping);
        for k in chunk {
            q = q.bind(*k);
        }
        q.execute(&mut **tx).await?;
    }
    for chunk in plan.upserts.chunks(100) {
        let sql = format!(
            "INSERT INTO entities (connection, mapping, key, hash, state, seq, updated_at, position) VALUES {}
             ON CONFLICT (connection, mapping, key)
             DO UPDATE SET hash = excluded.hash, state = excluded.state, seq = excluded.seq,
                           updated_at = excluded.updated_at, position = excluded.position",
            placeholders(chunk.len(), 8, None)
        );
        let mut q = sqlx::query(&sql);
        for (k, hash, st, message, position) in chunk {
            q = q
                .bind(connection)
                .bind(mapping)
                .bind(*k)
                .bind(*hash)
                .bind(*st)
                .bind(seqs[*message])
                .bind(time)
                .bind(*position);
        }
        q.execute(&mut **tx).await?;
    }
    for (k, p) in &plan.positions {
        sqlx::query("UPDATE entities SET position = ? WHERE connection = ? AND mapping = ? AND key = ?")
            .bind(p)
            .bind(connection)
            .bind(mapping)
            .bind(*k)
            .execute(&mut **tx)
            .await?;
    }
    numbering.written += plan.emitted.len();
    applied.emitted += plan.applied.emitted;
    applied.unchanged += plan.applied.unchanged;
    applied.stale += plan.applied.stale;
    Ok(())
}

fn token_from_row(r: sqlx::sqlite::SqliteRow) -> ApiToken {
    ApiToken {
        id: r.get(0),
        name: r.get(1),
        scope: r.get(2),
        connection: r.get(3),
        hash: r.get(4),
        created_at: r.get(5),
        revoked_at: r.get(6),
    }
}

fn message_from_row(r: sqlx::sqlite::SqliteRow) -> StoredMessage {
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

impl SqliteStore {
    /// Save a new version of a command mapping; returns its version number (1 for a new one;
    /// after a deletion the numbering goes on).
    pub async fn save_command_mapping(
        &self,
        connection: &str,
        name: &str,
        spec: &serde_json::Value,
        by: &str,
    ) -> Result<i64, StoreError> {
        self.append_command_mapping(connection, name, spec, false, by).await
    }

    /// Delete a command mapping by appending a tombstone version; its history stays. `false` if
    /// it does not exist (or is deleted already).
    pub async fn delete_command_mapping(&self, connection: &str, name: &str, by: &str) -> Result<bool, StoreError> {
        let live = self
            .command_mapping_versions(connection, name)
            .await?
            .last()
            .is_some_and(|v| !v.deleted);
        if live {
            self.append_command_mapping(connection, name, &serde_json::Value::Null, true, by)
                .await?;
        }
        Ok(live)
    }

    async fn append_command_mapping(
        &self,
        connection: &str,
        name: &str,
        spec: &serde_json::Value,
        deleted: bool,
        by: &str,
    ) -> Result<i64, StoreError> {
        // One statement, so it takes the write lock at once (waiting on `busy_timeout`) instead
        // of upgrading a read transaction, which fails at once while another writer commits.
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO command_mappings (connection, name, version, spec, deleted, created_at, created_by)
             SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5, ?6
             FROM command_mappings WHERE connection = ?1 AND name = ?2
             RETURNING version",
        )
        .bind(connection)
        .bind(name)
        .bind(spec.to_string())
        .bind(deleted)
        .bind(now())
        .bind(by)
        .fetch_one(&self.pool)
        .await?;
        Ok(version)
    }

    /// Every version of a command mapping, oldest first, deletions included (empty if unknown).
    pub async fn command_mapping_versions(
        &self,
        connection: &str,
        name: &str,
    ) -> Result<Vec<CommandMappingVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, version, spec, deleted, created_at, created_by FROM command_mappings
             WHERE connection = ? AND name = ? ORDER BY version",
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
             WHERE c.connection = ?1 AND c.deleted = 0
               AND c.version = (SELECT MAX(version) FROM command_mappings x WHERE x.connection = ?1 AND x.name = c.name)
             ORDER BY c.name",
        )
        .bind(connection)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(command_version_from_row).collect()
    }

    /// Whether any command mapping was ever stored for a connection (deleted ones count).
    pub async fn has_command_mappings(&self, connection: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM command_mappings WHERE connection = ?")
            .bind(connection)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}

fn command_version_from_row(r: sqlx::sqlite::SqliteRow) -> Result<CommandMappingVersion, StoreError> {
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

/// Name of the cursor that remembers how far a self-hosted connector's messages were ingested.
const UPLINK_CURSOR: &str = "$uplink";

impl SqliteStore {
    /// Ingest messages a self-hosted connector produced (its outbox, in its order): each item is
    /// `(connector sequence number, mapping, change)`. Items at or below the stored uplink
    /// position were ingested already (a resend after a lost acknowledgement) and are skipped;
    /// the rest are applied like [`Store::apply_batch`] and the position moves in the same
    /// transaction. Returns what was applied and the position now stored.
    #[instrument(skip_all, fields(connection, items = items.len()))]
    pub async fn ingest(
        &self,
        connection: &str,
        items: &[(i64, String, Change)],
    ) -> Result<(Applied, i64), StoreError> {
        let mut tx = self.write_tx().await?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT position FROM cursors WHERE connection = ? AND mapping = ?")
                .bind(connection)
                .bind(UPLINK_CURSOR)
                .fetch_optional(&mut *tx)
                .await?;
        let stored: i64 = stored.and_then(|p| p.parse().ok()).unwrap_or(0);
        let (skipped, runs, position) = crate::plan::uplink_runs(items, stored);
        let mut applied = Applied {
            unchanged: skipped,
            ..Applied::default()
        };
        let time = now();
        // Read before the first run writes (see `Numbering`).
        let mut numbering = Numbering {
            before: Some(last_connection_seq(&mut tx, connection).await?),
            written: 0,
        };
        for (mapping, changes) in &runs {
            apply_changes(
                &mut tx,
                connection,
                mapping,
                changes,
                &time,
                &mut applied,
                &mut numbering,
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO cursors (connection, mapping, fingerprint, position, updated_at) VALUES (?, ?, '', ?, ?)
             ON CONFLICT (connection, mapping) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(connection)
        .bind(UPLINK_CURSOR)
        .bind(position.to_string())
        .bind(&time)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((applied, position))
    }

    /// Store a new connection; false if the name is taken.
    pub async fn create_connection(&self, c: &ConnectionRecord) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO connections (name, hosting, settings, secrets, created_at, created_by, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&c.name)
        .bind(&c.hosting)
        .bind(c.settings.to_string())
        .bind(serde_json::to_string(&c.secrets).unwrap_or_else(|_| "{}".into()))
        .bind(now())
        .bind(&c.created_by)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// One stored connection.
    pub async fn connection(&self, name: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT name, hosting, settings, secrets, created_at, created_by, updated_at FROM connections WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(connection_from_row).transpose()
    }

    /// Every stored connection, by name.
    pub async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, hosting, settings, secrets, created_at, created_by, updated_at FROM connections ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(connection_from_row).collect()
    }

    /// Replace a connection's settings and sealed secrets; false if it does not exist.
    pub async fn update_connection(&self, c: &ConnectionRecord) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE connections SET hosting = ?, settings = ?, secrets = ?, updated_at = ? WHERE name = ?")
                .bind(&c.hosting)
                .bind(c.settings.to_string())
                .bind(serde_json::to_string(&c.secrets).unwrap_or_else(|_| "{}".into()))
                .bind(now())
                .bind(&c.name)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Delete a stored connection, its lease, and revoke the tokens bound to it; false if unknown.
    pub async fn delete_connection(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let r = sqlx::query("DELETE FROM connections WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM connector_leases WHERE connection = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM source_dead_letters WHERE connection = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE connection = ? AND revoked_at IS NULL")
            .bind(now())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Take or renew the lease on a connection's connector for `ttl`: granted when nobody holds
    /// it, when it expired, or when `holder` holds it already.
    pub async fn acquire_lease(
        &self,
        connection: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let mut tx = self.write_tx().await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let current: Option<(String, i64)> =
            sqlx::query_as("SELECT holder, expires_at FROM connector_leases WHERE connection = ?")
                .bind(connection)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((other, expires_at_ms)) = current {
            if other != holder && expires_at_ms > now_ms {
                return Ok(LeaseOutcome::HeldBy {
                    holder: other,
                    expires_at_ms,
                });
            }
        }
        sqlx::query(
            "INSERT INTO connector_leases (connection, holder, acquired_at, expires_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (connection) DO UPDATE SET
                 acquired_at = CASE WHEN connector_leases.holder = excluded.holder THEN connector_leases.acquired_at ELSE excluded.acquired_at END,
                 holder = excluded.holder, expires_at = excluded.expires_at",
        )
        .bind(connection)
        .bind(holder)
        .bind(now())
        .bind(now_ms + ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LeaseOutcome::Granted)
    }

    /// Give a lease back (a clean stop); false if `holder` did not hold it.
    pub async fn release_lease(&self, connection: &str, holder: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM connector_leases WHERE connection = ? AND holder = ?")
            .bind(connection)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

fn connection_from_row(r: sqlx::sqlite::SqliteRow) -> Result<ConnectionRecord, StoreError> {
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

impl SqliteStore {
    /// [`Self::unseen_keys`] with each entity's stored source position (`None`: unknown).
    pub async fn unseen_entities(
        &self,
        connection: &str,
        mapping: &str,
        round: i64,
        max_seq: i64,
    ) -> Result<Vec<(String, Option<i64>)>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT key, position FROM entities WHERE connection = ? AND mapping = ? AND seen <> ? AND seq <= ? ORDER BY key",
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
        let (condition, bounds) = crate::plan::window_condition(from, to, || "?".into());
        let sql = format!("SELECT key, position FROM entities WHERE connection = ? AND mapping = ?{condition}");
        let mut q = sqlx::query_as::<_, (String, i64)>(&sql).bind(connection).bind(mapping);
        for b in bounds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(k, p)| (k, known_position(p))).collect())
    }

    /// Record a source row that could not be split or mapped; the same row again bumps its
    /// attempts and last sighting and takes the new reason.
    pub async fn put_source_dead_letter(
        &self,
        connection: &str,
        mapping: &str,
        key: &str,
        raw: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO source_dead_letters
                 (connection, mapping, key, raw_hash, raw, reason, first_seen, last_seen, attempts, touched)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1,
                     (SELECT COALESCE(MAX(touched), 0) + 1 FROM source_dead_letters WHERE connection = ?1))
             ON CONFLICT (connection, mapping, key, raw_hash) DO UPDATE SET reason = excluded.reason,
                 last_seen = excluded.last_seen, attempts = source_dead_letters.attempts + 1,
                 touched = excluded.touched",
        )
        .bind(connection)
        .bind(mapping)
        .bind(key)
        .bind(crate::plan::raw_hash(raw))
        .bind(raw)
        .bind(reason)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
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
             FROM source_dead_letters WHERE connection = ?1 AND (?2 IS NULL OR mapping = ?2)
             ORDER BY touched DESC LIMIT ?3",
        )
        .bind(connection)
        .bind(mapping)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(dead_letter_from_row).collect())
    }

    /// Number of source dead letters of a mapping.
    pub async fn source_dead_letter_count(&self, connection: &str, mapping: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM source_dead_letters WHERE connection = ? AND mapping = ?")
                .bind(connection)
                .bind(mapping)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Forget the source dead letters of these keys; returns how many were removed.
    pub async fn clear_source_dead_letters(
        &self,
        connection: &str,
        mapping: &str,
        keys: &[String],
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut removed = 0;
        for chunk in keys.chunks(500) {
            let sql = format!(
                "DELETE FROM source_dead_letters WHERE connection = ? AND mapping = ? AND key IN {}",
                crate::plan::placeholders(1, chunk.len(), None)
            );
            let mut q = sqlx::query(&sql).bind(connection).bind(mapping);
            for k in chunk {
                q = q.bind(k);
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }
}

fn dead_letter_from_row(r: sqlx::sqlite::SqliteRow) -> SourceDeadLetter {
    SourceDeadLetter {
        connection: r.get(0),
        mapping: r.get(1),
        key: r.get(2),
        raw: r.get(3),
        reason: r.get(4),
        first_seen: r.get(5),
        last_seen: r.get(6),
        attempts: r.get(7),
    }
}

/// The connection's highest log position (0 when none), for [`Numbering::before`].
async fn last_connection_seq(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    connection: &str,
) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE connection = ?")
            .bind(connection)
            .fetch_one(&mut **tx)
            .await?,
    )
}
