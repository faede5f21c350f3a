//! Measure 5: outbox -> Kafka, the relay publishing what the load and the changes left in the
//! outbox, against a bare producer with the same settings; a broker given, or tansu started.

use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;

use super::{open_store, wait_for, BenchOptions, Figure, Goal};

/// What the relay measure's baseline is.
const RELAY_BASELINE: &str =
    "bare rdkafka FutureProducer (the relay's settings), same records, same broker, before and after the relay";

/// Messages the bare producer of the relay measure keeps in flight (the relay: one batch of 500).
const BARE_IN_FLIGHT: usize = 5_000;

/// A tansu broker started for the run: a free loopback port, SQLite storage in a temporary
/// folder; killed on drop.
struct Tansu {
    child: std::process::Child,
    brokers: String,
    _state: tempfile::TempDir,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `TANSU_BIN`, else the broker `scripts/tansu-build.sh` builds, if it is there.
fn tansu_bin() -> Option<std::path::PathBuf> {
    if let Some(b) = std::env::var_os("TANSU_BIN") {
        return Some(b.into());
    }
    let bin = std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cache/tansu-0.6.0/bin/tansu");
    bin.exists().then_some(bin)
}

async fn start_tansu(bin: &std::path::Path) -> anyhow::Result<Tansu> {
    use std::process::{Command, Stdio};
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let state = tempfile::tempdir()?;
    let log_path = state.path().join("tansu.log");
    let log = std::fs::File::create(&log_path)?;
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .current_dir(state.path())
        .env_remove("LISTENER_URL")
        .env_remove("ADVERTISED_LISTENER_URL")
        .env_remove("STORAGE_ENGINE")
        .env_remove("CLUSTER_ID")
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "sqlite://tansu.db",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let mut tansu = Tansu {
        child,
        brokers: format!("127.0.0.1:{port}"),
        _state: state,
    };
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&tansu.brokers).await.is_ok() {
            return Ok(tansu);
        }
        if let Some(status) = tansu.child.try_wait()? {
            anyhow::bail!("{} exited ({status}): {}", bin.display(), log());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!(
        "{} did not open {} within 10 s: {}",
        bin.display(),
        tansu.brokers,
        log()
    )
}

/// The relay measure's row: figures, or why there are none. Never fails the bench.
pub(super) async fn measure(opts: &BenchOptions, cfg: &Config) -> Figure {
    let name = "outbox -> Kafka relay".to_string();
    let skipped = |why: String| Figure::skipped(name.clone(), "msgs/s", RELAY_BASELINE, true, why);
    let mut tansu = None;
    let brokers = match (&opts.kafka_brokers, tansu_bin()) {
        (Some(b), _) => b.clone(),
        (None, Some(bin)) => match start_tansu(&bin).await {
            Ok(t) => tansu.insert(t).brokers.clone(),
            Err(e) => return skipped(format!("skipped (tansu did not start: {e:#})")),
        },
        (None, None) => return skipped("skipped (no broker)".into()),
    };
    let result = relay(cfg, &brokers).await;
    drop(tansu);
    match result {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "bench: the Kafka relay measure failed");
            skipped(format!("failed: {e:#}"))
        }
    }
}

/// Outbox -> Kafka: the relay (`kafka::Relay`, as `up` runs it) publishes every message the
/// load and the changes left in the outbox, timed from its creation until it has reported all
/// of them acknowledged; against a bare producer with the same settings sending the same
/// records (key, CloudEvents headers, value) from memory to a topic with as many partitions
/// ([`bare_send`]), once before and once after the relay.
async fn relay(cfg: &Config, brokers: &str) -> anyhow::Result<Figure> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;

    let conn = cfg.connection.name.as_str();
    let store = open_store(cfg).await?;
    let count = store.unpublished_count(conn).await? as usize;
    anyhow::ensure!(count > 0, "the outbox is empty");
    let records: Vec<(String, rdkafka::message::OwnedHeaders, Vec<u8>)> = store
        .unpublished(conn, u32::try_from(count)?)
        .await?
        .iter()
        .map(|m| {
            let (headers, value) = kafka::cloudevents::encode(m, false, "");
            (m.subject.clone(), headers, value)
        })
        .collect();
    anyhow::ensure!(records.len() == count, "read {} of {count} messages", records.len());
    let avg_value = records.iter().map(|r| r.2.len()).sum::<usize>() / count;

    // Topics of their own for this run (a given broker may be shared).
    let prefix = format!("erp-bridge-bench-{:08x}", rand::random::<u32>());
    let settings = kafka::KafkaSettings {
        brokers: brokers.to_string(),
        topic_prefix: prefix.clone(),
        ..Default::default()
    };
    let relay_topic = settings.topics(conn).events;
    let bare_topic = format!("{prefix}.baseline");
    let admin: AdminClient<DefaultClientContext> = settings.client_config().create()?;
    let new: Vec<NewTopic> = [&relay_topic, &bare_topic]
        .into_iter()
        .map(|t| {
            NewTopic::new(
                t,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    for r in tokio::time::timeout(Duration::from_secs(30), admin.create_topics(&new, &opts))
        .await
        .context("creating the topics: no answer in 30 s")??
    {
        r.map_err(|(t, code)| anyhow::anyhow!("creating topic {t}: {code}"))?;
    }
    let timeout = Duration::from_secs(120) + Duration::from_millis(5 * count as u64);

    // The bare producer before and after the relay, so that a broker (or a machine) that
    // speeds up or slows down as the run goes on favours neither side.
    let bare_before = bare_send(&settings, &bare_topic, &records, timeout).await?;
    let status = pipeline::StatusBoard::default();
    let (stop, stopped) = pipeline::ShutdownTrigger::new();
    let start = Instant::now();
    let relay = kafka::Relay::new(&settings, store.clone(), conn, status.clone())?;
    let task = tokio::spawn(relay.run(stopped));
    let published = wait_for(
        &format!("the relay to publish {count} messages"),
        timeout,
        Duration::from_millis(5),
        || async {
            let r = status.snapshot().relay.unwrap_or_default();
            Ok(if r.published >= count as u64 {
                Ok(r.published)
            } else {
                Err(format!(
                    "published {}, healthy {}, last error {:?}",
                    r.published, r.healthy, r.last_error
                ))
            })
        },
    )
    .await;
    let relayed = start.elapsed();
    stop.fire();
    let _ = task.await;
    published?;
    let left = store.unpublished_count(conn).await?;
    anyhow::ensure!(
        left == 0,
        "{left} messages still unpublished after the relay reported all"
    );
    let bare_after = bare_send(&settings, &bare_topic, &records, timeout).await?;
    drop(records);
    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    Ok(Figure {
        name: format!(
            "outbox -> Kafka relay, {count} messages (value {avg_value} B average, CloudEvents binary mode; \
             bare producer before / after the relay: {:.0} / {:.0} msgs/s)",
            rate(bare_before),
            rate(bare_after)
        ),
        value: rate(relayed),
        baseline: 2.0 * count as f64 / (bare_before + bare_after).as_secs_f64(),
        unit: "msgs/s",
        baseline_is: RELAY_BASELINE,
        higher_is_better: true,
        skipped: None,
        // Issue 16.
        goal: Some(Goal::RatioAtLeast(0.98)),
    })
}

/// The relay measure's baseline: a bare producer with the relay's settings (a new one, as the
/// relay's is) sends `records` to `topic`, [`BARE_IN_FLIGHT`] at most in flight; returns the
/// time until the broker acknowledged the last one.
async fn bare_send(
    settings: &kafka::KafkaSettings,
    topic: &str,
    records: &[(String, rdkafka::message::OwnedHeaders, Vec<u8>)],
    timeout: Duration,
) -> anyhow::Result<Duration> {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::future_producer::OwnedDeliveryResult;
    use rdkafka::producer::FutureRecord;

    fn delivered<E>(d: Result<OwnedDeliveryResult, E>) -> anyhow::Result<()> {
        match d {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(anyhow::anyhow!("baseline delivery failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("baseline delivery cancelled")),
        }
    }
    let start = Instant::now();
    let producer = kafka::relay::producer(settings)?;
    let send_all = async {
        let mut inflight = std::collections::VecDeque::new();
        for (key, headers, value) in records {
            // A bounded window, as a well-behaved producer keeps: with all the records queued at
            // once, a slow broker lets the last ones expire (`message.timeout.ms`) in the queue.
            if inflight.len() >= BARE_IN_FLIGHT {
                if let Some(d) = inflight.pop_front() {
                    delivered(d.await)?;
                }
            }
            loop {
                let record = FutureRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(value)
                    .headers(headers.clone());
                match producer.send_result(record) {
                    Ok(d) => {
                        inflight.push_back(d);
                        break;
                    }
                    // Local queue full: wait for the oldest delivery, then try again.
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        let d = inflight
                            .pop_front()
                            .context("producer queue full with nothing in flight")?;
                        delivered(d.await)?;
                    }
                    Err((e, _)) => anyhow::bail!("baseline send failed: {e}"),
                }
            }
        }
        while let Some(d) = inflight.pop_front() {
            delivered(d.await)?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, send_all)
        .await
        .with_context(|| format!("baseline: {} messages not acknowledged in {timeout:?}", records.len()))??;
    Ok(start.elapsed())
}
