//! The one lease policy. A connection is read from M3 by one holder at a time: a hosted
//! connection's lease is held by the replica whose hub runs it (the hub renews it), a
//! self-hosted connection's by the connector whose channel is open (Studio renews it while the
//! channel lasts). Both take and renew it with [`LeasePolicy::STANDARD`]; [`instance_id`] is
//! this installation's name as a holder.

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

/// Hold (take, renew) a hosted connection's lease until `shutdown`, publishing whether this
/// process holds it; released on shutdown so another replica takes over at once.
pub(crate) async fn keep_lease(
    policy: LeasePolicy,
    store: Store,
    connection: String,
    holder: String,
    held: watch::Sender<bool>,
    mut shutdown: Shutdown,
) {
    let mut renewed = tokio::time::Instant::now();
    let mut first = true;
    while !shutdown.is_shutdown() {
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
            }
            Err(e) => {
                // Without renewal the lease may pass to another process: stop reading in time.
                tracing::warn!(connection = %connection, error = %e, "lease renewal failed");
                if renewed.elapsed() + policy.renew_every >= policy.ttl {
                    let _ = held.send(false);
                }
            }
        }
        first = false;
        shutdown.sleep(policy.renew_every).await;
    }
    let _ = store.release_lease(&connection, &holder).await;
}

/// The stable id of this installation (its name as a lease holder), kept in `data_dir/file`.
pub fn instance_id(data_dir: &std::path::Path, file: &str) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "erp-bridge".into());
    let mut rng = rand::thread_rng();
    let suffix: String = (0..8).map(|_| format!("{:x}", rng.gen_range(0..16u8))).collect();
    let id = format!("{host}-{suffix}");
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}
