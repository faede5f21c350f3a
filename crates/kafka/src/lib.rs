//! Kafka for erp-bridge: the relay publishing the outbox with CloudEvents attributes, and the
//! command consumer turning command messages into M3 transactions, receipts and dead letters.
//! Built on `rdkafka` with its statically bundled librdkafka.

pub mod cloudevents;
pub mod consumer;
pub mod relay;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

pub use consumer::CommandConsumer;
pub use relay::Relay;

/// Kafka settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topic prefix: topics are `<prefix>.<connection>.events|commands|receipts|deadletter`.
    pub topic_prefix: String,
    /// Partitions of topics erp-bridge creates.
    pub partitions: i32,
    /// Replication factor of topics erp-bridge creates.
    pub replication_factor: i32,
    /// CloudEvents structured mode (the whole event as the JSON value) instead of binary mode.
    pub structured_mode: bool,
    /// Extra librdkafka properties passed through (SASL, TLS: `security.protocol`,
    /// `sasl.mechanism`, `sasl.username`, ...).
    pub properties: BTreeMap<String, String>,
    /// Not a configuration key: the absolute URL the relative `dataschema` of messages
    /// (`/api/connections/demo/schemas/ItemUpdated`) is resolved against, so that records carry
    /// the absolute URI CloudEvents requires. The app sets it from `http.public_url` (default
    /// `http://<http.listen>`); empty keeps `dataschema` as stored.
    #[serde(skip)]
    pub schema_base_url: String,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            topic_prefix: "erp-bridge".into(),
            partitions: 3,
            replication_factor: 1,
            structured_mode: false,
            properties: BTreeMap::new(),
            schema_base_url: String::new(),
        }
    }
}

/// The four topics of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Messages (`ItemUpdated`, ...).
    pub events: String,
    /// Commands in.
    pub commands: String,
    /// Receipts out.
    pub receipts: String,
    /// Malformed commands and exhausted retries.
    pub deadletter: String,
}

impl KafkaSettings {
    /// Topic names for a connection.
    pub fn topics(&self, connection: &str) -> Topics {
        let t = |kind: &str| format!("{}.{connection}.{kind}", self.topic_prefix);
        Topics {
            events: t("events"),
            commands: t("commands"),
            receipts: t("receipts"),
            deadletter: t("deadletter"),
        }
    }

    /// A client configuration with the brokers and pass-through properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Kafka failures.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A client could not be created (bad settings).
    #[error("kafka client: {0}")]
    Client(#[source] rdkafka::error::KafkaError),
    /// Topic creation failed.
    #[error("creating topic {topic}: {message}")]
    Topic { topic: String, message: String },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Command processing failed.
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
}

/// Create the connection's topics if they are missing.
pub async fn ensure_topics(settings: &KafkaSettings, connection: &str) -> Result<Topics, KafkaError> {
    let topics = settings.topics(connection);
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create().map_err(KafkaError::Client)?;
    let names = [&topics.events, &topics.commands, &topics.receipts, &topics.deadletter];
    let new: Vec<NewTopic> = names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results = admin.create_topics(&new, &opts).await.map_err(|e| KafkaError::Topic {
        topic: names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
        message: e.to_string(),
    })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaError::Topic {
                    topic,
                    message: code.to_string(),
                })
            }
        }
    }
    Ok(topics)
}
