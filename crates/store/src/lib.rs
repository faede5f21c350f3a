//! Persistence of erp-bridge: the outbox (the embedded message log), change cursors, and entity
//! state (the read models, and the content hashes that drop no-op changes). SQLite (a file in
//! the data folder) or PostgreSQL, via sqlx, behind one [`Store`].
//!
//! The one rule that makes change detection safe: messages, entity state and the cursor that
//! produced them are written in one transaction ([`Store::apply_batch`]).

mod dispatch;
mod error;
mod model;
mod plan;
mod postgres;
mod retention;
mod shared;
mod sqlite;
mod sqlite_writer;

pub use dispatch::Store;
pub use error::StoreError;
pub use model::{
    ApiToken, Applied, Batch, Change, ChangeOp, CommandMappingVersion, ConnectionRecord, Cursor, LeaseOutcome,
    MappingRecord, MappingVersion, NewMessage, ReadModelPage, SourceDeadLetter, StoredMessage,
};
pub use plan::event_id;
pub use retention::{OutboxHorizon, OutboxMode, OutboxStats, PruneReport, RetentionPolicy};
