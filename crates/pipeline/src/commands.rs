//! Commands: services change M3 by sending command messages. A command mapping names an MI
//! transaction and maps command fields to MI parameters (required / optional / fixed). The
//! processor validates a command, deduplicates it by id, runs the transaction (retrying transient
//! failures) and answers with a receipt, whatever arrives.
//!
//! A transaction that is not idempotent (it creates, deletes or consumes something, see
//! [`Idempotency`]) is never retried after an ambiguous failure (M3 may have run it: see
//! [`M3Error::may_have_run`]); its receipt is `unknown`, carrying what was sent and how to check.
//!
//! The command mapping definition itself (validation, JSON Schema, idempotency, receipts) is pure
//! and lives in [`mapping::command`]; it is re-exported here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use m3::{M3Client, M3Error};
use serde_json::{json, Value};
use store::Store;
use tracing::{info, instrument, warn};

use crate::error::PipelineError;

use mapping::command::short_json as short;
pub use mapping::command::{
    check_text, default_commands, is_mi_field, is_mi_program, is_mi_transaction, CommandSpec, CommandSpecError,
    Idempotency, ParamSpec, ParamType, Receipt, ReceiptError, ReceiptStatus, SentCall, IDEMPOTENT_VERBS,
    NOT_IDEMPOTENT_VERBS,
};

/// The outcome of handling one command message.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The receipt to publish.
    pub receipt: Receipt,
    /// Why the message also goes to the dead-letter topic, if it does.
    pub dead_letter: Option<String>,
    /// Whether this id was processed before (the stored receipt is returned, M3 is not called).
    pub duplicate: bool,
    /// The stored receipt when the id was processed before with different data: `receipt` then
    /// rejects the command (`command_id_reused`) and M3 is not called.
    pub reused: Option<Receipt>,
}

/// The receipt error code of a command id reused with different data.
pub const COMMAND_ID_REUSED: &str = "command_id_reused";

/// The receipt error code of a value longer than its MI field takes.
pub const TOO_LONG: &str = "too_long";

/// Input field lengths of MI transactions, by MI field, as M3's metadata gives them.
type FieldLengths = Arc<BTreeMap<String, MiLength>>;

/// How long an MI input field may be.
#[derive(Debug, Clone, Copy)]
struct MiLength {
    /// M3's field length.
    length: usize,
    /// Numeric (`N`): a sign and a decimal point come on top of the digits.
    numeric: bool,
}

impl MiLength {
    /// The most characters a value may have.
    fn max_chars(self) -> usize {
        if self.numeric {
            self.length + 2
        } else {
            self.length
        }
    }
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
    /// Input field lengths learnt from M3 (`MRS001MI/LstAdtFieldInf`), by program/transaction.
    lengths: Arc<RwLock<HashMap<(String, String), FieldLengths>>>,
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

/// A value longer than its MI field takes.
struct TooLong {
    path: String,
    length: usize,
    max: usize,
    message: String,
}

/// The hash of a command's canonical request: connection, command name and the MI parameters it
/// resolves to (sorted by MI field), so a redelivery matches whatever the JSON's key order or
/// spacing, and a reuse of the id with other data does not.
fn request_hash(connection: &str, name: &str, inputs: &[(String, String)]) -> String {
    let mut params: Vec<&(String, String)> = inputs.iter().collect();
    params.sort();
    let canonical = serde_json::to_string(&(connection, name, params)).expect("strings serialise");
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(canonical.as_bytes()))
}

/// A stored receipt as it is answered again: one recorded by an older version may carry an empty
/// error code, which receipts never do.
fn stored_receipt(text: &str) -> Option<Receipt> {
    let mut r = serde_json::from_str::<Receipt>(text).ok()?;
    if let Some(e) = r.error.as_mut() {
        e.code = non_empty_code(std::mem::take(&mut e.code));
    }
    Some(r)
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
            lengths: Arc::default(),
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
                    reused: None,
                });
            }
        };
        let hash = request_hash(&self.connection, &name, &inputs);
        if let Some(outcome) = self.answered_before(&id, &name, &hash).await? {
            return Ok(outcome);
        }
        let spec = &specs[&name];
        if let Some(e) = self.too_long(spec, &inputs).await {
            warn!(connection = %self.connection, command_id = %id, error = %e.message, "command rejected");
            let mut r = receipt(
                id,
                Some(name),
                ReceiptStatus::Rejected,
                Some((TOO_LONG.into(), Some(e.path), e.message.clone())),
                None,
            );
            if let Some(err) = r.error.as_mut() {
                err.length = Some(e.length);
                err.max_length = Some(e.max);
            }
            return Ok(Outcome {
                receipt: r,
                dead_letter: Some(e.message),
                duplicate: false,
                reused: None,
            });
        }
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
            .record_command(
                &self.connection,
                &id,
                &name,
                outcome_receipt.status.as_str(),
                &text,
                Some(&hash),
            )
            .await?;
        if !recorded {
            // The same id was processed concurrently and recorded first: its receipt is the answer.
            warn!(connection = %self.connection, command_id = %id, "the same command id was processed concurrently; answering with the receipt recorded first");
            if let Some(outcome) = self.answered_before(&id, &name, &hash).await? {
                return Ok(outcome);
            }
        }
        info!(connection = %self.connection, command_id = %id, command = %name, status = outcome_receipt.status.as_str(), "command processed");
        Ok(Outcome {
            receipt: outcome_receipt,
            dead_letter,
            duplicate: false,
            reused: None,
        })
    }

    /// The answer to a command whose id was processed before, if it was: the same request gets
    /// the stored receipt; other data (another hash) is rejected as a reuse of the id, showing
    /// the stored receipt. A receipt stored without a hash is taken as the same request.
    async fn answered_before(&self, id: &str, name: &str, hash: &str) -> Result<Option<Outcome>, PipelineError> {
        let Some((text, stored_hash)) = self.store.stored_command(&self.connection, id).await? else {
            return Ok(None);
        };
        let Some(stored) = stored_receipt(&text) else {
            return Ok(None);
        };
        if stored_hash.as_deref().is_none_or(|h| h == hash) {
            info!(connection = %self.connection, command_id = %id, "duplicate command; answering with the stored receipt");
            return Ok(Some(Outcome {
                receipt: stored,
                dead_letter: None,
                duplicate: true,
                reused: None,
            }));
        }
        let message = format!(
            "commandId: `{id}` was used before for a command with other data (its receipt: {} {}, processed at {}); a new command needs a new id",
            stored.command.as_deref().unwrap_or("a command"),
            stored.status.as_str(),
            stored.processed_at
        );
        warn!(connection = %self.connection, command_id = %id, "command id reused with different data; rejected, M3 not called");
        Ok(Some(Outcome {
            receipt: receipt(
                id.to_string(),
                Some(name.to_string()),
                ReceiptStatus::Rejected,
                Some((COMMAND_ID_REUSED.into(), Some("commandId".into()), message.clone())),
                None,
            ),
            dead_letter: Some(message),
            duplicate: false,
            reused: Some(stored),
        }))
    }

    /// The first MI input longer than its field takes, by M3's metadata of the transaction
    /// (learnt once per transaction). Without metadata (M3 cannot describe the transaction now)
    /// nothing is found, and M3 judges.
    async fn too_long(&self, spec: &CommandSpec, inputs: &[(String, String)]) -> Option<TooLong> {
        let lengths = self.field_lengths(&spec.program, &spec.transaction).await?;
        inputs.iter().find_map(|(mi, value)| {
            let limit = lengths.get(mi)?;
            let length = value.chars().count();
            let max = limit.max_chars();
            if length <= max {
                return None;
            }
            let param = spec.parameters.iter().find(|p| &p.mi == mi);
            let path = match param.and_then(|p| p.field.as_deref()) {
                Some(field) => format!("data.{field}"),
                None => mi.clone(),
            };
            Some(TooLong {
                message: format!(
                    "{path}: {length} characters; MI field {mi} of {}/{} takes at most {max}",
                    spec.program, spec.transaction
                ),
                path,
                length,
                max,
            })
        })
    }

    /// The input field lengths of an MI transaction, from `MRS001MI/LstAdtFieldInf` (`TRTP=I`),
    /// asked once and kept. M3's NOK (it cannot describe the transaction) is kept as no lengths;
    /// other failures are not kept (asked again next time) and give `None`.
    async fn field_lengths(&self, program: &str, transaction: &str) -> Option<FieldLengths> {
        let key = (program.to_string(), transaction.to_string());
        if let Some(known) = self.lengths.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Some(known.clone());
        }
        let inputs = [("MINM", program), ("TRNM", transaction), ("TRTP", "I")];
        let lengths: FieldLengths = match self.m3().execute("MRS001MI", "LstAdtFieldInf", &inputs, 0).await {
            Ok(records) => Arc::new(
                records
                    .iter()
                    .filter_map(|r| {
                        let name = r.get("FLNM")?.trim().to_string();
                        let length = r.get("LENG")?.trim().parse().ok()?;
                        let numeric = r.get("TYPE").is_some_and(|t| t.trim() == "N");
                        (!name.is_empty()).then_some((name, MiLength { length, numeric }))
                    })
                    .collect(),
            ),
            Err(M3Error::Nok { message, .. }) => {
                warn!(connection = %self.connection, program, transaction, error = %message, "M3 does not describe the transaction; its input lengths are not checked");
                Arc::default()
            }
            Err(e) => {
                warn!(connection = %self.connection, program, transaction, error = %e, "cannot read the transaction's input lengths from M3 now; not checked for this command");
                return None;
            }
        };
        self.lengths
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, lengths.clone());
        Some(lengths)
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

fn to_mi(ty: ParamType, v: &Value) -> Option<String> {
    match (ty, v) {
        (ParamType::String, Value::String(s)) => Some(s.clone()),
        (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        (ParamType::Decimal, Value::Number(n)) => Some(n.to_string()),
        (ParamType::Boolean, Value::Bool(b)) => Some(if *b { "1" } else { "0" }.into()),
        // A calendar date (`2026-02-30` is refused, as its schema's `format: date` refuses it).
        (ParamType::Date, Value::String(s)) if s.len() == 10 => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .map(|d| d.format("%Y%m%d").to_string()),
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
            length: None,
            max_length: None,
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
        // Shaped like a date but not one on the calendar: refused like `format: date` refuses it.
        assert_eq!(to_mi(ParamType::Date, &json!("2026-02-30")), None);
        assert_eq!(to_mi(ParamType::Date, &json!("2026-13-45")), None);
        assert_eq!(
            to_mi(ParamType::Date, &json!("2024-02-29")).as_deref(),
            Some("20240229")
        );
        assert_eq!(to_mi(ParamType::Date, &json!("2026-1-125")), None);
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
    fn the_request_hash_follows_connection_command_and_parameters_not_their_order() {
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let a = request_hash("demo", "UpdateItem", &p(&[("ITNO", "A1"), ("ITDS", "x")]));
        assert_eq!(
            a,
            request_hash("demo", "UpdateItem", &p(&[("ITDS", "x"), ("ITNO", "A1")]))
        );
        assert_ne!(
            a,
            request_hash("demo", "UpdateItem", &p(&[("ITNO", "A1"), ("ITDS", "y")]))
        );
        assert_ne!(
            a,
            request_hash("demo", "RenameItem", &p(&[("ITNO", "A1"), ("ITDS", "x")]))
        );
        assert_ne!(
            a,
            request_hash("other", "UpdateItem", &p(&[("ITNO", "A1"), ("ITDS", "x")]))
        );
        assert_ne!(a, request_hash("demo", "UpdateItem", &p(&[("ITNO", "A1")])));
    }

    #[test]
    fn stored_receipts_with_an_empty_code_are_answered_with_one() {
        let r = stored_receipt(
            r#"{"commandId":"c","command":null,"status":"failed","error":{"code":"","field":null,"message":"no"},"result":null,"processedAt":"2026-01-01T00:00:00.000Z"}"#,
        )
        .unwrap();
        assert_eq!(r.error.unwrap().code, "m3_nok");
    }

    #[test]
    fn numeric_mi_fields_leave_room_for_a_sign_and_a_decimal_point() {
        assert_eq!(
            MiLength {
                length: 15,
                numeric: true
            }
            .max_chars(),
            17
        );
        assert_eq!(
            MiLength {
                length: 30,
                numeric: false
            }
            .max_chars(),
            30
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
}
