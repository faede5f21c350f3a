//! Time of writing pages of an initial load through `Store::apply_batch`, each page with its
//! cursor, on a fresh SQLite file, or on PostgreSQL when `PGURL` names an empty database.
//! `ROWS` (default 50,000) and `PAGE` (default 1,000) set the size; `SCATTER=1` spreads each
//! page's keys over the whole key space, as the load's timestamp windows do (a page then
//! touches index pages all over the table instead of appending to it):
//!
//! ```sh
//! cargo run --release -p store --example apply_timing
//! ROWS=1000000 PAGE=20000 SCATTER=1 cargo run --release -p store --example apply_timing
//! PGURL=postgres://postgres@127.0.0.1:15432/timing cargo run --release -p store --example apply_timing
//! ```

use std::time::Instant;

use store::{Batch, Change, Cursor};

mod common;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open_store(dir.path()).await;
    let rows = common::env("ROWS", 50_000);
    let page = common::env("PAGE", 1_000).max(1);
    let scatter = common::env("SCATTER", 0) == 1;
    let started = Instant::now();
    let mut written = 0;
    let mut p = 0;
    while written < rows {
        let n = page.min(rows - written);
        let changes: Vec<Change> = (written..written + n)
            .map(|i| {
                // A multiplicative permutation of 0..2^32 (odd multiplier): consecutive `i` land
                // far apart, and no two collide.
                let k = if scatter {
                    i.wrapping_mul(2_654_435_761) % (1 << 32)
                } else {
                    i
                };
                common::item_change(i, k)
            })
            .collect();
        let batch = Batch {
            connection: "demo".into(),
            mapping: "Item".into(),
            changes,
            cursor: Some(Cursor {
                fingerprint: "f".into(),
                position: serde_json::json!({ "page": p }),
            }),
        };
        store.apply_owned(batch).await.unwrap();
        written += n;
        p += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "{} store: {rows} rows in pages of {page}{}: {elapsed:.2?}, {:.1} us per row",
        store.backend(),
        if scatter { ", keys scattered" } else { "" },
        elapsed.as_micros() as f64 / rows as f64
    );
}
