//! `GET /api/connections/{c}/messages?after=&limit=&type=&key=`: a connection's message log as
//! CloudEvents, in sequence order, with the sequence number to continue after.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::query::{parse_limit, parse_param};
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/messages", get(messages))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
    #[serde(default, rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    key: Option<String>,
}

async fn messages(
    State(st): State<AppState>,
    Path(c): Path<String>,
    q: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::BadRequest(format!("{}; expected after, limit, type, key", e.body_text())))?;
    connection(&st, &c)?;
    let after: i64 = parse_param("after", q.after.as_deref(), 0, "a message sequence number")?;
    let limit = parse_limit(q.limit.as_deref())?;
    let rows = st
        .store
        .messages(&c, after, limit, q.ty.as_deref(), q.key.as_deref())
        .await?;
    let next = rows.last().map(|m| m.seq).unwrap_or(after);
    let messages: Vec<Value> = rows
        .into_iter()
        .map(|m| {
            json!({
                "seq": m.seq,
                "specversion": "1.0",
                "id": m.id,
                "type": m.ty,
                "source": m.source,
                "subject": m.subject,
                "time": m.time,
                "datacontenttype": "application/json",
                "dataschema": m.dataschema,
                "data": serde_json::from_str::<Value>(&m.payload).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "messages": messages, "next": next })))
}
