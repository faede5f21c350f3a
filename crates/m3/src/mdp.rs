//! Metadata Publisher (MDP): the tables and columns of this M3, custom ones included, read through
//! the ION API gateway with the same token (`{iu}/{ti}/M3/mdprest/les/...`).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use mapping::catalog::{mdp_column_kind, Column, ColumnKind, MdpType, Table};
use serde::Deserialize;
use tracing::instrument;

use crate::client::M3Client;
use crate::error::M3Error;

/// One table as MDP lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableInfo {
    /// Table name (`MITMAS`).
    pub name: String,
    /// Description (`Item master`).
    pub description: String,
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    list: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableRow {
    table_name: String,
    #[serde(default)]
    table_description: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ColumnRow {
    column_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    data_type: String,
    #[serde(default)]
    length: String,
    #[serde(default)]
    decimals: String,
    #[serde(default)]
    edit_code: String,
    #[serde(default)]
    indexes: String,
}

impl M3Client {
    /// Tables whose name starts with `filter` (MDP `getTables`).
    #[instrument(skip_all, fields(filter))]
    pub async fn mdp_tables(&self, filter: &str) -> Result<Vec<TableInfo>, M3Error> {
        let path = "/les/getTables".to_string();
        let body = self.mdp_get(&path, &[("filter", filter)]).await?;
        let list: List<TableRow> = decode(&path, &body)?;
        Ok(list
            .list
            .into_iter()
            .map(|t| TableInfo {
                name: t.table_name.trim().to_string(),
                description: t.table_description.trim().to_string(),
            })
            .collect())
    }

    /// A table's columns and primary key (MDP `getColumnsUsedByTable`); `None` if MDP does not
    /// know the table. The key is the columns whose `indexes` contain `00`, in answer order.
    #[instrument(skip_all, fields(table))]
    pub async fn mdp_table(&self, table: &str) -> Result<Option<Table>, M3Error> {
        let table = table.trim().to_ascii_uppercase();
        let path = format!("/les/getColumnsUsedByTable/{table}/MVX");
        let body = self.mdp_get(&path, &[("langId", "GB")]).await?;
        let list: List<ColumnRow> = decode(&path, &body)?;
        if list.list.is_empty() {
            return Ok(None);
        }
        let description = self
            .mdp_tables(&table)
            .await?
            .into_iter()
            .find(|t| t.name == table)
            .map(|t| t.description)
            .unwrap_or_default();
        let mut primary_key = Vec::new();
        let columns: Vec<Column> = list
            .list
            .into_iter()
            .map(|c| {
                let name = c.column_name.trim().to_ascii_uppercase();
                if c.indexes.split(',').any(|i| i.trim() == "00") {
                    primary_key.push(name.clone());
                }
                let length: u16 = c.length.trim().parse().unwrap_or(0);
                // Dates are stored as 8-digit numbers; MDP marks them with edit code Y.
                let (kind, how) = mdp_column_kind(&c.data_type, &c.edit_code, &name, length);
                if how != MdpType::Known {
                    warn_unknown_type(&table, &name, c.data_type.trim(), kind);
                }
                Column {
                    name,
                    description: c.description.trim().to_string(),
                    kind,
                    length,
                    decimals: c.decimals.trim().parse().unwrap_or(0),
                }
            })
            .collect();
        let prefix = columns[0].name.chars().take(2).collect();
        Ok(Some(Table {
            name: table,
            prefix,
            description,
            columns,
            primary_key,
        }))
    }

    async fn mdp_get(&self, path: &str, query: &[(&str, &str)]) -> Result<String, M3Error> {
        let query: Vec<(String, String)> = query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some(ep) = self.mdp_endpoint() {
            let url = format!("{}{path}", ep.url.as_str().trim_end_matches('/'));
            return self
                .get_with_basic(&url, &format!("mdprest{path}"), &ep.username, &ep.password, &query)
                .await;
        }
        let url = format!(
            "{}/{}/M3/mdprest{path}",
            self.ionapi().gateway_url,
            self.ionapi().tenant
        );
        self.get_with_token(&url, &format!("mdprest{path}"), &query).await
    }
}

/// Warn, once per process for each table, column and type name, that MDP reported a `dataType`
/// outside the known list and how the column is read.
fn warn_unknown_type(table: &str, column: &str, data_type: &str, kind: ColumnKind) {
    static WARNED: OnceLock<Mutex<HashSet<(String, String, String)>>> = OnceLock::new();
    let first = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert((table.to_string(), column.to_string(), data_type.to_string()));
    if first {
        let read_as = match kind {
            ColumnKind::Alpha => "text (alphanumeric)",
            ColumnKind::Numeric => "a number",
            ColumnKind::Date => "a date (yyyyMMdd number)",
        };
        tracing::warn!(
            table,
            column,
            data_type,
            kind = kind.mi_type(),
            "MDP reports dataType {data_type:?} for {table}.{column}, which is not a known type name; \
             the column is read as {read_as}"
        );
    }
}

/// Check an on-premises Metadata Publisher without `.ionapi` credentials: the number of tables
/// it lists.
pub async fn check_endpoint(ep: &crate::MdpEndpoint) -> Result<usize, M3Error> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| M3Error::Unreachable(e.to_string()))?;
    let path = "/les/getTables";
    let url = format!("{}{path}", ep.url.as_str().trim_end_matches('/'));
    let resp = http
        .get(&url)
        .basic_auth(&ep.username, Some(ep.password.expose()))
        .query(&[("filter", "")])
        .send()
        .await
        .map_err(|e| M3Error::Unreachable(format!("mdprest{path}: {}", crate::client::describe_reqwest(&e))))?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| M3Error::Unreachable(e.to_string()))?;
    match status.as_u16() {
        200..=299 => Ok(decode::<List<TableRow>>(path, &body)?.list.len()),
        401 => Err(M3Error::Authentication {
            error: "invalid_credentials".into(),
            description: format!("mdprest{path}: the Metadata Publisher refused the user name or password (HTTP 401)"),
        }),
        403 => Err(M3Error::NotAuthorised {
            status: 403,
            path: format!("mdprest{path}"),
        }),
        s => Err(M3Error::Http {
            status: s,
            path: format!("mdprest{path}"),
            body: body.chars().take(300).collect(),
        }),
    }
}

fn decode<T: serde::de::DeserializeOwned>(path: &str, body: &str) -> Result<T, M3Error> {
    serde_json::from_str(body).map_err(|e| M3Error::Decode {
        path: format!("mdprest{path}"),
        detail: e.to_string(),
    })
}
