//! The connector: turns M3 tables into messages. Sources (initial load, polling on the change
//! timestamp, reconciliation in both directions, webhook hints; see [`source`]) read M3 in
//! windows, mappings project rows, and every page is written to the store's outbox together
//! with the cursor that produced it. Also the command processor (M3 MI transactions).

pub mod backoff;
pub mod command_registry;
pub mod commands;
pub mod connector;
pub mod error;
pub mod registry;
pub mod remote_mi;
pub mod schedule;
pub mod shutdown;
pub mod source;
pub mod status;

pub use backoff::Backoff;
pub use connector::{Connector, ConnectorSettings, MappingSource, WebhookOutcome};
pub use error::PipelineError;
pub use shutdown::{Shutdown, ShutdownTrigger};
pub use source::event::{parse_event, ChangeHint, EventError, Operation};
pub use source::worker::event_id;
pub use status::{Connectivity, ConnectorStatus, Health, Phase, RelayStatus, StatusBoard, TableStatus};
