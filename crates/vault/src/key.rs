//! The 32-byte symmetric [`Key`]: generation, parsing, text form and id.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::{Zeroize as _, Zeroizing};

use crate::VaultError;

/// Length of a key in bytes.
pub(crate) const KEY_LEN: usize = 32;

/// A 32-byte XChaCha20-Poly1305 key.
///
/// `Debug` prints only its [id](Key::id); the key bytes are wiped from memory when it is dropped.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; KEY_LEN],
}

impl Key {
    /// Generates a new key from the operating system's random number generator.
    pub fn generate() -> Key {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        Key { bytes }
    }

    /// Parses a key from 64 hex digits or from standard base64 (with or without padding) of
    /// 32 bytes. Surrounding whitespace is ignored.
    ///
    /// The error describes what was found (for example `31 bytes of base64`) but never repeats
    /// the text itself.
    pub fn parse(text: &str) -> Result<Key, VaultError> {
        let text = text.trim();
        if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut bytes = [0u8; KEY_LEN];
            for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
                *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
            }
            return Ok(Key { bytes });
        }
        let decoded = STANDARD
            .decode(text)
            .or_else(|_| STANDARD_NO_PAD.decode(text))
            .ok()
            .map(Zeroizing::new);
        if let Some(decoded) = &decoded {
            if decoded.len() == KEY_LEN {
                let mut bytes = [0u8; KEY_LEN];
                bytes.copy_from_slice(decoded);
                return Ok(Key { bytes });
            }
        }
        let chars = text.chars().count();
        let got = if text.is_empty() {
            "an empty value".to_string()
        } else if text.bytes().all(|b| b.is_ascii_hexdigit()) {
            format!("{chars} hex digits")
        } else if let Some(decoded) = &decoded {
            format!("{} bytes of base64", decoded.len())
        } else {
            format!("{chars} characters that are neither hex nor base64")
        };
        Err(VaultError::InvalidKey {
            what: "key".to_string(),
            got,
        })
    }

    /// The key as 64 lowercase hex digits, the form written to key files.
    ///
    /// This is the secret itself: store it only where a secret belongs.
    pub fn to_text(&self) -> String {
        to_hex(&self.bytes)
    }

    /// The key id: the first 8 hex digits of SHA-256 of the key. Safe to log.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.bytes);
        to_hex(&digest[..4])
    }

    /// The raw key bytes.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key").field("id", &self.id()).finish()
    }
}

/// Lowercase hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Value of one ASCII hex digit; the caller has checked that it is one.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit.to_ascii_lowercase() - b'a' + 10,
    }
}
