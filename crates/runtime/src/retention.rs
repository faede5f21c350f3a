//! The outbox pruning task: every `interval`, one [`store::Store::prune_outbox`] pass under the
//! configured [`RetentionPolicy`] (age, size, compaction; unpublished messages kept while Kafka
//! is configured), until shutdown. Each replica sharing a store runs one; passes are safe side
//! by side.

use std::time::Duration;

use pipeline::Shutdown;
use store::{RetentionPolicy, Store};
use tracing::{info, warn};

/// Prune `store`'s outbox under `policy` every `interval` (the first pass at once) until
/// `shutdown`. Does nothing when the policy sets no limit.
pub async fn run(store: Store, policy: RetentionPolicy, interval: Duration, mut shutdown: Shutdown) {
    if !policy.is_active() {
        return;
    }
    info!(
        max_age = ?policy.max_age,
        max_bytes = ?policy.max_bytes,
        mode = ?policy.mode,
        keep_unpublished = policy.keep_unpublished,
        "outbox retention on"
    );
    let mut warned_over = false;
    while !shutdown.is_shutdown() {
        // A pass stops between its transactions at shutdown (an open one rolls back).
        let pass = tokio::select! {
            r = store.prune_outbox(&policy, chrono::Utc::now()) => r,
            _ = shutdown.recv() => break,
        };
        match pass {
            Ok(r) => {
                if r.removed > 0 {
                    info!(
                        removed = r.removed,
                        batches = r.batches,
                        freed_pages = r.freed_pages,
                        bytes = r.bytes,
                        "outbox pruned"
                    );
                }
                if r.over_bound && !warned_over {
                    warn!(
                        bytes = r.bytes,
                        max_bytes = ?policy.max_bytes,
                        "outbox over outbox.max_bytes: what is left may not be removed (unpublished, or the current state in compact mode)"
                    );
                }
                warned_over = r.over_bound;
            }
            Err(e) => warn!(error = %e, "outbox pruning failed; trying again at the next tick"),
        }
        shutdown.sleep(interval).await;
    }
}
