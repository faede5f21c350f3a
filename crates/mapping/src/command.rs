//! The command mapping definition, pure data and rules: a [`CommandSpec`] names an MI program and
//! transaction and maps command fields to MI parameters ([`ParamSpec`], [`ParamType`]). Here live
//! its validation, its JSON Schema, its [`Idempotency`] (derived from the transaction verb or
//! declared), the [`Receipt`] a command is answered with, and [`check_text`], how to find out
//! whether M3 ran a command whose outcome is unknown. No I/O: the connector's command processor
//! (`pipeline::commands`) runs the transactions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

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
                super::short_json(&other)
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
    /// What a command field of this type must hold, for error messages (`an integer`).
    pub fn expected(self) -> &'static str {
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
                    if !crate::names::is_valid_field_name(f) {
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
    /// For a value too long for its MI field (`too_long`): its length in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// For a value too long for its MI field (`too_long`): the most the MI field takes.
    #[serde(default, rename = "maxLength", skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
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
                "code": {"type": "string", "minLength": 1}, "field": {"type": ["string", "null"]}, "message": {"type": "string"},
                "length": {"type": "integer", "description": "too_long: the value's length in characters"},
                "maxLength": {"type": "integer", "description": "too_long: the most its MI field takes (M3's metadata)"}}},
            "result": {},
            "sent": {"type": "object", "description": "unknown receipts: the MI call sent", "properties": {
                "program": {"type": "string"}, "transaction": {"type": "string"},
                "inputs": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "check": {"type": "string", "description": "unknown receipts: how to find out whether M3 ran it"},
            "processedAt": {"type": "string", "format": "date-time"}}})
    }
}

/// A JSON value as text, cut to about 60 characters, for error messages.
pub fn short_json(v: &Value) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn command_schemas_list_required_fields() {
        let s = default_commands()[0].json_schema();
        assert_eq!(s["properties"]["data"]["required"], json!(["itemNumber"]));
        assert_eq!(s["properties"]["command"]["const"], "UpdateItem");
    }
}
