//! The runtime's pure parts through its public interface: a self-hosted connection's channel
//! state as the API shows it, the routing of a connector's answers to the calls that wait for
//! them, the lease policy's timing, and the definition-file reader's errors.

use pipeline::remote_mi::{M3Answer, MiFailure, RemoteMi};
use runtime::remote::{PendingCalls, RemoteState};
use runtime::LeasePolicy;

#[test]
fn a_channel_is_waiting_then_connected_then_disconnected_and_counts_refusals() {
    let remote = RemoteState::new(RemoteMi::default(), channel::Tuning::default());
    assert_eq!(remote.describe()["state"], "waiting");
    remote.refused("lease held by another");
    remote.connected("host-a", "1.2.3");
    remote.ingested(3);
    remote.ingested(2);
    let d = remote.describe();
    assert_eq!(d["state"], "connected", "{d}");
    assert_eq!(d["holder"], "host-a", "{d}");
    assert_eq!(d["version"], "1.2.3", "{d}");
    assert_eq!(d["refused"], 1, "{d}");
    assert!(
        d["lastRefusal"].as_str().unwrap().ends_with(": lease held by another"),
        "{d}"
    );
    assert_eq!(d["messagesIngested"], 5, "{d}");
    remote.disconnected("host-a");
    assert_eq!(remote.describe()["state"], "disconnected");
}

#[test]
fn an_older_channel_closing_leaves_the_newer_holder_connected() {
    let remote = RemoteState::new(RemoteMi::default(), channel::Tuning::default());
    remote.connected("host-a", "1");
    remote.connected("host-b", "1");
    remote.disconnected("host-a");
    let d = remote.describe();
    assert_eq!(d["state"], "connected", "{d}");
    assert_eq!(d["holder"], "host-b", "{d}");
}

#[tokio::test]
async fn closing_a_channel_fires_its_shutdown() {
    let remote = RemoteState::new(RemoteMi::default(), channel::Tuning::default());
    let mut closing = remote.closing();
    assert!(!closing.is_shutdown());
    remote.close();
    closing.recv().await;
    assert!(closing.is_shutdown());
}

#[test]
fn a_channel_closed_before_it_opens_is_closed_at_once() {
    let remote = RemoteState::new(RemoteMi::default(), channel::Tuning::default());
    remote.close();
    assert!(remote.closing().is_shutdown());
}

#[tokio::test]
async fn each_answer_reaches_the_call_it_answers_and_unknown_ids_are_ignored() {
    let mut pending = PendingCalls::default();
    let (tx1, rx1) = tokio::sync::oneshot::channel();
    let (tx2, rx2) = tokio::sync::oneshot::channel();
    let first = pending.register(tx1);
    let second = pending.register(tx2);
    assert_ne!(first, second);
    pending.answer(second + 100, Ok(M3Answer::Records(Vec::new())));
    let failure = MiFailure {
        nok: None,
        transient: true,
        message: "M3 is away".into(),
    };
    pending.answer(second, Err(failure.clone()));
    pending.answer(first, Ok(M3Answer::Records(Vec::new())));
    assert_eq!(rx2.await.unwrap(), Err(failure));
    assert_eq!(rx1.await.unwrap(), Ok(M3Answer::Records(Vec::new())));
}

#[test]
fn the_lease_is_renewed_at_least_three_times_within_its_lifetime() {
    let p = LeasePolicy::STANDARD;
    assert!(p.renew_every * 3 < p.ttl, "{p:?}");
}

#[test]
fn a_broken_definition_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    for (file, text) in [
        ("a.json", "{\"name\": "),
        ("b.toml", "name = "),
        ("c.yaml", "name: [unclosed"),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let err = runtime::files::parse_mapping_file(&path).unwrap_err().to_string();
        assert!(err.contains(file), "{file}: {err}");
    }
    let err = runtime::files::mapping_files(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("mappings_dir: cannot read"), "{err}");
}
