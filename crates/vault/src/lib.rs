//! Encryption of secrets at rest for erp-bridge.
//!
//! Secrets such as M3 client secrets, `.ionapi` file contents and MDP or webhook passwords are
//! stored sealed with XChaCha20-Poly1305 (a random 24-byte nonce per value). A [`Vault`] holds
//! the current [`Key`], which seals new values, and any number of previous keys, which can still
//! open values sealed before a key rotation. [`Vault::is_stale`] and [`Vault::reseal`] move old
//! values to the current key.
//!
//! Sealed values are text: `v1:<key id>:<base64url (no padding) of nonce || ciphertext+tag>`.
//! The key id is the first 8 hex digits of SHA-256 of the key, so it identifies a key without
//! revealing it. Each value is bound to the place where it is stored (the `aad` argument, e.g.
//! `"connection/demo/ionapi"`), so a sealed value copied to another place does not open.
//!
//! Neither error messages nor `Debug` output ever contain plaintext or key material.

mod error;
mod key;
mod vault;

pub use error::VaultError;
pub use key::Key;
pub use vault::{KeySource, Vault};
