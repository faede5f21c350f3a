//! The simulated ION API gateway over HTTP (axum): OAuth2 token and revoke endpoints, MI REST
//! v1 (matrix options) and v2 (single GET and bulk POST), the Metadata Publisher, and the
//! unauthenticated admin routes (health, fault injection, webhook subscriptions).

// Handlers short-circuit with a ready `Response` as the error; boxing it buys nothing here.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::mi::{self, MiCall, MiReply};
use crate::modes::{MdpTextTypes, SimModes};
use crate::{lock, Faults, Inner, Simulator, SubscriptionId, WebhookAuth, WebhookSubscription, MI_USER};

/// Default `maxrecs` of MI calls, like M3.
const DEFAULT_MAXRECS: usize = 100;

/// Issued tokens.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    /// Access token -> expiry.
    access: HashMap<String, Instant>,
    /// Valid refresh tokens.
    refresh: HashSet<String>,
}

impl AuthState {
    fn issue(&mut self, lifetime: Duration, refresh: Option<String>) -> (String, String) {
        let now = Instant::now();
        self.access.retain(|_, exp| *exp > now);
        let access = random_token(40);
        self.access.insert(access.clone(), now + lifetime);
        let refresh = refresh.unwrap_or_else(|| random_token(32));
        self.refresh.insert(refresh.clone());
        (access, refresh)
    }
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Stores faults; `expire_tokens_now` acts once.
pub(crate) fn set_faults(inner: &Inner, mut faults: Faults) {
    if faults.expire_tokens_now {
        let mut auth = lock(&inner.auth);
        let n = auth.access.len();
        auth.access.clear();
        tracing::info!(expired = n, "all access tokens expired by fault injection");
        faults.expire_tokens_now = false;
    }
    faults.error_rate = if faults.error_rate.is_finite() {
        faults.error_rate.clamp(0.0, 1.0)
    } else {
        0.0
    };
    faults.drop_webhooks = if faults.drop_webhooks.is_finite() {
        faults.drop_webhooks.clamp(0.0, 1.0)
    } else {
        0.0
    };
    inner.hub.set_drop_rate(faults.drop_webhooks);
    tracing::info!(?faults, "faults set");
    *lock(&inner.faults) = faults;
}

/// The router of the whole simulated gateway.
pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/admin/health", get(health))
        .route("/admin/faults", get(get_faults).post(post_faults))
        .route("/admin/modes", get(get_modes).post(post_modes))
        .route(
            "/admin/webhooks",
            get(list_webhooks).post(post_webhook).delete(delete_webhooks),
        )
        .route("/admin/webhooks/{id}", axum::routing::delete(delete_webhook))
        .route("/{tenant}/as/token.oauth2", post(token))
        .route("/{tenant}/as/revoke_token.oauth2", post(revoke))
        .route("/{tenant}/M3/m3api-rest/execute/{*rest}", get(v1_execute))
        .route(
            "/{tenant}/M3/m3api-rest/v2/execute/{program}/{transaction}",
            get(v2_get),
        )
        .route("/{tenant}/M3/m3api-rest/v2/execute", post(v2_bulk))
        .route("/{tenant}/M3/mdprest/les/getTables", get(mdp_tables))
        .route(
            "/{tenant}/M3/mdprest/les/getColumnsUsedByTable/{table}/{component}",
            get(mdp_columns),
        )
        .route(
            "/{tenant}/M3/mdprest/les/getIndexKeys/{index}/{component}",
            get(mdp_index_keys),
        )
        .fallback(not_found)
        .with_state(inner)
}

type S = State<Arc<Inner>>;

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": "not_found", "message": "No API matches the request path"}),
    )
}

async fn health(State(inner): S) -> Response {
    let items = {
        let mut db = crate::write(&inner.db);
        db.settle();
        db.tables.get("MITMAS").map_or(0, |t| t.rows.len())
    };
    json_response(
        StatusCode::OK,
        json!({"status": "UP", "tenant": inner.cfg.tenant, "items": items}),
    )
}

async fn get_faults(State(inner): S) -> Response {
    json_response(StatusCode::OK, json!(*lock(&inner.faults)))
}

async fn post_faults(State(inner): S, body: Bytes) -> Response {
    match serde_json::from_slice::<Faults>(&body) {
        Ok(f) => {
            set_faults(&inner, f);
            json_response(StatusCode::OK, json!(*lock(&inner.faults)))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "message": e.to_string()}),
        ),
    }
}

async fn get_modes(State(inner): S) -> Response {
    json_response(StatusCode::OK, json!(simulator(&inner).modes()))
}

/// `POST /admin/modes`: the whole [`SimModes`] JSON (missing fields default, unknown ones 400).
async fn post_modes(State(inner): S, body: Bytes) -> Response {
    match serde_json::from_slice::<SimModes>(&body) {
        Ok(m) => {
            let sim = simulator(&inner);
            sim.set_modes(m);
            json_response(StatusCode::OK, json!(sim.modes()))
        }
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "message": format!("modes: {e}")}),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Webhook subscriptions (admin)

/// A subscription as the admin routes show it (secrets masked).
fn webhook_json(id: SubscriptionId, sub: &WebhookSubscription) -> Value {
    let auth = match &sub.auth {
        WebhookAuth::None => json!({"type": "none"}),
        WebhookAuth::Basic { user, .. } => json!({"type": "basic", "user": user, "password": "***"}),
        WebhookAuth::Bearer { .. } => json!({"type": "bearer", "token": "***"}),
    };
    json!({"id": id, "subscription": sub.subscription, "url": sub.url, "auth": auth})
}

fn simulator(inner: &Arc<Inner>) -> Simulator {
    Simulator { inner: inner.clone() }
}

async fn list_webhooks(State(inner): S) -> Response {
    let list: Vec<Value> = simulator(&inner)
        .subscriptions()
        .iter()
        .map(|(id, sub)| webhook_json(*id, sub))
        .collect();
    json_response(StatusCode::OK, json!({ "list": list }))
}

async fn post_webhook(State(inner): S, body: Bytes) -> Response {
    let sub = match serde_json::from_slice::<WebhookSubscription>(&body) {
        Ok(s) => s,
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "message": e.to_string()}),
            )
        }
    };
    match simulator(&inner).try_subscribe(sub.clone()) {
        Ok(id) => json_response(StatusCode::CREATED, webhook_json(id, &sub)),
        Err(e) => json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "message": e.to_string()}),
        ),
    }
}

fn unsubscribe_answer(inner: &Arc<Inner>, id: &str) -> Response {
    match id.trim().parse::<u64>() {
        Ok(n) if simulator(inner).unsubscribe(SubscriptionId(n)) => StatusCode::NO_CONTENT.into_response(),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "message": format!("No webhook subscription {id}")}),
        ),
    }
}

async fn delete_webhook(State(inner): S, Path(id): Path<String>) -> Response {
    unsubscribe_answer(&inner, &id)
}

/// `DELETE /admin/webhooks?id=N` removes one, without `id` all of them.
async fn delete_webhooks(State(inner): S, RawQuery(q): RawQuery) -> Response {
    if let Some((_, id)) = query_pairs(q.as_deref()).into_iter().find(|(k, _)| k == "id") {
        return unsubscribe_answer(&inner, &id);
    }
    let sim = simulator(&inner);
    let ids: Vec<SubscriptionId> = sim.subscriptions().into_iter().map(|(id, _)| id).collect();
    let removed = ids.into_iter().filter(|id| sim.unsubscribe(*id)).count();
    json_response(StatusCode::OK, json!({ "removed": removed }))
}

// ---------------------------------------------------------------------------------------
// OAuth2

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r = json_response(status, json!({"error": error, "error_description": description}));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn form_of(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Decodes standard base64 (padding optional); `None` on bad input.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.trim().bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Client credentials from HTTP Basic, else from the form.
fn client_credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String)> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        if let Some(b) = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")) {
            let decoded = String::from_utf8(base64_decode(b)?).ok()?;
            let (id, secret) = decoded.split_once(':')?;
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            // RFC 6749 says form-encode before Basic; most clients do not. Accept both.
            return Some((
                if id.contains('%') { dec(id) } else { id.to_string() },
                if secret.contains('%') {
                    dec(secret)
                } else {
                    secret.to_string()
                },
            ));
        }
    }
    Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone()))
}

fn check_client(inner: &Inner, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(), Response> {
    match client_credentials(headers, form) {
        Some((id, secret)) if id == inner.cfg.client_id && secret == inner.cfg.client_secret => Ok(()),
        Some(_) => Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client or client credentials",
        )),
        None => Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication required",
        )),
    }
}

async fn token(State(inner): S, Path(tenant): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if tenant != inner.cfg.tenant {
        return not_found().await;
    }
    let form = form_of(&body);
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing grant_type parameter",
        );
    }
    if grant != "password" && grant != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Unsupported grant type: {grant}"),
        );
    }
    if let Err(r) = check_client(&inner, &headers, &form) {
        tracing::info!("token request with invalid client");
        return r;
    }
    let lifetime = inner.cfg.token_lifetime;
    let (access, refresh) = if grant == "password" {
        let user = form.get("username").map(String::as_str).unwrap_or("");
        let pass = form.get("password").map(String::as_str).unwrap_or("");
        if user != inner.cfg.saak || pass != inner.cfg.sask {
            tracing::info!("token request with invalid service account");
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Authentication failed: invalid service account access key or secret key",
            );
        }
        lock(&inner.auth).issue(lifetime, None)
    } else {
        let r = form.get("refresh_token").cloned().unwrap_or_default();
        let mut auth = lock(&inner.auth);
        if !auth.refresh.contains(&r) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "Refresh token is unknown, expired or revoked",
            );
        }
        auth.issue(lifetime, Some(r))
    };
    tracing::debug!(grant, "token issued");
    let mut r = json_response(
        StatusCode::OK,
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "refresh_token": refresh,
        }),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn revoke(State(inner): S, Path(tenant): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if tenant != inner.cfg.tenant {
        return not_found().await;
    }
    let form = form_of(&body);
    if client_credentials(&headers, &form).is_some() {
        if let Err(r) = check_client(&inner, &headers, &form) {
            return r;
        }
    }
    let Some(tok) = form.get("token") else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Missing token parameter");
    };
    let hint = form.get("token_type_hint").map(String::as_str).unwrap_or("");
    let mut auth = lock(&inner.auth);
    let removed = match hint {
        "refresh_token" => auth.refresh.remove(tok) || auth.access.remove(tok).is_some(),
        _ => auth.access.remove(tok).is_some() || auth.refresh.remove(tok),
    };
    tracing::debug!(removed, "token revoked");
    // RFC 7009: revoking an unknown token is not an error.
    StatusCode::OK.into_response()
}

// ---------------------------------------------------------------------------------------
// Gateway checks shared by MI and MDP

/// Which part of the gateway a call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Mi,
    Mdp,
}

/// HTTP Basic credentials of a request, if it carries any.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let b = v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic "))?;
    let decoded = String::from_utf8(base64_decode(b)?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

async fn gate(inner: &Inner, tenant: &str, headers: &HeaderMap, api: Api) -> Result<(), Response> {
    if tenant != inner.cfg.tenant {
        return Err(not_found().await);
    }
    let faults = lock(&inner.faults).clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    // On-premises MDP: HTTP Basic with the configured credentials, besides the bearer token.
    let basic_ok = match (&inner.cfg.mdp_basic_auth, api) {
        (Some((user, pass)), Api::Mdp) => match basic_credentials(headers) {
            Some((u, p)) if &u == user && &p == pass => true,
            Some(_) => {
                let mut r = json_response(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "unauthorized", "error_description": "Invalid user name or password"}),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"mdprest\""),
                );
                return Err(r);
            }
            None => false,
        },
        _ => false,
    };
    if !basic_ok {
        check_bearer(inner, headers)?;
    }
    if let Some(secs) = faults.throttle {
        let mut r = json_response(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"error": "quota_exceeded", "message": "Rate limit quota violation. Quota limit exceeded."}),
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Err(r);
    }
    if faults.mdp_down && api == Api::Mdp {
        return Err(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "service_unavailable", "message": "Metadata Publisher is not available"}),
        ));
    }
    if let Some(ms) = faults.gateway_timeout {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return Err(json_response(
            StatusCode::GATEWAY_TIMEOUT,
            json!({"error": "gateway_timeout", "message": "The target endpoint did not respond within the gateway timeout"}),
        ));
    }
    if faults.error_rate > 0.0 && rand::thread_rng().gen_bool(faults.error_rate) {
        return Err(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "internal_server_error", "message": "Simulated M3 failure"}),
        ));
    }
    Ok(())
}

/// The bearer-token check of the gateway (401 when missing, unknown or expired).
fn check_bearer(inner: &Inner, headers: &HeaderMap) -> Result<(), Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let unauthorized = |why: &str| {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_token", "error_description": why}),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        r
    };
    let Some(tok) = bearer else {
        return Err(unauthorized("Missing bearer token"));
    };
    match lock(&inner.auth).access.get(tok) {
        None => return Err(unauthorized("Invalid or revoked access token")),
        Some(exp) if *exp <= Instant::now() => return Err(unauthorized("Access token expired")),
        Some(_) => {}
    }
    Ok(())
}

fn bad_request(message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({"code": "BAD_REQUEST", "description": message}),
    )
}

/// Pairs of a raw query string, percent-decoded.
fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// MI call options common to v1 and v2.
#[derive(Debug, Clone)]
struct Options {
    maxrecs: usize,
    returncols: Option<Vec<String>>,
    excludempty: bool,
    cono: u32,
    righttrim: bool,
}

impl Options {
    fn new(inner: &Inner) -> Options {
        Options {
            maxrecs: DEFAULT_MAXRECS,
            returncols: None,
            excludempty: false,
            cono: inner.cfg.company,
            righttrim: true,
        }
    }

    /// Applies one option; `Err` names the problem, `Ok(false)` if the option is unknown.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let bool_of = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(format!("Invalid boolean '{other}' for option {key}")),
        };
        match key.to_ascii_lowercase().as_str() {
            "maxrecs" | "maxreturnedrecords" => {
                self.maxrecs = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("Invalid value '{value}' for option maxrecs"))?
            }
            "returncols" => {
                let cols: Vec<String> = value
                    .split(',')
                    .map(|c| c.trim().to_ascii_uppercase())
                    .filter(|c| !c.is_empty())
                    .collect();
                self.returncols = (!cols.is_empty()).then_some(cols);
            }
            "excludempty" | "excludeemptyvalues" => self.excludempty = bool_of(value)?,
            "righttrim" => self.righttrim = bool_of(value)?,
            "cono" => {
                self.cono = value
                    .trim()
                    .parse()
                    .map_err(|_| format!("Invalid value '{value}' for option cono"))?
            }
            "divi" | "format" | "dateformat" | "metadata" | "extendedresult" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The `execute_then_timeout` fault, after an MI call has run: wait, then the gateway's 504.
async fn timeout_after_execution(inner: &Inner) -> Option<Response> {
    let ms = lock(&inner.faults).execute_then_timeout?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Some(json_response(
        StatusCode::GATEWAY_TIMEOUT,
        json!({"error": "gateway_timeout", "message": "The target endpoint did not respond within the gateway timeout"}),
    ))
}

fn run(inner: &Inner, program: &str, transaction: &str, inputs: &BTreeMap<String, String>, opts: &Options) -> MiReply {
    let call = MiCall {
        program,
        transaction,
        inputs,
        cono: opts.cono,
        maxrecs: opts.maxrecs,
        user: MI_USER,
    };
    let reply = if !mi::reads_only(program, transaction) {
        mi::execute(&mut crate::write(&inner.db), &call)
    } else {
        // Reads run beside each other, as at a real gateway; writes that are due land first.
        if crate::read(&inner.db).has_due() {
            crate::write(&inner.db).settle();
        }
        mi::execute_read(&crate::read(&inner.db), &call)
    };
    let mut counts = lock(&inner.mi_calls);
    let c = counts
        .entry((program.to_string(), transaction.to_string()))
        .or_insert((0, 0));
    c.0 += 1;
    c.1 += reply.records.len() as u64;
    reply
}

/// Indices of the output fields to return (`returncols`).
fn selected(reply: &MiReply, cols: Option<&Vec<String>>) -> Vec<usize> {
    (0..reply.fields.len())
        .filter(|&i| cols.is_none_or(|c| c.contains(&reply.fields[i].name)))
        .collect()
}

fn pad(v: &str, len: usize) -> String {
    format!("{v:<len$}")
}

// ---------------------------------------------------------------------------------------
// MI v1

async fn v1_execute(
    State(inner): S,
    Path((tenant, rest)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &tenant, &headers, Api::Mi).await {
        return r;
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() != 2 {
        return not_found().await;
    }
    let mut opts = Options::new(&inner);
    let mut names = Vec::new();
    for seg in segments {
        let mut parts = seg.split(';');
        names.push(parts.next().unwrap_or_default().to_string());
        for p in parts.filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            match opts.set(k, v) {
                Ok(_) => {}
                Err(e) => return bad_request(&e),
            }
        }
    }
    let inputs: BTreeMap<String, String> = query_pairs(q.as_deref())
        .into_iter()
        .map(|(k, v)| (k.to_ascii_uppercase(), v))
        .collect();
    let (program, transaction) = (&names[0], &names[1]);
    let reply = run(&inner, program, transaction, &inputs, &opts);
    if let Some(r) = timeout_after_execution(&inner).await {
        return r;
    }
    Json(v1_body(program, transaction, &reply, &opts)).into_response()
}

fn v1_nok(e: &mi::Nok) -> Value {
    json!({
        "@type": "ServerReturnedNOK",
        "@code": e.code,
        "@field": e.field,
        "@cfg": null,
        "Message": e.message,
    })
}

fn v1_body(program: &str, transaction: &str, reply: &MiReply, opts: &Options) -> Value {
    if let (Some(e), true) = (&reply.error, reply.records.is_empty()) {
        return v1_nok(e);
    }
    let idx = selected(reply, opts.returncols.as_ref());
    let fields: Vec<Value> = idx
        .iter()
        .map(|&i| {
            let f = &reply.fields[i];
            json!({"@name": f.name, "@type": f.mi_type, "@length": f.length, "@description": f.description})
        })
        .collect();
    let records: Vec<Value> = reply
        .records
        .iter()
        .enumerate()
        .map(|(row, r)| {
            let nv: Vec<Value> = idx
                .iter()
                .filter(|&&i| !(opts.excludempty && r[i].trim().is_empty()))
                .map(|&i| json!({"Name": reply.fields[i].name, "Value": pad(&r[i], reply.fields[i].length)}))
                .collect();
            json!({"RowIndex": row, "NameValue": nv})
        })
        .collect();
    let mut body = json!({
        "Program": program.to_ascii_uppercase(),
        "Transaction": transaction,
        "Metadata": {"Field": fields},
        "MIRecord": records,
    });
    if let Some(e) = &reply.error {
        body["ErrorMessage"] = v1_nok(e);
    }
    body
}

// ---------------------------------------------------------------------------------------
// MI v2

/// One v2 `results` entry; `true` if the transaction succeeded.
fn v2_result(transaction: &str, inputs: &BTreeMap<String, String>, reply: &MiReply, opts: &Options) -> (Value, bool) {
    let idx = selected(reply, opts.returncols.as_ref());
    let records: Vec<Value> = reply
        .records
        .iter()
        .map(|r| {
            let mut m = Map::new();
            for &i in &idx {
                let v = &r[i];
                if opts.excludempty && v.trim().is_empty() {
                    continue;
                }
                let v = if opts.righttrim {
                    v.trim_end().to_string()
                } else {
                    pad(v, reply.fields[i].length)
                };
                m.insert(reply.fields[i].name.clone(), Value::String(v));
            }
            Value::Object(m)
        })
        .collect();
    let mut out = json!({"transaction": transaction, "records": records});
    match &reply.error {
        None => (out, true),
        Some(e) => {
            out["errorMessage"] = json!(e.message);
            out["errorType"] = json!("ServerReturnedNOK");
            out["errorCode"] = json!(e.code);
            out["errorField"] = json!(e.field);
            out["errorCfg"] = json!("");
            out["notProcessed"] = json!(false);
            out["parameters"] = json!(inputs);
            (out, false)
        }
    }
}

fn v2_envelope(results: Vec<(Value, bool)>) -> Value {
    let ok = results.iter().filter(|(_, s)| *s).count();
    let failed = results.len() - ok;
    json!({
        "results": results.into_iter().map(|(v, _)| v).collect::<Vec<_>>(),
        "wasTerminated": false,
        "nrOfSuccessfullTransactions": ok,
        "nrOfFailedTransactions": failed,
    })
}

/// Whether a v2 query key is an MI input (upper case) rather than an option.
fn is_input_name(k: &str) -> bool {
    !k.is_empty() && !k.chars().any(|c| c.is_ascii_lowercase())
}

async fn v2_get(
    State(inner): S,
    Path((tenant, program, transaction)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &tenant, &headers, Api::Mi).await {
        return r;
    }
    let mut opts = Options::new(&inner);
    let mut inputs = BTreeMap::new();
    for (k, v) in query_pairs(q.as_deref()) {
        if is_input_name(&k) {
            inputs.insert(k, v);
        } else {
            match opts.set(&k, &v) {
                Ok(true) => {}
                Ok(false) => return bad_request(&format!("Unknown query parameter '{k}'")),
                Err(e) => return bad_request(&e),
            }
        }
    }
    let reply = run(&inner, &program, &transaction, &inputs, &opts);
    if let Some(r) = timeout_after_execution(&inner).await {
        return r;
    }
    Json(v2_envelope(vec![v2_result(&transaction, &inputs, &reply, &opts)])).into_response()
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

async fn v2_bulk(
    State(inner): S,
    Path(tenant): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate(&inner, &tenant, &headers, Api::Mi).await {
        return r;
    }
    let mut opts = Options::new(&inner);
    for (k, v) in query_pairs(q.as_deref()) {
        match opts.set(&k, &v) {
            Ok(true) => {}
            Ok(false) => return bad_request(&format!("Unknown query parameter '{k}'")),
            Err(e) => return bad_request(&e),
        }
    }
    let doc: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(&format!("Invalid JSON in request body: {e}")),
    };
    let Some(obj) = doc.as_object() else {
        return bad_request("Request body must be a JSON object");
    };
    let Some(program) = obj.get("program").and_then(Value::as_str) else {
        return bad_request("Missing 'program' in request body");
    };
    let Some(transactions) = obj.get("transactions").and_then(Value::as_array) else {
        return bad_request("Missing 'transactions' array in request body");
    };
    for (key, opt) in [
        ("cono", "cono"),
        ("excludeEmptyValues", "excludempty"),
        ("rightTrim", "righttrim"),
        ("maxReturnedRecords", "maxrecs"),
    ] {
        if let Some(v) = obj.get(key) {
            let Some(text) = value_text(v) else {
                return bad_request(&format!("Invalid value for '{key}'"));
            };
            if let Err(e) = opts.set(opt, &text) {
                return bad_request(&e);
            }
        }
    }
    // Validate the whole request before running anything.
    let mut calls = Vec::with_capacity(transactions.len());
    for (i, t) in transactions.iter().enumerate() {
        let Some(name) = t.get("transaction").and_then(Value::as_str) else {
            return bad_request(&format!("Missing 'transaction' in transactions[{i}]"));
        };
        let mut inputs = BTreeMap::new();
        if let Some(rec) = t.get("record") {
            let Some(rec) = rec.as_object() else {
                return bad_request(&format!("'record' of transactions[{i}] must be an object"));
            };
            for (k, v) in rec {
                let Some(text) = value_text(v) else {
                    return bad_request(&format!("Invalid value of {k} in transactions[{i}]"));
                };
                inputs.insert(k.to_ascii_uppercase(), text);
            }
        }
        let mut topts = opts.clone();
        if let Some(cols) = t.get("selectedColumns").and_then(Value::as_array) {
            let cols: Vec<String> = cols
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_uppercase)
                .collect();
            topts.returncols = (!cols.is_empty()).then_some(cols);
        }
        calls.push((name.to_string(), inputs, topts));
    }
    let results = calls
        .iter()
        .map(|(name, inputs, topts)| {
            let reply = run(&inner, program, name, inputs, topts);
            v2_result(name, inputs, &reply, topts)
        })
        .collect::<Vec<_>>();
    if let Some(r) = timeout_after_execution(&inner).await {
        return r;
    }
    Json(v2_envelope(results)).into_response()
}

// ---------------------------------------------------------------------------------------
// Metadata Publisher

async fn mdp_tables(
    State(inner): S,
    Path(tenant): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &tenant, &headers, Api::Mdp).await {
        return r;
    }
    let filter = query_pairs(q.as_deref())
        .into_iter()
        .find(|(k, _)| k == "filter")
        .map(|(_, v)| v.trim().to_ascii_uppercase())
        .unwrap_or_default();
    let db = crate::read(&inner.db);
    let list: Vec<Value> = db
        .tables
        .values()
        .filter(|t| t.schema.def.name.starts_with(&filter))
        .map(|t| {
            json!({
                "tableName": t.schema.def.name,
                "tableComponent": "MVX",
                "tableCategory": t.schema.category,
                "tableDescription": t.schema.def.description,
                "tableMaintainedBy": t.schema.maintained_by,
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "list": list }))
}

async fn mdp_columns(
    State(inner): S,
    Path((tenant, table, _component)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &tenant, &headers, Api::Mdp).await {
        return r;
    }
    let db = crate::read(&inner.db);
    let Some(data) = db.tables.get(&table.to_ascii_uppercase()) else {
        return json_response(StatusCode::OK, json!({"list": []}));
    };
    let s = &data.schema;
    let types = db.modes.mdp_text_types;
    let list: Vec<Value> = s
        .def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let indexes: Vec<&str> = s
                .indexes
                .iter()
                .filter(|(_, cols)| cols.contains(&c.name))
                .map(|(n, _)| n.as_str())
                .collect();
            let (data_type, edit_code) = match c.kind {
                mapping::catalog::ColumnKind::Alpha => ("String", ""),
                mapping::catalog::ColumnKind::Numeric => ("Decimal", "4"),
                mapping::catalog::ColumnKind::Date => ("Decimal", "Y"),
            };
            let data_type = match (types, c.kind) {
                (MdpTextTypes::Standard, _) => data_type,
                (MdpTextTypes::Alternative, mapping::catalog::ColumnKind::Alpha) => {
                    ["NChar", "VarGraphic", "Graphic"][i % 3]
                }
                (MdpTextTypes::Alternative, _) => ["Numeric", "Packed"][i % 2],
            };
            json!({
                "columnName": c.name,
                "description": c.description,
                "dataType": data_type,
                "length": c.length.to_string(),
                "decimals": if c.decimals > 0 { c.decimals.to_string() } else { String::new() },
                "editCode": edit_code,
                "indexes": indexes.join(","),
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "list": list }))
}

async fn mdp_index_keys(
    State(inner): S,
    Path((tenant, index, _component)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate(&inner, &tenant, &headers, Api::Mdp).await {
        return r;
    }
    let index = index.to_ascii_uppercase();
    let db = crate::read(&inner.db);
    let found = (index.len() > 2)
        .then(|| index.split_at(index.len() - 2))
        .and_then(|(t, n)| {
            let data = db.tables.get(t)?;
            data.schema
                .indexes
                .iter()
                .find(|(num, _)| num == n)
                .map(|(_, cols)| (data, cols))
        });
    let Some((data, cols)) = found else {
        return json_response(StatusCode::OK, json!({"list": []}));
    };
    let list: Vec<Value> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "indexName": index,
                "columnName": c,
                "keySequence": (i + 1).to_string(),
                "ordering": "A",
                "description": data.schema.def.column(c).map(|c| c.description.clone()).unwrap_or_default(),
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "list": list }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("**").is_none());
    }

    #[test]
    fn input_names() {
        assert!(is_input_name("ITNO"));
        assert!(is_input_name("PK01"));
        assert!(!is_input_name("maxrecs"));
        assert!(!is_input_name("rightTrim"));
    }
}
