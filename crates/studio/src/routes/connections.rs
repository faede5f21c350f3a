//! Connections: the list (running and stored), one connection's settings and status, and those
//! managed through the API (the wizard's saves): create one with a name and a hosting, set its
//! Metadata Publisher and its `.ionapi` file (sealed at rest, checked live, never returned),
//! delete it, and download the bundle of a self-hosted connector.
//!
//! A hosted connection runs as soon as its `.ionapi` file is saved and reads M3 from this
//! process. A self-hosted one runs from its creation: its connector can call home at once (its
//! light says "connector connected; upload the .ionapi file"), and receives the file over its
//! channel once it is saved. `running` in the answers means set up and at work (`.ionapi` saved).

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use m3::{ClientOptions, IonApi, M3Client, MdpEndpoint};
use runtime::stored::{aad, launch_spec, open_secret, stored_mdp};
use runtime::Hosting;
use serde::Deserialize;
use serde_json::{json, Value};
use store::ConnectionRecord;

use crate::auth::By;
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module (managing connections needs the admin scope, enforced by the token
/// middleware).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/connections", get(list_connections).post(create))
        .route("/api/connections/{c}", get(describe).delete(remove))
        .route("/api/connections/{c}/status", get(status))
        .route("/api/connections/{c}/status/history", get(history))
        .route("/api/connections/{c}/webhook-token", post(rotate_webhook_token))
        .route("/api/connections/{c}/mdp", put(set_mdp))
        .route("/api/connections/{c}/ionapi", put(set_ionapi))
        .route("/api/connections/{c}/bundle", post(bundle))
}

/// Running connections, and stored ones that do not run yet (no `.ionapi` saved).
#[utoipa::path(
    get,
    path = "/api/connections",
    operation_id = "listConnections",
    summary = "running and stored connections",
    tag = "connections",
    responses(
        (status = 200, description = "the connections", body = crate::routes::openapi::schemas::ConnectionList)
    )
)]
async fn list_connections(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let stored = st.store.connections().await?;
    let from_api: BTreeSet<&str> = stored.iter().map(|r| r.name.as_str()).collect();
    let mut list: BTreeMap<String, Value> = st
        .connections
        .values()
        .map(|c| {
            let connector = match &c.remote {
                Some(r) => r.describe(),
                None => json!({"state": "in-process"}),
            };
            let v = json!({
                "name": c.name,
                "hosting": if c.remote.is_some() { "self-hosted" } else { "hosted" },
                "source": if from_api.contains(c.name.as_str()) { "api" } else { "configuration" },
                "running": c.configured,
                "status": c.light(),
                "m3": c.connector.status().snapshot().m3,
                "messageTypes": c.connector.mappings().len(),
                "connector": connector,
            });
            (c.name.clone(), v)
        })
        .collect();
    for rec in &stored {
        list.entry(rec.name.clone()).or_insert_with(|| {
            json!({
                "name": rec.name, "hosting": rec.hosting, "source": "api", "running": false, "m3": "NotConfigured",
                "status": not_configured(),
                "messageTypes": 0, "connector": {"state": "not-configured"},
            })
        });
    }
    Ok(Json(json!({ "connections": list.into_values().collect::<Vec<_>>() })))
}

/// `GET /api/connections/{c}/status`: the running connector's status board.
#[utoipa::path(
    get,
    path = "/api/connections/{c}/status",
    operation_id = "connectionStatus",
    summary = "the running connector's status board",
    tag = "connections",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "M3 connectivity, per-mapping progress and health, the Kafka relay, webhooks", body = crate::routes::openapi::schemas::Object),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn status(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let Some(rt) = st.connections.get(&c) else {
        // Stored but not running yet: nothing to report but that.
        stored(&st, &c).await?;
        return Ok(Json(json!({
            "m3": "Unknown", "m3_message": null, "tables": {}, "relay": null,
            "webhooks": {"received": 0, "unauthorized": 0}, "status": not_configured(),
        })));
    };
    let mut out =
        serde_json::to_value(rt.connector.status().snapshot()).map_err(|e| ApiError::Internal(e.to_string()))?;
    out["status"] = json!(rt.light());
    Ok(Json(out))
}

/// The light of a stored connection that does not run yet.
fn not_configured() -> pipeline::status::Light {
    pipeline::status::Light::not_configured("upload the .ionapi file to start (Configuration or the setup wizard)")
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/status/history",
    operation_id = "connectionStatusHistory",
    summary = "messages written over the last hour, sampled at most every 10 s (for the dashboard chart)",
    tag = "connections",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "`{samples: [{t, messages}], everyMs, spanMs}`", body = crate::routes::openapi::schemas::Object),
        (status = 404, description = "no such connection", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
/// `GET /api/connections/{c}/status/history`: the messages written over the last hour, sampled
/// at most every 10 s and kept in memory: `{"samples": [{"t": epoch ms, "messages"}], "everyMs", "spanMs"}`.
async fn history(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let samples = match st.connections.get(&c) {
        Some(rt) => rt.connector.status().history(),
        None => {
            stored(&st, &c).await?;
            Vec::new()
        }
    };
    Ok(Json(json!({
        "samples": samples,
        "everyMs": pipeline::status::History::EVERY_MS,
        "spanMs": pipeline::status::History::SPAN_MS,
    })))
}

#[utoipa::path(
    post,
    path = "/api/connections/{c}/webhook-token",
    operation_id = "rotateWebhookToken",
    summary = "a new webhook bearer token, shown once; the old one stops working (admin)",
    tag = "connections",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "`{token, note, launch, connection}`", body = crate::routes::openapi::schemas::Object),
        (status = 404, description = "no such connection", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the connection is defined in the configuration file", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "no secret key is configured", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
/// `POST /api/connections/{c}/webhook-token`: a new webhook bearer token, shown once in the
/// answer; the old one stops working at once (the connection restarts with the new one).
async fn rotate_webhook_token(
    State(st): State<AppState>,
    Path(c): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let vault = st.vault()?;
    let mut rec = stored(&st, &c).await?;
    let token = crate::auth::random_hex(40);
    rec.secrets.insert(
        "webhookToken".into(),
        vault.seal(token.as_bytes(), &aad(&c, "webhookToken")),
    );
    st.store.update_connection(&rec).await?;
    let rec = stored(&st, &c).await?;
    tracing::info!(connection = %c, "connection: webhook token rotated");
    let launch = if st.connections.contains_key(&c) {
        relaunch(&st, &rec).await?
    } else {
        json!({"running": false})
    };
    Ok(Json(json!({
        "token": token,
        "note": "the webhook token is shown once; configure it in M3's Event Hub subscription (the old one no longer works)",
        "launch": launch,
        "connection": describe_record(&st, &rec).await,
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewConnection {
    name: String,
    hosting: String,
    #[serde(default)]
    company: Option<u32>,
}

/// `POST /api/connections`: `{"name", "hosting": "hosted"|"self-hosted", "company"?}`. The answer
/// carries the webhook bearer token once.
#[utoipa::path(
    post,
    path = "/api/connections",
    operation_id = "createConnection",
    summary = "create a connection (admin)",
    tag = "connections",
    request_body(content = NewConnection, content_type = "application/json", description = "name, hosting and company"),
    responses(
        (status = 201, description = "created; carries the webhook token once", body = crate::routes::openapi::schemas::ConnectionDetail),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the name is taken", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "no secret key is configured: connections cannot be stored", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn create(State(st): State<AppState>, By(by): By, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let vault = st.vault()?;
    let req: NewConnection = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: {e}; expected {{\"name\", \"hosting\": \"hosted\" or \"self-hosted\", \"company\"?}}"
        ))
    })?;
    let name = mapping::ConnectionName::parse(&req.name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let hosting = Hosting::parse(&req.hosting).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "hosting: expected \"hosted\" or \"self-hosted\", got {:?}",
            req.hosting
        ))
    })?;
    if st.connections.contains_key(name.as_str()) && st.store.connection(name.as_str()).await?.is_none() {
        return Err(ApiError::Conflict(format!(
            "connection `{}` is defined in the configuration file",
            name
        )));
    }
    let webhook_token = crate::auth::random_hex(40);
    let rec = ConnectionRecord {
        name: name.to_string(),
        hosting: hosting.as_str().into(),
        settings: json!({"company": req.company, "mdp": null, "ionapi": null}),
        secrets: BTreeMap::from([(
            "webhookToken".to_string(),
            vault.seal(webhook_token.as_bytes(), &aad(name.as_str(), "webhookToken")),
        )]),
        created_at: String::new(),
        created_by: by,
        updated_at: String::new(),
    };
    if !st.store.create_connection(&rec).await? {
        return Err(ApiError::Conflict(format!("connection `{}` exists already", name)));
    }
    tracing::info!(connection = %name, hosting = hosting.as_str(), "connection created");
    let rec = st.store.connection(name.as_str()).await?.unwrap_or(rec);
    if hosting == Hosting::SelfHosted {
        // Its connector may call home right away (the .ionapi file comes later).
        relaunch(&st, &rec).await?;
    }
    let mut out = describe_record(&st, &rec).await;
    out["webhook"]["token"] = json!(webhook_token);
    out["webhook"]["note"] = json!("the webhook token is shown once; configure it in M3's Event Hub subscription");
    Ok((StatusCode::CREATED, Json(out)))
}

async fn stored(st: &AppState, name: &str) -> Result<ConnectionRecord, ApiError> {
    match st.store.connection(name).await? {
        Some(r) => Ok(r),
        None if st.connections.contains_key(name) => Err(ApiError::Conflict(format!(
            "connection `{name}` is defined in the configuration file; change it there"
        ))),
        None => Err(ApiError::NotFound(format!("connection `{name}` does not exist"))),
    }
}

/// `GET /api/connections/{c}`: settings and state, never a secret.
#[utoipa::path(
    get,
    path = "/api/connections/{c}",
    operation_id = "getConnection",
    summary = "one connection's settings and state (never a secret)",
    tag = "connections",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 200, description = "the connection", body = crate::routes::openapi::schemas::ConnectionDetail),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn describe(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    match st.store.connection(&c).await? {
        Some(rec) => Ok(Json(describe_record(&st, &rec).await)),
        None => {
            let rt = connection(&st, &c)?;
            let s = rt.connector.status().snapshot();
            Ok(Json(json!({
                "name": c, "hosting": "hosted", "source": "configuration", "running": true,
                "status": rt.light(),
                "m3": s.m3, "m3Message": s.m3_message, "messageTypes": rt.connector.mappings().len(),
                "connector": {"state": "in-process"},
            })))
        }
    }
}

async fn describe_record(st: &AppState, rec: &ConnectionRecord) -> Value {
    let running = st.connections.get(&rec.name);
    let working = running.as_ref().is_some_and(|rt| rt.configured);
    let (m3, m3_message, types, light) = match &running {
        Some(rt) => {
            let s = rt.connector.status().snapshot();
            (
                json!(s.m3),
                json!(s.m3_message),
                rt.connector.mappings().len(),
                rt.light(),
            )
        }
        None => (
            json!("NotConfigured"),
            json!("upload the .ionapi file to start"),
            0,
            not_configured(),
        ),
    };
    let connector = match (&running, rec.hosting.as_str()) {
        (Some(rt), _) if rt.remote.is_some() => rt.remote.as_ref().map(|r| r.describe()).unwrap_or(Value::Null),
        (Some(_), _) => json!({"state": "in-process"}),
        (None, "self-hosted") => json!({"state": "not-configured"}),
        (None, _) => json!({"state": "not-configured"}),
    };
    let mdp = &rec.settings["mdp"];
    json!({
        "name": rec.name,
        "hosting": rec.hosting,
        "source": "api",
        "company": rec.settings["company"],
        "mdp": if mdp.is_null() { json!({"via": "gateway"}) } else {
            json!({"via": "direct", "url": mdp["url"], "username": mdp["username"], "passwordSet": rec.secrets.contains_key("mdpPassword")})
        },
        "ionapi": rec.settings["ionapi"],
        "webhook": {"path": format!("/webhooks/{}/{{TABLE}}", rec.name), "bearerTokenSet": rec.secrets.contains_key("webhookToken")},
        "running": working,
        "status": light,
        "m3": m3,
        "m3Message": m3_message,
        "messageTypes": types,
        "connector": connector,
        "createdAt": rec.created_at,
        "createdBy": rec.created_by,
        "updatedAt": rec.updated_at,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MdpInput {
    /// Empty or absent: MDP through the ION API gateway with the OAuth2 token.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    username: Option<String>,
    /// Absent: keep the stored password.
    #[serde(default)]
    password: Option<String>,
}

/// `PUT /api/connections/{c}/mdp`: `{"url", "username", "password"}` for an on-premises MDP, or
/// `{}` / `{"url": ""}` to read MDP through the gateway. Checked live, then saved; a setting that
/// fails its check is not saved (422): the one in use stays.
#[utoipa::path(
    put,
    path = "/api/connections/{c}/mdp",
    operation_id = "setMdp",
    summary = "set how the Metadata Publisher is reached (admin); checked live",
    tag = "connections",
    params(("c" = String, Path, description = "connection name")),
    request_body(content = MdpInput, content_type = "application/json", description = "`{url, username, password}`, or `{}` for MDP through the ION API gateway"),
    responses(
        (status = 200, description = "saved, checked and (re)started", body = crate::routes::openapi::schemas::MdpSaved),
        (status = 422, description = "not saved: the Metadata Publisher did not answer with this setting; the previous one stays in use", body = crate::routes::openapi::schemas::Object),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the connection is defined in the configuration file", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "no secret key is configured", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn set_mdp(
    State(st): State<AppState>,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let vault = st.vault()?;
    let mut rec = stored(&st, &c).await?;
    let input: MdpInput = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body: {e}; expected {{\"url\", \"username\", \"password\"}} or {{}} for MDP through the ION API gateway"
        ))
    })?;
    let url = input.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
    match url {
        None => {
            rec.settings["mdp"] = Value::Null;
            rec.secrets.remove("mdpPassword");
        }
        Some(u) => {
            let parsed = url::Url::parse(u)
                .ok()
                .filter(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "url: expected an http(s) URL of the Metadata Publisher ending in /mdprest, got {u:?}"
                    ))
                })?;
            st.outbound
                .check_url("url", parsed.as_str())
                .map_err(ApiError::BadRequest)?;
            let user = input.username.as_deref().map(str::trim).unwrap_or("");
            if user.is_empty() {
                return Err(ApiError::BadRequest(
                    "username: required with url (HTTP Basic user of the Metadata Publisher)".into(),
                ));
            }
            match input.password.as_deref() {
                Some("") => return Err(ApiError::BadRequest("password: must not be empty".into())),
                Some(p) => {
                    rec.secrets
                        .insert("mdpPassword".into(), vault.seal(p.as_bytes(), &aad(&c, "mdpPassword")));
                }
                None if !rec.secrets.contains_key("mdpPassword") => {
                    return Err(ApiError::BadRequest(
                        "password: required the first time (later, leave it out to keep the stored one)".into(),
                    ))
                }
                None => {}
            }
            rec.settings["mdp"] = json!({"url": parsed.as_str(), "username": user});
        }
    }
    let before = stored(&st, &c).await?;
    let changed = before.settings != rec.settings || before.secrets != rec.secrets;
    // Checked before it is saved: a setting that fails its check never replaces the one in use.
    let check = check_mdp(&st, &rec).await?;
    if check["ok"] == json!(false) {
        tracing::info!(connection = %c, "connection: MDP setting refused by its check, not saved");
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "saved": false,
                "check": check,
                "message": "not saved: the Metadata Publisher did not answer with this setting; the previous setting stays in use",
                "connection": describe_record(&st, &before).await,
            })),
        ));
    }
    if changed {
        st.store.update_connection(&rec).await?;
        rec = stored(&st, &c).await?;
    }
    // Restart only when something changed (a running connection keeps its state otherwise).
    let launch = if changed || !st.connections.contains_key(&c) {
        relaunch(&st, &rec).await?
    } else {
        json!({"running": true, "unchanged": true})
    };
    Ok((
        StatusCode::OK,
        Json(json!({"saved": true, "check": check, "launch": launch, "connection": describe_record(&st, &rec).await})),
    ))
}

/// The on-premises MDP endpoint of a stored connection, secrets opened.
fn mdp_endpoint(st: &AppState, rec: &ConnectionRecord) -> Result<Option<MdpEndpoint>, ApiError> {
    stored_mdp(st.vault()?, rec).map_err(ApiError::Internal)
}

fn open(st: &AppState, rec: &ConnectionRecord, field: &str) -> Result<Option<String>, ApiError> {
    open_secret(st.vault()?, rec, field).map_err(ApiError::Internal)
}

/// Ask the Metadata Publisher for its tables: `{"ok", "tables", "message"}`.
async fn check_mdp(st: &AppState, rec: &ConnectionRecord) -> Result<Value, ApiError> {
    if rec.hosting == "self-hosted" {
        return Ok(
            json!({"ok": null, "message": "checked by the self-hosted connector when it calls home (see its status)"}),
        );
    }
    let ion = match open(st, rec, "ionapi")? {
        Some(text) => IonApi::parse(&text).ok(),
        None => None,
    };
    let endpoint = mdp_endpoint(st, rec)?;
    let Some(ion) = ion else {
        return Ok(match endpoint {
            Some(ep) => match m3::mdp::check_endpoint(&ep).await {
                Ok(n) => json!({"ok": true, "tables": n, "message": format!("{n} tables")}),
                Err(e) => failed_check(&e),
            },
            None => {
                json!({"ok": null, "message": "MDP is read through the ION API gateway: upload the .ionapi file to check it"})
            }
        });
    };
    if let Err(message) = st.outbound.check_ionapi(&ion) {
        return Ok(json!({"ok": false, "status": "NotAllowed", "reason": "not_allowed", "message": message}));
    }
    let client = M3Client::new(
        ion,
        ClientOptions {
            timeout: crate::checks::CHECK_TIMEOUT,
            company: None,
            mdp: endpoint,
        },
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(match client.mdp_tables("").await {
        Ok(t) => json!({"ok": true, "tables": t.len(), "message": format!("{} tables", t.len())}),
        Err(e) => failed_check(&e),
    })
}

/// A failed MDP check: the status and a classified reason, never what the server said.
fn failed_check(e: &m3::M3Error) -> Value {
    let mut out = crate::checks::classify(e);
    out["ok"] = json!(false);
    out["status"] = json!(crate::checks::status_of(e));
    out
}

/// `PUT /api/connections/{c}/ionapi` with the `.ionapi` file as the body: validated key by key,
/// sealed and saved when valid, checked live (hosted), and the connection (re)started. A file M3
/// refuses is not saved over a stored one (422); the first file is saved even so, and the
/// connection's light says what M3 said.
#[utoipa::path(
    put,
    path = "/api/connections/{c}/ionapi",
    operation_id = "setIonApi",
    summary = "upload the connection's .ionapi file (admin); checked live, sealed, and the connection (re)started",
    tag = "connections",
    params(("c" = String, Path, description = "connection name")),
    request_body(content = crate::routes::openapi::schemas::Object, content_type = "application/json", description = "the .ionapi file"),
    responses(
        (status = 200, description = "saved", body = crate::routes::openapi::schemas::IonApiCheck),
        (status = 422, description = "not saved: M3 refused this file and a saved one stays in use", body = crate::routes::openapi::schemas::IonApiCheck),
        (status = 400, description = "not a valid .ionapi file (the check names the wrong keys), or not UTF-8 text", body = crate::routes::openapi::schemas::IonApiRefused),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the connection is defined in the configuration file", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 503, description = "no secret key is configured", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn set_ionapi(
    State(st): State<AppState>,
    Path(c): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let vault = st.vault()?;
    let mut rec = stored(&st, &c).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("body: expected the .ionapi file as UTF-8 JSON text".into()))?;
    let hosted = rec.hosting == "hosted";
    let mdp = mdp_endpoint(&st, &rec)?;
    let (mut check, ion) = if hosted {
        crate::checks::check(text, mdp, &st.outbound).await
    } else {
        crate::checks::validate_only(text)
    };
    let Some(ion) = ion else {
        check["saved"] = json!(false);
        return Ok((StatusCode::BAD_REQUEST, Json(check)));
    };
    // A file M3 refuses never replaces a saved one (which may work): it is not saved.
    let refused = hosted && check["status"] != json!("Healthy");
    if refused && rec.secrets.contains_key("ionapi") {
        check["saved"] = json!(false);
        check["kept"] = json!(true);
        check["message"] = json!("not saved: M3 refused this file; the saved .ionapi file stays in use");
        check["connection"] = describe_record(&st, &rec).await;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(check)));
    }
    rec.secrets
        .insert("ionapi".into(), vault.seal(text.as_bytes(), &aad(&c, "ionapi")));
    rec.settings["ionapi"] = json!({"tenant": ion.tenant, "application": ion.app_name, "gateway": ion.gateway_url, "clientId": ion.client_id});
    st.store.update_connection(&rec).await?;
    let rec = stored(&st, &c).await?;
    tracing::info!(connection = %c, tenant = %ion.tenant, "connection: .ionapi saved (sealed)");
    check["saved"] = json!(true);
    check["launch"] = relaunch(&st, &rec).await?;
    if let (Some(rt), true) = (st.connections.get(&c), hosted) {
        // The live check just asked M3: show its verdict until the connector says otherwise.
        let state = match check["status"].as_str() {
            Some("Healthy") => pipeline::Connectivity::Healthy,
            Some("AuthenticationFailed") => pipeline::Connectivity::AuthenticationFailed,
            Some("AuthorizationFailed") => pipeline::Connectivity::AuthorizationFailed,
            _ => pipeline::Connectivity::Failing,
        };
        let message = [&check["token"], &check["mi"]]
            .into_iter()
            .filter(|step| step["ok"] == json!(false))
            .find_map(|step| step["message"].as_str().map(str::to_string));
        rt.connector.status().update(|s| s.m3_observed(state, message));
    }
    check["connection"] = describe_record(&st, &rec).await;
    Ok((StatusCode::OK, Json(check)))
}

/// Stop the connection if it runs and start it again from `rec`: `{"running", "error"?}`.
async fn relaunch(st: &AppState, rec: &ConnectionRecord) -> Result<Value, ApiError> {
    let Some(hub) = &st.hub else {
        return Ok(json!({"running": false, "error": "this process cannot start connections"}));
    };
    let spec = match launch_spec(st.vault()?, rec) {
        Ok(Some(spec)) => spec,
        Ok(None) => return Ok(json!({"running": false, "error": "no .ionapi file saved yet"})),
        Err(e) => return Err(ApiError::Internal(e)),
    };
    let _restart = st.connections.restarts.lock().await;
    if st.connections.remove(&rec.name).is_some() {
        hub.stop_connection(&rec.name).await;
    }
    match hub.launch(spec).await {
        Ok(rt) => {
            st.connections.insert(rt);
            Ok(json!({"running": true}))
        }
        Err(e) => {
            let e = e.chain();
            tracing::warn!(connection = %rec.name, error = %e, "connection cannot start");
            Ok(json!({"running": false, "error": e}))
        }
    }
}

/// `DELETE /api/connections/{c}`: stop it, forget its settings and secrets, revoke its tokens.
/// Its messages and read models stay in the store.
#[utoipa::path(
    delete,
    path = "/api/connections/{c}",
    operation_id = "deleteConnection",
    summary = "stop a connection and forget its settings and secrets (admin)",
    tag = "connections",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the connection is defined in the configuration file", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn remove(State(st): State<AppState>, Path(c): Path<String>) -> Result<impl IntoResponse, ApiError> {
    stored(&st, &c).await?;
    let _restart = st.connections.restarts.lock().await;
    if st.connections.remove(&c).is_some() {
        if let Some(hub) = &st.hub {
            hub.stop_connection(&c).await;
        }
    }
    st.store.delete_connection(&c).await?;
    tracing::info!(connection = %c, "connection deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/connections/{c}/bundle`: a new connector token and the files to run a self-hosted
/// connector (`bundle.toml`, `Containerfile`, `README.md`) as a tar archive; `?format=toml`
/// answers `bundle.toml` alone. Each download creates a new token (revoke old ones on the
/// tokens page).
#[utoipa::path(
    post,
    path = "/api/connections/{c}/bundle",
    operation_id = "connectorBundle",
    summary = "a new connector token and the files to run a self-hosted connector (admin)",
    tag = "connections",
    params(("c" = String, Path, description = "connection name"), ("format" = Option<String>, Query, description = "`toml`: bundle.toml alone")),
    responses(
        (status = 200, description = "a tar archive (bundle.toml, Containerfile, README.md), or bundle.toml alone with `format=toml`", content((String = "application/x-tar"), (String = "application/toml"))),
        (status = 400, description = "no Host header to name Studio's URL", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the connection is hosted, or defined in the configuration file", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn bundle(
    State(st): State<AppState>,
    Path(c): Path<String>,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let rec = stored(&st, &c).await?;
    if rec.hosting != "self-hosted" {
        return Err(ApiError::Conflict(format!(
            "connection `{c}` is hosted: only self-hosted connections have a connector bundle"
        )));
    }
    let base = match &st.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| ApiError::BadRequest("Host header: required to name Studio's URL".into()))?;
            format!("http://{host}")
        }
    };
    let (token, text) = crate::auth::create_token(
        &st.store,
        &format!("connector bundle for {c}"),
        crate::auth::Scope::Connector,
        Some(&c),
    )
    .await?;
    tracing::info!(connection = %c, token_id = %token.id, "connector bundle created");
    let toml = format!(
        "# erp-bridge connector bundle for connection `{c}`.\n\
         # Keep this file secret: its token lets a connector act for this connection.\n\
         # Run: erp-bridge connector --bundle bundle.toml\n\
         studio_url = \"{base}\"\n\
         connection = \"{c}\"\n\
         token = \"{text}\"\n"
    );
    if query.as_deref() == Some("format=toml") {
        return Ok(([(header::CONTENT_TYPE, "application/toml")], toml.into_bytes()).into_response());
    }
    let containerfile = "FROM debian:bookworm-slim\n\
         RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*\n\
         # The erp-bridge binary of the same version as Studio, built with `cargo build --release`.\n\
         COPY erp-bridge /usr/local/bin/erp-bridge\n\
         COPY bundle.toml /etc/erp-bridge/bundle.toml\n\
         VOLUME /var/lib/erp-bridge\n\
         ENTRYPOINT [\"erp-bridge\", \"connector\", \"--bundle\", \"/etc/erp-bridge/bundle.toml\", \"--data-dir\", \"/var/lib/erp-bridge\"]\n";
    let readme = format!(
        "# erp-bridge connector for `{c}`\n\n\
         This connector runs on your network, reads M3 there, and calls home to Studio at {base}\n\
         over one outbound HTTP(S) connection (WebSocket). It needs no inbound port.\n\n\
         ## Run it\n\n\
         ```sh\nerp-bridge connector --bundle bundle.toml --data-dir ./connector-data\n```\n\n\
         or as a container (put the `erp-bridge` binary next to these files):\n\n\
         ```sh\npodman build -t erp-bridge-connector -f Containerfile .\n\
         podman run -d --name erp-bridge-connector -v erp-bridge-data:/var/lib/erp-bridge erp-bridge-connector\n```\n\n\
         It receives its M3 credentials and mappings from Studio, keeps polling M3 while Studio is\n\
         away (messages wait in its data folder), and only one connector serves the connection at a\n\
         time. `bundle.toml` holds a secret token: revoke it in Studio (Access tokens) if it leaks.\n"
    );
    let mut archive = tar::Builder::new(Vec::new());
    for (name, content, mode) in [
        ("bundle.toml", toml.as_bytes(), 0o600),
        ("Containerfile", containerfile.as_bytes(), 0o644),
        ("README.md", readme.as_bytes(), 0o644),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(mode);
        h.set_mtime(chrono::Utc::now().timestamp() as u64);
        h.set_cksum();
        archive
            .append_data(&mut h, format!("erp-bridge-connector-{c}/{name}"), content)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let bytes = archive.into_inner().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"erp-bridge-connector-{c}.tar\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
