//! Command mapping management for one connection: validation (on its own, then against M3's
//! description of the transaction through `MRS001MI`), versions in the store, and hot swapping
//! into the running [`CommandProcessor`] (shared by the Kafka consumer and the HTTP API).

use std::sync::Arc;

use m3::M3Error;
use serde::Serialize;
use serde_json::Value;
use store::{CommandMappingVersion, Store};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::commands::{default_commands, CommandProcessor, CommandSpec, CommandSpecError, Idempotency};
use crate::error::PipelineError;

/// Who stores the default command mappings on a first start.
pub const DEFAULT_AUTHOR: &str = "erp-bridge (default)";

/// Why a command mapping operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandRegistryError {
    /// The definition is not valid JSON / has unknown keys / wrong types.
    #[error("command mapping definition: {0}")]
    Spec(String),
    /// The definition is wrong; the error names the field path.
    #[error(transparent)]
    Invalid(#[from] CommandSpecError),
    /// No such command mapping, or M3 does not know the transaction asked about.
    #[error("{0}")]
    NotFound(String),
    /// The command mapping exists already.
    #[error("command mapping `{0}` exists already; change it with PUT")]
    Conflict(String),
    /// M3 failed while describing a transaction.
    #[error("M3: {0}")]
    M3(M3Error),
    /// Store failure.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl From<store::StoreError> for CommandRegistryError {
    fn from(e: store::StoreError) -> Self {
        CommandRegistryError::Pipeline(PipelineError::Store(e))
    }
}

/// An input field of an MI transaction, as `MRS001MI/LstAdtFieldInf` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MiField {
    /// MI field name (`ITNO`).
    pub name: String,
    /// MI type: `A` alphanumeric, `N` numeric, `D` date.
    #[serde(rename = "type")]
    pub ty: String,
    /// Length.
    pub length: Option<u32>,
    /// What it is.
    pub description: String,
}

/// A saved command mapping version and what validation could not check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Saved {
    /// The version saved.
    pub version: i64,
    /// Checks skipped (M3 unreachable while validating).
    pub warnings: Vec<String>,
}

/// Command mapping management of one connection.
#[derive(Clone)]
pub struct CommandRegistry {
    processor: CommandProcessor,
    store: Store,
    /// Serialises changes, so check-then-save and the swap that follows stay consistent.
    writes: Arc<Mutex<()>>,
}

impl CommandRegistry {
    /// A registry managing the command mappings `processor` (and every clone of it) runs.
    pub fn new(processor: CommandProcessor, store: Store) -> Self {
        Self {
            processor,
            store,
            writes: Arc::new(Mutex::new(())),
        }
    }

    fn connection(&self) -> &str {
        self.processor.connection()
    }

    /// The processor the registry swaps mappings into.
    pub fn processor(&self) -> &CommandProcessor {
        &self.processor
    }

    /// Parse a definition strictly; errors name the key.
    pub fn parse(json: &Value) -> Result<CommandSpec, CommandRegistryError> {
        serde_json::from_value(json.clone()).map_err(|e| CommandRegistryError::Spec(e.to_string()))
    }

    /// An `MRS001MI` metadata transaction; M3's NOK says it does not know `what`.
    async fn mrs001mi(
        &self,
        transaction: &str,
        inputs: &[(&str, &str)],
        what: &str,
    ) -> Result<Vec<m3::Record>, CommandRegistryError> {
        self.processor
            .m3()
            .execute("MRS001MI", transaction, inputs, 0)
            .await
            .map_err(|e| match e {
                M3Error::Nok { message, .. } => {
                    CommandRegistryError::NotFound(format!("M3 does not know {what}: {message}"))
                }
                other => CommandRegistryError::M3(other),
            })
    }

    /// The transactions of an MI program, from `MRS001MI/LstTransactions`: `(name, description)`
    /// in M3's order. M3's NOK (unknown program) becomes [`CommandRegistryError::NotFound`].
    pub async fn transactions(&self, program: &str) -> Result<Vec<(String, String)>, CommandRegistryError> {
        let records = self
            .mrs001mi(
                "LstTransactions",
                &[("MINM", program)],
                &format!("the program {program}"),
            )
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let name = r.get("TRNM")?.trim().to_string();
                let description = r.get("TRDS").map(|d| d.trim().to_string()).unwrap_or_default();
                (!name.is_empty()).then_some((name, description))
            })
            .collect())
    }

    /// The input fields of an MI transaction, from `MRS001MI/LstAdtFieldInf` (`TRTP=I`). M3's
    /// NOK (unknown program or transaction) becomes [`CommandRegistryError::NotFound`].
    pub async fn transaction_fields(
        &self,
        program: &str,
        transaction: &str,
    ) -> Result<Vec<MiField>, CommandRegistryError> {
        let records = self
            .mrs001mi(
                "LstAdtFieldInf",
                &[("MINM", program), ("TRNM", transaction), ("TRTP", "I")],
                &format!("{program}/{transaction}"),
            )
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let name = r.get("FLNM")?.trim().to_string();
                Some(MiField {
                    name,
                    ty: r.get("TYPE").map(|s| s.trim().to_string()).unwrap_or_default(),
                    length: r.get("LENG").and_then(|s| s.trim().parse().ok()),
                    description: r.get("FLDS").map(|s| s.trim().to_string()).unwrap_or_default(),
                })
            })
            .filter(|f| !f.name.is_empty())
            .collect())
    }

    /// Validate a definition: on its own, then against M3. M3 answering NOK rejects it naming
    /// `transaction`; an MI field the transaction does not take rejects it naming the parameter.
    /// M3 unreachable (or failing otherwise) accepts it with a warning. Declaring a transaction
    /// idempotent whose name says otherwise is accepted with a warning.
    pub async fn validate(&self, spec: &CommandSpec) -> Result<Vec<String>, CommandRegistryError> {
        spec.validate()?;
        let mut warnings = Vec::new();
        if spec.idempotent == Some(Idempotency::Idempotent)
            && Idempotency::of_transaction(&spec.transaction) == Idempotency::NotIdempotent
        {
            warnings.push(format!(
                "idempotent: declared true, although {} does not look idempotent by its name; it will be retried after timeouts and HTTP 5xx answers, so it may run twice",
                spec.transaction
            ));
        }
        let fields = match self.transaction_fields(&spec.program, &spec.transaction).await {
            Ok(f) => f,
            Err(CommandRegistryError::NotFound(message)) => {
                return Err(CommandSpecError::new("transaction", message).into());
            }
            Err(e) => {
                warn!(connection = %self.connection(), command = %spec.name, error = %e, "cannot check the transaction with M3; accepting the command mapping unchecked");
                warnings.push(format!(
                    "{}/{} was not checked with M3 ({e}); it is saved unchecked",
                    spec.program, spec.transaction
                ));
                return Ok(warnings);
            }
        };
        if fields.is_empty() {
            return Ok(warnings);
        }
        for (i, p) in spec.parameters.iter().enumerate() {
            if !fields.iter().any(|f| f.name == p.mi) {
                let hint = mapping::names::closest(&p.mi, fields.iter().map(|f| f.name.as_str()))
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                return Err(CommandSpecError::new(
                    format!("parameters[{i}].mi"),
                    format!(
                        "{}/{} has no input field {}; {hint}its input fields are: {}",
                        spec.program,
                        spec.transaction,
                        p.mi,
                        fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
                .into());
            }
        }
        Ok(warnings)
    }

    /// Every command mapping: its latest version, by name.
    pub async fn list(&self) -> Result<Vec<CommandMappingVersion>, CommandRegistryError> {
        Ok(self.store.command_mappings(self.connection()).await?)
    }

    /// The latest version of one command mapping, if it exists.
    pub async fn latest(&self, name: &str) -> Result<Option<CommandMappingVersion>, CommandRegistryError> {
        Ok(self
            .store
            .command_mapping_versions(self.connection(), name)
            .await?
            .pop()
            .filter(|v| !v.deleted))
    }

    /// Every version of one command mapping (deletions before a re-creation included).
    pub async fn versions(&self, name: &str) -> Result<Vec<CommandMappingVersion>, CommandRegistryError> {
        let v = self.store.command_mapping_versions(self.connection(), name).await?;
        if v.last().is_none_or(|l| l.deleted) {
            return Err(CommandRegistryError::NotFound(format!(
                "command mapping `{name}` does not exist"
            )));
        }
        Ok(v)
    }

    /// Create a command mapping (version 1), validated; it runs from the next command on.
    pub async fn create(&self, spec: &CommandSpec, by: &str) -> Result<Saved, CommandRegistryError> {
        let warnings = self.validate(spec).await?;
        let _guard = self.writes.lock().await;
        if self.latest(&spec.name).await?.is_some() {
            return Err(CommandRegistryError::Conflict(spec.name.clone()));
        }
        let version = self.save(spec, by).await?;
        info!(connection = %self.connection(), command = %spec.name, version, by, "command mapping created");
        Ok(Saved { version, warnings })
    }

    /// Save a new version of an existing command mapping, validated; it runs from the next
    /// command on.
    pub async fn update(&self, name: &str, spec: &CommandSpec, by: &str) -> Result<Saved, CommandRegistryError> {
        if spec.name != name {
            return Err(CommandSpecError::new(
                "name",
                format!(
                    "`{}` differs from the command mapping `{name}` in the path; a command mapping cannot be renamed",
                    spec.name
                ),
            )
            .into());
        }
        self.versions(name).await?;
        let warnings = self.validate(spec).await?;
        let _guard = self.writes.lock().await;
        self.versions(name).await?;
        let version = self.save(spec, by).await?;
        info!(connection = %self.connection(), command = %name, version, by, "command mapping updated");
        Ok(Saved { version, warnings })
    }

    /// Delete a command mapping (its history stays); commands of that name are rejected from
    /// the next one on.
    pub async fn delete(&self, name: &str, by: &str) -> Result<(), CommandRegistryError> {
        let _guard = self.writes.lock().await;
        if !self.store.delete_command_mapping(self.connection(), name, by).await? {
            return Err(CommandRegistryError::NotFound(format!(
                "command mapping `{name}` does not exist"
            )));
        }
        self.reload().await?;
        info!(connection = %self.connection(), command = %name, by, "command mapping deleted");
        Ok(())
    }

    async fn save(&self, spec: &CommandSpec, by: &str) -> Result<i64, CommandRegistryError> {
        let v = serde_json::to_value(spec).expect("command specs serialise");
        let version = self
            .store
            .save_command_mapping(self.connection(), &spec.name, &v, by)
            .await?;
        self.reload().await?;
        Ok(version)
    }

    /// Store the default command mappings as version 1 if this connection never had any.
    pub async fn seed_defaults(&self) -> Result<bool, CommandRegistryError> {
        let _guard = self.writes.lock().await;
        if self.store.has_command_mappings(self.connection()).await? {
            return Ok(false);
        }
        for spec in default_commands() {
            let v = serde_json::to_value(&spec).expect("command specs serialise");
            self.store
                .save_command_mapping(self.connection(), &spec.name, &v, DEFAULT_AUTHOR)
                .await?;
        }
        info!(connection = %self.connection(), "default command mappings stored");
        Ok(true)
    }

    /// Swap the stored command mappings (latest versions) into the processor. A stored
    /// definition that no longer parses or validates is skipped with a warning.
    pub async fn reload(&self) -> Result<usize, CommandRegistryError> {
        let mut specs = Vec::new();
        for v in self.list().await? {
            match Self::parse(&v.spec).and_then(|s| s.validate().map(|_| s).map_err(Into::into)) {
                Ok(s) if s.name == v.name => specs.push(s),
                Ok(s) => {
                    warn!(connection = %self.connection(), command = %v.name, named = %s.name, "stored command mapping has another name; skipped")
                }
                Err(e) => {
                    warn!(connection = %self.connection(), command = %v.name, version = v.version, error = %e, "stored command mapping is invalid; skipped")
                }
            }
        }
        let n = specs.len();
        self.processor.replace_specs(specs);
        Ok(n)
    }
}
