//! MI transactions run by a self-hosted connector on Studio's behalf: Studio's command
//! processing for a self-hosted connection cannot reach M3, so each call travels over the
//! connector's channel and its result comes back the same way.

use std::sync::{Arc, Mutex};

use m3::{M3Error, Record};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// One MI call waiting for the connector.
#[derive(Debug)]
pub struct MiCall {
    /// MI program (`MMS200MI`).
    pub program: String,
    /// Transaction (`UpdItmBasic`).
    pub transaction: String,
    /// Input fields.
    pub inputs: Vec<(String, String)>,
    /// Where the result goes.
    pub reply: oneshot::Sender<Result<Vec<Record>, MiFailure>>,
}

/// An MI failure as it crosses the channel.
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

    fn into_error(self, program: &str, transaction: &str) -> M3Error {
        match (self.nok, self.transient) {
            (Some((code, field, message)), _) => M3Error::Nok {
                program: program.into(),
                transaction: transaction.into(),
                code,
                field,
                message,
            },
            (None, true) => M3Error::Unreachable(format!("via the self-hosted connector: {}", self.message)),
            (None, false) => M3Error::Http {
                status: 400,
                path: format!("{program}/{transaction} via the self-hosted connector"),
                body: self.message,
            },
        }
    }
}

/// The link to a self-hosted connector for MI calls. Cheap to clone; the channel attaches a
/// receiver while a connector is connected.
#[derive(Debug, Clone, Default)]
pub struct RemoteMi {
    tx: Arc<Mutex<Option<mpsc::Sender<MiCall>>>>,
}

impl RemoteMi {
    /// Called by the channel when a connector connects: calls now go to the returned receiver.
    pub fn attach(&self) -> mpsc::Receiver<MiCall> {
        let (tx, rx) = mpsc::channel(64);
        *self.tx.lock().expect("lock") = Some(tx);
        rx
    }

    /// Run a transaction on the connector; "unreachable" (transient) while none is connected or
    /// when the channel drops before the answer.
    pub async fn execute(
        &self,
        program: &str,
        transaction: &str,
        inputs: &[(&str, &str)],
    ) -> Result<Vec<Record>, M3Error> {
        let tx = self.tx.lock().expect("lock").clone();
        let unreachable = || M3Error::Unreachable("no self-hosted connector is connected for this connection".into());
        let Some(tx) = tx else { return Err(unreachable()) };
        let (reply, answer) = oneshot::channel();
        let call = MiCall {
            program: program.into(),
            transaction: transaction.into(),
            inputs: inputs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            reply,
        };
        tx.send(call).await.map_err(|_| unreachable())?;
        match tokio::time::timeout(std::time::Duration::from_secs(70), answer).await {
            Ok(Ok(result)) => result.map_err(|f| f.into_error(program, transaction)),
            Ok(Err(_)) => Err(unreachable()),
            Err(_) => Err(M3Error::Unreachable(
                "the self-hosted connector did not answer within 70 s".into(),
            )),
        }
    }
}
