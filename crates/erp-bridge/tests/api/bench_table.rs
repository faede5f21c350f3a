//! The bench's result table: each goal is printed beside its figure with whether the run met it
//! (issue 17's initial-load ratios and RSS bound).

use erp_bridge::bench::{load_goal, table, Figure, Goal, LOAD_RSS_GOAL};

fn figure(name: &str, value: f64, baseline: f64, unit: &'static str, goal: Option<Goal>) -> Figure {
    Figure {
        name: name.into(),
        value,
        baseline,
        unit,
        baseline_is: "bare",
        higher_is_better: false,
        skipped: None,
        goal,
    }
}

fn row<'a>(t: &'a str, name: &str) -> &'a str {
    t.lines()
        .find(|l| l.starts_with(&format!("| {name} |")))
        .unwrap_or_else(|| panic!("no row `{name}` in\n{t}"))
}

#[test]
fn the_load_goal_depends_on_the_added_latency() {
    assert_eq!(load_goal(0), Some(Goal::RatioAtMost(1.0)));
    assert_eq!(load_goal(100), Some(Goal::RatioAtMost(0.5)));
    assert_eq!(load_goal(250), Some(Goal::RatioAtMost(0.5)));
    assert_eq!(load_goal(50), None, "issue 17 states no goal between 0 and 100 ms");
}

#[test]
fn ratio_goals_say_met_or_missed() {
    let fast = figure("fast", 4.0, 10.0, "s", load_goal(100));
    let slow = figure("slow", 6.0, 10.0, "s", load_goal(100));
    let t = table(&[fast, slow]);
    assert!(t.lines().next().unwrap().contains("| goal |"), "{t}");
    assert!(row(&t, "fast").contains("| <= 0.50x: met |"), "{t}");
    assert!(row(&t, "slow").contains("| <= 0.50x: **missed** |"), "{t}");
}

#[test]
fn the_rss_bound_is_in_megabytes_not_mebibytes() {
    // 100 MB = 95.37 MiB.
    let under = figure("under", 95.0, 2000.0, "MiB", Some(LOAD_RSS_GOAL));
    let over = figure("over", 96.0, 2000.0, "MiB", Some(LOAD_RSS_GOAL));
    let t = table(&[under, over]);
    assert!(row(&t, "under").contains("<= 100 MB (95.4 MiB): met"), "{t}");
    assert!(row(&t, "over").contains("<= 100 MB (95.4 MiB): **missed**"), "{t}");
}

#[test]
fn rows_without_a_goal_or_a_figure_show_a_dash() {
    let mut skipped = figure("skipped", f64::NAN, f64::NAN, "s", load_goal(0));
    skipped.skipped = Some("skipped (no broker)".into());
    let plain = figure("plain", 1.0, 2.0, "s", None);
    let t = table(&[skipped, plain]);
    assert!(
        row(&t, "skipped").contains("| skipped (no broker) | – | – | – |"),
        "{t}"
    );
    assert!(row(&t, "plain").contains("(lower is better) | – |"), "{t}");
}
