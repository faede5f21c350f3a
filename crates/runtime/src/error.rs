//! Why a connection cannot start.

use pipeline::command_registry::CommandRegistryError;
use pipeline::registry::RegistryError;

/// A connection that cannot start; the message is the failing part's own.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The M3 client could not be built from the connection's credentials.
    #[error(transparent)]
    Client(#[from] m3::M3Error),
    /// A hosted connection has no `.ionapi` file to read M3 with.
    #[error("connection {0}: a hosted connection cannot start without its .ionapi file")]
    NoCredentials(String),
    /// The tuning does not make connector settings.
    #[error(transparent)]
    Tuning(#[from] channel::ChannelError),
    /// Its command mappings could not be seeded or loaded.
    #[error(transparent)]
    CommandMappings(#[from] CommandRegistryError),
    /// Its deployed mappings could not be restored.
    #[error(transparent)]
    Mappings(#[from] RegistryError),
}

impl RuntimeError {
    /// The message with every cause, `outer: cause: cause` (as `anyhow`'s `{:#}`).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}
