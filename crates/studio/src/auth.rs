//! API authentication: bearer tokens with scopes (`read`, `read-write`, `admin`, and
//! `read-model` tokens for one connection's read models), an admin token created on first start,
//! and the counter behind the limit on failed attempts per client address. The middleware that
//! applies them is `routes/middleware.rs`; token management is `routes/tokens.rs`.
//!
//! Tokens look like `ebt_<id>.<secret>`; only a SHA-256 of the secret is stored, so a token is
//! shown once, when it is created.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use sha2::{Digest, Sha256};
use store::{ApiToken, Store};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Read everything (of its connection, if restricted).
    Read,
    /// Read and change (mappings, commands, re-export).
    ReadWrite,
    /// Everything, tokens included.
    Admin,
    /// Only the read models and schemas of one connection.
    ReadModel,
    /// Only the channel of one self-hosted connection's connector (comes with its bundle).
    Connector,
}

impl Scope {
    /// Parse the written form.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "read-write" => Some(Scope::ReadWrite),
            "admin" => Some(Scope::Admin),
            "read-model" => Some(Scope::ReadModel),
            "connector" => Some(Scope::Connector),
            _ => None,
        }
    }

    /// The written form.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::ReadWrite => "read-write",
            Scope::Admin => "admin",
            Scope::ReadModel => "read-model",
            Scope::Connector => "connector",
        }
    }
}

/// Authentication settings and the failure counter.
pub struct Auth {
    /// Whether `/api` needs tokens at all (off only for local experiments).
    pub enabled: bool,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Failed attempts allowed per client address and minute before answering 429.
const MAX_FAILURES: u32 = 20;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl Auth {
    /// Authentication on or off.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` must still wait, when it failed too often in the current window.
    pub(crate) fn blocked(&self, ip: Option<IpAddr>) -> Option<Duration> {
        let ip = ip?;
        let f = self.failures.lock().expect("lock");
        let (since, n) = f.get(&ip)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*n >= MAX_FAILURES).then_some(left)
    }

    /// Count a failed attempt of `ip`.
    pub(crate) fn fail(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let mut f = self.failures.lock().expect("lock");
        let e = f.entry(ip).or_insert((Instant::now(), 0));
        if e.0.elapsed() > FAILURE_WINDOW {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
        if f.len() > 10_000 {
            f.retain(|_, (since, _)| since.elapsed() <= FAILURE_WINDOW);
        }
    }
}

/// The SHA-256 of `s` in lower-case hexadecimal (what the store keeps of a token's secret).
pub(crate) fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` random hexadecimal characters (tokens, secrets).
pub fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect()
}

/// Split a presented token into (id, secret). Tokens not of the `ebt_<id>.<secret>` form are
/// the configured bootstrap token.
pub(crate) fn split(token: &str) -> (String, &str) {
    match token.strip_prefix("ebt_").and_then(|t| t.split_once('.')) {
        Some((id, secret)) => (id.to_string(), secret),
        None => ("bootstrap".to_string(), token),
    }
}

/// Create a token; returns it as stored and its one-time text.
pub async fn create_token(
    store: &Store,
    name: &str,
    scope: Scope,
    connection: Option<&str>,
) -> Result<(ApiToken, String), store::StoreError> {
    let id = random_hex(12);
    let secret = random_hex(40);
    let t = ApiToken {
        id: id.clone(),
        name: name.to_string(),
        scope: scope.as_str().to_string(),
        connection: connection.map(str::to_string),
        hash: sha256_hex(&secret),
        created_at: String::new(),
        revoked_at: None,
    };
    store.create_token(&t).await?;
    Ok((t, format!("ebt_{id}.{secret}")))
}

/// On first start, make sure an admin token exists: the configured one, or a new one whose text
/// is returned (to print once).
pub async fn bootstrap(store: &Store, configured: Option<&str>) -> Result<Option<String>, store::StoreError> {
    if let Some(token) = configured {
        let (id, secret) = split(token);
        if store.token(&id).await?.is_none() {
            store
                .create_token(&ApiToken {
                    id,
                    name: "bootstrap admin (configured)".into(),
                    scope: "admin".into(),
                    connection: None,
                    hash: sha256_hex(secret),
                    created_at: String::new(),
                    revoked_at: None,
                })
                .await?;
        }
        return Ok(None);
    }
    if store.has_admin_token().await? {
        return Ok(None);
    }
    let (_, text) = create_token(store, "admin (created on first start)", Scope::Admin, None).await?;
    Ok(Some(text))
}

/// The id of the token a request was authenticated with (a request extension).
#[derive(Debug, Clone)]
pub struct AuthToken(pub String);

/// Compare secrets without an early exit that would reveal how much matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
