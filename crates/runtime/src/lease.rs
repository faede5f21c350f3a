//! The one lease policy. A connection is read from M3 by one holder at a time: a hosted
//! connection's lease is held by the replica whose hub runs it (the hub renews it), a
//! self-hosted connection's by the connector whose channel is open (Studio renews it while the
//! channel lasts). Both take and renew it with [`LeasePolicy::STANDARD`]; [`instance_id`] is
//! this process's name as a holder (unique per process).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use pipeline::Shutdown;
use rand::Rng;
use store::{LeaseOutcome, Store, StoreError};
use tokio::sync::watch;

/// How long a lease lasts without renewal and how often its holder renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// Lifetime of a lease that is not renewed: after it another holder may take it.
    pub ttl: Duration,
    /// Renewal period; well under `ttl`, so that a missed renewal or two loses nothing.
    pub renew_every: Duration,
}

impl LeasePolicy {
    /// 15 s without renewal, renewed every 4 s (three renewals may fail before it lapses).
    pub const STANDARD: LeasePolicy = LeasePolicy {
        ttl: Duration::from_secs(15),
        renew_every: Duration::from_secs(4),
    };

    /// Take or renew `connection`'s lease for `holder`.
    pub async fn acquire(&self, store: &Store, connection: &str, holder: &str) -> Result<LeaseOutcome, StoreError> {
        store.acquire_lease(connection, holder, self.ttl).await
    }
}

/// Which hosted connections this replica should hold, from the replicas sharing the store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Share {
    /// Not known yet (no heartbeat answered): take any lease that is free, as a lone process would.
    #[default]
    Any,
    /// Exactly these: this replica's fair share.
    Only(BTreeSet<String>),
}

impl Share {
    /// Whether `connection` belongs to this replica.
    pub fn includes(&self, connection: &str) -> bool {
        match self {
            Share::Any => true,
            Share::Only(set) => set.contains(connection),
        }
    }

    /// The fair share of `me`: the hosted connections and the live replicas, each sorted, are
    /// dealt out in turn (connection `i` to replica `i mod R`), so every replica computes the
    /// same deal and each holds ⌈C/R⌉ or ⌊C/R⌋ of them. A replica missing from `replicas`
    /// (its heartbeat not written yet) takes none.
    pub fn deal(connections: &BTreeSet<String>, replicas: &[String], me: &str) -> Share {
        let mut replicas: Vec<&String> = replicas.iter().collect();
        replicas.sort();
        replicas.dedup();
        let Some(mine) = replicas.iter().position(|r| r.as_str() == me) else {
            return Share::Only(BTreeSet::new());
        };
        Share::Only(
            connections
                .iter()
                .enumerate()
                .filter(|(i, _)| i % replicas.len() == mine)
                .map(|(_, c)| c.clone())
                .collect(),
        )
    }
}

/// How long a replica's heartbeat counts: shorter than a lease, so that the connections of a
/// replica that died are dealt to the others before its leases lapse.
pub const REPLICA_TTL: Duration = Duration::from_secs(10);

/// How long a holder that hands a connection over waits between stopping its reads and giving
/// the lease back: its worker checks the lease before every page, so the page under way ends
/// first. Every page's writes commit with its cursor, so the new holder starts after it.
const HANDOVER_GRACE: Duration = Duration::from_secs(2);

/// How often a replica asks for a lease that is its share but held by another (during a
/// handover), so that it takes it soon after the old holder lets go.
const CLAIM_EVERY: Duration = Duration::from_secs(1);

/// Hold (take, renew) a hosted connection's lease until `shutdown`, publishing whether this
/// process holds it; released on shutdown so another replica takes over at once. A connection
/// outside this replica's [`Share`] is handed over: reads stop, then the lease is released.
pub(crate) async fn keep_lease(
    policy: LeasePolicy,
    store: Store,
    connection: String,
    holder: String,
    held: watch::Sender<bool>,
    mut share: watch::Receiver<Share>,
    mut shutdown: Shutdown,
) {
    let mut renewed = tokio::time::Instant::now();
    let mut first = true;
    while !shutdown.is_shutdown() {
        let mine = share.borrow_and_update().includes(&connection);
        let mut wait = policy.renew_every;
        if !mine {
            if *held.borrow() {
                tracing::info!(connection = %connection, holder = %holder, "handing the connection over to another replica (fair share)");
                let _ = held.send(false);
                shutdown.sleep(HANDOVER_GRACE).await;
                let _ = store.release_lease(&connection, &holder).await;
            }
        } else {
            match policy.acquire(&store, &connection, &holder).await {
                Ok(LeaseOutcome::Granted) => {
                    renewed = tokio::time::Instant::now();
                    if !*held.borrow() {
                        tracing::info!(connection = %connection, holder = %holder, "lease taken: this process reads M3 for the connection");
                        let _ = held.send(true);
                    }
                }
                Ok(LeaseOutcome::HeldBy { holder: other, .. }) => {
                    if *held.borrow() || first {
                        tracing::info!(connection = %connection, other = %other, "lease held by another process: standing by");
                    }
                    let _ = held.send(false);
                    if matches!(*share.borrow(), Share::Only(_)) {
                        wait = CLAIM_EVERY;
                    }
                }
                Err(e) => {
                    // Without renewal the lease may pass to another process: stop reading in time.
                    tracing::warn!(connection = %connection, error = %e, "lease renewal failed");
                    if renewed.elapsed() + policy.renew_every >= policy.ttl {
                        let _ = held.send(false);
                    }
                }
            }
        }
        first = false;
        tokio::select! {
            _ = shutdown.sleep(wait) => {}
            changed = share.changed() => {
                if changed.is_err() {
                    // The hub is gone: no more deals, renew on the clock.
                    shutdown.sleep(wait).await;
                }
            }
        }
    }
    let _ = store.release_lease(&connection, &holder).await;
}

/// This process's name as a lease holder: the installation's stable id, kept in
/// `data_dir/file`, then this process's pid and a random suffix. Unique per process, so two
/// processes never pass for one another on a shared store, even when they share a folder's id
/// (a copied folder, a second process on the same folder).
pub fn instance_id(data_dir: &std::path::Path, file: &str) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    let mut rng = rand::thread_rng();
    let mut hex = |n: usize| -> String { (0..n).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect() };
    let folder = match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "erp-bridge".into());
            let id = format!("{host}-{}", hex(8));
            std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
            id
        }
    };
    Ok(format!("{folder}-{}-{}", std::process::id(), hex(6)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn holder_ids_keep_the_folder_id_and_differ_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::instance_id(dir.path(), "id").unwrap();
        let b = super::instance_id(dir.path(), "id").unwrap();
        assert_ne!(a, b);
        let folder = std::fs::read_to_string(dir.path().join("id")).unwrap();
        assert!(a.starts_with(&format!("{folder}-{}-", std::process::id())), "{a}");
    }
}
