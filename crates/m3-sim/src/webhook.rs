//! Event Hub style webhooks (WIRE.md section 6): subscriptions like `M3:MITMAS:CUD`, and a
//! fire-and-forget HTTP POST of every matching database change as the JSON form of Event Hub's
//! `EventData`.
//!
//! Every write goes through [`crate::db::Db`], which calls [`Hub::emit`] while it still holds
//! the database lock, so events enter each subscription's queue in commit order. Each
//! subscription has one sender task that posts its queue in order (so order per key, and in
//! fact overall, is kept per subscription), with a short timeout and no retry; failures are
//! only logged. A full queue drops events (also logged).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::db::TableSchema;
use crate::error::SimError;
use crate::lock;

/// Timeout of one webhook POST.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(2);
/// Events queued per subscription before new ones are dropped.
const QUEUE_CAPACITY: usize = 10_000;

/// A database operation as Event Hub names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `C`: a row was inserted.
    Create,
    /// `U`: a row was updated.
    Update,
    /// `D`: a row was deleted.
    Delete,
}

impl Op {
    fn letter(self) -> char {
        match self {
            Op::Create => 'C',
            Op::Update => 'U',
            Op::Delete => 'D',
        }
    }
}

/// How the simulator authenticates its webhook calls.
///
/// JSON: `{"type":"none"}`, `{"type":"basic","user":"u","password":"p"}`,
/// `{"type":"bearer","token":"t"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum WebhookAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP Basic.
    Basic {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
}

/// One webhook subscription (CMS045/CMS049 "Event Subscriber Web Service" style).
///
/// JSON (admin route `POST /admin/webhooks`):
/// `{"subscription":"M3:MITMAS:CUD","url":"http://host/webhooks/m3/MITMAS","auth":{"type":"bearer","token":"t"}}`
/// (`auth` may be left out for none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    /// `M3:<TABLE>:<ops>`: publisher `M3`, a table, and any of `C` (create), `U` (update),
    /// `D` (delete). `M3:<TABLE>` alone means all three.
    pub subscription: String,
    /// Where events are POSTed.
    pub url: String,
    /// How the POST authenticates.
    #[serde(default)]
    pub auth: WebhookAuth,
}

impl WebhookSubscription {
    /// The table and operation letters of the filter, or why it is invalid.
    pub fn filter(&self) -> Result<(String, Vec<char>), SimError> {
        let bad = |why: &str| SimError::InvalidSubscription(format!("'{}': {why}", self.subscription));
        let parts: Vec<&str> = self.subscription.trim().split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(bad("expected M3:<TABLE>:<CUD>"));
        }
        if !parts[0].eq_ignore_ascii_case("M3") {
            return Err(bad("publisher must be M3"));
        }
        let table = parts[1].trim().to_ascii_uppercase();
        if table.is_empty() {
            return Err(bad("table missing"));
        }
        let ops_text = parts.get(2).map_or("CUD", |o| o.trim());
        let mut ops = Vec::new();
        for c in ops_text.chars().map(|c| c.to_ascii_uppercase()) {
            if !"CUD".contains(c) {
                return Err(bad(&format!("unknown operation '{c}' (use C, U, D)")));
            }
            if !ops.contains(&c) {
                ops.push(c);
            }
        }
        if ops.is_empty() {
            return Err(bad("no operation"));
        }
        Ok((table, ops))
    }
}

/// The id of a subscription, for [`crate::Simulator::unsubscribe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubscriptionId(pub u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

struct Active {
    id: SubscriptionId,
    sub: WebhookSubscription,
    table: String,
    ops: Vec<char>,
    tx: mpsc::Sender<Value>,
}

/// The subscriptions and their sender queues.
pub(crate) struct Hub {
    subs: Mutex<Vec<Active>>,
    next_id: AtomicU64,
    /// `Faults::drop_webhooks`, as f64 bits.
    drop_rate: AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscriptions", &lock(&self.subs).len())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new() -> Hub {
        Hub {
            subs: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            drop_rate: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn set_drop_rate(&self, rate: f64) {
        let rate = if rate.is_finite() { rate.clamp(0.0, 1.0) } else { 0.0 };
        self.drop_rate.store(rate.to_bits(), Ordering::Relaxed);
    }

    fn drop_rate(&self) -> f64 {
        f64::from_bits(self.drop_rate.load(Ordering::Relaxed))
    }

    /// Adds a subscription whose filter is valid, starting its sender task.
    pub fn subscribe(&self, sub: WebhookSubscription, table: String, ops: Vec<char>) -> SubscriptionId {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        spawn_sender(id, sub.clone(), rx);
        tracing::info!(%id, subscription = %sub.subscription, url = %sub.url, "webhook subscribed");
        lock(&self.subs).push(Active {
            id,
            sub,
            table,
            ops,
            tx,
        });
        id
    }

    /// Removes a subscription; its sender finishes what is queued and stops.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut subs = lock(&self.subs);
        let before = subs.len();
        subs.retain(|a| a.id != id);
        let removed = subs.len() != before;
        if removed {
            tracing::info!(%id, "webhook unsubscribed");
        }
        removed
    }

    /// The current subscriptions.
    pub fn list(&self) -> Vec<(SubscriptionId, WebhookSubscription)> {
        lock(&self.subs).iter().map(|a| (a.id, a.sub.clone())).collect()
    }

    /// Queues the event of one write for every matching subscription (called under the
    /// database lock, so queue order is commit order).
    pub fn emit(&self, schema: &TableSchema, op: Op, before: Option<&[String]>, after: Option<&[String]>) {
        let subs = lock(&self.subs);
        let table = &schema.def.name;
        let letter = op.letter();
        let mut matching = subs
            .iter()
            .filter(|a| &a.table == table && a.ops.contains(&letter))
            .peekable();
        if matching.peek().is_none() {
            return;
        }
        let event = event_json(schema, op, before, after);
        let drop_rate = self.drop_rate();
        for a in matching {
            if drop_rate > 0.0 && rand::thread_rng().gen_bool(drop_rate) {
                tracing::debug!(id = %a.id, table = %table, op = %letter, "webhook dropped by fault injection");
                continue;
            }
            if let Err(e) = a.tx.try_send(event.clone()) {
                tracing::warn!(id = %a.id, table = %table, %e, "webhook queue full or closed, event dropped");
            }
        }
    }
}

/// The event body without `sentTimestamp` (set when it is sent).
///
/// `elements` lists every column of the table in schema order, values trimmed:
/// - `C`: `value` is the inserted row, no `oldValue`;
/// - `U`: `value` is the row after, `oldValue` the row before;
/// - `D`: `value` and `oldValue` are both the deleted row (so the key is always in `value`).
fn event_json(schema: &TableSchema, op: Op, before: Option<&[String]>, after: Option<&[String]>) -> Value {
    let elements: Vec<Value> = schema
        .def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let old = before.map(|r| r[i].trim());
            let new = after.map(|r| r[i].trim()).or(old).unwrap_or("");
            match (op, old) {
                (Op::Create, _) | (_, None) => json!({"name": c.name, "value": new}),
                (_, Some(old)) => json!({"name": c.name, "value": new, "oldValue": old}),
            }
        })
        .collect();
    json!({
        "publisher": "M3",
        "documentName": schema.def.name,
        "operation": op.letter().to_string(),
        "trackingId": uuid_v4(),
        "sentTimestamp": "",
        "elements": elements,
    })
}

/// A random RFC 4122 version-4 UUID, lower-case hyphenated.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::thread_rng().gen();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Starts the sender of one subscription on the current tokio runtime, or on a thread of its
/// own when there is none.
fn spawn_sender(id: SubscriptionId, sub: WebhookSubscription, rx: mpsc::Receiver<Value>) {
    let fut = sender(id, sub, rx);
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(fut);
        }
        Err(_) => {
            let spawned = std::thread::Builder::new()
                .name(format!("m3-sim-webhook-{id}"))
                .spawn(
                    move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt.block_on(fut),
                        Err(e) => tracing::error!(%id, %e, "webhook sender runtime failed"),
                    },
                );
            if let Err(e) = spawned {
                tracing::error!(%id, %e, "webhook sender thread failed");
            }
        }
    }
}

async fn sender(id: SubscriptionId, sub: WebhookSubscription, mut rx: mpsc::Receiver<Value>) {
    let client = match reqwest::Client::builder().timeout(WEBHOOK_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(%id, %e, "webhook client failed");
            return;
        }
    };
    while let Some(mut event) = rx.recv().await {
        event["sentTimestamp"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let mut req = client.post(&sub.url).json(&event);
        req = match &sub.auth {
            WebhookAuth::None => req,
            WebhookAuth::Basic { user, password } => req.basic_auth(user, Some(password)),
            WebhookAuth::Bearer { token } => req.bearer_auth(token),
        };
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::trace!(%id, tracking_id = %event["trackingId"], "webhook delivered");
            }
            Ok(r) => tracing::warn!(%id, url = %sub.url, status = %r.status(), "webhook rejected"),
            Err(e) => tracing::warn!(%id, url = %sub.url, %e, "webhook failed"),
        }
    }
    tracing::debug!(%id, "webhook sender stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str) -> WebhookSubscription {
        WebhookSubscription {
            subscription: s.into(),
            url: "http://x".into(),
            auth: WebhookAuth::None,
        }
    }

    #[test]
    fn filters() {
        assert_eq!(
            sub("M3:MITMAS:CUD").filter().unwrap(),
            ("MITMAS".into(), vec!['C', 'U', 'D'])
        );
        assert_eq!(sub("m3:ocusma:u").filter().unwrap(), ("OCUSMA".into(), vec!['U']));
        assert_eq!(sub("M3:MITMAS").filter().unwrap().1, vec!['C', 'U', 'D']);
        for bad in ["M3", "LN:MITMAS:C", "M3:MITMAS:X", "M3::C", "M3:MITMAS:", "M3:A:B:C"] {
            assert!(sub(bad).filter().is_err(), "{bad}");
        }
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid_v4());
    }

    #[test]
    fn auth_json() {
        let a: WebhookAuth = serde_json::from_str(r#"{"type":"basic","user":"u","password":"p"}"#).unwrap();
        assert_eq!(
            a,
            WebhookAuth::Basic {
                user: "u".into(),
                password: "p".into()
            }
        );
        let s: WebhookSubscription =
            serde_json::from_str(r#"{"subscription":"M3:MITMAS:C","url":"http://x"}"#).unwrap();
        assert_eq!(s.auth, WebhookAuth::None);
    }
}
