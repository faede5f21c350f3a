//! `GET /api/connections/{c}/messages?after=&limit=&type=&key=`: a connection's message log as
//! CloudEvents, in sequence order, with the sequence number to continue after; 410 with the
//! earliest position held when positions after `after` were removed by the outbox retention.

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::query::{parse_limit, parse_param, UniqueQuery};
use crate::error::ApiError;
use crate::state::{connection, AppState};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/connections/{c}/messages", get(messages))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    /// Only messages after this sequence number (the `next` of the previous page); 0 when absent.
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    /// Page size, 1 to 1000; 100 when absent.
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// Only messages of this type (`ItemUpdated`).
    #[serde(default, rename = "type")]
    ty: Option<String>,
    /// Only messages of this entity key.
    #[serde(default)]
    key: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/connections/{c}/messages",
    operation_id = "listMessages",
    summary = "the message log (CloudEvents attributes and data), oldest first",
    tag = "messages",
    params(("c" = String, Path, description = "connection name"), MessagesQuery),
    responses(
        (status = 200, description = "a page of messages; `next` is the `after` of the next page", body = crate::routes::openapi::schemas::MessagePage),
        (status = 400, description = "a parameter or the body is wrong (named in the message)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 404, description = "no such connection (or the thing asked for does not exist)", body = crate::routes::openapi::schemas::ErrorBody),
        (status = 410, description = "messages after `after` were removed by the outbox retention: the error carries `earliest` (the oldest position held) and `resume_after`", body = crate::routes::openapi::schemas::ErrorBody)
    )
)]
async fn messages(
    State(st): State<AppState>,
    Path(c): Path<String>,
    UniqueQuery(q): UniqueQuery<MessagesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    connection(&st, &c)?;
    let after: i64 = parse_param("after", q.after.as_deref(), 0, "a message sequence number")?;
    let limit = parse_limit(q.limit.as_deref())?;
    let rows = st
        .store
        .messages(&c, after, limit, q.ty.as_deref(), q.key.as_deref())
        .await?;
    // Read after the messages: a prune that removed some of them is seen here.
    let horizon = st.store.outbox_horizon(&c).await?;
    if horizon.gone(after) {
        return Ok(gone(after, &horizon));
    }
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
                "dataschema": kafka::cloudevents::absolute_dataschema(&st.schema_base_url, &m.dataschema),
                "data": serde_json::from_str::<Value>(&m.payload).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(Json(json!({ "messages": messages, "next": next })).into_response())
}

/// 410: messages after `after` were removed by the outbox retention. The body is our JSON
/// error, with `earliest` (the oldest position held, `null` when the log is empty) and
/// `resume_after` (the lowest `after` answered in full).
///
/// In a compacted log (`outbox.mode = "compact"`) positions have gaps, and a reader is not
/// refused for them: after any position, the log holds the latest message of every key that
/// changed since (a superseded version is gone, a later one stands for it), and deletes are kept
/// for `outbox.retention`; `after=0` rebuilds the current state. Only what was removed in delete
/// mode answers 410.
fn gone(after: i64, h: &store::OutboxHorizon) -> axum::response::Response {
    let resume_after = h.state_through;
    let earliest = match h.earliest {
        Some(e) => format!("the earliest position held is {e}"),
        None => "the log is empty".to_string(),
    };
    let message = format!(
        "messages after {after} were removed by the outbox retention; {earliest}: read again from after={resume_after}"
    );
    let body = json!({"error": {
        "code": "gone",
        "message": message,
        "earliest": h.earliest,
        "resume_after": resume_after,
    }});
    (axum::http::StatusCode::GONE, Json(body)).into_response()
}
