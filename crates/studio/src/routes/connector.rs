//! `GET /api/connections/{c}/connector/channel`: the channel a self-hosted connector calls
//! home on. One WebSocket, opened outbound by the connector with its connector token, so it
//! passes firewalls. The connector says hello, gets the lease of its connection (one connector
//! per connection, [`LeasePolicy::STANDARD`]), receives its configuration (M3 credentials
//! opened for it alone, deployed mappings) and every change to it (it may call home as soon as
//! its connection is created: until the `.ionapi` file is saved it stays connected, without a
//! configuration), and sends its status and its
//! messages, which are ingested exactly once and acknowledged. The channel's state, pending
//! calls and ingest are `runtime::remote`'s; this module is the HTTP and WebSocket side.

use std::time::Duration;

use ::channel::{
    ConnectorConfig, FromConnector, MdpCredentials, RefusalCode, ToConnector, MAX_FRAME_BYTES, MAX_HOLDER_LEN,
};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use pipeline::remote_mi::PendingCall;
use runtime::remote::{ingest, PendingCalls};
use runtime::{ConnectionRuntime, LeasePolicy};
use store::LeaseOutcome;

use crate::auth::AuthToken;
use crate::error::ApiError;
use crate::state::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/connector/channel", get(upgrade))
}

/// `GET /api/connections/{c}/connector/channel`: upgrade to the connector channel.
#[utoipa::path(
    get,
    path = "/api/connections/{c}/connector/channel",
    operation_id = "connectorChannel",
    summary = "the WebSocket a self-hosted connector calls home on (connector tokens)",
    tag = "connector",
    params(("c" = String, Path, description = "connection name")),
    responses(
        (status = 101, description = "switched to the WebSocket channel"),
        (status = 400, description = "not a WebSocket upgrade request", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 409, description = "the connection is hosted: its connector runs inside Studio", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 426, description = "the connection cannot be upgraded to a WebSocket", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn upgrade(
    State(st): State<AppState>,
    Path(c): Path<String>,
    token: Option<Extension<AuthToken>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let rt = crate::state::connection(&st, &c)?;
    if rt.remote.is_none() {
        return Err(ApiError::Conflict(format!(
            "connection `{c}` is hosted: its connector runs inside Studio"
        )));
    }
    let token_id = token.map(|t| t.0 .0);
    // A frame carries at most one batch of messages (500); anything far larger is refused.
    let ws = ws.max_message_size(MAX_FRAME_BYTES).max_frame_size(MAX_FRAME_BYTES);
    Ok(ws.on_upgrade(move |socket| async move {
        serve(st, rt, token_id, socket).await;
    }))
}

/// Tell the connector why the channel ends (see [`ToConnector::Refused`]).
async fn refuse(socket: &mut WebSocket, code: RefusalCode, reason: String) {
    let _ = send(socket, &ToConnector::Refused { code, reason }).await;
}

async fn send(socket: &mut WebSocket, frame: &ToConnector) -> bool {
    match frame.encode() {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "connector frame not sent");
            false
        }
    }
}

/// The configuration to send: credentials opened from the vault, deployed mapping versions;
/// `None` while no `.ionapi` file is saved (the connector stays connected and waits for it).
async fn config(st: &AppState, rt: &ConnectionRuntime) -> Result<Option<ConnectorConfig>, String> {
    let rec = st
        .store
        .connection(&rt.name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("connection `{}` is no longer stored", rt.name))?;
    let vault = st.vault.as_ref().ok_or("no vault configured")?;
    let spec = runtime::stored::launch_spec(vault, &rec)?.ok_or("no .ionapi file saved")?;
    let Some(ionapi) = runtime::stored::open_secret(vault, &rec, "ionapi")? else {
        return Ok(None);
    };
    let mut mappings = Vec::new();
    for m in rt.registry.list().await.map_err(|e| e.to_string())? {
        let Some(v) = m.deployed_version else { continue };
        let spec = if v == m.latest.version {
            m.latest.spec
        } else {
            let versions = rt.registry.versions(&m.latest.name).await.map_err(|e| e.to_string())?;
            match versions.into_iter().find(|x| x.version == v) {
                Some(x) => x.spec,
                None => continue,
            }
        };
        mappings.push(spec);
    }
    Ok(Some(ConnectorConfig {
        connection: rt.name.clone(),
        ionapi,
        mdp: spec.mdp.map(|m| MdpCredentials {
            url: m.url.as_str().to_string(),
            username: m.username,
            password: m.password.expose().to_string(),
        }),
        company: spec.company,
        mappings,
        settings: rt.remote.as_ref().map(|r| r.settings().clone()).unwrap_or_default(),
    }))
}

#[tracing::instrument(skip_all, fields(connection = %rt.name))]
async fn serve(st: AppState, rt: ConnectionRuntime, token_id: Option<String>, mut socket: WebSocket) {
    let remote = rt.remote.clone().expect("checked by upgrade");
    let c = rt.name.clone();
    let hello = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let (holder, version) = match hello {
        Ok(Some(Ok(Message::Text(t)))) => match FromConnector::decode(&t) {
            Ok(FromConnector::Hello { holder, version })
                if !holder.trim().is_empty() && holder.len() <= MAX_HOLDER_LEN =>
            {
                (holder, version)
            }
            _ => {
                let reason = "expected {\"type\": \"hello\", \"holder\", \"version\"} as the first frame".to_string();
                refuse(&mut socket, RefusalCode::BadHello, reason).await;
                return;
            }
        },
        _ => return,
    };
    let lease = LeasePolicy::STANDARD;
    match lease.acquire(&st.store, &c, &holder).await {
        Ok(LeaseOutcome::Granted) => {}
        Ok(LeaseOutcome::HeldBy {
            holder: other,
            expires_at_ms,
        }) => {
            let until = chrono::DateTime::from_timestamp_millis(expires_at_ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default();
            let reason = format!(
                "connection `{c}` is served by another connector ({other}); its lease runs until {until} unless renewed"
            );
            tracing::warn!(connection = %c, holder = %holder, other = %other, "connector refused: lease held by another");
            remote.refused(&reason);
            refuse(&mut socket, RefusalCode::LeaseHeld, reason).await;
            return;
        }
        Err(e) => {
            tracing::error!(connection = %c, error = %e, "connector lease: store failed");
            return;
        }
    }
    tracing::info!(connection = %c, holder = %holder, version = %version, "connector called home");
    remote.connected(&holder, &version);
    let mut stop = remote.closing();
    let mut changes = rt.connector.subscribe_changes();
    changes.mark_changed();
    let mut renew = tokio::time::interval(lease.renew_every);
    let mut calls = remote.mi().attach();
    let mut pending = PendingCalls::default();
    // M3 is checked through the connector as soon as it calls home, then while nothing is
    // deployed: its light shows before any message type runs. Before the `.ionapi` file is
    // saved the connector has nothing to reach M3 with: its light says so instead.
    let probe = rt
        .configured
        .then(|| tokio::spawn(runtime::hub::probe_while_idle(rt.connector.clone(), remote.closing())));
    let end: String = loop {
        tokio::select! {
            Some(PendingCall { call, reply }) = calls.recv() => {
                let id = pending.register(reply);
                let frame = ToConnector::Call { id, call };
                if !send(&mut socket, &frame).await {
                    break "send failed".into();
                }
            }
            _ = stop.recv() => break "Studio is stopping".into(),
            r = changes.changed() => {
                if r.is_err() {
                    break "the connection stopped".into();
                }
                match config(&st, &rt).await {
                    Ok(Some(cfg)) => {
                        if !send(&mut socket, &ToConnector::Config(cfg)).await {
                            break "send failed".into();
                        }
                    }
                    // No .ionapi file yet: saving it restarts the connection, which closes this
                    // channel; the connector calls again at once and receives its configuration.
                    Ok(None) => {}
                    Err(e) => break format!("configuration unavailable: {e}"),
                }
            }
            _ = renew.tick() => {
                if let Some(id) = &token_id {
                    match st.store.token(id).await {
                        Ok(Some(t)) if t.revoked_at.is_none() => {}
                        Ok(_) => {
                            let reason = "the connector token was revoked".to_string();
                            refuse(&mut socket, RefusalCode::TokenRevoked, reason.clone()).await;
                            break reason;
                        }
                        Err(_) => {}
                    }
                }
                match lease.acquire(&st.store, &c, &holder).await {
                    Ok(LeaseOutcome::Granted) | Err(_) => {}
                    Ok(LeaseOutcome::HeldBy { holder: other, .. }) => {
                        let reason = format!("lease lost to {other}");
                        refuse(&mut socket, RefusalCode::LeaseLost, reason.clone()).await;
                        break reason;
                    }
                }
            }
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => break "the connector closed the channel".into(),
                    Some(Err(e)) => break format!("channel error: {e}"),
                    Some(Ok(_)) => continue,
                };
                remote.seen();
                match FromConnector::decode(&text) {
                    Ok(FromConnector::Status { status }) => {
                        let board = rt.connector.status();
                        board.update(|s| {
                            let relay = s.relay.take();
                            let mine = (s.m3, s.m3_message.take(), s.m3_since.take(), s.m3_checked_at.take());
                            *s = status;
                            s.relay = relay;
                            // The connector has not read M3 yet: Studio's own check stands.
                            if s.m3 == pipeline::Connectivity::Unknown {
                                (s.m3, s.m3_message, s.m3_since, s.m3_checked_at) = mine;
                            }
                        });
                    }
                    Ok(FromConnector::Messages { items }) => match ingest(&st.store, &c, items).await {
                        Ok((n, up_to)) => {
                            remote.ingested(n);
                            if !send(&mut socket, &ToConnector::Ack { up_to }).await {
                                break "send failed".into();
                            }
                        }
                        Err(e) => {
                            // Not acknowledged: the connector sends them again.
                            tracing::warn!(connection = %c, error = %e, "connector messages not stored; waiting for a resend");
                        }
                    },
                    Ok(FromConnector::CallResult { id, result }) => pending.answer(id, result),
                    Ok(FromConnector::Hello { .. }) => {}
                    Err(e) => {
                        tracing::warn!(connection = %c, error = %e, "connector frame ignored: not understood");
                    }
                }
            }
        }
    };
    if let Some(probe) = probe {
        probe.abort();
    }
    tracing::info!(connection = %c, holder = %holder, reason = %end, "connector channel closed");
    let _ = socket.send(Message::Close(None)).await;
    if end != "Studio is stopping" {
        let _ = st.store.release_lease(&c, &holder).await;
    }
    remote.disconnected(&holder);
}
