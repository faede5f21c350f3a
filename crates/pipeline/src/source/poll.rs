//! Polling: every row whose change timestamp is at or after the stored cursor minus the
//! overlap window (for changes committed out of order), read completely as one window (split
//! while answers may be cut), ordered by (timestamp, key) in the client and written in pages;
//! the cursor moves to the newest timestamp seen with the last page only. Lag counts from the
//! start of the last complete poll. Rows identical to what the previous poll wrote (the overlap
//! reads the newest rows again each time) are left out, and a poll with nothing left and the
//! cursor where it was writes nothing.

use std::collections::HashSet;

use crate::error::PipelineError;
use crate::source::window::Window;
use crate::source::worker::{parse_lmts, Position, Worker};
use crate::status::Phase;

/// A raw row's identity for [`Worker::poll`]'s memory of what it wrote: every column, in order.
fn row_hash(row: &[String]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for v in row {
        h.update(v.as_bytes());
        // A separator that no value holds, so that ("ab", "c") and ("a", "bc") differ.
        h.update(&[0xff]);
    }
    h.digest()
}

impl Worker {
    /// One poll from the stored cursor `cursor_lmts`.
    pub(crate) async fn poll(&self, cursor_lmts: i64) -> Result<(), PipelineError> {
        self.status.table(self.name(), |t| t.phase = Phase::Polling);
        let started = chrono::Utc::now();
        let start = cursor_lmts - self.settings.overlap.as_millis() as i64;
        let answer = self.reader.scan(&self.columns, Window::since(start)).await?;
        let mut rows = answer.rows;
        // Rows identical to ones the last poll wrote (the overlap reads them again) are already
        // in the store: leave them out, so that an idle table costs a read and no write.
        let hashes: HashSet<u64> = rows.iter().map(|r| row_hash(r)).collect();
        let seen = std::mem::take(&mut *self.polled.lock().expect("lock"));
        if !seen.is_empty() {
            rows.retain(|r| !seen.contains(&row_hash(r)));
        }
        self.sort_by_change(&mut rows);
        let newest = rows
            .iter()
            .map(|r| parse_lmts(&r[self.lmts_index]))
            .max()
            .unwrap_or(cursor_lmts)
            .max(cursor_lmts);
        let page = self.settings.page_size.max(1) as usize;
        // An idle poll (no row, the cursor where it was) writes nothing: with many connections
        // polling every few seconds, empty transactions were most of the idle CPU.
        let pages: Vec<&[Vec<String>]> = if rows.is_empty() && newest == cursor_lmts {
            Vec::new()
        } else if rows.is_empty() {
            vec![&[]]
        } else {
            rows.chunks(page).collect()
        };
        let last = pages.len().saturating_sub(1);
        for (i, chunk) in pages.into_iter().enumerate() {
            let next = (i == last).then_some(Position::Polling { lmts: newest });
            self.write(chunk, next).await?;
        }
        // Written: the next poll may leave these out.
        *self.polled.lock().expect("lock") = hashes;
        self.unsplit(answer.unsplit).await?;
        let now = chrono::Utc::now();
        self.status.table(self.name(), |t| {
            t.succeeded();
            t.last_poll = Some(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            t.caught_up_at = Some(started.timestamp_millis());
            t.lag_ms = Some((now - started).num_milliseconds().max(0));
            t.row_cap_seen = self.reader.cap.most_seen() as u64;
        });
        Ok(())
    }
}
