//! The definition files a connection starts with (GitOps): the mappings of `mappings_dir` and
//! the command mappings of `commands_dir`. A new or changed file becomes a new version and is
//! deployed; a broken file stops the start, naming the file and the key. JSON, TOML and YAML
//! are read strictly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pipeline::command_registry::CommandRegistry;
use pipeline::commands::CommandSpec;
use pipeline::registry::MappingRegistry;
use tracing::info;

/// Mappings at start-up: files of `mappings_dir` (GitOps: a changed file becomes a new version
/// and is deployed), the default `Item` mapping on a first start, then whatever is deployed.
pub async fn load_mappings(registry: &MappingRegistry, dir: Option<&Path>) -> anyhow::Result<()> {
    if let Some(dir) = dir {
        for spec in mapping_files(dir)? {
            let (spec, file) = spec;
            let by = format!("file:{file}");
            let json = serde_json::to_value(&spec)?;
            let latest = registry.list().await?.into_iter().find(|m| m.latest.name == spec.name);
            let changed = latest.as_ref().map(|m| m.latest.spec != json).unwrap_or(true);
            if changed {
                let result = match &latest {
                    None => registry.create(&spec, &by).await,
                    Some(_) => registry.update(&spec.name, &spec, &by).await,
                };
                result.with_context(|| format!("mappings_dir: {file}"))?;
                registry.record_deployment(&spec.name, None, &by).await?;
                info!(file = %file, mapping = %spec.name, "mapping file applied");
            } else if latest.and_then(|m| m.deployed_version).is_none() {
                registry.record_deployment(&spec.name, None, &by).await?;
            }
        }
    } else if registry.list().await?.is_empty() {
        let spec = mapping::spec::default_item_mapping();
        registry.create(&spec, "erp-bridge (default)").await?;
        registry
            .record_deployment(&spec.name, None, "erp-bridge (default)")
            .await?;
    }
    registry.sync_deployments().await?;
    Ok(())
}

/// Extensions of definition files (mappings, command mappings).
const SPEC_EXTENSIONS: [&str; 4] = ["json", "toml", "yaml", "yml"];

/// Every definition file of a folder (`*.json`, `*.toml`, `*.yaml`, `*.yml`), parsed strictly,
/// in name order; `setting` names the configuration key in errors.
fn spec_files<T: serde::de::DeserializeOwned>(dir: &Path, setting: &str) -> anyhow::Result<Vec<(T, String)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{setting}: cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| SPEC_EXTENSIONS.contains(&e))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.display().to_string();
            Ok((parse_spec_file(&p).with_context(|| setting.to_string())?, name))
        })
        .collect()
}

/// Parse one definition file by its extension (JSON, TOML or YAML) strictly; errors name the
/// file and the key.
pub fn parse_spec_file<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", path.display());
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str(&text).map_err(|e| fail(&e)),
        Some("yaml" | "yml") => serde_yaml::from_str(&text).map_err(|e| fail(&e)),
        _ => serde_json::from_str(&text).map_err(|e| fail(&e)),
    }
}

/// Every mapping file of a folder, in name order.
pub fn mapping_files(dir: &Path) -> anyhow::Result<Vec<(mapping::MappingSpec, String)>> {
    spec_files(dir, "mappings_dir")
}

/// Parse one mapping file (JSON, TOML or YAML) strictly; errors name the file and the key.
pub fn parse_mapping_file(path: &Path) -> anyhow::Result<mapping::MappingSpec> {
    parse_spec_file(path)
}

/// Command mappings at start-up: the defaults on a first start (no command mapping ever stored
/// for the connection), then the files of `commands_dir` (GitOps: a new or changed file becomes
/// a new version, validated; a broken file stops the start naming it), then every stored
/// command mapping is loaded into the processor.
pub async fn load_commands(registry: &CommandRegistry, dir: Option<&Path>) -> anyhow::Result<()> {
    registry.seed_defaults().await?;
    if let Some(dir) = dir {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (spec, file) in command_files(dir)? {
            if let Some(first) = seen.insert(spec.name.clone(), file.clone()) {
                anyhow::bail!(
                    "commands_dir: {file}: command `{}` is defined in {first} already",
                    spec.name
                );
            }
            let by = format!("file:{file}");
            let json = serde_json::to_value(&spec)?;
            let latest = registry.latest(&spec.name).await?;
            if latest.as_ref().is_some_and(|v| v.spec == json) {
                continue;
            }
            let saved = match latest {
                None => registry.create(&spec, &by).await,
                Some(_) => registry.update(&spec.name, &spec, &by).await,
            }
            .with_context(|| format!("commands_dir: {file}"))?;
            for w in &saved.warnings {
                tracing::warn!(file = %file, command = %spec.name, warning = %w, "command file applied unchecked");
            }
            info!(file = %file, command = %spec.name, version = saved.version, "command file applied");
        }
    }
    let n = registry.reload().await?;
    info!(commands = n, "command mappings loaded");
    Ok(())
}

/// Every command mapping file of a folder, in name order; errors name the file.
pub fn command_files(dir: &Path) -> anyhow::Result<Vec<(CommandSpec, String)>> {
    spec_files(dir, "commands_dir")
}
