//! Persistence of erp-bridge: the outbox (the embedded message log), change cursors, and entity
//! state (the read models, and the content hashes that drop no-op changes). SQLite via sqlx.
//!
//! The one rule that makes change detection safe: messages, entity state and the cursor that
//! produced them are written in one transaction ([`Store::apply_batch`]).

mod error;
mod model;
mod sqlite;

pub use error::StoreError;
pub use model::{
    ApiToken, Batch, Change, ChangeOp, CommandMappingVersion, ConnectionRecord, Cursor, LeaseOutcome, MappingRecord,
    MappingVersion, NewMessage, ReadModelPage, StoredMessage,
};
pub use sqlite::{Applied, Store};
