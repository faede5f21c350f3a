//! The initial load (and the scheduled full re-sync): every row of the table, read in windows
//! of the change timestamp, a few in parallel. A window that may have been cut at the server's
//! row cap is split and its parts read instead; complete windows are written (rows ordered by
//! key in the client) together with the windows still pending, so a restart resumes where the
//! load stood. Complete windows are gathered into one transaction of about
//! [`LOAD_BATCH_ROWS`] rows while reads go on: a bigger transaction writes each touched page of
//! the store's key index once instead of once per window. Each such batch is mapped and written
//! on a task of its own while the reads go on (one write at a time, so the stored position only
//! moves forward; if a write is still running when the next batch is full, the loop waits for
//! it, so at most two batches are in memory). Once no window is left, polling starts from
//! the newest timestamp the table held when the load began.

use std::sync::Arc;

use tokio::task::{JoinHandle, JoinSet};
use tracing::info;

use crate::error::PipelineError;
use crate::shutdown::Shutdown;
use crate::source::reader::{sample, Answer};
use crate::source::splitter::Splitter;
use crate::source::window::Window;
use crate::source::worker::{Position, Step, Worker};
use crate::status::Phase;

/// Rows of complete windows written in one transaction during the load (fewer when no read is
/// in flight: what has been read is then written at once). About two windows of a 5,000-row
/// cap: bigger transactions cost less per row, but the rows wait in memory (issue 17 bounds
/// the load's memory growth at 100 MB).
pub(crate) const LOAD_BATCH_ROWS: usize = 10_000;

impl Worker {
    /// Run the load until no window is pending (or shutdown, or a failure: the stored cursor
    /// then holds every window not yet written).
    pub(crate) async fn initial_load(
        self: &Arc<Self>,
        mut pending: Vec<Window>,
        high_water: i64,
        resync: bool,
        shutdown: &Shutdown,
    ) -> Result<Step, PipelineError> {
        let phase = if resync { Phase::FullResync } else { Phase::InitialLoad };
        self.status.table(self.name(), |t| t.phase = phase);
        let dims_at = self.reader.dim_positions(&self.columns);
        let key_idx = self.key_positions();
        let mut in_flight: JoinSet<(Window, Result<Answer, PipelineError>)> = JoinSet::new();
        let mut flying: Vec<Window> = Vec::new();
        // A cut window is split into as many parts as should each come back below the cap,
        // instead of halving it again and again (each halving costs one more cut answer, read
        // and thrown away).
        let mut splitter = Splitter::new();
        // Complete windows read but not written yet (neither pending nor in flight any more):
        // their rows and the raw rows that could not be split.
        let mut ready: Vec<Vec<String>> = Vec::new();
        let mut ready_unsplit: Vec<String> = Vec::new();
        // The write of the previous batch of complete windows, on a task of its own: reads
        // go on while it maps and commits. One at a time, so stored positions only move on.
        let mut writing: Option<JoinHandle<Result<(), PipelineError>>> = None;
        loop {
            self.launch(&mut in_flight, &mut flying, &mut pending, shutdown);
            if let Some(done) = writing.take_if(|w| w.is_finished()) {
                if let Err(e) = finish(done).await {
                    in_flight.abort_all();
                    return Err(e);
                }
            }
            let Some(done) = in_flight.join_next().await else {
                // Nothing read any more: windows still parked (none, while every part is read to
                // its end) are read again from scratch.
                pending.extend(splitter.take_parked());
                if pending.is_empty() || shutdown.is_shutdown() {
                    break;
                }
                continue;
            };
            let (w, answer) = done.expect("window reads do not panic");
            flying.retain(|f| *f != w);
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // The others finish in the background: their rows are read again later
                    // (and so are the windows read but not written: the stored cursor still
                    // names them).
                    in_flight.abort_all();
                    if let Some(w) = writing.take() {
                        let _ = finish(w).await;
                    }
                    return Err(e);
                }
            };
            if answer.may_be_cut {
                if let Some(kids) = splitter.cut(&self.reader.dims, &w, &sample(&answer.rows, &dims_at)) {
                    pending.extend(kids);
                    continue;
                }
            }
            pending.extend(splitter.whole(&self.reader.dims, &w, answer.rows.len()));
            ready.extend(answer.rows);
            ready_unsplit.extend(answer.unsplit);
            // Keep reads going while complete windows are written.
            self.launch(&mut in_flight, &mut flying, &mut pending, shutdown);
            if ready.len() < LOAD_BATCH_ROWS && !in_flight.is_empty() {
                continue;
            }
            if let Some(w) = writing.take() {
                // Still writing a full batch: wait for it (the reads in flight go on) rather
                // than gather more rows in memory.
                if let Err(e) = finish(w).await {
                    in_flight.abort_all();
                    return Err(e);
                }
            }
            let next = Self::load_position(&pending, &flying, &splitter.parked(), high_water, resync);
            let (rows, unsplit) = (std::mem::take(&mut ready), std::mem::take(&mut ready_unsplit));
            let (worker, key_idx) = (self.clone(), key_idx.clone());
            writing = Some(tokio::spawn(async move {
                worker.write_windows(&key_idx, rows, unsplit, next).await
            }));
        }
        if let Some(w) = writing.take() {
            finish(w).await?;
        }
        if !ready.is_empty() || !ready_unsplit.is_empty() {
            // Shutdown stopped the reads while complete windows waited.
            let next = Self::load_position(&pending, &flying, &splitter.parked(), high_water, resync);
            let (rows, unsplit) = (std::mem::take(&mut ready), std::mem::take(&mut ready_unsplit));
            self.write_windows(&key_idx, rows, unsplit, next).await?;
        }
        if shutdown.is_shutdown() || !pending.is_empty() {
            return Ok(Step::More);
        }
        info!(connection = %self.connection(), mapping = self.name(), ?phase, "pass done; polling");
        self.write(&[], Some(Position::Polling { lmts: high_water })).await?;
        // Reads plan from fresh statistics, not from those of the empty tables the load started on.
        if let Err(e) = self.store.analyze().await {
            tracing::warn!(connection = %self.connection(), error = %e, "cannot refresh the store's statistics after the load");
        }
        Ok(Step::More)
    }
}

impl Worker {
    /// The stored position while the load goes on: the windows not written yet (pending, being
    /// read, or parked by the splitter).
    fn load_position(
        pending: &[Window],
        flying: &[Window],
        parked: &[Window],
        high_water: i64,
        resync: bool,
    ) -> Position {
        let mut still: Vec<Window> = pending.to_vec();
        still.extend(flying.iter().cloned());
        still.extend(parked.iter().cloned());
        Position::InitialLoad {
            pending: still,
            high_water,
            resync,
        }
    }

    /// Write the rows of complete windows (ordered by key) with the load's position, in one
    /// transaction, then keep their unsplittable raw rows as dead letters.
    async fn write_windows(
        &self,
        key_idx: &[usize],
        mut rows: Vec<Vec<String>>,
        unsplit: Vec<String>,
        next: Position,
    ) -> Result<(), PipelineError> {
        rows.sort_by(|a, b| {
            key_idx
                .iter()
                .map(|&i| a[i].as_str())
                .cmp(key_idx.iter().map(|&i| b[i].as_str()))
        });
        self.write_owned(rows, Some(next)).await?;
        self.unsplit(unsplit).await?;
        self.status.table(self.name(), |t| {
            t.succeeded();
            t.row_cap_seen = self.reader.cap.most_seen() as u64;
        });
        Ok(())
    }

    /// Start reads of pending windows until `load_parallelism` are in flight.
    fn launch(
        self: &Arc<Self>,
        in_flight: &mut JoinSet<(Window, Result<Answer, PipelineError>)>,
        flying: &mut Vec<Window>,
        pending: &mut Vec<Window>,
        shutdown: &Shutdown,
    ) {
        while in_flight.len() < self.settings.load_parallelism.max(1) && !shutdown.is_shutdown() {
            let Some(w) = pending.pop() else { break };
            flying.push(w.clone());
            let worker = self.clone();
            in_flight.spawn(async move {
                let r = worker.reader.read(&worker.columns, &w).await;
                (w, r)
            });
        }
    }
}

/// The outcome of a spawned write (a panic in it is a bug: passed on as one).
async fn finish(write: JoinHandle<Result<(), PipelineError>>) -> Result<(), PipelineError> {
    match write.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(PipelineError::Cancelled),
    }
}
