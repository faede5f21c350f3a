//! The state every route shares: the store, the running connections (what the API knows of
//! each: [`ConnectionRuntime`]), authentication, the vault and the launcher; and the lookup of
//! one running connection that the per-connection routes start with.

use std::sync::Arc;

use pipeline::command_registry::CommandRegistry;
use pipeline::commands::CommandProcessor;
use pipeline::registry::MappingRegistry;
use pipeline::Connector;
use store::Store;

use crate::auth::{constant_time_eq, Auth};
use crate::channel::RemoteState;
use crate::error::ApiError;
use crate::hub::{Connections, Launcher};

/// What the API knows of one running connection.
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
}

/// Credentials accepted on `POST /webhooks/{connection}/{TABLE}`.
#[derive(Clone, Default)]
pub struct WebhookAuth {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<m3::Secret>,
    /// `Authorization: Basic` user and password.
    pub basic: Option<(String, m3::Secret)>,
}

impl WebhookAuth {
    /// Whether the `Authorization` header value carries accepted credentials.
    pub fn accepts(&self, header: Option<&str>) -> bool {
        use base64::Engine;
        let Some(h) = header else { return false };
        if let (Some(token), Some(given)) = (&self.bearer, h.strip_prefix("Bearer ")) {
            return constant_time_eq(token.expose().as_bytes(), given.trim().as_bytes());
        }
        if let (Some((user, pass)), Some(given)) = (&self.basic, h.strip_prefix("Basic ")) {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(given.trim()) else {
                return false;
            };
            let expected = format!("{user}:{}", pass.expose());
            return constant_time_eq(expected.as_bytes(), &raw);
        }
        false
    }
}

/// Shared state of the API.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Connections by name.
    pub connections: Arc<Connections>,
    /// API authentication.
    pub auth: Arc<Auth>,
    /// Seals the secrets of stored connections; `None` = connections cannot be stored.
    pub vault: Option<vault::Vault>,
    /// Starts and stops stored connections; `None` = they are stored but not started.
    pub launcher: Option<Arc<dyn Launcher>>,
    /// Studio's URL as connectors reach it (for bundles); the request's `Host` when unset.
    pub public_url: Option<String>,
}

impl AppState {
    pub(crate) fn vault(&self) -> Result<&vault::Vault, ApiError> {
        self.vault
            .as_ref()
            .ok_or_else(|| ApiError::Unavailable("no secret key is configured: connections cannot be stored".into()))
    }
}

/// The running connection `name`, or 404 naming it.
pub(crate) fn connection(st: &AppState, name: &str) -> Result<ConnectionRuntime, ApiError> {
    st.connections
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("connection `{name}` does not exist or is not running")))
}
