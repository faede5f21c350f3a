//! API errors: a JSON body `{"error": {"code", "message"}}` with the right status; internal
//! causes are logged, never sent. [`json_error_body`] gives the same shape to the errors the
//! framework answers by itself (unknown path, wrong method, body too large, wrong media type,
//! bad UTF-8, timeouts).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A parameter is wrong; the message names it and what was expected.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with what exists.
    #[error("{0}")]
    Conflict(String),
    /// A dependency is down.
    #[error("{0}")]
    Unavailable(String),
    /// Something failed inside; details are in the log only.
    #[error("internal error")]
    Internal(String),
}

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        (status, Json(body)).into_response()
    }
}

/// Our JSON error with any status.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    (status, Json(body)).into_response()
}

/// The `code` of an error answered with `status` by the framework rather than a handler.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// Give an error response that is not JSON (axum's rejections in plain text, an empty 404 or
/// 405, tower-http's 408) our JSON shape; the framework's own text, when there is one, becomes
/// the message. Other responses pass unchanged; headers such as `Allow` are kept.
pub async fn json_error_body(res: Response) -> Response {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let text = text.trim();
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let message = match status {
        StatusCode::NOT_FOUND if text.is_empty() => "no such path".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => match parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()) {
            Some(allow) if !allow.is_empty() => format!("method not allowed here; allowed: {allow}"),
            _ => "method not allowed here".to_string(),
        },
        StatusCode::REQUEST_TIMEOUT => "the request was not answered in time (http.request_timeout)".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => format!("request body too large: at most {} bytes", crate::routes::BODY_LIMIT),
        _ if text.is_empty() => reason,
        _ => text.to_string(),
    };
    let body = serde_json::json!({"error": {"code": code_of(status), "message": message}});
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
