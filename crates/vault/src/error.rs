//! The error type of the vault crate.
//!
//! Messages never contain plaintext, key material or the text a key was parsed from.

use std::path::PathBuf;

/// An error from parsing keys, loading the key file, or opening a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A key could not be parsed. The message describes the shape of the input, never the input.
    #[error("invalid {what}: expected 32 bytes as 64 hex digits or base64, got {got}")]
    InvalidKey {
        /// Which key was being parsed, e.g. `key` or `previous key #2`.
        what: String,
        /// A description of what was found instead, e.g. `31 bytes of base64`.
        got: String,
    },
    /// The sealed value does not have the form `v1:<key id>:<data>`.
    #[error("malformed sealed value: {reason}")]
    Malformed {
        /// What is wrong with the value.
        reason: String,
    },
    /// The sealed value names a key that the vault does not hold.
    #[error(
        "sealed with key {key_id}, which is neither the current key nor a previous one: \
         set the previous key in ERP_BRIDGE_PREVIOUS_KEYS"
    )]
    UnknownKey {
        /// The key id found in the sealed value.
        key_id: String,
    },
    /// Authenticated decryption failed: the key is wrong, the value was tampered with, or it
    /// was sealed for another place (`aad`).
    #[error("cannot decrypt: wrong key or tampered value")]
    Decrypt,
    /// Reading or writing the key file (or creating its directory) failed.
    #[error("key storage {}: {source}", path.display())]
    Io {
        /// The file or directory that could not be read or written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

impl VaultError {
    /// Replaces the description of which key was invalid; other errors are returned unchanged.
    pub(crate) fn for_key(self, what: impl Into<String>) -> VaultError {
        match self {
            VaultError::InvalidKey { got, .. } => VaultError::InvalidKey { what: what.into(), got },
            other => other,
        }
    }

    /// Builds a [`VaultError::Malformed`].
    pub(crate) fn malformed(reason: impl Into<String>) -> VaultError {
        VaultError::Malformed { reason: reason.into() }
    }
}
