//! A connection's Kafka side: its topics are created (retried with [`Backoff`] while the broker
//! is away), then its outbox relay and its command consumer run until shutdown.

use std::time::Duration;

use pipeline::commands::CommandProcessor;
use pipeline::{Backoff, Shutdown, StatusBoard};
use store::Store;
use tracing::info;

/// Retry of topic creation while the broker is away.
const TOPICS_RETRY: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// Run `connection`'s Kafka side until `shutdown`: topics, then relay and command consumer.
pub async fn run(
    settings: kafka::KafkaSettings,
    store: Store,
    connection: String,
    status: StatusBoard,
    processor: CommandProcessor,
    mut shutdown: Shutdown,
) {
    let mut failures = 0u32;
    loop {
        match kafka::ensure_topics(&settings, &connection).await {
            Ok(topics) => {
                info!(connection = %connection, events = %topics.events, commands = %topics.commands, "kafka topics ready");
                break;
            }
            Err(e) => {
                failures += 1;
                let wait = TOPICS_RETRY.delay(failures);
                tracing::warn!(connection = %connection, error = %e, retry_in = ?wait, "kafka: cannot create topics; retrying");
                shutdown.sleep(wait).await;
                if shutdown.is_shutdown() {
                    return;
                }
            }
        }
    }
    let relay = match kafka::Relay::new(&settings, store, &connection, status) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(connection = %connection, error = %e, "kafka relay cannot start");
            return;
        }
    };
    let r = tokio::spawn(relay.run(shutdown.clone()));
    match kafka::CommandConsumer::new(&settings, &connection, processor) {
        Ok(consumer) => consumer.run(shutdown).await,
        Err(e) => tracing::error!(connection = %connection, error = %e, "kafka command consumer cannot start"),
    }
    let _ = r.await;
}
