//! The state every route shares: the store, the running connections (their
//! [`ConnectionRuntime`]s), authentication, the vault and the [`Hub`] that starts and stops
//! connections; and the lookup of one running connection that the per-connection routes start
//! with.

use std::sync::Arc;

use runtime::{ConnectionRuntime, Connections, Hub};
use store::Store;

use crate::auth::Auth;
use crate::error::ApiError;

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
    pub hub: Option<Arc<Hub>>,
    /// Where outbound calls driven by user input (checks of `.ionapi` files and MDP URLs) may
    /// go.
    pub outbound: crate::checks::Outbound,
    /// Studio's URL as connectors reach it (for bundles); the request's `Host` when unset.
    pub public_url: Option<String>,
    /// Absolute base URL of the message schemas (`$id`, `dataschema`): `http.public_url`, else
    /// `http://<http.listen>`.
    pub schema_base_url: String,
    /// `http.contact_email`: the contact of the AsyncAPI documents.
    pub contact_email: Option<String>,
    /// The Kafka settings the relay and the command consumer use (brokers empty = no Kafka),
    /// for the AsyncAPI document.
    pub kafka: kafka::KafkaSettings,
}

impl AppState {
    /// The absolute URI of a message type's JSON Schema: its `$id` and the `dataschema` of its
    /// messages.
    pub fn schema_url(&self, connection: &str, message_type: &str) -> String {
        format!(
            "{}/api/connections/{connection}/schemas/{message_type}",
            self.schema_base_url
        )
    }
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
