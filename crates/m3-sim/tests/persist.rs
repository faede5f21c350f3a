//! Snapshots for the demo: open, save (atomic), autosave, and the LMTS clock.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use m3_sim::{SimConfig, SimError, Simulator};
use serde_json::Value;

fn cfg() -> SimConfig {
    SimConfig {
        items: 150,
        seed: 3,
        ..SimConfig::default()
    }
}

/// A fresh, empty directory of its own.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "m3-sim-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn all_rows(sim: &Simulator) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    sim.tables().into_iter().map(|t| (t.clone(), sim.rows(&t))).collect()
}

fn max_lmts(sim: &Simulator) -> i64 {
    sim.tables()
        .iter()
        .flat_map(|t| sim.rows(t))
        .filter_map(|r| {
            r.iter()
                .find(|(k, _)| k.ends_with("LMTS"))
                .and_then(|(_, v)| v.parse::<i64>().ok())
        })
        .max()
        .unwrap()
}

#[test]
fn open_seeds_then_restores_what_was_saved() {
    let dir = temp_dir("open");
    let path = dir.join("m3.json");
    let sim = Simulator::open(cfg(), &path).unwrap();
    // Seeded audit times are relative to now, so compare everything else.
    let timeless = |s: &Simulator| {
        let mut rows = all_rows(s);
        for r in rows.values_mut().flatten() {
            r.retain(|k, _| !["RGDT", "RGTM", "LMDT", "LMTS"].iter().any(|f| k.ends_with(f)));
        }
        rows
    };
    assert!(
        timeless(&sim) == timeless(&Simulator::new(cfg())),
        "seeded when no file"
    );
    assert!(!path.exists(), "open does not write");

    sim.insert(
        "MITMAS",
        &[("MMITNO", "SAVED-1"), ("MMITDS", "Kept"), ("MMPUPR", "12.5")],
    )
    .unwrap();
    let first = sim.rows("MITMAS")[0]["MMITNO"].clone();
    sim.delete("MITMAS", &["100", &first]).unwrap();
    let cuno = sim.rows("OCUSMA")[0]["OKCUNO"].clone();
    sim.update("OCUSMA", &["100", &cuno], &[("OKCUNM", "Renamed")]).unwrap();
    sim.insert("CUGEX1", &[("F1FILE", "MITMAS"), ("F1PK01", "SAVED-1")])
        .ok();
    sim.save(&path).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("m3.json")], "no temp files left");
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(doc["format"], m3_sim::SNAPSHOT_FORMAT);

    let again = Simulator::open(cfg(), &path).unwrap();
    assert!(all_rows(&again) == all_rows(&sim), "same rows after reopen");
    assert_eq!(again.get("MITMAS", &["100", "SAVED-1"]).unwrap()["MMPUPR"], "12.5");
    assert!(again.get("MITMAS", &["100", &first]).is_none(), "deletes persist");
    assert_eq!(again.get("OCUSMA", &["100", &cuno]).unwrap()["OKCUNM"], "Renamed");
    // A different seed does not matter once a snapshot exists.
    let other = Simulator::open(SimConfig { seed: 99, ..cfg() }, &path).unwrap();
    assert!(all_rows(&other) == all_rows(&sim), "snapshot wins over seed");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_lmts_clock_survives_a_restart() {
    let dir = temp_dir("clock");
    let path = dir.join("m3.json");
    let sim = Simulator::new(cfg());
    sim.save(&path).unwrap();
    // Pretend the saved simulator handed out LMTS one day ahead of this machine's clock.
    let ahead = chrono::Utc::now().timestamp_millis() + 86_400_000;
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["lastMs"] = ahead.into();
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();

    let again = Simulator::open(cfg(), &path).unwrap();
    again.insert("MITMAS", &[("MMITNO", "AFTER-1")]).unwrap();
    let lmts: i64 = again.get("MITMAS", &["100", "AFTER-1"]).unwrap()["MMLMTS"]
        .parse()
        .unwrap();
    assert!(lmts >= ahead, "{lmts} < {ahead}");

    // Also from the rows themselves: a row stamped ahead in the snapshot.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["lastMs"] = 0.into();
    let t = &mut doc["tables"]["MITMAS"];
    let pos = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == "MMLMTS")
        .unwrap();
    t["rows"][0][pos] = (ahead + 5).to_string().into();
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let third = Simulator::open(cfg(), &path).unwrap();
    third.insert("MITMAS", &[("MMITNO", "AFTER-2")]).unwrap();
    let lmts: i64 = third.get("MITMAS", &["100", "AFTER-2"]).unwrap()["MMLMTS"]
        .parse()
        .unwrap();
    assert!(lmts >= ahead + 5);
    assert!(lmts >= max_lmts(&third), "newest write is the newest LMTS");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_snapshots_are_errors() {
    let dir = temp_dir("bad");
    let path = dir.join("m3.json");
    std::fs::write(&path, b"{not json").unwrap();
    assert!(matches!(Simulator::open(cfg(), &path), Err(SimError::Snapshot { .. })));
    std::fs::write(&path, br#"{"format":"other/9","tables":{}}"#).unwrap();
    assert!(matches!(Simulator::open(cfg(), &path), Err(SimError::Snapshot { .. })));
    let nowhere = dir.join("no/such/dir/m3.json");
    assert!(matches!(Simulator::new(cfg()).save(&nowhere), Err(SimError::Io { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn autosave_writes_only_after_changes() {
    let dir = temp_dir("auto");
    let path = dir.join("m3.json");
    let sim = Simulator::open(cfg(), &path).unwrap();
    let task = sim.autosave(path.clone(), Duration::from_millis(50));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!path.exists(), "nothing changed, nothing saved");

    sim.insert("MITMAS", &[("MMITNO", "AUTO-1")]).unwrap();
    let mut waited = 0;
    while !path.exists() && waited < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reopened = Simulator::open(cfg(), &path).unwrap();
    assert!(reopened.get("MITMAS", &["100", "AUTO-1"]).is_some());

    let saved_at = |p: &PathBuf| -> Value {
        serde_json::from_slice::<Value>(&std::fs::read(p).unwrap()).unwrap()["savedAt"].clone()
    };
    let first = saved_at(&path);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(saved_at(&path), first, "no rewrite without changes");
    sim.update("MITMAS", &["100", "AUTO-1"], &[("MMITDS", "Changed")])
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_ne!(saved_at(&path), first);
    let reopened = Simulator::open(cfg(), &path).unwrap();
    assert_eq!(reopened.get("MITMAS", &["100", "AUTO-1"]).unwrap()["MMITDS"], "Changed");
    task.abort();
    std::fs::remove_dir_all(&dir).ok();
}
