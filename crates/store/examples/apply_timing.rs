//! Time of writing pages of an initial load through `Store::apply_batch` (50 pages of 1,000 new
//! entities, each page with its cursor), on a fresh SQLite file, or on PostgreSQL when `PGURL`
//! names an empty database:
//!
//! ```sh
//! cargo run --release -p store --example apply_timing
//! PGURL=postgres://postgres@127.0.0.1:15432/timing cargo run --release -p store --example apply_timing
//! ```

use std::time::Instant;

use store::{Batch, Change, ChangeOp, Cursor, NewMessage, Store};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = match std::env::var("PGURL") {
        Ok(u) => Store::connect(&u).await.unwrap(),
        Err(_) => Store::open(&dir.path().join("s.db")).await.unwrap(),
    };
    let payload = r#"{"itemNumber":"A0000001","name":"Some item name here","description":"longer description text","status":"20","company":100}"#;
    let pages = 50;
    let started = Instant::now();
    for p in 0..pages {
        let changes: Vec<Change> = (0..1000)
            .map(|i| {
                let key = format!("100|A{:07}", p * 1000 + i);
                Change {
                    key: key.clone(),
                    op: ChangeOp::Upsert {
                        hash: (p * 1000 + i) as u64,
                        state: payload.to_string(),
                    },
                    position: Some(1_700_000_000_000 + i as i64),
                    message: NewMessage {
                        id: format!("id-{p}-{i}"),
                        ty: "ItemUpdated".into(),
                        source: "erp-bridge/demo/MITMAS".into(),
                        subject: key,
                        time: "2026-11-25T00:00:00.000Z".into(),
                        dataschema: "/schemas/ItemUpdated".into(),
                        payload: payload.to_string(),
                    },
                }
            })
            .collect();
        let batch = Batch {
            connection: "demo".into(),
            mapping: "Item".into(),
            changes,
            cursor: Some(Cursor {
                fingerprint: "f".into(),
                position: serde_json::json!({"page": p}),
            }),
        };
        store.apply_batch(&batch).await.unwrap();
    }
    let elapsed = started.elapsed();
    let rows = pages * 1000;
    println!(
        "{} store: {rows} rows in {elapsed:.2?}: {:.1} us per row",
        store.backend(),
        elapsed.as_micros() as f64 / rows as f64
    );
}
