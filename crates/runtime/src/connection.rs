//! What a running connection is: its [`ConnectionRuntime`] (connector, registries, command
//! processor, webhook credentials, channel state), the [`Connections`] of this process, and the
//! [`LaunchSpec`] a connection starts from.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use m3::{IonApi, MdpEndpoint, Secret};
use pipeline::command_registry::CommandRegistry;
use pipeline::commands::CommandProcessor;
use pipeline::registry::MappingRegistry;
use pipeline::Connector;

use crate::remote::RemoteState;

/// One running connection, as the API and the hub see it.
#[derive(Clone)]
pub struct ConnectionRuntime {
    /// Connection name.
    pub name: String,
    /// The running connector: deployed mappings, status, webhooks.
    pub connector: Connector,
    /// Mapping management.
    pub registry: MappingRegistry,
    /// Command processing (HTTP submissions use the same processor as the Kafka consumer).
    pub commands: Option<CommandProcessor>,
    /// Command mapping management (swaps mappings into `commands`); none = fixed defaults.
    pub command_registry: Option<CommandRegistry>,
    /// Credentials M3 must present on webhook calls; none configured = webhooks refused.
    pub webhook_auth: WebhookAuth,
    /// For a self-hosted connection: the state of its connector's channel.
    pub remote: Option<Arc<RemoteState>>,
    /// For a stored connection: the stored version it runs (`updated_at`); `None` for the
    /// configured one.
    pub revision: Option<String>,
    /// Whether its `.ionapi` file is saved. A self-hosted connection runs without one (its
    /// connector calls home and waits for it); a hosted one never does.
    pub configured: bool,
}

impl ConnectionRuntime {
    /// The connection's light: computed once here from its status board and, when self-hosted,
    /// its connector's channel; every view and `/readyz` show this.
    pub fn light(&self) -> pipeline::status::Light {
        let link = match &self.remote {
            Some(r) => r.link(),
            None => pipeline::status::Link::InProcess,
        };
        // A connector that called home before the `.ionapi` file is saved has nothing to read M3
        // with yet: say so (a connector that is not calling home shows Disconnected first).
        if let (false, Some(r), pipeline::status::Link::Connected) = (self.configured, &self.remote, &link) {
            let (since, at) = r.connected_times();
            return pipeline::status::Light {
                state: pipeline::status::ConnectionState::NotConfigured,
                message: Some(
                    "connector connected; upload the .ionapi file (step 2 of the setup wizard): the connector receives it over its channel"
                        .into(),
                ),
                since,
                at,
            };
        }
        self.connector.status().snapshot().light(&link)
    }
}

/// Credentials accepted on `POST /webhooks/{connection}/{TABLE}`.
#[derive(Clone, Default)]
pub struct WebhookAuth {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<Secret>,
    /// `Authorization: Basic` user and password.
    pub basic: Option<(String, Secret)>,
}

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

/// Everything needed to start a connection (secrets opened for this start only).
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Connection name.
    pub name: String,
    /// Where its connector runs.
    pub hosting: Hosting,
    /// The `.ionapi` credentials; `None` only for a self-hosted connection whose file is not
    /// saved yet (its connector calls home and receives the file once it is).
    pub ionapi: Option<IonApi>,
    /// An on-premises Metadata Publisher, if configured.
    pub mdp: Option<MdpEndpoint>,
    /// Company (`cono`), if not the service account's default.
    pub company: Option<u32>,
    /// Bearer token M3 sends on webhook calls.
    pub webhook_token: Option<Secret>,
    /// The stored version this starts from (`updated_at`); `None` for the configured connection.
    pub revision: Option<String>,
}
