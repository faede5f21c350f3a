//! API authentication: bearer tokens with scopes (`read`, `read-write`, `admin`, and
//! `read-model` tokens for one connection's read models), an admin token created on first start,
//! token management, and a limit on failed attempts per client address.
//!
//! Tokens look like `ebt_<id>.<secret>`; only a SHA-256 of the secret is stored, so a token is
//! shown once, when it is created.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{ApiToken, Store};

use crate::error::ApiError;
use crate::routes::AppState;

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

    fn blocked(&self, ip: Option<IpAddr>) -> Option<Duration> {
        let ip = ip?;
        let f = self.failures.lock().expect("lock");
        let (since, n) = f.get(&ip)?;
        let left = FAILURE_WINDOW.checked_sub(since.elapsed())?;
        (*n >= MAX_FAILURES).then_some(left)
    }

    fn fail(&self, ip: Option<IpAddr>) {
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

fn sha256_hex(s: &str) -> String {
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
fn split(token: &str) -> (String, &str) {
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

/// What a request needs.
enum Need {
    Public,
    Read {
        connection: Option<String>,
        read_model: bool,
    },
    Write {
        connection: Option<String>,
    },
    /// The channel of a self-hosted connector (connector tokens, bound to the connection).
    Connector {
        connection: Option<String>,
    },
    Admin,
}

/// The id of the token a request was authenticated with (a request extension).
#[derive(Debug, Clone)]
pub struct AuthToken(pub String);

fn need(method: &Method, path: &str) -> Need {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segs.first() != Some(&"api") {
        return Need::Public; // health, metrics, Studio assets, webhooks (own credentials)
    }
    if segs.get(1) == Some(&"tokens") {
        return Need::Admin;
    }
    let connection = (segs.get(1) == Some(&"connections"))
        .then(|| segs.get(2).map(|s| s.to_string()))
        .flatten();
    if segs.get(3) == Some(&"connector") {
        return Need::Connector { connection };
    }
    // Managing connections (create, delete, credentials, bundles) is for admins.
    let manage = segs.get(1) == Some(&"connections")
        && ((*method == Method::POST && segs.len() == 2)
            || (*method == Method::DELETE && segs.len() == 3)
            || (segs.len() == 4 && matches!(segs[3], "mdp" | "ionapi" | "bundle") && *method != Method::GET));
    if manage {
        return Need::Admin;
    }
    // Read-model tokens also read the documents describing what they may read.
    let read_model = matches!(segs.get(3), Some(&"read-models" | &"schemas" | &"openapi.json"));
    if matches!(*method, Method::GET | Method::HEAD) {
        Need::Read { connection, read_model }
    } else {
        Need::Write { connection }
    }
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"erp-bridge\"")],
        Json(json!({"error": {"code": "unauthorized", "message": message}})),
    )
        .into_response()
}

fn forbidden(message: String) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": {"code": "forbidden", "message": message}})),
    )
        .into_response()
}

/// The middleware guarding `/api`.
pub async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let need = need(req.method(), req.uri().path());
    if !st.auth.enabled || matches!(need, Need::Public) {
        return next.run(req).await;
    }
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(left) = st.auth.blocked(ip) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, left.as_secs().max(1).to_string())],
            Json(json!({"error": {"code": "too_many_failures", "message": "too many failed authentication attempts; retry later"}})),
        )
            .into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        st.auth.fail(ip);
        return unauthorized("an API token is required: send `Authorization: Bearer <token>`");
    };
    let (id, secret) = split(presented);
    let token = match st.store.token(&id).await {
        Ok(t) => t,
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    };
    let valid = token
        .filter(|t| t.revoked_at.is_none())
        .filter(|t| constant_time_eq(t.hash.as_bytes(), sha256_hex(secret).as_bytes()));
    let Some(token) = valid else {
        st.auth.fail(ip);
        tracing::warn!(token_id = %id, "API call refused: unknown, wrong or revoked token");
        return unauthorized("the API token is unknown, wrong or revoked");
    };
    let scope = Scope::parse(&token.scope).unwrap_or(Scope::ReadModel);
    let target = match &need {
        Need::Read { connection, .. } | Need::Write { connection } | Need::Connector { connection } => {
            connection.clone()
        }
        _ => None,
    };
    if let Some(allowed) = &token.connection {
        if target.as_deref() != Some(allowed.as_str()) {
            return forbidden(format!("this token is restricted to connection `{allowed}`"));
        }
    }
    let ok = match (&need, scope) {
        (Need::Connector { .. }, s) => s == Scope::Connector,
        (_, Scope::Connector) => false,
        (_, Scope::Admin) => true,
        (Need::Admin, _) => false,
        (Need::Read { read_model, .. }, Scope::ReadModel) => *read_model,
        (Need::Read { .. }, _) => true,
        (Need::Write { .. }, Scope::ReadWrite) => true,
        (Need::Write { .. }, _) => false,
        (Need::Public, _) => true,
    };
    if !ok {
        return forbidden(format!(
            "a `{}` token cannot {} {}",
            scope.as_str(),
            req.method(),
            req.uri().path()
        ));
    }
    let mut req = req;
    req.extensions_mut().insert(AuthToken(token.id.clone()));
    next.run(req).await
}

/// Compare secrets without an early exit that would reveal how much matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Token management routes (admin only, enforced by the middleware).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tokens", get(list).post(create))
        .route("/api/tokens/{id}", delete(revoke))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scope: String,
    #[serde(default)]
    connection: Option<String>,
}

async fn create(State(st): State<AppState>, body: axum::body::Bytes) -> Result<impl IntoResponse, ApiError> {
    let t: NewToken = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: {e}; expected {{\"name\", \"scope\": read|read-write|admin|read-model, \"connection\"?}}"
        ))
    })?;
    if t.name.trim().is_empty() || t.name.len() > 100 {
        return Err(ApiError::BadRequest("name: expected 1 to 100 characters".into()));
    }
    let scope = Scope::parse(&t.scope).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "scope: expected read, read-write, admin or read-model, got {:?}",
            t.scope
        ))
    })?;
    if scope == Scope::Connector {
        return Err(ApiError::BadRequest(
            "scope: connector tokens come with a connector bundle (POST /api/connections/{c}/bundle)".into(),
        ));
    }
    if let Some(c) = &t.connection {
        if !st.connections.contains_key(c) {
            return Err(ApiError::BadRequest(format!("connection: `{c}` does not exist")));
        }
    }
    if scope == Scope::ReadModel && t.connection.is_none() {
        return Err(ApiError::BadRequest(
            "connection: required for read-model tokens".into(),
        ));
    }
    if scope == Scope::Admin && t.connection.is_some() {
        return Err(ApiError::BadRequest(
            "connection: admin tokens cannot be restricted".into(),
        ));
    }
    let (token, text) = create_token(&st.store, t.name.trim(), scope, t.connection.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": token.id, "name": token.name, "scope": token.scope, "connection": token.connection,
                    "token": text, "note": "shown once; store it now"}),
        ),
    ))
}

async fn list(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "tokens": st.store.tokens().await? })))
}

async fn revoke(State(st): State<AppState>, Path(id): Path<String>) -> Result<impl IntoResponse, ApiError> {
    if st.store.revoke_token(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "token `{id}` does not exist or is revoked already"
        )))
    }
}
