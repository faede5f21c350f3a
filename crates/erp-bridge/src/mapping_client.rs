//! `erp-bridge mapping ...`: the HTTP client behind the mapping subcommands (`list`, `apply`,
//! `preview`, `schema`), the offline checks (`lint`, `schema FILE...`), and [`run`], which
//! carries out one subcommand and prints its result. The binary's `cli.rs` only parses the
//! command line into a [`MappingTask`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Base URL of the erp-bridge HTTP API (`http://127.0.0.1:8080`).
    pub url: String,
    /// API token (`Authorization: Bearer`).
    pub token: Option<String>,
    /// Connection name (`demo`).
    pub connection: String,
}

/// An erp-bridge server seen through its HTTP API.
pub struct Remote {
    base: Url,
    shown_url: String,
    connection: String,
    token_given: bool,
    http: reqwest::Client,
}

/// The message for a refused token (HTTP 401).
pub const REFUSED_TOKEN: &str = "the server refused the token (ERP_BRIDGE_TOKEN / --token)";

impl Remote {
    /// A client for `opts`; fails if the URL is not an http(s) URL.
    pub fn new(opts: &RemoteOptions) -> anyhow::Result<Remote> {
        let base = Url::parse(&opts.url).with_context(|| format!("--url: `{}` is not a URL", opts.url))?;
        anyhow::ensure!(
            matches!(base.scheme(), "http" | "https") && !base.cannot_be_a_base(),
            "--url: expected an http:// or https:// URL, got `{}`",
            opts.url
        );
        mapping::ConnectionName::parse(&opts.connection).map_err(|e| anyhow::anyhow!(e.in_field("--connection")))?;
        let mut headers = reqwest::header::HeaderMap::new();
        let token = opts.token.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = token {
            let mut v: reqwest::header::HeaderValue = format!("Bearer {t}")
                .parse()
                .map_err(|_| anyhow::anyhow!("--token: contains characters not allowed in an HTTP header"))?;
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .context("HTTP client")?;
        Ok(Remote {
            base,
            shown_url: opts.url.trim_end_matches('/').to_string(),
            connection: opts.connection.clone(),
            token_given: token.is_some(),
            http,
        })
    }

    /// `{base}/api/connections/{connection}/{segments...}`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        {
            let mut p = u.path_segments_mut().expect("checked in new: the URL can be a base");
            p.pop_if_empty()
                .extend(["api", "connections", self.connection.as_str()]);
            p.extend(segments);
        }
        u
    }

    /// Send a request; returns the status and the JSON body (`null` when there is none).
    /// Unreachable servers and refused tokens are errors with a message saying what to check.
    async fn send(&self, method: Method, url: Url, body: Option<&Value>) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "cannot reach the erp-bridge server at {}: {} (is it running? set --url or ERP_BRIDGE_URL)",
                    self.shown_url,
                    root_cause(&e)
                )
            } else if e.is_timeout() {
                anyhow::anyhow!(
                    "{method} {url}: the server at {} did not answer in time",
                    self.shown_url
                )
            } else {
                anyhow::anyhow!("{method} {url}: {}", root_cause(&e))
            }
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            if self.token_given {
                anyhow::bail!("{REFUSED_TOKEN}");
            }
            anyhow::bail!("{REFUSED_TOKEN}: no token was given");
        }
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Ok((status, value))
    }

    /// Like [`Self::send`], but a non-2xx answer is an error carrying the server's message.
    async fn call(&self, method: Method, segments: &[&str], body: Option<&Value>) -> anyhow::Result<Value> {
        let url = self.url(segments);
        let (status, v) = self.send(method.clone(), url, body).await?;
        if !status.is_success() {
            anyhow::bail!("{}", server_error(status, &v));
        }
        Ok(v)
    }
}

/// `HTTP 400: <message>`, with the server's `error.message` when there is one.
fn server_error(status: StatusCode, v: &Value) -> String {
    let msg = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v.as_str().map(str::to_string))
        .unwrap_or_else(|| v.to_string());
    format!("server answered HTTP {}: {msg}", status.as_u16())
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn text_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let _ = write!(l, "{c:<w$}");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// `mapping list`: one line per mapping with its table, field count, latest and deployed
/// versions and when it was deployed.
pub async fn list(opts: &RemoteOptions) -> anyhow::Result<String> {
    let remote = Remote::new(opts)?;
    let v = remote.call(Method::GET, &["mappings"], None).await?;
    let mappings = v["mappings"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("unexpected answer from the server (no `mappings` list): {v}"))?;
    let rows: Vec<Vec<String>> = mappings
        .iter()
        .map(|m| {
            vec![
                cell(&m["name"]),
                cell(&m["table"]),
                cell(&m["fields"]),
                cell(&m["latestVersion"]),
                cell(&m["deployedVersion"]),
                cell(&m["deployedAt"]),
            ]
        })
        .collect();
    Ok(text_table(
        &["NAME", "TABLE", "FIELDS", "LATEST", "DEPLOYED", "DEPLOYED AT"],
        &rows,
    ))
}

/// What `apply` did with one file.
async fn apply_one(remote: &Remote, file: &Path, deploy: bool) -> anyhow::Result<String> {
    let spec = crate::parse_mapping_file(file)?;
    let json = serde_json::to_value(&spec)?;
    let name = spec.name.as_str();
    let listed = remote.call(Method::GET, &["mappings"], None).await?;
    let existing = listed["mappings"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == name))
        .cloned();
    let (mut summary, version) = match &existing {
        None => {
            let v = remote.call(Method::POST, &["mappings"], Some(&json)).await?;
            (
                format!("created `{name}` version {}", cell(&v["version"])),
                v["version"].clone(),
            )
        }
        Some(_) => {
            let shown = remote.call(Method::GET, &["mappings", name], None).await?;
            if shown["spec"] == json {
                let latest = shown["versions"]
                    .as_array()
                    .and_then(|v| v.last())
                    .map(|v| v["version"].clone())
                    .unwrap_or(Value::Null);
                (format!("`{name}` unchanged (version {})", cell(&latest)), latest)
            } else {
                let v = remote.call(Method::PUT, &["mappings", name], Some(&json)).await?;
                (
                    format!("updated `{name}` to version {}", cell(&v["version"])),
                    v["version"].clone(),
                )
            }
        }
    };
    let deployed = existing.as_ref().map(|m| m["deployedVersion"].clone());
    if !deploy {
        summary.push_str("; not deployed (--no-deploy)");
    } else if deployed.as_ref() == Some(&version) && !version.is_null() {
        summary.push_str("; already deployed");
    } else {
        let v = remote
            .call(
                Method::POST,
                &["mappings", name, "deploy"],
                Some(&serde_json::json!({})),
            )
            .await?;
        let _ = write!(summary, "; deployed version {}", cell(&v["deployedVersion"]));
    }
    Ok(summary)
}

/// `mapping apply`: create or update each file's mapping, then deploy it unless `deploy` is
/// false. Reports each file on stdout (success) or stderr (failure, with the server's message);
/// fails if any file failed.
pub async fn apply(opts: &RemoteOptions, files: &[PathBuf], deploy: bool) -> anyhow::Result<()> {
    anyhow::ensure!(!files.is_empty(), "mapping apply: give at least one mapping file");
    let remote = Remote::new(opts)?;
    let mut failed = 0;
    for f in files {
        match apply_one(&remote, f, deploy).await {
            Ok(summary) => println!("{}: {summary}", f.display()),
            Err(e) => {
                // A server that cannot be reached or refuses the token fails every file alike.
                let msg = format!("{e:#}");
                if msg.starts_with("cannot reach") || msg.starts_with(REFUSED_TOKEN) {
                    return Err(e);
                }
                failed += 1;
                eprintln!("{}: {msg}", f.display());
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} of {} mapping files failed", files.len());
    Ok(())
}

/// `mapping preview`: the messages the mapping in `file` would produce from the first `limit`
/// rows of its table, as pretty JSON.
pub async fn preview(opts: &RemoteOptions, file: &Path, limit: u32) -> anyhow::Result<String> {
    let spec = crate::parse_mapping_file(file)?;
    let remote = Remote::new(opts)?;
    let mut url = remote.url(&["mappings", "preview"]);
    url.query_pairs_mut().append_pair("limit", &limit.to_string());
    let (status, v) = remote
        .send(Method::POST, url, Some(&serde_json::to_value(&spec)?))
        .await?;
    if !status.is_success() {
        anyhow::bail!("{}: {}", file.display(), server_error(status, &v));
    }
    Ok(serde_json::to_string_pretty(&v["messages"])?)
}

/// Parse a mapping file and compile it against the standard M3 catalogue (no server).
pub fn compile_file(path: &Path) -> anyhow::Result<mapping::CompiledMapping> {
    let spec = crate::parse_mapping_file(path)?;
    let table = mapping::catalog::standard_table(&spec.table).ok_or_else(|| {
        let names: Vec<String> = mapping::catalog::standard_tables()
            .into_iter()
            .map(|t| t.name)
            .collect();
        let hint = mapping::names::closest(&spec.table, names.iter().map(String::as_str))
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "mapping `{}`: table: `{}` is not in the standard catalogue ({}){hint}",
            spec.name,
            spec.table,
            names.join(", ")
        )
    })?;
    Ok(mapping::CompiledMapping::compile(&spec, &table)?)
}

/// `mapping lint`: a one-line summary of a valid mapping file.
pub fn lint(path: &Path) -> anyhow::Result<String> {
    let m = compile_file(path)?;
    Ok(format!(
        "{} on {}, {} fields, resource /{}",
        m.name,
        m.table,
        m.fields.len(),
        m.resource
    ))
}

fn write_json(dir: &Path, file: &str, v: &Value) -> anyhow::Result<PathBuf> {
    let path = dir.join(file);
    let mut text = serde_json::to_string_pretty(v)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn safe_file_stem(name: &str) -> anyhow::Result<&str> {
    anyhow::ensure!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !name.starts_with('.'),
        "message name `{name}` cannot be used as a file name"
    );
    Ok(name)
}

/// `mapping schema FILE...` (offline): compile each file against the standard catalogue and
/// write `<Name>Updated.schema.json` and `<Name>Deleted.schema.json` into `out`. Returns the
/// files written.
pub fn schema_files(files: &[PathBuf], out: &Path, connection: &str) -> anyhow::Result<Vec<PathBuf>> {
    let compiled = files
        .iter()
        .map(|f| compile_file(f).with_context(|| f.display().to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(out).with_context(|| format!("--out: cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for m in &compiled {
        for ty in [m.updated_type(), m.deleted_type()] {
            let id = format!("/api/connections/{connection}/schemas/{ty}");
            let schema =
                studio::schema::message_schema(m, &ty, &id).ok_or_else(|| anyhow::anyhow!("no schema for `{ty}`"))?;
            written.push(write_json(
                out,
                &format!("{}.schema.json", safe_file_stem(&ty)?),
                &schema,
            )?);
        }
    }
    Ok(written)
}

/// `mapping schema` (from a server): write the connection's AsyncAPI document as
/// `asyncapi.json` and each message payload schema in it as `<Message>.schema.json`.
pub async fn schema_remote(opts: &RemoteOptions, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let remote = Remote::new(opts)?;
    let doc = remote.call(Method::GET, &["asyncapi"], None).await?;
    let messages = doc["components"]["messages"]
        .as_object()
        .ok_or_else(|| anyhow::anyhow!("the AsyncAPI document has no components.messages"))?;
    std::fs::create_dir_all(out).with_context(|| format!("--out: cannot create {}", out.display()))?;
    let mut written = vec![write_json(out, "asyncapi.json", &doc)?];
    for (name, m) in messages {
        if m["payload"].is_object() {
            written.push(write_json(
                out,
                &format!("{}.schema.json", safe_file_stem(name)?),
                &m["payload"],
            )?);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_a_base_path_and_encode_segments() {
        let r = Remote::new(&RemoteOptions {
            url: "http://h:1/prefix/".into(),
            token: None,
            connection: "demo".into(),
        })
        .unwrap();
        assert_eq!(
            r.url(&["mappings", "A B"]).as_str(),
            "http://h:1/prefix/api/connections/demo/mappings/A%20B"
        );
    }

    #[test]
    fn tables_are_aligned() {
        let t = text_table(&["A", "BB"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x\n");
    }

    #[test]
    fn message_names_that_are_not_file_names_are_refused() {
        assert!(safe_file_stem("ItemUpdated").is_ok());
        assert!(safe_file_stem("../x").is_err());
        assert!(safe_file_stem("").is_err());
    }
}

/// One `erp-bridge mapping` subcommand, parsed.
#[derive(Debug, Clone)]
pub enum MappingTask {
    /// Validate mapping files against the standard M3 catalogue (offline).
    Lint {
        /// Mapping files.
        files: Vec<PathBuf>,
    },
    /// List the server's mappings.
    List,
    /// Create or update each file's mapping on the server, then deploy it unless `deploy` is
    /// false.
    Apply {
        /// Mapping files.
        files: Vec<PathBuf>,
        /// Deploy the new versions (`--no-deploy`: false).
        deploy: bool,
    },
    /// Print the messages a mapping file would produce from the first `limit` rows.
    Preview {
        /// Mapping file.
        file: PathBuf,
        /// Rows to map.
        limit: u32,
    },
    /// Write JSON Schemas of the files (offline), or without files the server's.
    Schema {
        /// Mapping files; none: fetch from the server.
        files: Vec<PathBuf>,
        /// Output folder.
        out: PathBuf,
    },
}

/// Carry out `erp-bridge mapping <task>` and print its result (a failed lint file on stderr).
pub async fn run(remote: &RemoteOptions, task: MappingTask) -> anyhow::Result<()> {
    match task {
        MappingTask::Lint { files } => {
            let mut failed = 0;
            for f in &files {
                match lint(f) {
                    Ok(summary) => println!("{}: ok ({summary})", f.display()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("{}: {e:#}", f.display());
                    }
                }
            }
            anyhow::ensure!(failed == 0, "{failed} of {} mapping files have errors", files.len());
        }
        MappingTask::List => print!("{}", list(remote).await?),
        MappingTask::Apply { files, deploy } => apply(remote, &files, deploy).await?,
        MappingTask::Preview { file, limit } => println!("{}", preview(remote, &file, limit).await?),
        MappingTask::Schema { files, out } => {
            let written = if files.is_empty() {
                schema_remote(remote, &out).await?
            } else {
                schema_files(&files, &out, &remote.connection)?
            };
            for w in written {
                println!("wrote {}", w.display());
            }
        }
    }
    Ok(())
}
