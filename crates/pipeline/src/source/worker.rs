//! The worker of one deployed mapping: runs its sources (initial load, then polling, with
//! reconciliation beside it in a task of its own), turns the rows they read into changes, and
//! writes changes and cursor in one store transaction. Rows that cannot be mapped go to the
//! mapping's source dead letters; the others flow on. Its health says whether it makes
//! progress.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mapping::EntityKey;
use serde::{Deserialize, Serialize};
use store::{Batch, Change, ChangeOp, Cursor, NewMessage, Store};
use tracing::{info, warn};

use crate::connector::{ConnectorSettings, MappingSource};
use crate::error::PipelineError;
use crate::shutdown::Shutdown;
use crate::source::reader::Reader;
use crate::source::window::Window;
use crate::status::{Phase, StatusBoard};

/// Where a mapping's source stands; stored as the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub(crate) enum Position {
    /// Reading all rows, window by window: `pending` are the windows not read yet (in flight
    /// ones included); `high_water` the newest change timestamp when the load started
    /// (polling resumes from there).
    InitialLoad {
        #[serde(default)]
        pending: Vec<Window>,
        high_water: i64,
        /// A scheduled full re-sync (content hashes kept: only real differences are emitted).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resync: bool,
    },
    /// Polling changes with a timestamp at or after `lmts` minus the overlap.
    Polling { lmts: i64 },
}

/// What one step of the worker left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// More work is waiting: go on at once.
    More,
    /// Caught up: wait for the poll interval.
    Idle,
}

/// One deployed mapping's worker.
pub(crate) struct Worker {
    pub store: Store,
    pub settings: Arc<ConnectorSettings>,
    pub status: StatusBoard,
    pub src: MappingSource,
    /// Columns selected from M3: the mapping's, then the timestamp and the window dimensions
    /// when unmapped.
    pub columns: Vec<String>,
    pub lmts_index: usize,
    pub reader: Reader,
    /// Keys with source dead letters (cleared once their row maps).
    pub dead_keys: Mutex<HashSet<String>>,
    /// Cuts a backoff after a failed step short (M3 was seen back, see
    /// [`crate::Connector::retry_failed_now`]).
    pub retry: tokio::sync::Notify,
    /// Hashes of the raw rows the last poll wrote (or found already written). The overlap
    /// window reads the newest rows again on every poll; an identical row was written by this
    /// worker already, so it is not written again (see `poll.rs`). Cleared whenever the lease
    /// is not held and after a failed step.
    pub(crate) polled: Mutex<HashSet<u64>>,
}

impl Worker {
    pub fn name(&self) -> &str {
        self.src.mapping.name.as_str()
    }

    pub fn connection(&self) -> &str {
        &self.settings.connection
    }

    /// The main loop: one step at a time, backing off after failures, standing by while
    /// another process holds the lease. Reconciliation runs beside it.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        if let Ok(keys) = self
            .store
            .source_dead_letters(self.connection(), Some(self.name()), 10_000)
            .await
        {
            self.status.table(self.name(), |t| t.dead_letters = keys.len() as u64);
            self.dead_keys
                .lock()
                .expect("lock")
                .extend(keys.into_iter().map(|d| d.key).filter(|k| !k.is_empty()));
        }
        let reconcile = tokio::spawn(self.clone().reconcile_loop(shutdown.clone()));
        let mut failures = 0u32;
        let mut next_resync = self.next_resync();
        while !shutdown.is_shutdown() {
            if !self.lease_held() {
                // Another process holds the connection: stand by until the lease is ours. It may
                // write these rows meanwhile.
                self.polled.lock().expect("lock").clear();
                self.status.table(self.name(), |t| t.phase = Phase::Standby);
                self.wait_for_lease(&mut shutdown).await;
                continue;
            }
            let wait = match self.step(&mut next_resync, &shutdown).await {
                Ok(step) => {
                    failures = 0;
                    match step {
                        Step::More => Duration::ZERO,
                        Step::Idle => self.settings.poll_interval,
                    }
                }
                Err(e) => {
                    failures += 1;
                    self.polled.lock().expect("lock").clear();
                    let wait = match &e {
                        PipelineError::M3(m) => m.retry_after(),
                        _ => None,
                    }
                    .unwrap_or_else(|| STEP_BACKOFF.delay(failures));
                    warn!(connection = %self.connection(), mapping = self.name(), error = %e, retry_in = ?wait, "step failed; retrying");
                    self.failed(&e);
                    wait
                }
            };
            if failures > 0 {
                tokio::select! {
                    _ = shutdown.sleep(wait) => {}
                    _ = self.retry.notified() => {}
                }
            } else {
                shutdown.sleep(wait).await;
            }
        }
        let _ = reconcile.await;
    }

    /// Whether this process may read M3 for the connection now.
    pub fn lease_held(&self) -> bool {
        self.settings.lease.as_ref().is_none_or(|l| *l.borrow())
    }

    /// Wait until the lease is ours or shutdown.
    pub async fn wait_for_lease(&self, shutdown: &mut Shutdown) {
        if let Some(lease) = &self.settings.lease {
            let mut lease = lease.clone();
            tokio::select! {
                _ = lease.wait_for(|held| *held) => {}
                _ = shutdown.recv() => {}
            }
        }
    }

    fn next_resync(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.settings
            .full_resync
            .as_ref()
            .and_then(|s| s.next_after(chrono::Utc::now()))
    }

    /// One unit of work.
    async fn step(
        self: &Arc<Self>,
        next_resync: &mut Option<chrono::DateTime<chrono::Utc>>,
        shutdown: &Shutdown,
    ) -> Result<Step, PipelineError> {
        match self.position().await? {
            Some(Position::InitialLoad {
                pending,
                high_water,
                resync,
            }) => self.initial_load(pending, high_water, resync, shutdown).await,
            None => {
                let high_water = self.max_lmts().await?;
                self.initial_load(vec![Window::all()], high_water, false, shutdown)
                    .await
            }
            Some(Position::Polling { lmts }) if next_resync.is_some_and(|t| chrono::Utc::now() >= t) => {
                // Scheduled safety net: read the whole table again from here; polling resumes
                // at `lmts` once the pass is done.
                *next_resync = self.next_resync();
                info!(connection = %self.connection(), mapping = self.name(), next = ?next_resync, "scheduled full re-sync starts");
                let next = Position::InitialLoad {
                    pending: vec![Window::all()],
                    high_water: lmts,
                    resync: true,
                };
                self.write(&[], Some(next)).await?;
                Ok(Step::More)
            }
            Some(Position::Polling { lmts }) => {
                self.poll(lmts).await?;
                Ok(Step::Idle)
            }
        }
    }

    /// The stored position, if it belongs to this mapping definition. A stored position that
    /// cannot be read (an older format) starts the load over: content hashes are kept, so only
    /// real differences are emitted.
    pub async fn position(&self) -> Result<Option<Position>, PipelineError> {
        let stored = self.store.cursor(self.connection(), self.name()).await?;
        Ok(match stored {
            Some(c) if c.fingerprint == self.src.fingerprint => match serde_json::from_value(c.position) {
                Ok(p) => Some(p),
                Err(e) => {
                    warn!(connection = %self.connection(), mapping = self.name(), error = %e, "stored cursor has an older format; reading the table again");
                    None
                }
            },
            Some(_) => {
                info!(connection = %self.connection(), mapping = self.name(), "mapping changed; re-exporting");
                None
            }
            None => None,
        })
    }

    /// The newest change timestamp in the table, found without `order by`: read the rows
    /// newer than the newest seen so far until there are none (each round only returns rows
    /// newer than the last, so it ends; in practice after two or three calls).
    pub async fn max_lmts(&self) -> Result<i64, PipelineError> {
        let lmts = self.columns[self.lmts_index].clone();
        let select = [lmts];
        let mut newest = i64::MIN;
        loop {
            let w = if newest == i64::MIN {
                Window::all()
            } else {
                let mut w = Window::since(newest);
                w.ranges[0].lo.as_mut().expect("since has a lower end").inclusive = false;
                w
            };
            let a = self.reader.read(&select, &w).await?;
            let top = a.rows.iter().map(|r| parse_lmts(&r[0])).max();
            match top {
                Some(t) if t > newest => newest = t,
                _ => return Ok(newest.max(0)),
            }
        }
    }

    /// Record a failed step in the status.
    pub fn failed(&self, e: &PipelineError) {
        self.status.table(self.name(), |t| {
            t.errors += 1;
            t.last_error = Some(e.to_string());
            t.failed(e.to_string());
        });
    }

    /// Map rows into changes and write them, with the cursor if given, in one transaction.
    pub async fn write(&self, rows: &[Vec<String>], next: Option<Position>) -> Result<usize, PipelineError> {
        let (changes, dead) = self.changes_for(rows);
        self.write_changes(changes, dead, rows.len(), next).await
    }

    /// [`Worker::write`] of rows it may drop once mapped (they are not held during the commit).
    pub async fn write_owned(&self, rows: Vec<Vec<String>>, next: Option<Position>) -> Result<usize, PipelineError> {
        let (changes, dead) = self.changes_for(&rows);
        let count = rows.len();
        drop(rows);
        self.write_changes(changes, dead, count, next).await
    }

    async fn write_changes(
        &self,
        changes: Vec<Change>,
        dead: Vec<DeadRow>,
        rows: usize,
        next: Option<Position>,
    ) -> Result<usize, PipelineError> {
        let cursor = next.map(|next| Cursor {
            fingerprint: self.src.fingerprint.clone(),
            position: serde_json::to_value(&next).expect("positions serialise"),
        });
        // Keys whose dead letters a mapped row may heal (none, usually: no copy of the changes).
        let maybe_healed: Vec<String> = if self.dead_keys.lock().expect("lock").is_empty() {
            Vec::new()
        } else {
            changes.iter().map(|c| c.key.clone()).collect()
        };
        let emitted = self.commit(changes, rows, dead.len() as u64, cursor).await?;
        self.dead_letters(&maybe_healed, dead).await?;
        Ok(emitted)
    }

    /// Record rows that could not be mapped (or split) and clear those whose key now maps
    /// (`mapped`: the keys of the rows that mapped).
    async fn dead_letters(&self, mapped: &[String], dead: Vec<DeadRow>) -> Result<(), PipelineError> {
        let healed: Vec<String> = {
            let mut keys = self.dead_keys.lock().expect("lock");
            if keys.is_empty() {
                Vec::new()
            } else {
                mapped.iter().filter(|k| keys.remove(*k)).cloned().collect()
            }
        };
        if !healed.is_empty() {
            self.store
                .clear_source_dead_letters(self.connection(), self.name(), &healed)
                .await?;
        }
        for d in &dead {
            warn!(connection = %self.connection(), mapping = self.name(), key = %d.key, reason = %d.reason, "row cannot be used; kept as a source dead letter");
            self.store
                .put_source_dead_letter(self.connection(), self.name(), &d.key, &d.raw, &d.reason)
                .await?;
        }
        if !dead.is_empty() || !healed.is_empty() {
            self.dead_keys
                .lock()
                .expect("lock")
                .extend(dead.iter().map(|d| d.key.clone()).filter(|k| !k.is_empty()));
            let count = self
                .store
                .source_dead_letter_count(self.connection(), self.name())
                .await?;
            let last = dead.last().map(|d| d.reason.clone());
            self.status.table(self.name(), |t| {
                t.dead_letters = count.max(0) as u64;
                if let Some(reason) = last {
                    t.last_error = Some(reason);
                }
            });
        }
        Ok(())
    }

    /// Keep raw rows that could not be split as dead letters.
    pub async fn unsplit(&self, raw: Vec<String>) -> Result<(), PipelineError> {
        if raw.is_empty() {
            return Ok(());
        }
        let dead = raw
            .into_iter()
            .map(|raw| DeadRow {
                key: String::new(),
                reason: format!(
                    "the row holds the separator {:?} and every other one tried; it cannot be split into {} columns",
                    self.settings.separator,
                    self.columns.len()
                ),
                raw,
            })
            .collect();
        self.dead_letters(&[], dead).await
    }

    /// Rows (laid out as `self.columns`) -> changes: `...Updated` for rows in the filter,
    /// `...Deleted` for rows outside it. Rows that cannot be mapped become dead rows.
    fn changes_for(&self, rows: &[Vec<String>]) -> (Vec<Change>, Vec<DeadRow>) {
        let m = &self.src.mapping;
        let mut changes = Vec::with_capacity(rows.len());
        let mut dead = Vec::new();
        for row in rows {
            let refs: Vec<&str> = row.iter().map(String::as_str).collect();
            let lmts = parse_lmts(&row[self.lmts_index]);
            if !m.matches(&refs) {
                // Outside the filter: for consumers the entity is gone (a no-op if it never matched).
                let key = m.key_of(&refs);
                if let Ok(payload) = m.deleted_payload(&key) {
                    let key = key.to_string();
                    let position = format!("{lmts}:filtered");
                    changes.push(Change {
                        message: self.message(&m.deleted_type(), &key, &position, lmts, payload),
                        key,
                        op: ChangeOp::Delete,
                        position: Some(lmts),
                    });
                }
                continue;
            }
            match m.apply(&refs) {
                Ok(p) => {
                    let key = p.key.to_string();
                    let position = format!("{lmts}:{:016x}", p.hash);
                    changes.push(Change {
                        message: self.message(&m.updated_type(), &key, &position, lmts, p.payload.clone()),
                        key,
                        op: ChangeOp::Upsert {
                            hash: p.hash,
                            state: p.payload,
                        },
                        position: Some(lmts),
                    });
                }
                Err(e) => dead.push(DeadRow {
                    key: m.key_of(&refs).to_string(),
                    raw: row.join(&self.settings.separator.to_string()),
                    reason: e.to_string(),
                }),
            }
        }
        (changes, dead)
    }

    /// The change deleting `key` (a stored entity's key text).
    pub fn delete_change(&self, key: &str) -> Option<Change> {
        let m = &self.src.mapping;
        let parsed = EntityKey::parse(key, m.key_columns().len())?;
        let payload = m.deleted_payload(&parsed).ok()?;
        Some(Change {
            message: self.message(&m.deleted_type(), key, "deleted", 0, payload),
            key: key.to_string(),
            op: ChangeOp::Delete,
            position: None,
        })
    }

    /// Write changes (and the cursor, if any) in one store transaction; returns messages emitted.
    pub async fn commit(
        &self,
        changes: Vec<Change>,
        rows: usize,
        rejected: u64,
        cursor: Option<Cursor>,
    ) -> Result<usize, PipelineError> {
        let batch = Batch {
            connection: self.connection().to_string(),
            mapping: self.name().to_string(),
            changes,
            cursor,
        };
        let applied = self.store.apply_owned(batch).await?;
        self.status.table(self.name(), |t| {
            t.rows_seen += rows as u64;
            t.messages += applied.emitted as u64;
            t.unchanged += applied.unchanged as u64;
            t.stale += applied.stale as u64;
            t.rejected_rows += rejected;
        });
        Ok(applied.emitted)
    }

    fn message(&self, ty: &str, key: &str, position: &str, lmts: i64, payload: String) -> NewMessage {
        let conn = self.connection();
        let time = chrono::DateTime::from_timestamp_millis(lmts)
            .filter(|_| lmts > 0)
            .unwrap_or_else(chrono::Utc::now);
        NewMessage {
            id: event_id(&[conn, self.name(), key, position]),
            ty: ty.to_string(),
            source: format!("erp-bridge/{conn}/{}", self.src.table.name),
            subject: key.to_string(),
            time: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            dataschema: format!("/api/connections/{conn}/schemas/{ty}"),
            payload,
        }
    }

    /// Rows ordered in the client: by change timestamp, then key (M3 is never asked to order).
    pub fn sort_by_change(&self, rows: &mut [Vec<String>]) {
        let key_idx = self.key_positions();
        let lmts = self.lmts_index;
        rows.sort_by(|a, b| {
            parse_lmts(&a[lmts]).cmp(&parse_lmts(&b[lmts])).then_with(|| {
                key_idx
                    .iter()
                    .map(|&i| a[i].as_str())
                    .cmp(key_idx.iter().map(|&i| b[i].as_str()))
            })
        });
    }

    /// Where each key column stands in `self.columns`.
    pub fn key_positions(&self) -> Vec<usize> {
        self.src
            .mapping
            .key_columns()
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|c| c == k)
                    .expect("key columns are selected")
            })
            .collect()
    }

    /// The entity key text of a row laid out as `self.columns`.
    pub fn key_text(&self, row: &[String], key_idx: &[usize]) -> String {
        EntityKey(key_idx.iter().map(|&i| row[i].trim().to_string()).collect()).to_string()
    }
}

/// A row that could not be used.
pub(crate) struct DeadRow {
    pub key: String,
    pub raw: String,
    pub reason: String,
}

/// The change timestamp of a row (0 when blank).
pub(crate) fn parse_lmts(v: &str) -> i64 {
    v.trim().parse().unwrap_or(0)
}

/// A stable CloudEvents id: the same change always yields the same id, formatted as a UUID
/// (the store's, which derives the ids of updates and deletes the same way).
pub fn event_id(parts: &[&str]) -> String {
    store::event_id(parts)
}

/// Pause after failed steps: 1 s, doubling, at most 10 s, so that reading resumes within
/// seconds of an outage's end.
pub(crate) const STEP_BACKOFF: crate::backoff::Backoff =
    crate::backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(10));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        assert_eq!(event_id(&["a", "b"]), event_id(&["a", "b"]));
        assert_ne!(event_id(&["a", "b"]), event_id(&["ab", ""]));
        assert_eq!(event_id(&["a"]).len(), 36);
    }

    #[test]
    fn step_backoff_is_capped_at_seconds() {
        assert!(STEP_BACKOFF.delay(1) <= Duration::from_millis(1250));
        assert!(STEP_BACKOFF.delay(30) <= Duration::from_millis(12_500));
    }

    #[test]
    fn positions_round_trip_as_tagged_json() {
        let p = Position::InitialLoad {
            pending: vec![Window::since(5)],
            high_water: 7,
            resync: false,
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["phase"], "initial-load");
        assert!(v.get("resync").is_none());
        assert_eq!(serde_json::from_value::<Position>(v).unwrap(), p);
    }
}
