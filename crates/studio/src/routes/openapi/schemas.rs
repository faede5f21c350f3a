//! The shapes of the API's JSON answers, for the OpenAPI document only: the handlers build
//! their answers with `json!`, so these types are never constructed. The conformance test
//! (`tests/api/openapi.rs`) checks real answers against them with `openapi-core`, so a shape
//! that drifts from what a handler sends fails there.
#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Every API error: `{"error": {"code", "message"}}` (see `crate::error::ApiError` and the token
/// middleware).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error's machine-readable code and its message.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// `not_found`, `bad_request`, `conflict`, `unavailable`, `internal`, `unauthorized`,
    /// `forbidden`, `too_many_failures`, ...
    pub code: String,
    /// What went wrong, naming the parameter or field at fault.
    pub message: String,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`: ready, or the list of problems.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// Whether the store answers, every connection reaches M3 and no mapping is failing.
    pub ready: bool,
    /// One line per problem.
    pub problems: Vec<String>,
}

/// One message of the log: the CloudEvents attributes, the data, and its sequence number.
#[derive(Serialize, ToSchema)]
pub struct LoggedMessage {
    /// Position in the connection's log (pass the last one as `after`).
    pub seq: i64,
    /// CloudEvents version, `1.0`.
    pub specversion: String,
    /// Unique id of the message.
    pub id: String,
    /// Message type (`ItemUpdated`, `ItemDeleted`, ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// Where it comes from.
    pub source: String,
    /// The entity key.
    pub subject: String,
    /// When the change was seen.
    pub time: String,
    /// `application/json`.
    pub datacontenttype: String,
    /// The JSON Schema of `data`.
    pub dataschema: Option<String>,
    /// The mapped fields (null for a message whose data was lost).
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of the message log.
#[derive(Serialize, ToSchema)]
pub struct MessagePage {
    /// Oldest first.
    pub messages: Vec<LoggedMessage>,
    /// The `after` of the next page (the last `seq`, or the `after` asked for when empty).
    pub next: i64,
}

/// A row the source gave that could not be split or mapped.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// Connection name.
    pub connection: String,
    /// Mapping name.
    pub mapping: String,
    /// Entity key, `""` when it could not be read.
    pub key: String,
    /// The raw row as read.
    pub raw: String,
    /// Why it was refused.
    pub reason: String,
    /// When first refused (RFC 3339).
    pub first_seen: String,
    /// When last refused (RFC 3339).
    pub last_seen: String,
    /// How many times it was refused.
    pub attempts: i64,
}

/// Source dead letters, most recently seen first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterPage {
    /// The rows.
    pub dead_letters: Vec<DeadLetter>,
}

/// A page of a read model (its items are described per connection in the connection's document).
#[derive(Serialize, ToSchema)]
pub struct ReadModelPage {
    /// Entities in key order.
    pub items: Vec<Object>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// Any JSON object.
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct Object(Value);

/// One connection in the list.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSummary {
    /// Connection name.
    pub name: String,
    /// `hosted` or `self-hosted`.
    pub hosting: String,
    /// `api` (created here) or `configuration` (the configuration file).
    pub source: String,
    /// Whether it is set up and at work (its `.ionapi` file is saved; a self-hosted connection's
    /// channel is open to its connector from its creation, see `connector`).
    pub running: bool,
    /// M3 connectivity (`Unknown`, `Healthy`, `Unreachable`, ..., `NotConfigured`).
    pub m3: String,
    /// Deployed mappings.
    pub message_types: u32,
    /// The connector's state (`{"state": ...}` and, self-hosted, its channel).
    #[schema(value_type = Object)]
    pub connector: Value,
}

/// `GET /api/connections`.
#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    /// Running and stored connections, by name.
    pub connections: Vec<ConnectionSummary>,
}

/// One connection's settings and state; never a secret (the webhook token only once, on
/// creation).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDetail {
    /// Connection name.
    pub name: String,
    /// `hosted` or `self-hosted`.
    pub hosting: String,
    /// `api` or `configuration`.
    pub source: String,
    /// M3 company, if set.
    pub company: Option<u32>,
    /// How the Metadata Publisher is reached (`{"via": "gateway"}` or `{"via": "direct", ...}`).
    #[schema(value_type = Option<Object>)]
    pub mdp: Value,
    /// What the saved `.ionapi` file names (tenant, application, gateway, client id), if saved.
    #[schema(value_type = Option<Object>)]
    pub ionapi: Value,
    /// The webhook path and whether a bearer token is set (and, on creation only, the token).
    #[schema(value_type = Option<Object>)]
    pub webhook: Value,
    /// Whether it is set up and at work (its `.ionapi` file is saved; a self-hosted connection's
    /// channel is open to its connector from its creation, see `connector`).
    pub running: bool,
    /// M3 connectivity.
    pub m3: String,
    /// Last M3 problem, or what to do next.
    pub m3_message: Option<String>,
    /// Deployed mappings.
    pub message_types: u32,
    /// The connector's state.
    #[schema(value_type = Object)]
    pub connector: Value,
    /// When it was created.
    pub created_at: Option<String>,
    /// Who created it.
    pub created_by: Option<String>,
    /// When it was last changed.
    pub updated_at: Option<String>,
}

/// `PUT /api/connections/{c}/mdp`: saved, checked live, and (re)started.
#[derive(Serialize, ToSchema)]
pub struct MdpSaved {
    /// Always true.
    pub saved: bool,
    /// The live check: `{"ok": true|false|null, "message", "tables"?, "status"?}`.
    #[schema(value_type = Object)]
    pub check: Value,
    /// `{"running", "error"?, "unchanged"?}`.
    #[schema(value_type = Object)]
    pub launch: Value,
    /// The connection as saved.
    pub connection: ConnectionDetail,
}

/// The check of an `.ionapi` file, step by step; secrets are never echoed. `PUT
/// /api/connections/{c}/ionapi` adds `saved`, `launch` and `connection`.
#[derive(Serialize, ToSchema)]
pub struct IonApiCheck {
    /// Whether the file is a valid `.ionapi` file.
    pub valid: bool,
    /// `Invalid`, `Unchecked`, `Unreachable`, `AuthenticationFailed`, `AuthorizationFailed` or
    /// `Healthy`.
    pub status: String,
    /// What is wrong, key by key.
    #[schema(value_type = Vec<Object>)]
    pub errors: Value,
    /// Tenant, application, gateway and client id from the file.
    #[schema(value_type = Option<Object>)]
    pub file: Value,
    /// Getting a token: `{"ok", "message"}`.
    #[schema(value_type = Option<Object>)]
    pub token: Value,
    /// Calling MI: `{"ok", "message"}`.
    #[schema(value_type = Option<Object>)]
    pub mi: Value,
    /// Whether the file was saved (`PUT .../ionapi` only).
    pub saved: Option<bool>,
    /// The (re)start (`PUT .../ionapi` only).
    #[schema(value_type = Option<Object>)]
    pub launch: Value,
    /// The connection as saved (`PUT .../ionapi` only).
    #[schema(value_type = Option<Object>)]
    pub connection: Value,
}

/// A refused `.ionapi` upload: the check naming the wrong keys, or an error.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum IonApiRefused {
    /// The file was read; the check says what is wrong.
    Check(IonApiCheck),
    /// The body was not UTF-8 text.
    Error(ErrorBody),
}

/// A token as listed (never its secret).
#[derive(Serialize, ToSchema)]
pub struct Token {
    /// Public id (the part before the `.`).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// `read`, `read-write`, `admin`, `read-model` or `connector`.
    pub scope: String,
    /// The one connection it may touch, if restricted.
    pub connection: Option<String>,
    /// When it was created.
    pub created_at: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// When it stops being accepted, if it expires.
    pub expires_at: Option<String>,
    /// When it was last accepted (to within a few seconds), if ever.
    pub last_used_at: Option<String>,
}

/// `GET /api/tokens`.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    /// Every token, revoked ones included.
    pub tokens: Vec<Token>,
}

/// `POST /api/tokens`: the token's text, shown once.
#[derive(Serialize, ToSchema)]
pub struct TokenCreated {
    /// Public id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its scope.
    pub scope: String,
    /// The one connection it may touch, if restricted.
    pub connection: Option<String>,
    /// `ebt_<id>.<secret>`: send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it stops being accepted, if it expires.
    pub expires_at: Option<String>,
    /// A reminder that it is shown once.
    pub note: String,
}

/// Tables a mapping can read.
#[derive(Serialize, ToSchema)]
pub struct TableList {
    /// `mdp` (the Metadata Publisher) or `catalogue` (built-in).
    pub source: String,
    /// `{"name", "description"}` per table.
    #[schema(value_type = Vec<Object>)]
    pub tables: Value,
}

/// One table's columns, with suggested field names.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableDetail {
    /// Table name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `mdp` or `catalogue`.
    pub source: String,
    /// Key columns.
    pub primary_key: Vec<String>,
    /// `{"name", "description", "type", "length", "decimals", "key", "suggestedName"}`.
    #[schema(value_type = Vec<Object>)]
    pub columns: Value,
}

/// `GET /api/connections/{c}/mappings`.
#[derive(Serialize, ToSchema)]
pub struct MappingList {
    /// Each mapping's latest version and what is deployed.
    #[schema(value_type = Vec<Object>)]
    pub mappings: Value,
}

/// One mapping: its versions and what runs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingDetail {
    /// Mapping name.
    pub name: String,
    /// The latest definition.
    #[schema(value_type = Option<Object>)]
    pub spec: Value,
    /// Every stored version.
    #[schema(value_type = Vec<Object>)]
    pub versions: Value,
    /// The deployed version.
    pub deployed_version: Option<i64>,
    /// When it was deployed.
    pub deployed_at: Option<String>,
    /// Who deployed it (`token:<id> (<name>)`, or the file or GitOps source).
    pub deployed_by: Option<String>,
    /// The running mapping (resource, message types, key, fields), if deployed.
    #[schema(value_type = Option<Object>)]
    pub deployed: Value,
}

/// A saved version.
#[derive(Serialize, ToSchema)]
pub struct VersionSaved {
    /// Mapping or command mapping name.
    pub name: String,
    /// The new version.
    pub version: i64,
    /// Command mappings: what may not work as meant.
    #[schema(value_type = Option<Vec<Object>>)]
    pub warnings: Value,
}

/// What is deployed after a deploy or undeploy.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Mapping name.
    pub name: String,
    /// The deployed version; null after undeploy.
    pub deployed_version: Option<i64>,
}

/// Messages a mapping would make from current rows.
#[derive(Serialize, ToSchema)]
pub struct Preview {
    /// The messages.
    #[schema(value_type = Vec<Object>)]
    pub messages: Value,
}

/// `POST /api/connections/{c}/re-export`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReExport {
    /// The mappings being exported again.
    pub re_exporting: Vec<String>,
}

/// `GET /api/connections/{c}/commands`.
#[derive(Serialize, ToSchema)]
pub struct CommandList {
    /// Each running command: name, program, transaction, idempotency, mapping and JSON Schema.
    #[schema(value_type = Vec<Object>)]
    pub commands: Value,
}

/// `GET /api/connections/{c}/command-mappings`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandMappingList {
    /// Each command mapping's latest version.
    #[schema(value_type = Vec<Object>)]
    pub command_mappings: Value,
}

/// One command mapping: its versions and whether it runs.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandMappingDetail {
    /// Name.
    pub name: String,
    /// The latest definition.
    #[schema(value_type = Object)]
    pub spec: Value,
    /// `idempotent`, `not-idempotent`, ...; null when the definition no longer parses.
    #[schema(value_type = Option<String>)]
    pub idempotency: Value,
    /// The latest version.
    pub latest_version: i64,
    /// When it was saved.
    pub updated_at: String,
    /// Who saved it.
    pub updated_by: String,
    /// Every stored version.
    #[schema(value_type = Vec<Object>)]
    pub versions: Value,
    /// JSON Schema of the command, when it runs.
    #[schema(value_type = Option<Object>)]
    pub schema: Value,
    /// Whether it runs.
    pub running: bool,
}

/// The transactions of an MI program.
#[derive(Serialize, ToSchema)]
pub struct Transactions {
    /// Program name.
    pub program: String,
    /// `{"name", "description"}` per transaction.
    #[schema(value_type = Vec<Object>)]
    pub transactions: Value,
}

/// The input fields of an MI transaction.
#[derive(Serialize, ToSchema)]
pub struct TransactionFields {
    /// Program name.
    pub program: String,
    /// Transaction name.
    pub transaction: String,
    /// The fields.
    #[schema(value_type = Vec<Object>)]
    pub fields: Value,
}

/// A webhook event applied.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub struct WebhookOutcome {
    /// Mappings on the event's table.
    pub mappings: u32,
    /// Messages appended.
    pub messages: u32,
    /// Whether rows were read back from M3.
    pub read_back: bool,
}

/// 409 of `POST /api/connections/{c}/commands`: the command id was used before for a command
/// with other data; nothing was sent to M3.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandIdReused {
    /// `command_id_reused`, and what the id was used for.
    pub error: ErrorDetail,
    /// The receipt stored for the id (a `Receipt`).
    #[schema(value_type = Object)]
    pub receipt: Value,
}
