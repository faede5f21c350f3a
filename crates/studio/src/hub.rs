//! The live connections of this process and how they start and stop. The API reads
//! [`Connections`]; the binary provides the [`Launcher`] that turns a stored connection into a
//! running one (M3 client, connector, registries, Kafka), so this crate needs no Kafka.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::RwLock;

use m3::{IonApi, MdpEndpoint, Secret};

use crate::state::ConnectionRuntime;

/// Connections by name; connections come and go while the API runs.
#[derive(Default)]
pub struct Connections {
    inner: RwLock<BTreeMap<String, ConnectionRuntime>>,
    /// Held while a connection is stopped and started again, so that two restarts (an API save
    /// and the store sync) never interleave and leave a stopped runtime in the map.
    pub restarts: tokio::sync::Mutex<()>,
}

impl Connections {
    /// A set holding `runtimes`.
    pub fn new(runtimes: impl IntoIterator<Item = ConnectionRuntime>) -> Self {
        Self {
            inner: RwLock::new(runtimes.into_iter().map(|r| (r.name.clone(), r)).collect()),
            restarts: tokio::sync::Mutex::new(()),
        }
    }

    /// One connection's runtime.
    pub fn get(&self, name: &str) -> Option<ConnectionRuntime> {
        self.inner.read().expect("lock").get(name).cloned()
    }

    /// Whether a connection of that name runs.
    pub fn contains_key(&self, name: &str) -> bool {
        self.inner.read().expect("lock").contains_key(name)
    }

    /// Every running connection, by name.
    pub fn values(&self) -> std::vec::IntoIter<ConnectionRuntime> {
        let v: Vec<ConnectionRuntime> = self.inner.read().expect("lock").values().cloned().collect();
        v.into_iter()
    }

    /// Add or replace a connection's runtime.
    pub fn insert(&self, runtime: ConnectionRuntime) {
        self.inner.write().expect("lock").insert(runtime.name.clone(), runtime);
    }

    /// Remove a connection's runtime.
    pub fn remove(&self, name: &str) -> Option<ConnectionRuntime> {
        self.inner.write().expect("lock").remove(name)
    }
}

/// Where a connection's connector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosting {
    /// In this process.
    Hosted,
    /// On the customer's network; it calls home over `/api/connector/channel`.
    SelfHosted,
}

impl Hosting {
    /// `hosted` or `self-hosted`.
    pub fn parse(s: &str) -> Option<Hosting> {
        match s {
            "hosted" => Some(Hosting::Hosted),
            "self-hosted" => Some(Hosting::SelfHosted),
            _ => None,
        }
    }

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Hosting::Hosted => "hosted",
            Hosting::SelfHosted => "self-hosted",
        }
    }
}

/// Everything needed to start a stored connection (secrets opened for this start only).
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Connection name.
    pub name: String,
    /// Where its connector runs.
    pub hosting: Hosting,
    /// The `.ionapi` credentials.
    pub ionapi: IonApi,
    /// An on-premises Metadata Publisher, if configured.
    pub mdp: Option<MdpEndpoint>,
    /// Company (`cono`), if not the service account's default.
    pub company: Option<u32>,
    /// Bearer token M3 sends on webhook calls.
    pub webhook_token: Option<Secret>,
    /// The stored version this starts from (`updated_at`); `None` for the configured connection.
    pub revision: Option<String>,
}

/// A boxed future (the launcher is used as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts and stops connections for the API (implemented by the binary).
pub trait Launcher: Send + Sync + 'static {
    /// Start a connection; the caller inserts the runtime into [`Connections`].
    fn launch(&self, spec: LaunchSpec) -> BoxFuture<'_, Result<ConnectionRuntime, String>>;
    /// Stop a connection's tasks (connector, Kafka); a no-op when it does not run.
    fn stop<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ()>;
}
