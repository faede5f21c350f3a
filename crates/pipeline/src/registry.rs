//! Mapping management for one connection: table metadata (MDP first, the standard catalogue as
//! fallback), validation, versions in the store, deploy/undeploy on the running connector,
//! re-export and preview.

use mapping::catalog::{self, Table};
use mapping::{MappingError, MappingSpec};
use serde::Serialize;
use serde_json::{json, Value};
use store::{MappingRecord, MappingVersion, Store};
use tracing::{info, warn};

use crate::connector::{Connector, MappingSource};
use crate::error::PipelineError;

/// Why a mapping operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The definition is not valid JSON / has unknown keys / wrong types.
    #[error("mapping definition: {0}")]
    Spec(String),
    /// The definition does not fit the table.
    #[error(transparent)]
    Invalid(#[from] MappingError),
    /// The table is unknown.
    #[error("table: unknown table `{table}`{hint}")]
    UnknownTable { table: String, hint: String },
    /// No such mapping (or version).
    #[error("{0}")]
    NotFound(String),
    /// The mapping exists already.
    #[error("mapping `{0}` exists already; change it with PUT")]
    Conflict(String),
    /// M3 failed while reading rows for a preview.
    #[error("M3: {0}")]
    M3(#[from] m3::M3Error),
    /// Store or connector failure.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl From<store::StoreError> for RegistryError {
    fn from(e: store::StoreError) -> Self {
        RegistryError::Pipeline(PipelineError::Store(e))
    }
}

/// Where a table's metadata came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataSource {
    /// The Metadata Publisher of this M3 (custom columns included).
    Mdp,
    /// The built-in standard catalogue.
    Catalogue,
}

/// Mapping management of one connection.
#[derive(Clone)]
pub struct MappingRegistry {
    connector: Connector,
    store: Store,
}

impl MappingRegistry {
    /// A registry over a running connector.
    pub fn new(connector: Connector, store: Store) -> Self {
        Self { connector, store }
    }

    fn connection(&self) -> &str {
        self.connector.connection()
    }

    /// A table's metadata: from MDP when it answers, else the standard catalogue.
    pub async fn table(&self, name: &str) -> Result<(Table, MetadataSource), RegistryError> {
        let name = name.trim().to_ascii_uppercase();
        let mdp = self.connector.m3().mdp_table(&name).await;
        match mdp {
            Ok(Some(t)) => return Ok((t, MetadataSource::Mdp)),
            Ok(None) => {}
            Err(e) => {
                warn!(connection = %self.connection(), table = %name, error = %e, "MDP unavailable; using the standard catalogue")
            }
        }
        if let Some(t) = catalog::standard_table(&name) {
            return Ok((t, MetadataSource::Catalogue));
        }
        let names: Vec<String> = catalog::standard_tables().into_iter().map(|t| t.name).collect();
        let hint = mapping::names::closest(&name, names.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        Err(RegistryError::UnknownTable { table: name, hint })
    }

    /// Tables whose name starts with `filter`: MDP's list, else the standard catalogue.
    pub async fn tables(&self, filter: &str) -> (Vec<m3::mdp::TableInfo>, MetadataSource) {
        let filter = filter.trim().to_ascii_uppercase();
        match self.connector.m3().mdp_tables(&filter).await {
            Ok(list) => (list, MetadataSource::Mdp),
            Err(_) => (
                catalog::standard_tables()
                    .into_iter()
                    .filter(|t| t.name.starts_with(&filter))
                    .map(|t| m3::mdp::TableInfo {
                        name: t.name,
                        description: t.description,
                    })
                    .collect(),
                MetadataSource::Catalogue,
            ),
        }
    }

    /// Parse a definition strictly; errors name the key.
    pub fn parse(json: &Value) -> Result<MappingSpec, RegistryError> {
        serde_json::from_value(json.clone()).map_err(|e| RegistryError::Spec(e.to_string()))
    }

    /// Validate a definition against its table.
    pub async fn validate(&self, spec: &MappingSpec) -> Result<MappingSource, RegistryError> {
        let (table, _) = self.table(&spec.table).await.map_err(|e| match e {
            RegistryError::UnknownTable { table, hint } => RegistryError::Invalid(MappingError::UnknownTable {
                mapping: spec.name.clone(),
                table,
                suggestion: hint
                    .strip_prefix("; did you mean `")
                    .and_then(|h| h.strip_suffix("`?"))
                    .map(str::to_string),
            }),
            other => other,
        })?;
        Ok(MappingSource::new(spec, table)?)
    }

    /// All mappings with their latest version and deployment.
    pub async fn list(&self) -> Result<Vec<MappingRecord>, RegistryError> {
        Ok(self.store.mappings(self.connection()).await?)
    }

    /// Every version of one mapping.
    pub async fn versions(&self, name: &str) -> Result<Vec<MappingVersion>, RegistryError> {
        let v = self.store.mapping_versions(self.connection(), name).await?;
        if v.is_empty() {
            return Err(RegistryError::NotFound(format!("mapping `{name}` does not exist")));
        }
        Ok(v)
    }

    /// Create a mapping (version 1), validated. Not deployed yet.
    pub async fn create(&self, spec: &MappingSpec, by: &str) -> Result<i64, RegistryError> {
        self.validate(spec).await?;
        if !self
            .store
            .mapping_versions(self.connection(), &spec.name)
            .await?
            .is_empty()
        {
            return Err(RegistryError::Conflict(spec.name.clone()));
        }
        let v = serde_json::to_value(spec).expect("specs serialise");
        Ok(self.store.save_mapping(self.connection(), &spec.name, &v, by).await?)
    }

    /// Save a new version of an existing mapping, validated. A deployed mapping keeps running its
    /// deployed version until deployed again.
    pub async fn update(&self, name: &str, spec: &MappingSpec, by: &str) -> Result<i64, RegistryError> {
        if spec.name != name {
            return Err(RegistryError::Spec(format!(
                "name: `{}` differs from the mapping `{name}` in the path; a mapping cannot be renamed",
                spec.name
            )));
        }
        self.versions(name).await?;
        self.validate(spec).await?;
        let v = serde_json::to_value(spec).expect("specs serialise");
        Ok(self.store.save_mapping(self.connection(), name, &v, by).await?)
    }

    /// Deploy a version (default: the latest). A new definition re-exports its table.
    pub async fn deploy(&self, name: &str, version: Option<i64>, by: &str) -> Result<i64, RegistryError> {
        let (version, source) = self.record_deployment(name, version, by).await?;
        self.connector.deploy(source).await;
        info!(connection = %self.connection(), mapping = %name, version, by, "deployed");
        Ok(version)
    }

    /// Validate a version (default: the latest) and record it as deployed, without starting it
    /// (start-up records first, then [`Self::sync_deployments`] starts everything once).
    pub async fn record_deployment(
        &self,
        name: &str,
        version: Option<i64>,
        by: &str,
    ) -> Result<(i64, MappingSource), RegistryError> {
        let versions = self.versions(name).await?;
        let chosen = match version {
            Some(n) => versions
                .iter()
                .find(|v| v.version == n)
                .ok_or_else(|| RegistryError::NotFound(format!("mapping `{name}` has no version {n}")))?,
            None => versions.last().expect("versions is not empty"),
        };
        let spec = Self::parse(&chosen.spec)?;
        let source = self.validate(&spec).await?;
        self.store
            .set_deployed(self.connection(), name, chosen.version, by)
            .await?;
        Ok((chosen.version, source))
    }

    /// Stop a mapping. Its read model and messages stay.
    pub async fn undeploy(&self, name: &str) -> Result<(), RegistryError> {
        self.versions(name).await?;
        self.store.set_undeployed(self.connection(), name).await?;
        self.connector.undeploy(name).await;
        Ok(())
    }

    /// Undeploy and forget a mapping (versions, cursor, read model).
    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        self.connector.undeploy(name).await;
        if !self.store.delete_mapping(self.connection(), name).await? {
            return Err(RegistryError::NotFound(format!("mapping `{name}` does not exist")));
        }
        Ok(())
    }

    /// Bring the running mappings in line with what the store says is deployed, without writing
    /// to the store: at start-up, and when another process sharing the store deployed, changed
    /// or undeployed one. Unchanged mappings keep running; invalid ones are skipped with a
    /// warning. Returns how many were started or stopped.
    pub async fn sync_deployments(&self) -> Result<usize, RegistryError> {
        let running = self.connector.fingerprints();
        let mut wanted = std::collections::BTreeSet::new();
        let mut n = 0;
        for m in self.list().await? {
            let Some(version) = m.deployed_version else { continue };
            let name = m.latest.name.clone();
            wanted.insert(name.clone());
            let json = if version == m.latest.version {
                m.latest.spec
            } else {
                match self.versions(&name).await?.into_iter().find(|v| v.version == version) {
                    Some(v) => v.spec,
                    None => continue,
                }
            };
            let spec = match Self::parse(&json) {
                Ok(spec) => spec,
                Err(e) => {
                    warn!(connection = %self.connection(), mapping = %name, error = %e, "deployed mapping cannot start");
                    continue;
                }
            };
            if running.get(&name) == Some(&MappingSource::fingerprint_of(&spec)) {
                continue;
            }
            match self.validate(&spec).await {
                Ok(source) => {
                    info!(connection = %self.connection(), mapping = %name, version, "deployed mapping started");
                    self.connector.deploy(source).await;
                    n += 1;
                }
                Err(e) => {
                    warn!(connection = %self.connection(), mapping = %name, error = %e, "deployed mapping cannot start")
                }
            }
        }
        for name in running.keys().filter(|n| !wanted.contains(*n)) {
            info!(connection = %self.connection(), mapping = %name, "undeployed mapping stopped");
            self.connector.undeploy(name).await;
            n += 1;
        }
        Ok(n)
    }

    /// Export tables again from scratch: every deployed mapping, or those named. Every row is
    /// emitted again (consumers can rebuild their state); the read models stay meanwhile.
    pub async fn re_export(&self, names: Option<&[String]>) -> Result<Vec<String>, RegistryError> {
        let deployed: Vec<String> = self.connector.mappings().iter().map(|m| m.name.to_string()).collect();
        let chosen: Vec<String> = match names {
            None => deployed.clone(),
            Some(list) => {
                for n in list {
                    if !deployed.contains(n) {
                        return Err(RegistryError::NotFound(format!(
                            "mappings: `{n}` is not deployed; deployed: {}",
                            deployed.join(", ")
                        )));
                    }
                }
                list.to_vec()
            }
        };
        for name in &chosen {
            // Stop the task first so it cannot write a cursor after the reset.
            let record = self.list().await?.into_iter().find(|m| &m.latest.name == name);
            self.connector.undeploy(name).await;
            self.store.reset_export(self.connection(), name).await?;
            if let Some(version) = record.and_then(|r| r.deployed_version) {
                self.deploy(name, Some(version), "re-export").await?;
            }
        }
        Ok(chosen)
    }

    /// The messages a definition would emit for the first `limit` live rows of its table.
    pub async fn preview(&self, spec: &MappingSpec, limit: u32) -> Result<Vec<Value>, RegistryError> {
        let source = self.validate(spec).await?;
        let m = &source.mapping;
        let columns = m.columns();
        let q = format!(
            "{} from {} order by {}",
            columns.join(", "),
            source.table.name,
            m.key_columns().join(", ")
        );
        let rows = self
            .connector
            .m3()
            .export_select(&q, '~', columns.len(), limit.clamp(1, 100))
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let refs: Vec<&str> = row.iter().map(String::as_str).collect();
                let key = m.key_of(&refs).to_string();
                if !m.matches(&refs) {
                    return json!({"subject": key, "type": null, "note": "outside the filter: no message (or a Deleted if it was inside before)"});
                }
                match m.apply(&refs) {
                    Ok(p) => json!({"subject": key, "type": m.updated_type(), "data": serde_json::from_str::<Value>(&p.payload).unwrap_or(Value::Null)}),
                    Err(e) => json!({"subject": key, "type": null, "error": e.to_string()}),
                }
            })
            .collect())
    }

    /// The connector the registry deploys into.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }
}
