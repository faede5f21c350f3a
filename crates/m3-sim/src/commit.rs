//! Late commits ([`crate::SimModes::commit_delay_ms`]): a write gets its audit fields (LMTS,
//! LMDT, ...) when it is made, but its row image waits in a FIFO queue until it is due; only
//! then is it applied to the tables reads see, and only then is it published to webhook
//! subscribers. Writes see the newest image of a row at once through an overlay (so an update
//! after a pending insert, or a delete and re-create, behave as they would in one session).
//!
//! The queue is drained at every read (the caller of [`crate::db::Db::settle`]), on save
//! (everything pending is flushed), and by a small background task woken on every queued write
//! (when the simulator was created on a tokio runtime), so webhooks go out without reads.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::db::{KeyPart, TableSchema};
use crate::webhook::Op;
use crate::Inner;

/// One write waiting for its commit.
#[derive(Debug)]
pub(crate) struct PendingWrite {
    /// When it becomes visible.
    pub due: Instant,
    /// Its number in the queue (to know whether it is a key's newest image).
    pub seq: u64,
    pub schema: Arc<TableSchema>,
    pub key: Vec<KeyPart>,
    pub op: Op,
    /// The row before the write (as writes saw it), for the webhook event.
    pub before: Option<Vec<String>>,
    /// The row after the write; `None` for a delete.
    pub after: Option<Vec<String>>,
}

/// A row of one table by key.
type RowId = (String, Vec<KeyPart>);

/// The queue of pending writes and the newest image of every key they touch.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    queue: VecDeque<PendingWrite>,
    /// (table, key) -> (seq of the newest pending write, its image; `None` = deleted).
    overlay: HashMap<RowId, (u64, Option<Vec<String>>)>,
    next_seq: u64,
    /// Wakes the background committer when a write is queued.
    pub wake: Option<Arc<Notify>>,
}

impl CommitQueue {
    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The newest pending image of a key: `None` if no write on it waits, `Some(None)` if the
    /// newest one deletes it.
    pub fn newest(&self, table: &str, key: &[KeyPart]) -> Option<Option<&Vec<String>>> {
        if self.overlay.is_empty() {
            return None;
        }
        self.overlay
            .get(&(table.to_string(), key.to_vec()))
            .map(|(_, image)| image.as_ref())
    }

    /// Queues a write, due `delay` from now but never before the last queued one (commit
    /// order is write order).
    pub fn push(
        &mut self,
        schema: Arc<TableSchema>,
        key: Vec<KeyPart>,
        op: Op,
        before: Option<Vec<String>>,
        after: Option<Vec<String>>,
        delay: Duration,
    ) {
        let mut due = Instant::now() + delay;
        if let Some(last) = self.queue.back() {
            due = due.max(last.due);
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.overlay
            .insert((schema.def.name.clone(), key.clone()), (seq, after.clone()));
        self.queue.push_back(PendingWrite {
            due,
            seq,
            schema,
            key,
            op,
            before,
            after,
        });
        if let Some(w) = &self.wake {
            w.notify_one();
        }
    }

    /// Takes the oldest write if it is due at `now` (every write when `now` is `None`).
    pub fn pop_due(&mut self, now: Option<Instant>) -> Option<PendingWrite> {
        let front = self.queue.front()?;
        if now.is_some_and(|n| front.due > n) {
            return None;
        }
        let p = self.queue.pop_front()?;
        let k = (p.schema.def.name.clone(), p.key.clone());
        if self.overlay.get(&k).is_some_and(|(seq, _)| *seq == p.seq) {
            self.overlay.remove(&k);
        }
        Some(p)
    }

    /// When the oldest write is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.queue.front().map(|p| p.due)
    }
}

/// Starts the background committer on the current tokio runtime (nothing without one: reads
/// still commit what is due). It ends when every simulator clone is dropped.
pub(crate) fn spawn_committer(inner: Weak<Inner>, wake: Arc<Notify>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        loop {
            let next = {
                let Some(inner) = inner.upgrade() else {
                    break;
                };
                let mut db = crate::write(&inner.db);
                db.settle();
                db.commits.next_due()
            };
            let wait = next
                .map(|due| due.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!("committer stopped");
    });
}
