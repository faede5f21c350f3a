//! The command consumer: reads the commands topic in a consumer group, hands each command to the
//! [`CommandProcessor`], publishes the receipt (and a dead-letter copy of malformed commands or
//! exhausted retries), and commits the offset only after that, so a crash redelivers instead of
//! losing a command; redelivered ids are answered from the stored receipt, not executed again.

use std::time::Duration;

use pipeline::commands::{CommandProcessor, Outcome};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::relay::producer;
use crate::{KafkaError, KafkaSettings, Topics};

/// Commands topic -> M3 -> receipts topic, for one connection.
pub struct CommandConsumer {
    consumer: StreamConsumer,
    producer: FutureProducer,
    processor: CommandProcessor,
    topics: Topics,
    connection: String,
}

impl CommandConsumer {
    /// Join the connection's command consumer group.
    pub fn new(settings: &KafkaSettings, connection: &str, processor: CommandProcessor) -> Result<Self, KafkaError> {
        let topics = settings.topics(connection);
        let consumer: StreamConsumer = settings
            .client_config()
            .set(
                "group.id",
                format!("{}.{connection}.command-processor", settings.topic_prefix),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .create()
            .map_err(KafkaError::Client)?;
        consumer.subscribe(&[&topics.commands]).map_err(KafkaError::Client)?;
        Ok(Self {
            consumer,
            producer: producer(settings)?,
            processor,
            topics,
            connection: connection.to_string(),
        })
    }

    /// Consume until `shutdown` turns true.
    pub async fn run(self, mut shutdown: pipeline::Shutdown) {
        info!(connection = %self.connection, topic = %self.topics.commands, "command consumer started");
        loop {
            tokio::select! {
                _ = shutdown.recv() => break,
                msg = self.consumer.recv() => match msg {
                    Ok(m) => self.handle(&m).await,
                    Err(e) => {
                        warn!(connection = %self.connection, error = %e, "command consumer: receive failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
            }
        }
    }

    async fn handle(&self, msg: &BorrowedMessage<'_>) {
        let position = format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset());
        let raw = envelope(msg);
        let mut failures = 0u32;
        let outcome = loop {
            match self.processor.handle(&raw, &position).await {
                Ok(o) => break o,
                Err(e) => {
                    failures += 1;
                    warn!(connection = %self.connection, position = %position, error = %e, "command processing failed; retrying");
                    tokio::time::sleep(
                        pipeline::Backoff::new(Duration::from_millis(400), Duration::from_secs(10)).delay(failures),
                    )
                    .await;
                }
            }
        };
        self.publish(&outcome, msg).await;
        // Only now is the command done: commit its offset.
        if let Err(e) = self.consumer.commit_message(msg, CommitMode::Sync) {
            warn!(connection = %self.connection, position = %position, error = %e, "offset commit failed; the command may be redelivered and will be answered from its stored receipt");
        }
    }

    /// Publish the receipt and any dead letter, retrying until the broker acknowledges.
    async fn publish(&self, outcome: &Outcome, msg: &BorrowedMessage<'_>) {
        let receipt = serde_json::to_vec(&outcome.receipt).expect("receipts serialise");
        let key = outcome.receipt.command_id.clone();
        let id = format!("receipt-{key}");
        let headers = || {
            OwnedHeaders::new()
                .insert(Header {
                    key: "ce_specversion",
                    value: Some("1.0"),
                })
                .insert(Header {
                    key: "ce_id",
                    value: Some(id.as_str()),
                })
                .insert(Header {
                    key: "ce_type",
                    value: Some("CommandReceipt"),
                })
                .insert(Header {
                    key: "ce_source",
                    value: Some(&format!("erp-bridge/{}", self.connection)),
                })
                .insert(Header {
                    key: "ce_subject",
                    value: Some(key.as_str()),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                })
        };
        self.send_until_acked(&self.topics.receipts, &key, &receipt, headers)
            .await;
        if let Some(reason) = &outcome.dead_letter {
            let original = msg.payload().unwrap_or_default().to_vec();
            let position = format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset());
            let dl_headers = || {
                let mut h = OwnedHeaders::new();
                if let Some(hs) = msg.headers() {
                    for x in hs.iter() {
                        h = h.insert(Header {
                            key: x.key,
                            value: x.value,
                        });
                    }
                }
                h.insert(Header {
                    key: "erp_bridge_error",
                    value: Some(reason.as_str()),
                })
                .insert(Header {
                    key: "erp_bridge_command_id",
                    value: Some(key.as_str()),
                })
                .insert(Header {
                    key: "erp_bridge_origin",
                    value: Some(position.as_str()),
                })
            };
            self.send_until_acked(&self.topics.deadletter, &key, &original, dl_headers)
                .await;
        }
    }

    async fn send_until_acked(&self, topic: &str, key: &str, value: &[u8], headers: impl Fn() -> OwnedHeaders) {
        let mut failures = 0u32;
        loop {
            let record = FutureRecord::to(topic)
                .key(key.as_bytes())
                .payload(value)
                .headers(headers());
            match self
                .producer
                .send(record, Timeout::After(Duration::from_secs(15)))
                .await
            {
                Ok(_) => return,
                Err((e, _)) => {
                    failures += 1;
                    warn!(connection = %self.connection, topic, error = %e, "publishing failed; retrying");
                    tokio::time::sleep(
                        pipeline::Backoff::new(Duration::from_millis(500), Duration::from_secs(30)).delay(failures),
                    )
                    .await;
                }
            }
        }
    }
}

/// The command envelope: the value itself, or for CloudEvents binary mode (`ce_id` and `ce_type`
/// headers with the command data as value) an envelope built from headers and value.
fn envelope(msg: &BorrowedMessage<'_>) -> Vec<u8> {
    let payload = msg.payload().unwrap_or_default();
    let header = |name: &str| {
        msg.headers().and_then(|h| {
            h.iter()
                .find(|x| x.key == name)
                .and_then(|x| x.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string)
        })
    };
    if let (Some(id), Some(ty)) = (header("ce_id"), header("ce_type")) {
        if let Ok(data) = serde_json::from_slice::<Value>(payload) {
            if data.get("commandId").is_none() {
                return serde_json::to_vec(&json!({"commandId": id, "command": ty, "data": data})).expect("json");
            }
        }
    }
    payload.to_vec()
}
