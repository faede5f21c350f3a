//! The [`Vault`]: a key ring that seals and opens secrets, and loads its key from the
//! environment or a key file.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore as _;
use zeroize::{Zeroize as _, Zeroizing};

use crate::{Key, VaultError};

/// Version prefix of sealed values.
const PREFIX: &str = "v1:";
/// Length of an XChaCha20 nonce in bytes.
const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag in bytes.
const TAG_LEN: usize = 16;
/// Length of a key id in hex digits.
const KEY_ID_LEN: usize = 8;

/// Where the current key of a [`Vault`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// From the environment (the `env_value` given to [`Vault::load_or_create`]).
    Env,
    /// Read from this existing key file.
    File(PathBuf),
    /// Newly generated and written to this key file. The caller should warn: values sealed with
    /// this key are lost if the file is lost.
    Generated(PathBuf),
}

/// A key ring: the current key, which seals, and previous keys, which can still open values
/// sealed before a rotation.
///
/// `Debug` shows key ids only.
#[derive(Clone)]
pub struct Vault {
    current: Entry,
    previous: Vec<Entry>,
}

/// A key with its id computed once.
#[derive(Clone)]
struct Entry {
    id: String,
    key: Key,
}

impl Entry {
    fn new(key: Key) -> Entry {
        Entry { id: key.id(), key }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.bytes().into())
    }
}

impl Vault {
    /// Creates a vault that seals with `current` and opens values sealed with `current` or any
    /// of `previous`.
    pub fn new(current: Key, previous: Vec<Key>) -> Vault {
        Vault {
            current: Entry::new(current),
            previous: previous.into_iter().map(Entry::new).collect(),
        }
    }

    /// Loads the vault's keys.
    ///
    /// The current key is parsed from `env_value` if it is `Some` (even if empty, which is an
    /// error), giving [`KeySource::Env`]. Otherwise it is read from `key_file` if that exists
    /// ([`KeySource::File`]). Otherwise a new key is generated and written to `key_file`, creating
    /// its parent directories, with mode 0600 on unix ([`KeySource::Generated`]; the caller
    /// should warn). The file is never overwritten: if another process creates it first, its key
    /// is used.
    ///
    /// `previous` holds the previous keys as text (hex or base64, see [`Key::parse`]); blank
    /// entries are skipped.
    pub fn load_or_create(
        env_value: Option<&str>,
        key_file: &Path,
        previous: &[String],
    ) -> Result<(Vault, KeySource), VaultError> {
        let previous = previous
            .iter()
            .enumerate()
            .filter(|(_, text)| !text.trim().is_empty())
            .map(|(i, text)| Key::parse(text).map_err(|e| e.for_key(format!("previous key #{}", i + 1))))
            .collect::<Result<Vec<_>, _>>()?;
        let (current, source) = match env_value {
            Some(text) => (
                Key::parse(text).map_err(|e| e.for_key("key from the environment"))?,
                KeySource::Env,
            ),
            None => match read_key_file(key_file)? {
                Some(key) => (key, KeySource::File(key_file.to_path_buf())),
                None => {
                    let key = Key::generate();
                    match write_new_key_file(key_file, &key) {
                        Ok(()) => (key, KeySource::Generated(key_file.to_path_buf())),
                        // Another process created the file in the meantime: use its key.
                        Err(VaultError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                            match read_key_file(key_file)? {
                                Some(key) => (key, KeySource::File(key_file.to_path_buf())),
                                None => return Err(io_error(key_file, source)),
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
            },
        };
        Ok((Vault::new(current, previous), source))
    }

    /// The id of the current key (safe to log).
    pub fn key_id(&self) -> String {
        self.current.id.clone()
    }

    /// Seals `plaintext` with the current key for the place it is stored (`aad`, e.g.
    /// `"connection/demo/ionapi"`), so that a sealed value copied to another place fails to open.
    ///
    /// The result is `v1:<key id>:<base64url, no padding, of 24-byte nonce || ciphertext+tag>`.
    /// Each call uses a fresh random nonce, so sealing the same plaintext twice gives different
    /// values.
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption fails only for plaintexts of about 256 GiB or more");
        let mut data = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}:{}", self.current.id, URL_SAFE_NO_PAD.encode(&data))
    }

    /// Opens a value made by [`Vault::seal`] for the same `aad`, with the current or a previous
    /// key, whichever the value's key id names. Surrounding whitespace is ignored.
    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, VaultError> {
        let parsed = Sealed::parse(sealed)?;
        let mut candidates = std::iter::once(&self.current)
            .chain(&self.previous)
            .filter(|entry| entry.id == parsed.key_id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(VaultError::UnknownKey {
                key_id: parsed.key_id.to_string(),
            });
        }
        let (nonce, ciphertext) = parsed.data.split_at(NONCE_LEN);
        candidates
            .find_map(|entry| {
                entry
                    .cipher()
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: ciphertext,
                            aad: aad.as_bytes(),
                        },
                    )
                    .ok()
            })
            .ok_or(VaultError::Decrypt)
    }

    /// Like [`Vault::open`], for values that are UTF-8 text.
    pub fn open_string(&self, sealed: &str, aad: &str) -> Result<String, VaultError> {
        String::from_utf8(self.open(sealed, aad)?).map_err(|e| {
            e.into_bytes().zeroize();
            VaultError::malformed("the decrypted value is not UTF-8 text")
        })
    }

    /// Whether the value is sealed with a key other than the current one, so that it should be
    /// [resealed](Vault::reseal). Values that are not well-formed sealed values give `false`;
    /// [`Vault::open`] and [`Vault::reseal`] report what is wrong with them.
    pub fn is_stale(&self, sealed: &str) -> bool {
        Sealed::parse(sealed).is_ok_and(|parsed| parsed.key_id != self.current.id)
    }

    /// Opens the value with whichever known key sealed it and seals it again, for the same `aad`,
    /// with the current key.
    pub fn reseal(&self, sealed: &str, aad: &str) -> Result<String, VaultError> {
        let plaintext = Zeroizing::new(self.open(sealed, aad)?);
        Ok(self.seal(&plaintext, aad))
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let previous: Vec<&str> = self.previous.iter().map(|entry| entry.id.as_str()).collect();
        f.debug_struct("Vault")
            .field("current", &self.current.id)
            .field("previous", &previous)
            .finish()
    }
}

/// The parts of a sealed value.
struct Sealed<'a> {
    key_id: &'a str,
    /// Nonce followed by ciphertext and tag; at least `NONCE_LEN + TAG_LEN` bytes.
    data: Vec<u8>,
}

impl<'a> Sealed<'a> {
    /// Splits and checks a sealed value. Errors never repeat the value, which might be a
    /// plaintext secret stored where a sealed one was expected.
    fn parse(sealed: &'a str) -> Result<Sealed<'a>, VaultError> {
        let rest = sealed
            .trim()
            .strip_prefix(PREFIX)
            .ok_or_else(|| VaultError::malformed("expected `v1:<key id>:<data>`"))?;
        let (key_id, data) = rest
            .split_once(':')
            .ok_or_else(|| VaultError::malformed("expected `v1:<key id>:<data>`"))?;
        if key_id.len() != KEY_ID_LEN || !key_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(VaultError::malformed("the key id is not 8 lowercase hex digits"));
        }
        let data = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| VaultError::malformed("the data is not URL-safe base64 without padding"))?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(VaultError::malformed(format!(
                "the data is {} bytes, shorter than a nonce and tag ({} bytes)",
                data.len(),
                NONCE_LEN + TAG_LEN
            )));
        }
        Ok(Sealed { key_id, data })
    }
}

/// Wraps an I/O error with the path it concerns.
fn io_error(path: &Path, source: io::Error) -> VaultError {
    VaultError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and parses the key file; `None` if it does not exist.
fn read_key_file(path: &Path) -> Result<Option<Key>, VaultError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            Key::parse(&text)
                .map(Some)
                .map_err(|e| e.for_key(format!("key in file {}", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Writes `key` to a new file at `path` (mode 0600 on unix), creating parent directories
/// (mode 0700 on unix). Fails with `AlreadyExists` rather than overwrite an existing file.
fn write_new_key_file(path: &Path, key: &Key) -> Result<(), VaultError> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(|e| io_error(parent, e))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| io_error(path, e))?;
    let text = Zeroizing::new(key.to_text());
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        // Do not leave a truncated key file behind; the write error is the one to report.
        let _ = fs::remove_file(path);
        return Err(io_error(path, e));
    }
    Ok(())
}
