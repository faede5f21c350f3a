//! What the store's timing examples share: the store they time (a fresh SQLite file, or the
//! empty PostgreSQL database named by `PGURL`) and the item changes they write.

use store::{Change, ChangeOp, NewMessage, Store};

/// The number in the environment variable `name`, else `default`.
pub fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A fresh SQLite store in `dir`, or the PostgreSQL database named by `PGURL`.
pub async fn open_store(dir: &std::path::Path) -> Store {
    match std::env::var("PGURL") {
        Ok(u) => Store::connect(&u).await.unwrap(),
        Err(_) => Store::open(&dir.join("s.db")).await.unwrap(),
    }
}

/// The state and message payload of every item written.
const PAYLOAD: &str = r#"{"itemNumber":"A0000001","name":"Some item name here","description":"longer description text","status":"20","company":100}"#;

/// The `i`-th change written, an upsert of the item numbered `k`.
pub fn item_change(i: u64, k: u64) -> Change {
    let key = format!("100|A{k:010}");
    Change {
        key: key.clone(),
        op: ChangeOp::Upsert {
            hash: i,
            state: PAYLOAD.to_string(),
        },
        position: Some(1_700_000_000_000 + i as i64),
        message: NewMessage {
            id: format!("id-{i}"),
            ty: "ItemUpdated".into(),
            source: "erp-bridge/demo/MITMAS".into(),
            subject: key,
            time: "2026-11-25T00:00:00.000Z".into(),
            dataschema: "/schemas/ItemUpdated".into(),
            payload: PAYLOAD.to_string(),
        },
    }
}
