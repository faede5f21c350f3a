//! A connection's life, from start to stop, whatever serves it over HTTP.
//!
//! - [`hub`]: the [`Hub`] that starts, restarts and stops connections (hosted and self-hosted
//!   the same way) and keeps a replica's connections in step with the store.
//! - [`connection`]: what a running connection is ([`ConnectionRuntime`]), the set of them
//!   ([`Connections`]) and what starting one takes ([`LaunchSpec`]).
//! - [`lease`]: the one [`LeasePolicy`] for a hosted connection's lease loop and a self-hosted
//!   connector's channel, and this installation's name as a lease holder.
//! - [`relay`]: a connection's Kafka start-up (topics, outbox relay, command consumer).
//! - [`retention`]: the outbox pruning task (retention by age and size, compaction).
//! - [`folder_lock`]: one process per data folder (an OS lock naming its holder's pid).
//! - [`files`]: the mapping and command-mapping files of `mappings_dir` / `commands_dir` (GitOps).
//! - [`remote`]: Studio's data side of a self-hosted connector's channel (its live state,
//!   pending M3 calls, exactly-once ingest of its messages).
//! - [`connector`]: the self-hosted connector itself, the client side of the channel.
//! - [`stored`]: a stored connection's sealed secrets opened into its [`LaunchSpec`].
//!
//! Studio (HTTP) calls this crate directly; the binary wires configuration to it.

pub mod connection;
pub mod connector;
mod error;
pub mod files;
pub mod folder_lock;
pub mod hub;
pub mod lease;
pub mod relay;
pub mod remote;
pub mod retention;
pub mod stored;

pub use connection::{ConnectionRuntime, Connections, Hosting, LaunchSpec, WebhookAuth};
pub use error::RuntimeError;
pub use folder_lock::{FolderLock, FolderLockError};
pub use hub::Hub;
pub use lease::{instance_id, LeasePolicy, Share};
pub use remote::RemoteState;
