//! M3 calls made by a self-hosted connector on Studio's behalf. Studio cannot reach an M3
//! behind the customer's firewall, so for a self-hosted connection its command transactions,
//! table search (MDP), mapping previews (`EXPORTMI`) and MI field lookups travel over the
//! connector's channel, and the answers come back the same way. [`M3Access`] is the one face
//! of both ways to reach M3.

use std::sync::{Arc, Mutex};

use m3::mdp::TableInfo;
use m3::{M3Client, M3Error, Record};
use mapping::catalog::Table;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// One M3 call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum M3Call {
    /// An MI transaction.
    Execute {
        /// MI program (`MMS200MI`).
        program: String,
        /// Transaction (`UpdItmBasic`).
        transaction: String,
        /// Input fields.
        inputs: Vec<(String, String)>,
        /// Record limit (0 = M3's default).
        maxrecs: u32,
    },
    /// MDP: tables whose name starts with `filter`.
    MdpTables {
        /// Name prefix.
        filter: String,
    },
    /// MDP: one table's columns and key.
    MdpTable {
        /// Table name.
        table: String,
    },
}

/// The answer to an [`M3Call`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum M3Answer {
    /// Records of a transaction.
    Records(Vec<Record>),
    /// Tables of MDP.
    Tables(Vec<TableInfo>),
    /// One table, or `None` when MDP does not know it.
    Table(Option<Table>),
}

/// One call waiting for the connector.
#[derive(Debug)]
pub struct PendingCall {
    /// The call.
    pub call: M3Call,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<M3Answer, MiFailure>>,
}

/// An M3 failure as it crosses the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MiFailure {
    /// M3's `ServerReturnedNOK` answer, when it was one: `(code, field, message)`.
    pub nok: Option<(String, Option<String>, String)>,
    /// Whether retrying may help (outage, throttling, 5xx).
    pub transient: bool,
    /// The error text.
    pub message: String,
}

impl MiFailure {
    /// The failure of an M3 call made by the connector.
    pub fn from_error(e: &M3Error) -> MiFailure {
        MiFailure {
            nok: match e {
                M3Error::Nok {
                    code, field, message, ..
                } => Some((code.clone(), field.clone(), message.clone())),
                _ => None,
            },
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }

    fn into_error(self, what: &str) -> M3Error {
        match (self.nok, self.transient) {
            (Some((code, field, message)), _) => {
                let (program, transaction) = what.split_once('/').unwrap_or((what, ""));
                M3Error::Nok {
                    program: program.into(),
                    transaction: transaction.into(),
                    code,
                    field,
                    message,
                }
            }
            (None, true) => M3Error::Unreachable(format!("via the self-hosted connector: {}", self.message)),
            (None, false) => M3Error::Http {
                status: 400,
                path: format!("{what} via the self-hosted connector"),
                body: self.message,
            },
        }
    }
}

impl M3Call {
    /// Run the call against M3 (on the connector's side).
    pub async fn run(&self, client: &M3Client) -> Result<M3Answer, M3Error> {
        match self {
            M3Call::Execute {
                program,
                transaction,
                inputs,
                maxrecs,
            } => {
                let pairs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                client
                    .execute(program, transaction, &pairs, *maxrecs)
                    .await
                    .map(M3Answer::Records)
            }
            M3Call::MdpTables { filter } => client.mdp_tables(filter).await.map(M3Answer::Tables),
            M3Call::MdpTable { table } => client.mdp_table(table).await.map(M3Answer::Table),
        }
    }

    fn what(&self) -> String {
        match self {
            M3Call::Execute {
                program, transaction, ..
            } => format!("{program}/{transaction}"),
            M3Call::MdpTables { .. } => "mdprest/les/getTables".into(),
            M3Call::MdpTable { table } => format!("mdprest/les/getColumnsUsedByTable/{table}"),
        }
    }
}

/// The link to a self-hosted connector for M3 calls. Cheap to clone; the channel attaches a
/// receiver while a connector is connected.
#[derive(Debug, Clone, Default)]
pub struct RemoteMi {
    tx: Arc<Mutex<Option<mpsc::Sender<PendingCall>>>>,
}

impl RemoteMi {
    /// Called by the channel when a connector connects: calls now go to the returned receiver.
    pub fn attach(&self) -> mpsc::Receiver<PendingCall> {
        let (tx, rx) = mpsc::channel(64);
        *self.tx.lock().expect("lock") = Some(tx);
        rx
    }

    /// Run a call on the connector; "unreachable" (transient) while none is connected or when
    /// the channel drops before the answer.
    pub async fn call(&self, call: M3Call) -> Result<M3Answer, M3Error> {
        let tx = self.tx.lock().expect("lock").clone();
        let unreachable = || M3Error::Unreachable("no self-hosted connector is connected for this connection".into());
        // Not handed to a connector: certainly not run.
        let not_sent = || M3Error::NotSent("no self-hosted connector is connected for this connection".into());
        let Some(tx) = tx else { return Err(not_sent()) };
        let what = call.what();
        let (reply, answer) = oneshot::channel();
        tx.send(PendingCall { call, reply }).await.map_err(|_| not_sent())?;
        match tokio::time::timeout(std::time::Duration::from_secs(70), answer).await {
            Ok(Ok(result)) => result.map_err(|f| f.into_error(&what)),
            Ok(Err(_)) => Err(unreachable()),
            Err(_) => Err(M3Error::Unreachable(
                "the self-hosted connector did not answer within 70 s".into(),
            )),
        }
    }
}

fn unexpected(what: &str) -> M3Error {
    M3Error::Decode {
        path: what.into(),
        detail: "the self-hosted connector answered another kind of call".into(),
    }
}

/// How this process reaches a connection's M3: directly, or through its self-hosted connector.
#[derive(Debug, Clone)]
pub enum M3Access {
    /// Through the ION API gateway from this process.
    Direct(Arc<M3Client>),
    /// Over the channel of the connection's self-hosted connector.
    Remote(RemoteMi),
}

impl M3Access {
    /// An MI transaction.
    pub async fn execute(
        &self,
        program: &str,
        transaction: &str,
        inputs: &[(&str, &str)],
        maxrecs: u32,
    ) -> Result<Vec<Record>, M3Error> {
        match self {
            M3Access::Direct(c) => c.execute(program, transaction, inputs, maxrecs).await,
            M3Access::Remote(r) => {
                let call = M3Call::Execute {
                    program: program.into(),
                    transaction: transaction.into(),
                    inputs: inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    maxrecs,
                };
                match r.call(call).await? {
                    M3Answer::Records(records) => Ok(records),
                    _ => Err(unexpected(&format!("{program}/{transaction}"))),
                }
            }
        }
    }

    /// `EXPORTMI/Select` rows of `columns` values.
    pub async fn export_select(
        &self,
        query: &str,
        separator: char,
        columns: usize,
        maxrecs: u32,
    ) -> Result<Vec<Vec<String>>, M3Error> {
        let sep = separator.to_string();
        let records = self
            .execute("EXPORTMI", "Select", &[("QERY", query), ("SEPC", &sep)], maxrecs)
            .await?;
        m3::client::split_export(records, separator, columns)
    }

    /// MDP tables whose name starts with `filter`.
    pub async fn mdp_tables(&self, filter: &str) -> Result<Vec<TableInfo>, M3Error> {
        match self {
            M3Access::Direct(c) => c.mdp_tables(filter).await,
            M3Access::Remote(r) => match r.call(M3Call::MdpTables { filter: filter.into() }).await? {
                M3Answer::Tables(t) => Ok(t),
                _ => Err(unexpected("mdprest/les/getTables")),
            },
        }
    }

    /// One table from MDP; `None` when MDP does not know it.
    pub async fn mdp_table(&self, table: &str) -> Result<Option<Table>, M3Error> {
        match self {
            M3Access::Direct(c) => c.mdp_table(table).await,
            M3Access::Remote(r) => match r.call(M3Call::MdpTable { table: table.into() }).await? {
                M3Answer::Table(t) => Ok(t),
                _ => Err(unexpected("mdprest/les/getColumnsUsedByTable")),
            },
        }
    }
}
