//! Time of the relay's side of the store on a fresh SQLite file (or on PostgreSQL when `PGURL`
//! names an empty database): a log of `ROWS` messages
//! (default 200,000) read in batches of 500 (`unpublished`) and each batch marked as
//! acknowledged (`mark_published`), as the relay does once the broker acknowledged a batch;
//! prints the time per message of the reads and of the marks:
//!
//! ```sh
//! cargo run --release -p store --example mark_timing
//! PGURL=postgres://postgres@127.0.0.1:15432/timing cargo run --release -p store --example mark_timing
//! ```

use std::time::{Duration, Instant};

use store::{Batch, Change};

mod common;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path()).await;
    let rows = common::env("ROWS", 200_000);
    let mut written = 0;
    while written < rows {
        let n = 10_000.min(rows - written);
        let changes: Vec<Change> = (written..written + n).map(|i| common::item_change(i, i)).collect();
        let batch = Batch {
            connection: "demo".into(),
            mapping: "Item".into(),
            changes,
            cursor: None,
        };
        store.apply_owned(batch).await.unwrap();
        written += n;
    }
    let (mut reads, mut marks, mut marked, mut batches) = (Duration::ZERO, Duration::ZERO, 0, 0);
    loop {
        let t = Instant::now();
        let batch = store.unpublished("demo", 500).await.unwrap();
        reads += t.elapsed();
        let Some(last) = batch.last() else { break };
        let t = Instant::now();
        marked += store.mark_published("demo", last.seq).await.unwrap();
        marks += t.elapsed();
        batches += 1;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / rows as f64;
    println!(
        "{} store: {marked} of {rows} messages marked in {batches} batches of 500: reads {:.1} us, marks {:.1} us per message",
        store.backend(),
        per(reads),
        per(marks)
    );
}
