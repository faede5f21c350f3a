//! API authentication: bearer tokens with scopes (`read`, `read-write`, `admin`, and
//! `read-model` tokens for one connection's read models), an admin token created on first start,
//! and the counters behind the limit on failed attempts (per source and per credential, see
//! [`Auth`]). The middleware that
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

/// Authentication settings and the failure counters.
///
/// Only failures are counted and only failures are throttled: a request with valid
/// credentials is checked first and always served, so nobody can lock others out by failing
/// on purpose (from behind the same proxy, or with someone's token id). Failures count per
/// source address and per presented credential ([`Attempt::Token`]: the `ebt_<id>` part of a
/// token; [`Attempt::Webhook`]: a connection's webhook), and once either has failed
/// [`MAX_FAILURES`] times in [`FAILURE_WINDOW`], further failures are answered 429.
pub struct Auth {
    /// Whether `/api` needs tokens at all (off only for local experiments).
    pub enabled: bool,
    by_source: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    by_credential: Mutex<HashMap<String, (Instant, u32)>>,
    verified: VerifiedTokens,
}

/// Failed attempts allowed per source address, and per presented credential, in
/// [`FAILURE_WINDOW`] before further failures are answered 429.
pub const MAX_FAILURES: u32 = 20;
/// The window failures are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Sources and credentials tracked at most; beyond, new ones are not counted until old
/// windows expire (the memory an attacker can make us use is bounded).
const MAX_TRACKED: usize = 10_000;

/// What a failed attempt presented, besides its source.
#[derive(Debug, Clone, Copy)]
pub enum Attempt<'a> {
    /// No credentials at all: only the source counts.
    Nothing,
    /// An API token with this id (the `ebt_<id>` part; `bootstrap` for other forms).
    Token(&'a str),
    /// Credentials for the webhooks of this connection.
    Webhook(&'a str),
}

impl Attempt<'_> {
    fn key(&self) -> Option<String> {
        match self {
            Attempt::Nothing => None,
            Attempt::Token(id) => Some(format!("token:{id}")),
            Attempt::Webhook(c) => Some(format!("webhook:{c}")),
        }
    }
}

fn count<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, (Instant, u32)>>, key: K) -> u32 {
    let mut m = map.lock().expect("lock");
    if m.len() >= MAX_TRACKED && !m.contains_key(&key) {
        m.retain(|_, (since, _)| since.elapsed() <= FAILURE_WINDOW);
        if m.len() >= MAX_TRACKED {
            return 0;
        }
    }
    let e = m.entry(key).or_insert((Instant::now(), 0));
    if e.0.elapsed() > FAILURE_WINDOW {
        *e = (Instant::now(), 0);
    }
    e.1 = e.1.saturating_add(1);
    e.1
}

fn left<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, (Instant, u32)>>, key: &K) -> Option<Duration> {
    let m = map.lock().expect("lock");
    let (since, n) = m.get(key)?;
    let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
    (*n > MAX_FAILURES).then_some(left)
}

impl Auth {
    /// Authentication on or off.
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            by_source: Mutex::new(HashMap::new()),
            by_credential: Mutex::new(HashMap::new()),
            verified: VerifiedTokens::default(),
        }
    }

    /// Count a failed attempt from `ip` presenting `what`. Returns how long to wait when the
    /// source or the credential failed too often in its window (answer 429), else `None`
    /// (answer 401).
    pub fn fail(&self, ip: Option<IpAddr>, what: Attempt<'_>) -> Option<Duration> {
        if let Some(ip) = ip {
            count(&self.by_source, ip);
        }
        if let Some(key) = what.key() {
            count(&self.by_credential, key.clone());
            if let Some(wait) = left(&self.by_credential, &key) {
                return Some(wait);
            }
        }
        ip.and_then(|ip| left(&self.by_source, &ip))
    }
}

/// The value of an `Authorization` header with the given scheme (compared without regard to
/// case, as RFC 9110 says), trimmed; `None` for another scheme.
pub fn credentials<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.trim_start().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// How long a verified token is taken as valid without asking the store again. A token revoked
/// through this process is refused at once ([`Auth::forget_verified`]); one revoked through
/// another replica of a shared store, within this time.
const VERIFIED_FOR: Duration = Duration::from_secs(2);
/// At most this many verified tokens are remembered (only valid tokens are, so strangers cannot
/// fill it); beyond it the oldest half is dropped.
const MAX_VERIFIED: usize = 10_000;

/// Tokens verified lately, by the SHA-256 of the presented text: a request with the same token
/// skips the store lookup (a round trip to the database on every API call otherwise).
#[derive(Default)]
struct VerifiedTokens {
    inner: Mutex<Verified>,
}

#[derive(Default)]
struct Verified {
    /// Bumped by every [`Auth::forget_verified`]: a lookup that began before it is not remembered.
    generation: u64,
    tokens: HashMap<[u8; 32], (Instant, ApiToken)>,
}

impl Auth {
    /// The stored, unrevoked token whose text is `presented` (`None`: unknown, wrong or
    /// revoked), from the tokens verified within [`VERIFIED_FOR`] or else from the store.
    pub(crate) async fn verify(&self, store: &Store, presented: &str) -> Result<Option<ApiToken>, store::StoreError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let generation = {
            let v = self.verified.inner.lock().expect("lock");
            if let Some((at, token)) = v.tokens.get(&digest) {
                if at.elapsed() < VERIFIED_FOR {
                    return Ok(Some(token.clone()));
                }
            }
            v.generation
        };
        let (id, secret) = split(presented);
        let valid = store
            .token(&id)
            .await?
            .filter(|t| t.revoked_at.is_none())
            .filter(|t| constant_time_eq(t.hash.as_bytes(), sha256_hex(secret).as_bytes()));
        if let Some(token) = &valid {
            // The last-used time, at most once per VERIFIED_FOR per token (cached hits skip it).
            store.touch_token(&token.id).await?;
            let mut v = self.verified.inner.lock().expect("lock");
            if v.generation == generation {
                if v.tokens.len() >= MAX_VERIFIED {
                    v.tokens.retain(|_, (at, _)| at.elapsed() < VERIFIED_FOR / 2);
                }
                v.tokens.insert(digest, (Instant::now(), token.clone()));
            }
        }
        Ok(valid)
    }

    /// Forget every verified token (after any request that may have changed tokens, such as a
    /// revocation or a connection's deletion), including lookups still under way.
    pub(crate) fn forget_verified(&self) {
        let mut v = self.verified.inner.lock().expect("lock");
        v.generation += 1;
        v.tokens.clear();
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
    create_expiring_token(store, name, scope, connection, None).await
}

/// Create a token refused after `expires_at` (if any); returns it as stored and its one-time text.
pub async fn create_expiring_token(
    store: &Store,
    name: &str,
    scope: Scope,
    connection: Option<&str>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
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
        expires_at: expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        last_used_at: None,
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
                    expires_at: None,
                    last_used_at: None,
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

/// When an expiring token stopped being accepted, if it has (an unreadable expiry counts as
/// expired: a token is never accepted longer than meant).
pub(crate) fn expired(token: &ApiToken, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let at = token.expires_at.as_deref()?;
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) if t > now => None,
        _ => Some(at.to_string()),
    }
}

/// The id of the token a request was authenticated with (a request extension).
#[derive(Debug, Clone)]
pub struct AuthToken(pub String);

/// The verified token a request was authenticated with, for the audit trail (a request
/// extension set by the middleware next to [`AuthToken`]).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's public id.
    pub id: String,
    /// The name it was given when created.
    pub name: String,
}

impl Caller {
    /// How the audit trail names it: `token:<id> (<name>)`.
    pub fn audit(&self) -> String {
        format!("token:{} ({})", self.id, self.name)
    }
}

/// Extractor: who makes a change, as the audit trail (`created_by`, `deployed_by`) records it:
/// the verified token ([`Caller::audit`]), or `api` when authentication is off.
#[derive(Debug, Clone)]
pub struct By(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for By {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let by = parts.extensions.get::<Caller>().map(Caller::audit);
        Ok(By(by.unwrap_or_else(|| "api".into())))
    }
}

/// Compare secrets without an early exit that would reveal how much matched (`subtle`; only
/// the lengths may show).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}
