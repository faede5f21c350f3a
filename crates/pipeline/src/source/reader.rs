//! Reads windows of one table through `EXPORTMI/Select`: retries transient gateway failures in
//! place, splits each `REPL` row on the separator, and recovers rows whose values hold the
//! separator by reading the window again with a separator their text lacks. What still cannot
//! be split is handed back raw (it goes to the mapping's source dead letters); the other rows
//! flow on. [`Reader::scan`] reads a window completely, splitting it while answers may be cut.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use m3::{M3Client, M3Error};
use mapping::catalog::Table;

use crate::error::PipelineError;
use crate::source::splitter::Splitter;
use crate::source::window::{Dimensions, RowCap, Window};
use crate::status::{Connectivity, StatusBoard};

/// Separators tried, in order, for rows whose text holds the configured one.
const FALLBACK_SEPARATORS: [char; 8] = ['~', '|', '^', '#', '@', '`', '{', '}'];

/// One window's answer.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    /// Rows, values in the order selected (right-trimmed).
    pub rows: Vec<Vec<String>>,
    /// Raw rows that could not be split into the selected columns with any separator.
    pub unsplit: Vec<String>,
    /// Whether the server may have cut the answer at its row cap (the window must be split).
    pub may_be_cut: bool,
}

/// Reads windows of one table.
pub(crate) struct Reader {
    pub client: Arc<M3Client>,
    pub table: Arc<Table>,
    pub dims: Dimensions,
    pub page_size: u32,
    pub separator: char,
    pub cap: Arc<RowCap>,
    pub status: StatusBoard,
}

impl Reader {
    /// Read one window once (it may come back cut: see [`Answer::may_be_cut`]).
    pub async fn read(&self, select: &[String], w: &Window) -> Result<Answer, PipelineError> {
        let query = self.dims.query(&self.table.name, select, w);
        let raw = self.export(&query, self.separator).await?;
        let may_be_cut = self.cap.may_be_cut(raw.len(), self.page_size as usize);
        let mut answer = Answer {
            may_be_cut,
            ..Default::default()
        };
        let mut bad = Vec::new();
        for repl in raw {
            match split(&repl, self.separator, select.len()) {
                Some(row) => answer.rows.push(row),
                None => bad.push(repl),
            }
        }
        if !bad.is_empty() {
            self.recover(&query, select.len(), &mut answer, bad).await?;
        }
        Ok(answer)
    }

    /// Read a window completely: split it while answers may have been cut. Sequential (one
    /// call in flight); returns every row and every raw row that could not be split.
    pub async fn scan(&self, select: &[String], w: Window) -> Result<Answer, PipelineError> {
        let dims_at = self.dim_positions(select);
        let mut todo = vec![w];
        let mut all = Answer::default();
        let mut splitter = Splitter::sequential();
        while let Some(w) = splitter.next(&mut todo) {
            let a = self.read(select, &w).await?;
            if a.may_be_cut {
                if let Some(kids) = splitter.cut(&self.dims, &w, &sample(&a.rows, &dims_at)) {
                    todo.extend(kids);
                    continue;
                }
            }
            todo.extend(splitter.whole(&self.dims, &w, a.rows.len()));
            all.rows.extend(a.rows);
            all.unsplit.extend(a.unsplit);
        }
        Ok(all)
    }

    /// Where each dimension's column stands in `select` (every dimension must be selected).
    pub fn dim_positions(&self, select: &[String]) -> Vec<usize> {
        self.dims
            .columns
            .iter()
            .map(|c| {
                select
                    .iter()
                    .position(|s| s == c)
                    .expect("window dimensions are selected")
            })
            .collect()
    }

    /// Re-read the window with a separator none of the bad rows holds and take from that
    /// answer the rows the first one could not split (those whose key is not among the rows
    /// already split).
    async fn recover(
        &self,
        query: &str,
        columns: usize,
        answer: &mut Answer,
        bad: Vec<String>,
    ) -> Result<(), PipelineError> {
        let Some(other) = FALLBACK_SEPARATORS
            .into_iter()
            .find(|s| *s != self.separator && bad.iter().all(|r| !r.contains(*s)))
        else {
            answer.unsplit.extend(bad);
            return Ok(());
        };
        let known: HashSet<Vec<String>> = answer.rows.iter().cloned().collect();
        let again = self.export(query, other).await?;
        let mut recovered = 0usize;
        for repl in again {
            if let Some(row) = split(&repl, other, columns) {
                // Rows the first answer split fine re-appear identical (unless they hold the new
                // separator, then they do not split and are skipped here).
                if !known.contains(&row) && recovered < bad.len() {
                    answer.rows.push(row);
                    recovered += 1;
                }
            }
        }
        if recovered < bad.len() {
            // Whatever stayed unsplittable is kept raw, as first read.
            answer.unsplit.extend(bad.into_iter().skip(recovered));
        }
        Ok(())
    }

    /// One `EXPORTMI/Select` call: the raw `REPL` rows. Transient failures (500, 504, 429,
    /// timeouts) are retried in place a few times with a short pause (Retry-After honoured up
    /// to 5 s) before the step fails and the caller's backoff takes over.
    async fn export(&self, query: &str, separator: char) -> Result<Vec<String>, PipelineError> {
        let sep = separator.to_string();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let r = self
                .client
                .execute("EXPORTMI", "Select", &[("QERY", query), ("SEPC", &sep)], self.page_size)
                .await;
            self.observe(&r);
            match r {
                Ok(records) => {
                    return Ok(records
                        .into_iter()
                        .map(|mut r| r.remove("REPL").unwrap_or_default())
                        .collect())
                }
                Err(e) if e.is_transient() && attempt < 3 => {
                    let pause = match e.retry_after() {
                        Some(d) if d <= Duration::from_secs(5) => d,
                        Some(_) => return Err(e.into()),
                        None => IN_PLACE.delay(attempt),
                    };
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn observe<T>(&self, r: &Result<T, M3Error>) {
        // M3 answering at all (even NOK) means reachable; the mapping's own health says whether
        // it makes progress.
        let (state, message) = Connectivity::of(r);
        self.status.update(|s| s.m3_observed(state, message));
    }
}

/// Pause between in-place retries of one call: 200 ms, doubling, at most 2 s.
const IN_PLACE: crate::backoff::Backoff =
    crate::backoff::Backoff::new(Duration::from_millis(200), Duration::from_secs(2));

/// The values of a `REPL` row, if it splits into exactly `columns` values.
fn split(repl: &str, separator: char, columns: usize) -> Option<Vec<String>> {
    let values: Vec<String> = repl.split(separator).map(|v| v.trim_end().to_string()).collect();
    (values.len() == columns).then_some(values)
}

/// The values of each dimension in `rows` (for [`Dimensions::split`]).
pub(crate) fn sample(rows: &[Vec<String>], dims_at: &[usize]) -> Vec<Vec<String>> {
    dims_at
        .iter()
        .map(|&i| rows.iter().map(|r| r[i].clone()).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_only_into_the_selected_column_count() {
        assert_eq!(split("A~B  ~C", '~', 3), Some(vec!["A".into(), "B".into(), "C".into()]));
        assert_eq!(split("A~B~x~C", '~', 3), None);
    }
}
