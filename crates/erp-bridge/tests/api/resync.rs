//! The scheduled full re-sync: every row is read again on the cron schedule, only differences
//! are emitted, and polling resumes afterwards.

use std::time::Duration;

use crate::helpers::{self, Env};
use erp_bridge::App;

#[tokio::test]
async fn a_scheduled_full_resync_rereads_every_row_and_emits_no_duplicates() {
    let env = Env::new(60).await;
    let mut cfg = env.config();
    cfg.connection.full_resync = Some("* * * * *".into()); // every minute: the test waits at most one
    cfg.connection.reconcile_interval = Duration::from_secs(3600);
    let app = App::start(cfg).await.unwrap();
    env.loaded(&app).await;
    let seen_after_load = env.table_status(&app).await["rows_seen"].as_u64().unwrap();
    let messages_after_load = env.all_messages(&app).await.len();
    assert_eq!(messages_after_load, 60);
    // Wait (up to ~70 s) for the minute to turn and the pass to read the table again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(75);
    loop {
        let s = env.table_status(&app).await;
        if s["rows_seen"].as_u64().unwrap() >= seen_after_load + 60 && s["phase"] == "polling" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no full re-sync within 75 s: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        env.all_messages(&app).await.len(),
        messages_after_load,
        "unchanged rows emit nothing"
    );
    // Polling goes on after the pass.
    let itno = env.sim.rows("MITMAS")[3]["MMITNO"].clone();
    env.sim
        .update("MITMAS", &["100", &itno], &[("MMITDS", "after the re-sync")])
        .unwrap();
    helpers::eventually("the change after the re-sync", || async {
        env.all_messages(&app).await.len() == messages_after_load + 1
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn a_bad_schedule_is_refused_naming_the_field() {
    let env = Env::new(5).await;
    let dir = env.dir.path();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[connection]\nfull_resync = \"30 25 * * *\"\n").unwrap();
    let err = erp_bridge::config::Config::load(Some(&f)).unwrap_err().to_string();
    assert!(
        err.contains("connection.full_resync") && err.contains("hour field"),
        "{err}"
    );
}
