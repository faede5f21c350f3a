//! The middleware guarding `/api`: which scope each route needs (health, metrics, Studio's
//! assets and webhooks are public), the bearer token checked against the store, failed
//! attempts limited per client address and per presented token (valid tokens are never
//! throttled), and the token's id and name handed to the handler (the audit trail's `by`).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::auth::{credentials, split, Attempt, AuthToken, Caller, Scope};
use crate::error::ApiError;
use crate::state::AppState;

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

/// What a request to `path` needs, from its first segments.
fn need(method: &Method, path: &str) -> Need {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segs.first() != Some(&"api") {
        return Need::Public; // health, metrics, Studio assets, webhooks (own credentials)
    }
    // Tokens, and checks that make the server call URLs a user typed, are for admins.
    if matches!(segs.get(1), Some(&"tokens" | &"checks")) {
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

/// 401, or 429 when the source or the credential has failed too often (see [`crate::auth::Auth`]).
pub(crate) fn refuse(throttled: Option<std::time::Duration>, message: &str) -> Response {
    match throttled {
        None => unauthorized(message),
        Some(left) => too_many_failures(left),
    }
}

/// 429 with the seconds to wait.
pub(crate) fn too_many_failures(left: std::time::Duration) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, left.as_secs().max(1).to_string())],
        Json(json!({"error": {"code": "too_many_failures", "message": format!(
            "too many failed authentication attempts from this address or with this credential (more than {} in {} s); retry later",
            crate::auth::MAX_FAILURES,
            crate::auth::FAILURE_WINDOW.as_secs()
        )}})),
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
    // The token is checked first: valid credentials are never throttled, only failures are.
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| credentials(v, "Bearer"));
    let Some(presented) = presented else {
        return refuse(
            st.auth.fail(ip, Attempt::Nothing),
            "an API token is required: send `Authorization: Bearer <token>`",
        );
    };
    let valid = match st.auth.verify(&st.store, presented).await {
        Ok(t) => t,
        Err(e) => return ApiError::Internal(e.to_string()).into_response(),
    };
    let Some(token) = valid else {
        let (id, _) = split(presented);
        tracing::warn!(token_id = %id, "API call refused: unknown, wrong or revoked token");
        return refuse(
            st.auth.fail(ip, Attempt::Token(&id)),
            "the API token is unknown, wrong or revoked",
        );
    };
    if let Some(at) = crate::auth::expired(&token, chrono::Utc::now()) {
        tracing::warn!(token_id = %token.id, "API call refused: the token expired at {at}");
        return refuse(
            st.auth.fail(ip, Attempt::Token(&token.id)),
            &format!("the API token expired at {at}"),
        );
    }
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
    req.extensions_mut().insert(Caller {
        id: token.id.clone(),
        name: token.name.clone(),
    });
    let may_change_tokens = !matches!(*req.method(), Method::GET | Method::HEAD);
    let res = next.run(req).await;
    if may_change_tokens {
        st.auth.forget_verified();
    }
    res
}
