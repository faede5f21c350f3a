//! Measure 1, made last: mapping on one core (the wide 20-column item mapping) against plain
//! serde re-serialisation of the same rows.

use std::time::{Duration, Instant};

use mapping::spec::WIDE_ITEM_COLUMNS as COLUMNS;
use mapping::CompiledMapping;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::Figure;

/// The baseline's serialisation: the same 20 trimmed values as a JSON object, no typing.
struct Plain<'a>(&'a [&'a str]);

impl Serialize for Plain<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(COLUMNS.len()))?;
        for ((_, name), v) in COLUMNS.iter().zip(self.0) {
            m.serialize_entry(name, v.trim())?;
        }
        m.end()
    }
}

/// Mapping on one core, against plain serde re-serialisation of the same rows.
pub(super) fn measure(sim: &m3_sim::Simulator, table: &mapping::catalog::Table) -> anyhow::Result<Figure> {
    let spec = mapping::spec::wide_item_mapping();
    let compiled = CompiledMapping::compile(&spec, table)?;
    let cols = compiled.columns();
    let rows: Vec<Vec<String>> = sim
        .rows("MITMAS")
        .into_iter()
        .map(|r| cols.iter().map(|c| r.get(c).cloned().unwrap_or_default()).collect())
        .collect();
    let refs: Vec<Vec<&str>> = rows.iter().map(|r| r.iter().map(String::as_str).collect()).collect();
    let time_rows = |f: &dyn Fn(&[&str]) -> usize| {
        let start = Instant::now();
        let mut n = 0usize;
        let mut sink = 0usize;
        while start.elapsed() < Duration::from_millis(1500) {
            for r in &refs {
                sink = sink.wrapping_add(f(r));
            }
            n += refs.len();
        }
        std::hint::black_box(sink);
        n as f64 / start.elapsed().as_secs_f64()
    };
    let mapped = time_rows(&|r| compiled.apply(r).map(|p| p.payload.len()).unwrap_or(0));
    let plain = time_rows(&|r| serde_json::to_string(&Plain(r)).map(|s| s.len()).unwrap_or(0));
    Ok(Figure {
        name: "mapping, 20 columns, one core".into(),
        value: mapped,
        baseline: plain,
        unit: "rows/s",
        baseline_is: "serde_json of the same trimmed values",
        higher_is_better: true,
        skipped: None,
        goal: None,
    })
}
