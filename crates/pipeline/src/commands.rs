//! Commands: services change M3 by sending command messages. A command mapping names an MI
//! transaction and maps command fields to MI parameters (required / optional / fixed). The
//! processor validates a command, deduplicates it by id, runs the transaction (retrying transient
//! failures) and answers with a receipt, whatever arrives.
//!
//! A transaction that is not idempotent (it creates, deletes or consumes something, see
//! [`Idempotency`]) is never retried after an ambiguous failure (M3 may have run it: see
//! [`M3Error::may_have_run`]); its receipt is `unknown`, carrying what was sent and how to check.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use m3::{M3Client, M3Error};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use store::Store;
use tracing::{info, instrument, warn};

use crate::error::PipelineError;

/// A command mapping: command name -> MI transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandSpec {
    /// Command name, PascalCase (`UpdateItem`).
    pub name: String,
    /// What the command does.
    #[serde(default)]
    pub description: String,
    /// MI program (`MMS200MI`).
    pub program: String,
    /// MI transaction (`UpdItmBasic`).
    pub transaction: String,
    /// Whether running the transaction twice is harmless, as declared in the definition
    /// (`"idempotent": true | false`); absent: derived from the transaction name (see
    /// [`CommandSpec::idempotency`]).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "idempotent_flag")]
    pub idempotent: Option<Idempotency>,
    /// Parameters.
    pub parameters: Vec<ParamSpec>,
}

/// Whether running a command's MI transaction twice has the same effect as running it once.
/// It decides what happens after an ambiguous failure (M3 may have run the transaction): an
/// idempotent command is retried, one that is not idempotent is not (its receipt is `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Idempotency {
    /// Running it again is harmless (reads, updates setting values).
    Idempotent,
    /// Running it again creates, deletes or consumes something twice, or fails (`already exists`).
    NotIdempotent,
}

/// Verbs (transaction name prefixes) of transactions that are not idempotent: they create
/// (`Add`, `Crt`, `Cre`, `Create`, `Cpy`, `Copy`, `Ins`, `Insert`, `Gen`, `Generate`), delete
/// (`Del`, `Delete`, `Dlt`, `Rmv`, `Remove`), or move work on (`Rel`, `Release`, `Prc`,
/// `Process`, `Snd`, `Send`, `Rpt`, `Report`, `Cnf`, `Confirm`, `Cls`, `Close`, `Iss`, `Issue`,
/// `Rcv`, `Receive`, `Prt`, `Print`, `Pck`, `Pick`). Verbs in neither list count as not idempotent
/// too: this list documents them.
pub const NOT_IDEMPOTENT_VERBS: &[&str] = &[
    "Add", "Crt", "Cre", "Create", "Cpy", "Copy", "Ins", "Insert", "Gen", "Generate", "Del", "Delete", "Dlt", "Rmv",
    "Remove", "Rel", "Release", "Prc", "Process", "Snd", "Send", "Rpt", "Report", "Cnf", "Confirm", "Cls", "Close",
    "Iss", "Issue", "Rcv", "Receive", "Prt", "Print", "Pck", "Pick",
];

/// Verbs of idempotent transactions: updates that set values (`Upd`, `Update`, `Chg`, `Change`,
/// `Set`) and reads (`Get`, `Lst`, `List`, `Sel`, `Select`, `Search`).
pub const IDEMPOTENT_VERBS: &[&str] = &[
    "Upd", "Update", "Chg", "Change", "Set", "Get", "Lst", "List", "Sel", "Select", "Search",
];

/// Verbs of reading transactions, used to suggest how to check an unknown outcome.
const READ_VERBS: &[&str] = &["Get", "Lst", "List", "Sel", "Select", "Search"];

/// Whether the MI transaction name starts with the verb as a word: `AddItmBasic` and `Add`
/// start with `Add`, `Address` does not.
fn has_verb(transaction: &str, verb: &str) -> bool {
    transaction
        .strip_prefix(verb)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_lowercase()))
}

fn has_any_verb(transaction: &str, verbs: &[&str]) -> bool {
    verbs.iter().any(|v| has_verb(transaction, v))
}

impl Idempotency {
    /// The idempotency of an MI transaction by the verb its name starts with: the verbs of
    /// [`IDEMPOTENT_VERBS`] are idempotent; [`NOT_IDEMPOTENT_VERBS`] and unknown verbs are not
    /// (the safe side: an unknown verb is never run twice by a retry).
    pub fn of_transaction(transaction: &str) -> Idempotency {
        if has_any_verb(transaction, NOT_IDEMPOTENT_VERBS) || !has_any_verb(transaction, IDEMPOTENT_VERBS) {
            Idempotency::NotIdempotent
        } else {
            Idempotency::Idempotent
        }
    }

    /// Lower-case name, as in the API (`idempotent`, `not-idempotent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Idempotency::Idempotent => "idempotent",
            Idempotency::NotIdempotent => "not-idempotent",
        }
    }
}

/// The definition's `"idempotent": true | false` as an [`Idempotency`]; anything else is an
/// error naming the field.
mod idempotent_flag {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    use super::Idempotency;

    pub fn serialize<S: Serializer>(v: &Option<Idempotency>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(i) => s.serialize_bool(*i == Idempotency::Idempotent),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Idempotency>, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(true) => Ok(Some(Idempotency::Idempotent)),
            Value::Bool(false) => Ok(Some(Idempotency::NotIdempotent)),
            Value::Null => Ok(None),
            other => Err(D::Error::custom(format!(
                "idempotent: expected true (running the transaction twice is harmless) or false (it must never run twice), or no `idempotent` key to derive it from the transaction name; got {}",
                super::short(&other)
            ))),
        }
    }
}

/// One MI parameter of a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParamSpec {
    /// Field name in the command's `data`; absent for fixed parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// MI field (`ITNO`).
    pub mi: String,
    /// Whether the command must carry it.
    #[serde(default)]
    pub required: bool,
    /// A value always sent, not taken from the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Type of the command field.
    #[serde(default, rename = "type")]
    pub ty: ParamType,
    /// What it means.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// Types of command fields, converted to MI's text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// JSON string, sent as is.
    #[default]
    String,
    /// JSON integer.
    Integer,
    /// JSON number.
    Decimal,
    /// JSON boolean, sent as `1`/`0`.
    Boolean,
    /// `yyyy-MM-dd` string, sent as `yyyyMMdd`.
    Date,
}

impl ParamType {
    fn expected(self) -> &'static str {
        match self {
            ParamType::String => "a string",
            ParamType::Integer => "an integer",
            ParamType::Decimal => "a number",
            ParamType::Boolean => "true or false",
            ParamType::Date => "a date string yyyy-MM-dd",
        }
    }

    /// JSON Schema of a command field of this type.
    pub fn json_schema(self) -> Value {
        match self {
            ParamType::String => json!({"type": "string"}),
            ParamType::Integer => json!({"type": "integer"}),
            ParamType::Decimal => json!({"type": "number"}),
            ParamType::Boolean => json!({"type": "boolean"}),
            ParamType::Date => json!({"type": "string", "format": "date"}),
        }
    }
}

/// What is wrong with a command mapping: the field path (`parameters[2].mi`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct CommandSpecError {
    /// Path of the field at fault in the definition (`name`, `parameters[2].mi`).
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
}

impl CommandSpecError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Whether `s` is an MI program name: upper-case letters and digits ending in `MI` (`MMS200MI`).
pub fn is_mi_program(s: &str) -> bool {
    (3..=10).contains(&s.len())
        && s.ends_with("MI")
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Whether `s` is an MI transaction name: letters and digits (`UpdItmBasic`).
pub fn is_mi_transaction(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Whether `s` is an MI field name: four upper-case letters or digits (`ITNO`).
pub fn is_mi_field(s: &str) -> bool {
    s.len() == 4 && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl CommandSpec {
    /// Check the definition on its own (no M3 call): a PascalCase name, an MI program and
    /// transaction name, and parameters each with a 4-character MI field and either a command
    /// `field` (unique, `required` allowed) or a `fixed` value. The error names the field path.
    pub fn validate(&self) -> Result<(), CommandSpecError> {
        let n = &self.name;
        if !(!n.is_empty()
            && n.len() <= 64
            && n.starts_with(|c: char| c.is_ascii_uppercase())
            && n.chars().all(|c| c.is_ascii_alphanumeric()))
        {
            return Err(CommandSpecError::new(
                "name",
                format!("expected a PascalCase command name (letters and digits, starting upper-case, like `UpdateItem`), got {n:?}"),
            ));
        }
        if !is_mi_program(&self.program) {
            return Err(CommandSpecError::new(
                "program",
                format!(
                    "expected an MI program name (upper-case letters and digits ending in `MI`, like `MMS200MI`), got {:?}",
                    self.program
                ),
            ));
        }
        if !is_mi_transaction(&self.transaction) {
            return Err(CommandSpecError::new(
                "transaction",
                format!(
                    "expected an MI transaction name (letters and digits, like `UpdItmBasic`), got {:?}",
                    self.transaction
                ),
            ));
        }
        for (i, p) in self.parameters.iter().enumerate() {
            let at = |key: &str| format!("parameters[{i}].{key}");
            if !is_mi_field(&p.mi) {
                return Err(CommandSpecError::new(
                    at("mi"),
                    format!(
                        "expected a 4-letter MI field name (upper-case letters and digits, like `ITNO`), got {:?}",
                        p.mi
                    ),
                ));
            }
            if let Some(j) = self.parameters[..i].iter().position(|q| q.mi == p.mi) {
                return Err(CommandSpecError::new(
                    at("mi"),
                    format!("MI field {} is already set by parameters[{j}]", p.mi),
                ));
            }
            match (&p.field, &p.fixed) {
                (Some(_), Some(_)) => {
                    return Err(CommandSpecError::new(
                        at("fixed"),
                        "a parameter takes its value either from the command (`field`) or is `fixed`, not both",
                    ))
                }
                (None, None) => {
                    return Err(CommandSpecError::new(
                        at("field"),
                        format!(
                            "expected a command field name (or a `fixed` value) for MI field {}",
                            p.mi
                        ),
                    ))
                }
                (None, Some(_)) if p.required => {
                    return Err(CommandSpecError::new(
                        at("required"),
                        "only a parameter taken from a command `field` can be required; a fixed value is always sent",
                    ))
                }
                (Some(f), None) => {
                    if !mapping::names::is_valid_field_name(f) {
                        return Err(CommandSpecError::new(
                            at("field"),
                            format!("expected a field name (letters, digits and `_`, starting with a letter, like `itemNumber`), got {f:?}"),
                        ));
                    }
                    if let Some(j) = self.parameters[..i].iter().position(|q| q.field.as_deref() == Some(f)) {
                        return Err(CommandSpecError::new(
                            at("field"),
                            format!("field `{f}` is already used by parameters[{j}]"),
                        ));
                    }
                }
                (None, Some(_)) => {}
            }
        }
        Ok(())
    }

    /// Whether the transaction may run twice: as declared (`idempotent`), else derived from the
    /// transaction name ([`Idempotency::of_transaction`]).
    pub fn idempotency(&self) -> Idempotency {
        self.idempotent
            .unwrap_or_else(|| Idempotency::of_transaction(&self.transaction))
    }

    /// JSON Schema (2020-12) of the command envelope for this command; `x-idempotency` says
    /// whether it is retried after an ambiguous failure.
    pub fn json_schema(&self) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        for p in &self.parameters {
            if let Some(f) = &p.field {
                let mut s = p.ty.json_schema();
                s["description"] = json!(if p.description.is_empty() {
                    format!("MI field {}", p.mi)
                } else {
                    format!("{} (MI field {})", p.description, p.mi)
                });
                props.insert(f.clone(), s);
                if p.required {
                    required.push(json!(f));
                }
            }
        }
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": self.name,
            "description": format!("{} Runs {}/{}.", self.description, self.program, self.transaction).trim().to_string(),
            "type": "object",
            "properties": {
                "commandId": {"type": "string", "minLength": 1, "description": "Unique id; a redelivered command with the same id is not executed twice."},
                "command": {"const": self.name},
                "data": {"type": "object", "properties": props, "required": required, "additionalProperties": false},
            },
            "required": ["commandId", "command", "data"],
            "x-idempotency": self.idempotency().as_str(),
        })
    }
}

/// The command mappings every connection starts with: items through `MMS200MI`.
pub fn default_commands() -> Vec<CommandSpec> {
    let p = |field: &str, mi: &str, required: bool, description: &str| ParamSpec {
        field: Some(field.into()),
        mi: mi.into(),
        required,
        fixed: None,
        ty: ParamType::String,
        description: description.into(),
    };
    vec![
        CommandSpec {
            name: "UpdateItem".into(),
            description: "Change an item's basic data.".into(),
            program: "MMS200MI".into(),
            transaction: "UpdItmBasic".into(),
            idempotent: None,
            parameters: vec![
                p("itemNumber", "ITNO", true, "Item number"),
                p("name", "ITDS", false, "Name"),
                p("description", "FUDS", false, "Description 2"),
                p("status", "STAT", false, "Status"),
                p("unit", "UNMS", false, "Basic unit of measure"),
                p("itemType", "ITTY", false, "Item type"),
            ],
        },
        CommandSpec {
            name: "CreateItem".into(),
            description: "Create an item.".into(),
            program: "MMS200MI".into(),
            transaction: "AddItmBasic".into(),
            idempotent: None,
            parameters: vec![
                p("itemNumber", "ITNO", true, "Item number"),
                p("name", "ITDS", true, "Name"),
                p("description", "FUDS", false, "Description 2"),
                p("status", "STAT", true, "Status"),
                p("unit", "UNMS", true, "Basic unit of measure"),
                p("itemType", "ITTY", true, "Item type"),
                p("responsible", "RESP", true, "Responsible"),
            ],
        },
        CommandSpec {
            name: "DeleteItem".into(),
            description: "Delete an item.".into(),
            program: "MMS200MI".into(),
            transaction: "DltItm".into(),
            idempotent: None,
            parameters: vec![p("itemNumber", "ITNO", true, "Item number")],
        },
    ]
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptStatus {
    /// M3 ran the transaction.
    Succeeded,
    /// M3 refused it (NOK) or stayed unavailable through every retry.
    Failed,
    /// The command itself is malformed; nothing was sent to M3.
    Rejected,
    /// A command that is not idempotent met an ambiguous failure (timeout, HTTP 5xx): M3 may or
    /// may not have run it. Not retried; the receipt says what was sent and how to check.
    Unknown,
}

impl ReceiptStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptStatus::Succeeded => "succeeded",
            ReceiptStatus::Failed => "failed",
            ReceiptStatus::Rejected => "rejected",
            ReceiptStatus::Unknown => "unknown",
        }
    }
}

/// What went wrong, M3's words where M3 answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptError {
    /// M3's error code (`XIM0002`) or ours (`invalid_json`, `unknown_command`, `m3_nok` when M3
    /// refused without a code, `m3_http_504`, ...); never empty.
    pub code: String,
    /// The field at fault (`ITNO`, `data.itemNumber`), if known.
    pub field: Option<String>,
    /// The message.
    pub message: String,
}

/// The answer to a command, published on the receipts topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// The command's id (or the transport position when the command had none).
    pub command_id: String,
    /// The command name, when known.
    pub command: Option<String>,
    /// Outcome.
    pub status: ReceiptStatus,
    /// Error details for failed and rejected commands.
    pub error: Option<ReceiptError>,
    /// M3's output records for succeeded commands.
    pub result: Option<Value>,
    /// For `unknown` receipts: the MI call that was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<SentCall>,
    /// For `unknown` receipts: how to find out whether M3 ran it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// When it was processed (RFC 3339).
    pub processed_at: String,
}

/// An MI call as sent to M3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentCall {
    /// MI program (`MMS200MI`).
    pub program: String,
    /// MI transaction (`AddItmBasic`).
    pub transaction: String,
    /// The MI inputs, by MI field.
    pub inputs: BTreeMap<String, String>,
}

impl Receipt {
    /// JSON Schema (2020-12) of a receipt, for the OpenAPI and AsyncAPI documents.
    pub fn json_schema() -> Value {
        json!({"type": "object", "required": ["commandId", "status", "processedAt"], "properties": {
            "commandId": {"type": "string"}, "command": {"type": ["string", "null"]},
            "status": {"enum": ["succeeded", "failed", "rejected", "unknown"],
                       "description": "unknown: a command that is not idempotent met a timeout or HTTP 5xx; M3 may have run it (see `check`); it is not retried"},
            "error": {"type": ["object", "null"], "required": ["code", "message"], "properties": {
                "code": {"type": "string", "minLength": 1}, "field": {"type": ["string", "null"]}, "message": {"type": "string"}}},
            "result": {},
            "sent": {"type": "object", "description": "unknown receipts: the MI call sent", "properties": {
                "program": {"type": "string"}, "transaction": {"type": "string"},
                "inputs": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "check": {"type": "string", "description": "unknown receipts: how to find out whether M3 ran it"},
            "processedAt": {"type": "string", "format": "date-time"}}})
    }
}

/// The outcome of handling one command message.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The receipt to publish.
    pub receipt: Receipt,
    /// Why the message also goes to the dead-letter topic, if it does.
    pub dead_letter: Option<String>,
    /// Whether this id was processed before (the stored receipt is returned, M3 is not called).
    pub duplicate: bool,
}

/// Retry policy for transient M3 failures.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all.
    pub attempts: u32,
    /// First pause; doubles each time.
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            first_backoff: Duration::from_millis(500),
        }
    }
}

/// The command mappings a processor runs, by name: an immutable snapshot.
pub type SpecSet = Arc<BTreeMap<String, CommandSpec>>;

/// Validates and executes commands of one connection. Clones share the command mappings, so
/// [`CommandProcessor::replace_specs`] on one (the registry's) takes effect in all of them (the
/// Kafka consumer's and the HTTP API's) from the next command on.
#[derive(Clone)]
pub struct CommandProcessor {
    client: Arc<M3Client>,
    store: Store,
    connection: String,
    specs: Arc<RwLock<SpecSet>>,
    retry: RetryPolicy,
    /// Set for a self-hosted connection: transactions run on its connector.
    remote: Option<crate::remote_mi::RemoteMi>,
}

struct Invalid {
    code: &'static str,
    field: Option<String>,
    message: String,
}

fn invalid(code: &'static str, field: Option<&str>, message: String) -> Invalid {
    Invalid {
        code,
        field: field.map(str::to_string),
        message,
    }
}

impl CommandProcessor {
    /// A processor for `specs` on one connection.
    pub fn new(
        client: Arc<M3Client>,
        store: Store,
        connection: &str,
        specs: Vec<CommandSpec>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            client,
            store,
            connection: connection.to_string(),
            specs: Arc::new(RwLock::new(Arc::new(
                specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
            ))),
            retry,
            remote: None,
        }
    }

    /// Run transactions through a self-hosted connector instead of calling M3 directly.
    pub fn through(mut self, remote: crate::remote_mi::RemoteMi) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The command mappings now, by name (a snapshot: later swaps do not change it).
    pub fn spec_set(&self) -> SpecSet {
        self.specs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The command mappings now, in name order.
    pub fn specs(&self) -> impl Iterator<Item = CommandSpec> {
        self.spec_set().values().cloned().collect::<Vec<_>>().into_iter()
    }

    /// Replace the command mappings of this processor and every clone of it. Commands being
    /// processed finish with the mappings they started with.
    pub fn replace_specs(&self, specs: Vec<CommandSpec>) {
        let set: SpecSet = Arc::new(specs.into_iter().map(|s| (s.name.clone(), s)).collect());
        *self.specs.write().unwrap_or_else(|e| e.into_inner()) = set;
    }

    /// How commands reach M3: directly, or through the self-hosted connector.
    pub fn m3(&self) -> crate::remote_mi::M3Access {
        match &self.remote {
            Some(r) => crate::remote_mi::M3Access::Remote(r.clone()),
            None => crate::remote_mi::M3Access::Direct(self.client.clone()),
        }
    }

    /// The connection's name.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// Handle one command envelope `{"commandId", "command", "data"}`. `fallback_id` names the
    /// message in receipts when it carries no usable id (e.g. `partition/offset`).
    #[instrument(skip_all, fields(connection = %self.connection))]
    pub async fn handle(&self, raw: &[u8], fallback_id: &str) -> Result<Outcome, PipelineError> {
        let specs = self.spec_set();
        let (id, name, inputs) = match self.validate(&specs, raw) {
            Ok(v) => v,
            Err((id, name, e)) => {
                let id = id.unwrap_or_else(|| fallback_id.to_string());
                warn!(connection = %self.connection, command_id = %id, error = %e.message, "command rejected");
                let receipt = receipt(
                    id,
                    name,
                    ReceiptStatus::Rejected,
                    Some((e.code.to_string(), e.field, e.message.clone())),
                    None,
                );
                return Ok(Outcome {
                    receipt,
                    dead_letter: Some(e.message),
                    duplicate: false,
                });
            }
        };
        if let Some(stored) = self.store.command_receipt(&self.connection, &id).await? {
            if let Ok(receipt) = serde_json::from_str::<Receipt>(&stored) {
                info!(connection = %self.connection, command_id = %id, "duplicate command; answering with the stored receipt");
                return Ok(Outcome {
                    receipt,
                    dead_letter: None,
                    duplicate: true,
                });
            }
        }
        let spec = &specs[&name];
        let idempotency = spec.idempotency();
        let pairs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            let result = self.m3().execute(&spec.program, &spec.transaction, &pairs, 0).await;
            match result {
                // M3 may have run it: running it again could do it twice.
                Err(e) if e.may_have_run() && idempotency == Idempotency::NotIdempotent => break Err(e),
                Err(e) if e.is_transient() && attempt < self.retry.attempts => {
                    let wait = e
                        .retry_after()
                        .unwrap_or(self.retry.first_backoff * 2u32.pow(attempt - 1));
                    warn!(connection = %self.connection, command_id = %id, error = %e, retry_in = ?wait, "M3 unavailable; retrying command");
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        let (outcome_receipt, dead_letter) = match result {
            Ok(records) => (
                receipt(
                    id.clone(),
                    Some(name.clone()),
                    ReceiptStatus::Succeeded,
                    None,
                    Some(json!({ "records": records })),
                ),
                None,
            ),
            Err(M3Error::Nok {
                code, field, message, ..
            }) => (
                receipt(
                    id.clone(),
                    Some(name.clone()),
                    ReceiptStatus::Failed,
                    Some((code, field, message)),
                    None,
                ),
                None,
            ),
            Err(e) if e.may_have_run() && idempotency == Idempotency::NotIdempotent => {
                let check = check_text(spec, &specs, &inputs);
                warn!(connection = %self.connection, command_id = %id, command = %name, error = %e, "M3 may have run a command that is not idempotent; not retried, outcome unknown");
                let mut r = receipt(
                    id.clone(),
                    Some(name.clone()),
                    ReceiptStatus::Unknown,
                    Some((ambiguous_code(&e), None, e.to_string())),
                    None,
                );
                r.sent = Some(SentCall {
                    program: spec.program.clone(),
                    transaction: spec.transaction.clone(),
                    inputs: inputs.iter().cloned().collect(),
                });
                r.check = Some(check.clone());
                (r, Some(format!("outcome unknown ({e}); {check}")))
            }
            Err(e) => {
                let transient = e.is_transient();
                let r = receipt(
                    id.clone(),
                    Some(name.clone()),
                    ReceiptStatus::Failed,
                    Some((
                        if transient { "m3_unavailable" } else { "m3_error" }.into(),
                        None,
                        e.to_string(),
                    )),
                    None,
                );
                (r, Some(format!("M3 failed after {attempt} attempts: {e}")))
            }
        };
        let text = serde_json::to_string(&outcome_receipt).expect("receipts serialise");
        let recorded = self
            .store
            .record_command(&self.connection, &id, &name, outcome_receipt.status.as_str(), &text)
            .await?;
        if !recorded {
            // The same id was processed concurrently and recorded first: its receipt is the answer.
            if let Some(stored) = self.store.command_receipt(&self.connection, &id).await? {
                if let Ok(receipt) = serde_json::from_str::<Receipt>(&stored) {
                    warn!(connection = %self.connection, command_id = %id, "the same command id was processed concurrently; answering with the receipt recorded first");
                    return Ok(Outcome {
                        receipt,
                        dead_letter: None,
                        duplicate: true,
                    });
                }
            }
        }
        info!(connection = %self.connection, command_id = %id, command = %name, status = outcome_receipt.status.as_str(), "command processed");
        Ok(Outcome {
            receipt: outcome_receipt,
            dead_letter,
            duplicate: false,
        })
    }

    /// Parse and check a command; on error also return whatever id and name could be read.
    #[allow(clippy::type_complexity)]
    fn validate(
        &self,
        specs: &BTreeMap<String, CommandSpec>,
        raw: &[u8],
    ) -> Result<(String, String, Vec<(String, String)>), (Option<String>, Option<String>, Invalid)> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| {
            (
                None,
                None,
                invalid(
                    "invalid_json",
                    None,
                    format!("not valid JSON at line {} column {}: {e}", e.line(), e.column()),
                ),
            )
        })?;
        let Value::Object(obj) = v else {
            return Err((
                None,
                None,
                invalid(
                    "invalid_command",
                    None,
                    "expected a JSON object with commandId, command and data".into(),
                ),
            ));
        };
        let id = match obj.get("commandId") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => s.clone(),
            _ => {
                return Err((
                    None,
                    None,
                    invalid(
                        "invalid_command",
                        Some("commandId"),
                        "commandId: expected a non-empty string of at most 200 characters".into(),
                    ),
                ))
            }
        };
        let name = match obj.get("command") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err((
                    Some(id),
                    None,
                    invalid("invalid_command", Some("command"), "command: expected a string".into()),
                ))
            }
        };
        let Some(spec) = specs.get(&name) else {
            let known: Vec<&str> = specs.keys().map(String::as_str).collect();
            let hint = mapping::names::closest(&name, known.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err((
                Some(id),
                Some(name.clone()),
                invalid(
                    "unknown_command",
                    Some("command"),
                    format!(
                        "command: unknown command `{name}`; {hint}expected one of: {}",
                        known.join(", ")
                    ),
                ),
            ));
        };
        if let Some(extra) = obj
            .keys()
            .find(|k| !matches!(k.as_str(), "commandId" | "command" | "data"))
        {
            return Err((
                Some(id),
                Some(name),
                invalid(
                    "invalid_command",
                    Some(extra),
                    format!("{extra}: unknown key; expected commandId, command, data"),
                ),
            ));
        }
        let data = match obj.get("data") {
            Some(Value::Object(d)) => d,
            None => {
                return Err((
                    Some(id),
                    Some(name),
                    invalid("invalid_command", Some("data"), "data: required, an object".into()),
                ))
            }
            Some(_) => {
                return Err((
                    Some(id),
                    Some(name),
                    invalid("invalid_command", Some("data"), "data: expected an object".into()),
                ))
            }
        };
        let fields: Vec<&str> = spec.parameters.iter().filter_map(|p| p.field.as_deref()).collect();
        if let Some(unknown) = data.keys().find(|k| !fields.contains(&k.as_str())) {
            return Err((
                Some(id),
                Some(name),
                invalid(
                    "unknown_field",
                    Some(&format!("data.{unknown}")),
                    format!(
                        "data.{unknown}: not a parameter of {}; expected: {}",
                        spec.name,
                        fields.join(", ")
                    ),
                ),
            ));
        }
        let mut inputs = Vec::new();
        for p in &spec.parameters {
            if let Some(fixed) = &p.fixed {
                inputs.push((p.mi.clone(), fixed.clone()));
                continue;
            }
            let Some(field) = &p.field else { continue };
            let path = format!("data.{field}");
            match data.get(field) {
                None | Some(Value::Null) => {
                    if p.required {
                        return Err((
                            Some(id),
                            Some(name),
                            invalid(
                                "missing_field",
                                Some(&path),
                                format!("{path}: required ({})", p.ty.expected()),
                            ),
                        ));
                    }
                }
                Some(v) => match to_mi(p.ty, v) {
                    Some(s) => inputs.push((p.mi.clone(), s)),
                    None => {
                        return Err((
                            Some(id),
                            Some(name),
                            invalid(
                                "wrong_type",
                                Some(&path),
                                format!("{path}: expected {}, got {}", p.ty.expected(), short(v)),
                            ),
                        ))
                    }
                },
            }
        }
        Ok((id, name, inputs))
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(57).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

fn to_mi(ty: ParamType, v: &Value) -> Option<String> {
    match (ty, v) {
        (ParamType::String, Value::String(s)) => Some(s.clone()),
        (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        (ParamType::Decimal, Value::Number(n)) => Some(n.to_string()),
        (ParamType::Boolean, Value::Bool(b)) => Some(if *b { "1" } else { "0" }.into()),
        (ParamType::Date, Value::String(s)) => {
            let b = s.as_bytes();
            let ok = b.len() == 10
                && b[4] == b'-'
                && b[7] == b'-'
                && b.iter()
                    .enumerate()
                    .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
            ok.then(|| s.replace('-', ""))
        }
        _ => None,
    }
}

/// The receipt error code of an ambiguous failure: the HTTP status, or what happened.
fn ambiguous_code(e: &M3Error) -> String {
    match e {
        M3Error::Http { status, .. } => format!("m3_http_{status}"),
        M3Error::Decode { .. } => "m3_unreadable_answer".into(),
        _ => "m3_no_answer".into(),
    }
}

/// Known reading transactions of standard programs: (program, transaction, key MI fields, what
/// a record is), to say how to check an unknown outcome when no command mapping reads the
/// program.
const KNOWN_READS: &[(&str, &str, &[&str], &str)] = &[
    ("MMS200MI", "GetItmBasic", &["ITNO"], "item"),
    ("CRS610MI", "GetBasicData", &["CUNO"], "customer"),
    ("CRS620MI", "GetBasicData", &["SUNO"], "supplier"),
    ("OIS100MI", "GetHead", &["ORNO"], "customer order"),
    ("PPS200MI", "GetHead", &["PUNO"], "purchase order"),
    ("MMS005MI", "GetWarehouse", &["WHLO"], "warehouse"),
];

/// How to find out whether M3 ran `spec`'s transaction with `inputs`: a Get/Lst transaction of
/// the same program (from a command mapping of this connection that reads it, else from
/// [`KNOWN_READS`]) with the key values that were sent, else a generic sentence.
pub fn check_text(spec: &CommandSpec, specs: &BTreeMap<String, CommandSpec>, inputs: &[(String, String)]) -> String {
    let t = spec.transaction.as_str();
    let created = has_any_verb(t, &["Add", "Crt", "Cre", "Create", "Cpy", "Copy", "Ins", "Insert"]);
    let deleted = has_any_verb(t, &["Del", "Delete", "Dlt", "Rmv", "Remove"]);
    // A Get before a Lst; a mapping of this connection before the built-in list.
    let mapped = specs
        .values()
        .filter(|s| s.program == spec.program && has_any_verb(&s.transaction, READ_VERBS))
        .min_by_key(|s| (!has_verb(&s.transaction, "Get"), s.transaction.clone()))
        .map(|s| {
            let required: Vec<&str> = s
                .parameters
                .iter()
                .filter(|p| p.required)
                .map(|p| p.mi.as_str())
                .collect();
            let keys = if required.is_empty() {
                s.parameters
                    .iter()
                    .filter(|p| p.fixed.is_none())
                    .map(|p| p.mi.as_str())
                    .collect()
            } else {
                required
            };
            let noun = KNOWN_READS
                .iter()
                .find(|(p, ..)| *p == spec.program)
                .map_or("record", |(.., noun)| *noun);
            (s.transaction.clone(), keys, noun)
        });
    let read = mapped.or_else(|| {
        KNOWN_READS
            .iter()
            .find(|(p, ..)| *p == spec.program)
            .map(|(_, t, keys, noun)| (t.to_string(), keys.to_vec(), *noun))
    });
    let again = "send it again with a new commandId only if it did not run";
    let Some((read, keys, noun)) = read else {
        return format!(
            "M3 may have run {}/{t}: check in M3 (with a Get or Lst transaction of {}, or its panel) whether it took effect; {again}",
            spec.program, spec.program
        );
    };
    let effect = if created {
        format!("the {noun} exists (then it was created)")
    } else if deleted {
        format!("the {noun} still exists (then it was not deleted)")
    } else {
        format!("{t} took effect")
    };
    let with: Vec<String> = inputs
        .iter()
        .filter(|(k, _)| keys.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if keys.is_empty() {
        format!("run {}/{read} to see whether {effect}; {again}", spec.program)
    } else if with.is_empty() {
        format!(
            "run {}/{read} with the {noun}'s key ({}) to see whether {effect}; {again}",
            spec.program,
            keys.join(", ")
        )
    } else {
        format!(
            "run {}/{read} with {} to see whether {effect}; {again}",
            spec.program,
            with.join(", ")
        )
    }
}

/// The code of a receipt error, never empty: M3 can refuse without a code.
fn non_empty_code(code: String) -> String {
    if code.trim().is_empty() {
        "m3_nok".into()
    } else {
        code
    }
}

fn receipt(
    id: String,
    command: Option<String>,
    status: ReceiptStatus,
    error: Option<(String, Option<String>, String)>,
    result: Option<Value>,
) -> Receipt {
    Receipt {
        command_id: id,
        command,
        status,
        error: error.map(|(code, field, message)| ReceiptError {
            code: non_empty_code(code),
            field,
            message,
        }),
        result,
        sent: None,
        check: None,
        processed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mi_values_follow_the_parameter_type() {
        assert_eq!(
            to_mi(ParamType::Date, &json!("2026-11-25")).as_deref(),
            Some("20261125")
        );
        assert_eq!(to_mi(ParamType::Date, &json!("25.11.2026")), None);
        assert_eq!(to_mi(ParamType::Boolean, &json!(true)).as_deref(), Some("1"));
        assert_eq!(to_mi(ParamType::Integer, &json!(1.5)), None);
        assert_eq!(to_mi(ParamType::Decimal, &json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(to_mi(ParamType::String, &json!(5)), None);
    }

    fn rename() -> CommandSpec {
        serde_json::from_value(json!({
            "name": "RenameItem", "program": "MMS200MI", "transaction": "UpdItmBasic",
            "parameters": [
                {"field": "itemNumber", "mi": "ITNO", "required": true},
                {"field": "newName", "mi": "ITDS", "required": true},
                {"mi": "STAT", "fixed": "20"},
            ]
        }))
        .unwrap()
    }

    #[test]
    fn command_specs_are_validated_naming_the_field() {
        for s in default_commands() {
            assert_eq!(s.validate(), Ok(()), "{}", s.name);
        }
        assert_eq!(rename().validate(), Ok(()));
        let err = |f: &dyn Fn(&mut CommandSpec)| {
            let mut s = rename();
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        assert!(err(&|s| s.name = "renameItem".into()).starts_with("name: expected a PascalCase"));
        assert!(err(&|s| s.program = "MMS200".into()).starts_with("program: "));
        assert!(err(&|s| s.program = "mms200mi".into()).starts_with("program: "));
        assert!(err(&|s| s.transaction = "Upd-Itm".into()).starts_with("transaction: "));
        assert!(err(&|s| s.transaction = String::new()).starts_with("transaction: "));
        assert_eq!(
            err(&|s| s.parameters[2].mi = "ITNOX".into()),
            r#"parameters[2].mi: expected a 4-letter MI field name (upper-case letters and digits, like `ITNO`), got "ITNOX""#
        );
        assert!(err(&|s| s.parameters[1].mi = "ITNO".into())
            .starts_with("parameters[1].mi: MI field ITNO is already set by parameters[0]"));
        assert!(err(&|s| s.parameters[1].fixed = Some("x".into())).starts_with("parameters[1].fixed: "));
        assert!(err(&|s| s.parameters[2].fixed = None).starts_with("parameters[2].field: "));
        assert!(err(&|s| s.parameters[2].required = true).starts_with("parameters[2].required: "));
        assert!(err(&|s| s.parameters[1].field = Some("item number".into())).starts_with("parameters[1].field: "));
        assert!(err(&|s| s.parameters[1].field = Some("itemNumber".into()))
            .starts_with("parameters[1].field: field `itemNumber` is already used by parameters[0]"));
    }

    #[tokio::test]
    async fn clones_see_swapped_specs() {
        // The processor is only built, never run: no M3 is needed.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let sim = m3_sim::Simulator::new(m3_sim::SimConfig {
            items: 1,
            ..Default::default()
        });
        let ion = m3::IonApi::parse(&sim.ionapi("http://127.0.0.1:9").to_string()).unwrap();
        let client = Arc::new(M3Client::new(ion, Default::default()).unwrap());
        let p = CommandProcessor::new(client, store, "demo", default_commands(), RetryPolicy::default());
        let clone = p.clone();
        let snapshot = clone.spec_set();
        p.replace_specs(vec![rename()]);
        assert_eq!(clone.specs().map(|s| s.name).collect::<Vec<_>>(), ["RenameItem"]);
        assert_eq!(snapshot.len(), 3, "a snapshot taken before stays as it was");
    }

    #[test]
    fn idempotency_follows_the_transaction_verb_and_unknown_verbs_are_not_idempotent() {
        for t in [
            "AddItmBasic",
            "Add",
            "CrtOrder",
            "CreAddress",
            "CreateLine",
            "CpyItem",
            "InsLine",
            "DelLine",
            "Delete",
            "DltItm",
            "RelOrder",
            "Release",
            "PrcBatch",
            "SndOrder",
            "GenInvoice",
            "RptReceipt",
            "CnfLine",
            // Unknown verbs: the safe side.
            "Address",
            "Settle",
            "Updater",
            "Foo",
            "ADDITMBASIC",
            "X1",
        ] {
            assert_eq!(Idempotency::of_transaction(t), Idempotency::NotIdempotent, "{t}");
        }
        for t in [
            "UpdItmBasic",
            "Update",
            "ChgBasicData",
            "SetStatus",
            "GetItmBasic",
            "LstItmByItm",
            "List",
            "Select",
            "SelItems",
            "Search",
        ] {
            assert_eq!(Idempotency::of_transaction(t), Idempotency::Idempotent, "{t}");
        }
        let by_name: BTreeMap<String, Idempotency> = default_commands()
            .into_iter()
            .map(|s| (s.name.clone(), s.idempotency()))
            .collect();
        assert_eq!(by_name["UpdateItem"], Idempotency::Idempotent);
        assert_eq!(by_name["CreateItem"], Idempotency::NotIdempotent);
        assert_eq!(by_name["DeleteItem"], Idempotency::NotIdempotent);
    }

    #[test]
    fn idempotency_can_be_declared_and_a_wrong_value_names_the_field() {
        let mut v = serde_json::to_value(rename()).unwrap();
        assert!(v.get("idempotent").is_none(), "derived idempotency is not written: {v}");
        v["idempotent"] = json!(false);
        let s: CommandSpec = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.idempotent, Some(Idempotency::NotIdempotent));
        assert_eq!(
            s.idempotency(),
            Idempotency::NotIdempotent,
            "declared wins over UpdItmBasic"
        );
        assert_eq!(serde_json::to_value(&s).unwrap()["idempotent"], json!(false));
        assert_eq!(s.json_schema()["x-idempotency"], "not-idempotent");
        v["transaction"] = json!("AddItmBasic");
        v["idempotent"] = json!(true);
        let s: CommandSpec = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(s.idempotency(), Idempotency::Idempotent);
        v["idempotent"] = json!("no");
        let err = serde_json::from_value::<CommandSpec>(v).unwrap_err().to_string();
        assert!(err.starts_with("idempotent: expected true"), "{err}");
        assert!(err.contains(r#"got "no""#), "{err}");
    }

    #[test]
    fn unknown_outcomes_say_how_to_check_with_a_read_of_the_same_program() {
        let specs: BTreeMap<String, CommandSpec> =
            default_commands().into_iter().map(|s| (s.name.clone(), s)).collect();
        let inputs = vec![
            ("ITNO".to_string(), "A1".to_string()),
            ("ITDS".to_string(), "Bolt".to_string()),
        ];
        assert_eq!(
            check_text(&specs["CreateItem"], &specs, &inputs),
            "run MMS200MI/GetItmBasic with ITNO=A1 to see whether the item exists (then it was created); send it again with a new commandId only if it did not run"
        );
        assert!(check_text(&specs["DeleteItem"], &specs, &inputs).contains("whether the item still exists"));
        // A reading command mapping of the same program is preferred, with its key fields.
        let mut with_read = specs.clone();
        let read: CommandSpec = serde_json::from_value(json!({
            "name": "ReadItem", "program": "MMS200MI", "transaction": "LstItmByItm",
            "parameters": [{"field": "itemNumber", "mi": "ITNO", "required": true}]
        }))
        .unwrap();
        with_read.insert(read.name.clone(), read);
        assert!(
            check_text(&specs["CreateItem"], &with_read, &inputs).starts_with("run MMS200MI/LstItmByItm with ITNO=A1 ")
        );
        let unknown: CommandSpec = serde_json::from_value(json!({
            "name": "PostThing", "program": "ZZS001MI", "transaction": "AddThing",
            "parameters": [{"field": "id", "mi": "THID", "required": true}]
        }))
        .unwrap();
        let generic = check_text(&unknown, &specs, &[("THID".into(), "7".into())]);
        assert!(
            generic.starts_with("M3 may have run ZZS001MI/AddThing: check in M3"),
            "{generic}"
        );
    }

    #[test]
    fn receipt_codes_are_never_empty() {
        let r = receipt(
            "c".into(),
            None,
            ReceiptStatus::Failed,
            Some((" ".into(), None, "no".into())),
            None,
        );
        assert_eq!(r.error.unwrap().code, "m3_nok");
        let r = receipt(
            "c".into(),
            None,
            ReceiptStatus::Failed,
            Some(("XIM0002".into(), None, "no".into())),
            None,
        );
        assert_eq!(r.error.unwrap().code, "XIM0002");
    }

    #[test]
    fn command_schemas_list_required_fields() {
        let s = default_commands()[0].json_schema();
        assert_eq!(s["properties"]["data"]["required"], json!(["itemNumber"]));
        assert_eq!(s["properties"]["command"]["const"], "UpdateItem");
    }
}
