//! Pure domain of erp-bridge: the M3 table catalogue and message-type mappings (row -> message).
//! No I/O lives here; this is the hot path and it is benchmarked.

pub mod catalog;
pub mod command;
pub mod compiled;
pub mod connection_name;
pub mod convert;
pub mod error;
pub mod filter;
pub mod names;
pub mod spec;
pub mod zone;

pub use compiled::{CompiledField, CompiledMapping, EntityKey, Projection};
pub use connection_name::{ConnectionName, NameError};
pub use error::{MappingError, ValueError};
pub use filter::{Filter, FilterError};
pub use spec::{FieldSpec, FieldType, MappingSpec};
pub use zone::{TimeZone, TimeZoneError};
