//! Outbox retention: the embedded message log is pruned by age and by size, optionally keeping
//! the latest message of every key (compaction, like Kafka's `cleanup.policy=compact`).
//!
//! - **Age.** Writers keep no time stamp of their own: each pruning tick records a mark, "every
//!   `seq` up to N was appended before T" (`outbox_marks`, with [`Store::last_seq`], which is a
//!   watermark on both back ends). Retention removes the messages up to the newest mark older
//!   than the retention, so a message is never removed before it is that old (at most one tick
//!   older).
//! - **Size.** The log's size is an estimate (rows times the stored bytes of the newest rows,
//!   plus a per-row overhead), the same on both back ends, so it falls as soon as rows go
//!   (PostgreSQL's relation size only falls after a `VACUUM FULL`). Over `max_bytes`, the oldest
//!   messages go until the estimate is under it.
//! - **Never removed:** with `keep_unpublished` (Kafka configured), a message the relay has not
//!   acknowledged; in [`OutboxMode::Compact`], the message holding a key's current state (the one
//!   `entities.seq` points at); and the newest message of each connection, whose position numbers
//!   the ids of the connection's next messages (`plan::Numbering`) and keeps `last_seq` from
//!   going back. A log made only of those may stay over `max_bytes`
//!   ([`PruneReport::over_bound`]).
//! - **Small batches.** The log is walked in chunks of [`CHUNK_ROWS`] rows in `seq` order, one
//!   short transaction each, and after a chunk that removed rows the pruner pauses as long as the
//!   chunk took (at least [`MIN_PAUSE`]): it holds SQLite's write lock at most half of the time.
//! - **Shrinking.** SQLite: the file uses `auto_vacuum = INCREMENTAL` (set at open, see
//!   [`ensure_incremental_vacuum`]); after a prune the free pages are given back with
//!   `PRAGMA incremental_vacuum`, in steps, and a passive WAL checkpoint lets the file shrink.
//!   PostgreSQL: autovacuum makes the space reusable; the table is not shrunk.
//! - **Readers are told.** `outbox_horizons` records per connection what was removed, so that a
//!   reader asking for a position removed in delete mode gets [`OutboxHorizon::gone`] instead of
//!   a silently incomplete log (compaction's gaps are not refused: see there).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Sqlite, Transaction, Type};

use crate::dispatch::{Backend, Store};
use crate::error::StoreError;
use crate::shared::Db;

/// Rows per pruning transaction.
pub const CHUNK_ROWS: i64 = 1000;
/// The shortest pause after a chunk that removed rows.
pub const MIN_PAUSE: Duration = Duration::from_millis(5);
/// Free pages handed back to the file system per `PRAGMA incremental_vacuum` step (4 MiB at
/// the default page size).
const VACUUM_STEP_PAGES: i64 = 1024;
/// Newest rows whose stored bytes give the average row size of the estimate.
const SIZE_SAMPLE_ROWS: i64 = 1000;
/// Bytes a row takes beyond its text columns (row header, `seq`, the index entries on
/// `(connection, seq)`), in the size estimate.
const ROW_OVERHEAD_BYTES: i64 = 48;
/// Rounds of size-based pruning in one call (each recomputes the estimate).
const SIZE_ROUNDS: u32 = 8;

/// What a pruned log keeps beyond the retention.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxMode {
    /// Messages older than the retention (or beyond the size) are removed, oldest first: the log
    /// is a window of the recent changes.
    #[default]
    Delete,
    /// Like `Delete`, except that the latest message of every (connection, mapping, key) whose
    /// entity exists is kept for ever, like Kafka's log compaction: reading the log from the
    /// start rebuilds the current state. Deletes are kept for the retention only.
    Compact,
}

/// How the outbox is pruned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Remove messages older than this; unset: no age limit.
    pub max_age: Option<Duration>,
    /// Keep the log's size estimate under this many bytes; unset: no size limit.
    pub max_bytes: Option<u64>,
    /// What is kept beyond the limits.
    pub mode: OutboxMode,
    /// Never remove a message the Kafka relay has not acknowledged (set when Kafka is
    /// configured; without Kafka no message is ever acknowledged).
    pub keep_unpublished: bool,
}

impl RetentionPolicy {
    /// Whether this policy removes anything at all.
    pub fn is_active(&self) -> bool {
        self.max_age.is_some() || self.max_bytes.is_some()
    }
}

/// What one [`Store::prune_outbox`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Messages removed.
    pub removed: u64,
    /// Transactions that removed messages.
    pub batches: u64,
    /// SQLite pages handed back to the file system (0 on PostgreSQL).
    pub freed_pages: u64,
    /// The log's size estimate afterwards.
    pub bytes: u64,
    /// The log is still over `max_bytes`: what is left may not be removed (unpublished
    /// messages, or the current state of each key in compact mode).
    pub over_bound: bool,
}

/// The size of a connection's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Messages held.
    pub messages: i64,
    /// Estimated bytes they take (see the module documentation).
    pub bytes: u64,
    /// The oldest position held (`None`: empty).
    pub oldest: Option<i64>,
}

/// What pruning removed from a connection's log, for readers that page it by position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxHorizon {
    /// The highest removed position whose change no later message held repeats (every removal
    /// in delete mode; a removed delete, or a message of a deleted mapping, in compact mode).
    pub changes_through: i64,
    /// The highest position removed in delete mode: the log after any position below it is
    /// incomplete. Compaction never raises it.
    pub state_through: i64,
    /// The oldest position still held (`None`: empty).
    pub earliest: Option<i64>,
}

impl OutboxHorizon {
    /// Whether a reader asking for the messages after `after` would get an incomplete log:
    /// something after `after` was removed in delete mode.
    ///
    /// Compaction leaves gaps but never refuses a reader, like a compacted Kafka topic: from any
    /// position, the log still holds the latest message of every key that changed after it; a
    /// superseded version is gone (a later one stands for it), and a delete is kept for the
    /// retention only. So a reader that reads the log (or catches up) within the retention sees
    /// every delete, as with Kafka's `delete.retention.ms`; one that lags further may miss a
    /// delete ([`OutboxHorizon::changes_through`] says up to where deletes may be gone).
    pub fn gone(&self, after: i64) -> bool {
        after < self.state_through
    }
}

impl Store {
    /// One pruning pass under `policy`, at time `now`: records the time mark, removes what the
    /// policy allows in small transactions, then (SQLite) gives the freed pages back to the file
    /// system. Safe to run from several processes sharing a store.
    pub async fn prune_outbox(&self, policy: &RetentionPolicy, now: DateTime<Utc>) -> Result<PruneReport, StoreError> {
        let last = self.last_seq().await?;
        match &self.backend {
            Backend::Sqlite(s) => {
                let mut report = s.prune(policy, now, last).await?;
                if report.removed > 0 {
                    report.freed_pages = incremental_vacuum(&s.pool).await?;
                }
                Ok(report)
            }
            Backend::Postgres(p) => p.prune(policy, now, last).await,
        }
    }

    /// The size of a connection's log and its oldest position.
    pub async fn outbox_stats(&self, connection: &str) -> Result<OutboxStats, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.stats(Some(connection)).await,
            Backend::Postgres(p) => p.stats(Some(connection)).await,
        }
    }

    /// What pruning removed from a connection's log, and its oldest position held. Read it after
    /// the messages it guards: a prune committed before that read is then seen here.
    pub async fn outbox_horizon(&self, connection: &str) -> Result<OutboxHorizon, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.horizon(connection).await,
            Backend::Postgres(p) => p.horizon(connection).await,
        }
    }
}

/// What pruning does its own way per back end.
pub(crate) trait PruneDialect: Database {
    /// A transaction that removes rows: SQLite takes the write lock at once (`BEGIN
    /// IMMEDIATE`); PostgreSQL needs no lock beyond the rows' own (no writer's `seq` order
    /// depends on old rows).
    fn prune_tx(
        pool: &Pool<Self>,
    ) -> impl std::future::Future<Output = Result<Transaction<'static, Self>, StoreError>> + Send;
}

impl PruneDialect for Sqlite {
    async fn prune_tx(pool: &Pool<Sqlite>) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl PruneDialect for sqlx::Postgres {
    async fn prune_tx(pool: &Pool<sqlx::Postgres>) -> Result<Transaction<'static, sqlx::Postgres>, StoreError> {
        Ok(pool.begin().await?)
    }
}

/// The stored bytes of a row's columns (the size estimate's numerator).
const ROW_BYTES: &str = "octet_length(connection) * 2 + octet_length(mapping) + octet_length(id) + octet_length(type)
     + octet_length(source) + octet_length(subject) + octet_length(time) + octet_length(dataschema)
     + octet_length(payload)";

/// `age` before `now` (the earliest time when `age` is too long to subtract).
fn before(now: DateTime<Utc>, age: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The time stamps of marks: RFC 3339, UTC, milliseconds (they compare as text).
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl<DB> Db<DB>
where
    DB: PruneDialect,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    usize: ColumnIndex<DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
{
    async fn prune(&self, policy: &RetentionPolicy, now: DateTime<Utc>, last: i64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        if !policy.is_active() {
            return Ok(report);
        }
        if let Some(age) = policy.max_age {
            self.mark(now, last, age).await?;
            let cut: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM outbox_marks WHERE at <= $1")
                .bind(stamp(before(now, age)))
                .fetch_one(&self.pool)
                .await?;
            if let Some(cut) = cut {
                self.remove_through(policy, cut, &mut report).await?;
            }
        }
        if let Some(max) = policy.max_bytes {
            for _ in 0..SIZE_ROUNDS {
                let (rows, bytes) = self.size(None).await?;
                report.bytes = bytes;
                if bytes <= max || rows == 0 {
                    report.over_bound = false;
                    break;
                }
                report.over_bound = true;
                let row_bytes = (bytes / rows as u64).max(1);
                let excess = (bytes - max).div_ceil(row_bytes).max(1) as i64;
                let cut: Option<i64> = sqlx::query_scalar("SELECT seq FROM outbox ORDER BY seq LIMIT 1 OFFSET $1")
                    .bind((excess - 1).min(rows - 1))
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(cut) = cut else { break };
                let before = report.removed;
                self.remove_through(policy, cut, &mut report).await?;
                if report.removed == before {
                    break;
                }
            }
        } else {
            report.bytes = self.size(None).await?.1;
        }
        Ok(report)
    }

    /// Record "every `seq` up to `last` was appended before `now`", and forget the marks that
    /// no cut will use again (all older than the retention but the newest of them).
    async fn mark(&self, now: DateTime<Utc>, last: i64, age: Duration) -> Result<(), StoreError> {
        let at = stamp(now);
        sqlx::query("INSERT INTO outbox_marks (at, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(&at)
            .bind(last)
            .execute(&self.pool)
            .await?;
        let limit = stamp(before(now, age));
        sqlx::query("DELETE FROM outbox_marks WHERE at < (SELECT MAX(at) FROM outbox_marks WHERE at <= $1)")
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Remove what the policy allows among the messages with `seq <= cut`, chunk by chunk.
    async fn remove_through(
        &self,
        policy: &RetentionPolicy,
        cut: i64,
        report: &mut PruneReport,
    ) -> Result<(), StoreError> {
        let compact = policy.mode == OutboxMode::Compact;
        let mut lo = 0i64;
        while lo < cut {
            let hi: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM (SELECT seq FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2) chunk",
            )
            .bind(lo)
            .bind(CHUNK_ROWS)
            .fetch_one(&self.pool)
            .await?;
            let Some(hi) = hi.map(|h| h.min(cut)) else { break };
            let started = Instant::now();
            let removed = self.remove_chunk(policy.keep_unpublished, compact, lo, hi).await?;
            if removed > 0 {
                report.removed += removed;
                report.batches += 1;
                tokio::time::sleep(started.elapsed().max(MIN_PAUSE)).await;
            } else {
                tokio::task::yield_now().await;
            }
            lo = hi;
        }
        Ok(())
    }

    /// One transaction: remove the removable messages with `lo < seq <= hi` and raise the
    /// horizons of their connections.
    async fn remove_chunk(&self, keep_unpublished: bool, compact: bool, lo: i64, hi: i64) -> Result<u64, StoreError> {
        let mut tx = DB::prune_tx(&self.pool).await?;
        // In compact mode: the messages whose key has a later message held (their entity's
        // current state is newer), whose removal loses nothing for any reader.
        let mut superseded = std::collections::HashSet::new();
        if compact {
            let rows = sqlx::query(
                "SELECT o.seq FROM outbox o JOIN entities e
                   ON e.connection = o.connection AND e.mapping = o.mapping AND e.key = o.subject
                 WHERE o.seq > $1 AND o.seq <= $2 AND e.seq > o.seq",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *tx)
            .await?;
            superseded.extend(rows.into_iter().map(|r| r.get::<i64, _>(0)));
        }
        let rows = sqlx::query(
            "DELETE FROM outbox WHERE seq > $1 AND seq <= $2
               AND seq < (SELECT MAX(seq) FROM outbox newest WHERE newest.connection = outbox.connection)
               AND (NOT $3 OR seq <= COALESCE((SELECT p.seq FROM outbox_published p
                                               WHERE p.connection = outbox.connection), 0))
               AND (NOT $4 OR NOT EXISTS (SELECT 1 FROM entities e WHERE e.connection = outbox.connection
                     AND e.mapping = outbox.mapping AND e.key = outbox.subject AND e.seq = outbox.seq))
             RETURNING connection, seq",
        )
        .bind(lo)
        .bind(hi)
        .bind(keep_unpublished)
        .bind(compact)
        .fetch_all(&mut *tx)
        .await?;
        let removed = rows.len() as u64;
        let mut horizons: std::collections::BTreeMap<String, (i64, i64)> = std::collections::BTreeMap::new();
        for r in rows {
            let (connection, seq): (String, i64) = (r.get(0), r.get(1));
            let h = horizons.entry(connection).or_default();
            if !superseded.contains(&seq) {
                h.0 = h.0.max(seq);
            }
            if !compact {
                h.1 = h.1.max(seq);
            }
        }
        for (connection, (changes, state)) in horizons {
            sqlx::query(
                "INSERT INTO outbox_horizons (connection, changes_through, state_through) VALUES ($1, $2, $3)
                 ON CONFLICT (connection) DO UPDATE SET
                   changes_through = CASE WHEN excluded.changes_through > outbox_horizons.changes_through
                                     THEN excluded.changes_through ELSE outbox_horizons.changes_through END,
                   state_through = CASE WHEN excluded.state_through > outbox_horizons.state_through
                                   THEN excluded.state_through ELSE outbox_horizons.state_through END",
            )
            .bind(connection)
            .bind(changes)
            .bind(state)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// Rows and estimated bytes of the log (of one connection, or all).
    async fn size(&self, connection: Option<&str>) -> Result<(i64, u64), StoreError> {
        let filter = if connection.is_some() {
            "WHERE connection = $2"
        } else {
            ""
        };
        let rows: i64 = {
            let sql = format!("SELECT COUNT(*) FROM outbox {}", filter.replace("$2", "$1"));
            let q = sqlx::query_scalar(&sql);
            match connection {
                Some(c) => q.bind(c),
                None => q,
            }
            .fetch_one(&self.pool)
            .await?
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(b), 0) AS BIGINT), COUNT(*) FROM
               (SELECT {ROW_BYTES} AS b FROM outbox {filter} ORDER BY seq DESC LIMIT $1) s"
        );
        let q = sqlx::query(&sql).bind(SIZE_SAMPLE_ROWS);
        let r = match connection {
            Some(c) => q.bind(c),
            None => q,
        }
        .fetch_one(&self.pool)
        .await?;
        let (sum, n): (i64, i64) = (r.get(0), r.get(1));
        if n == 0 {
            return Ok((rows, 0));
        }
        let per_row = sum as f64 / n as f64 + ROW_OVERHEAD_BYTES as f64;
        Ok((rows, (per_row * rows as f64) as u64))
    }

    async fn stats(&self, connection: Option<&str>) -> Result<OutboxStats, StoreError> {
        let (messages, bytes) = self.size(connection).await?;
        let oldest = self.earliest(connection.unwrap_or("")).await?;
        Ok(OutboxStats {
            messages,
            bytes,
            oldest,
        })
    }

    async fn earliest(&self, connection: &str) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM outbox WHERE connection = $1")
            .bind(connection)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn horizon(&self, connection: &str) -> Result<OutboxHorizon, StoreError> {
        let row = sqlx::query("SELECT changes_through, state_through FROM outbox_horizons WHERE connection = $1")
            .bind(connection)
            .fetch_optional(&self.pool)
            .await?;
        let (changes_through, state_through) = row.map(|r| (r.get(0), r.get(1))).unwrap_or((0, 0));
        Ok(OutboxHorizon {
            changes_through,
            state_through,
            earliest: self.earliest(connection).await?,
        })
    }
}

/// Give SQLite's free pages back to the file system, a step at a time (each its own short
/// write), then checkpoint the WAL without waiting for anyone, so that the file shrinks.
/// Returns the pages freed.
async fn incremental_vacuum(pool: &Pool<Sqlite>) -> Result<u64, StoreError> {
    let mut freed = 0u64;
    loop {
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(pool).await?;
        if free == 0 {
            break;
        }
        let started = Instant::now();
        sqlx::query(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))
            .execute(pool)
            .await?;
        let after: i64 = sqlx::query_scalar("PRAGMA freelist_count").fetch_one(pool).await?;
        if after >= free {
            break;
        }
        freed += (free - after) as u64;
        tokio::time::sleep(started.elapsed().max(MIN_PAUSE)).await;
    }
    sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(pool).await?;
    Ok(freed)
}

/// Make an SQLite file use `auto_vacuum = INCREMENTAL`, so that [`Store::prune_outbox`] can
/// give pages back. A new file gets it from the connection options; a file made before needs
/// one `VACUUM` (it rewrites the file: it takes a while, and as much free disk again as the
/// file's size), done here once, at open.
pub(crate) async fn ensure_incremental_vacuum(pool: &Pool<Sqlite>, path: &str) -> Result<(), StoreError> {
    /// `PRAGMA auto_vacuum`'s value for INCREMENTAL.
    const INCREMENTAL: i64 = 2;
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(pool).await?;
    if mode != INCREMENTAL {
        tracing::warn!(
            path,
            "store: switching the SQLite file to incremental vacuum (a one-time VACUUM)"
        );
        let mut conn = pool.acquire().await?;
        sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
            .execute(&mut *conn)
            .await?;
        sqlx::query("VACUUM").execute(&mut *conn).await?;
    }
    Ok(())
}
