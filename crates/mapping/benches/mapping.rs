//! Throughput of the hot path: one M3 row -> one `...Updated` payload (+ key + content hash).
//!
//! Run with `cargo bench -p mapping` (short: `cargo bench -p mapping -- --warm-up-time 1
//! --measurement-time 3`). Criterion reports rows/s as `thrpt` (elements/s). Three benches over
//! the same pre-generated rows of a 20-column `MITMAS` mapping (the 17 base columns plus entry
//! date, change date and change number; strings, integers, decimals and dates), values padded as
//! M3 sends them:
//! - `apply`: `CompiledMapping::apply`;
//! - `matches+apply`: the same with a filter evaluated first;
//! - `serde_baseline`: trimming the same 20 values into a struct and `serde_json::to_string`
//!   (no typing, no key, no hash), the floor to compare with.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mapping::catalog::{standard_table, ColumnKind};
use mapping::{CompiledMapping, MappingSpec};
use serde::Serialize;

const ROWS: usize = 10_000;

use mapping::spec::WIDE_ITEM_COLUMNS as COLUMNS;

fn spec() -> MappingSpec {
    mapping::spec::wide_item_mapping()
}

/// Deterministic pseudo-random rows, padded like M3 sends them (alpha to the column length,
/// numbers with all their decimals).
fn rows() -> Vec<Vec<String>> {
    let table = standard_table("MITMAS").unwrap();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const WORDS: [&str; 12] = [
        "Bolt",
        "Nut",
        "Washer",
        "Steel",
        "Zinc",
        "plated",
        "M8",
        "M10",
        "Hex",
        "Flange",
        "\"Heavy\"",
        "Screw",
    ];
    (0..ROWS)
        .map(|i| {
            COLUMNS
                .iter()
                .map(|(c, _)| {
                    let col = table.column(c).unwrap();
                    let r = next();
                    let v = match (*c, col.kind) {
                        ("MMCONO", _) => "100".to_string(),
                        ("MMITNO", _) => format!("A{i:06}"),
                        ("MMSTAT", _) => ["10", "20", "50", "90"][(r % 4) as usize].to_string(),
                        (_, ColumnKind::Alpha) => {
                            let n = 1 + (r % 4) as usize;
                            let mut s = String::new();
                            for k in 0..n {
                                if k > 0 {
                                    s.push(' ');
                                }
                                s.push_str(WORDS[((r >> (8 * k)) % 12) as usize]);
                            }
                            s.truncate(col.length as usize);
                            s
                        }
                        (_, ColumnKind::Date) => {
                            format!("20{:02}{:02}{:02}", 20 + r % 7, 1 + (r >> 8) % 12, 1 + (r >> 16) % 28)
                        }
                        (_, ColumnKind::Numeric) if col.decimals > 0 => format!(
                            "{}.{:0width$}",
                            r % 10_000,
                            (r >> 20) % 10u64.pow(col.decimals as u32),
                            width = col.decimals as usize
                        ),
                        (_, ColumnKind::Numeric) => (r % 1000).to_string(),
                    };
                    match col.kind {
                        ColumnKind::Alpha => format!("{v:<width$}", width = col.length as usize),
                        _ => v,
                    }
                })
                .collect()
        })
        .collect()
}

/// The baseline: the same 20 values, trimmed, serialised by serde_json.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Baseline<'a> {
    company: &'a str,
    item_number: &'a str,
    name: &'a str,
    description: &'a str,
    status: &'a str,
    unit: &'a str,
    item_type: &'a str,
    item_group: &'a str,
    product_group: &'a str,
    responsible: &'a str,
    supplier: &'a str,
    purchase_price: &'a str,
    sales_price: &'a str,
    currency: &'a str,
    net_weight: &'a str,
    gross_weight: &'a str,
    environment_group: &'a str,
    created: &'a str,
    changed: &'a str,
    change_number: &'a str,
}

impl<'a> Baseline<'a> {
    fn from_row(r: &[&'a str]) -> Self {
        let t = |i: usize| r[i].trim();
        Self {
            company: t(0),
            item_number: t(1),
            name: t(2),
            description: t(3),
            status: t(4),
            unit: t(5),
            item_type: t(6),
            item_group: t(7),
            product_group: t(8),
            responsible: t(9),
            supplier: t(10),
            purchase_price: t(11),
            sales_price: t(12),
            currency: t(13),
            net_weight: t(14),
            gross_weight: t(15),
            environment_group: t(16),
            created: t(17),
            changed: t(18),
            change_number: t(19),
        }
    }
}

fn bench(c: &mut Criterion) {
    let table = standard_table("MITMAS").unwrap();
    let m = CompiledMapping::compile(&spec(), &table).unwrap();
    assert_eq!(m.columns().len(), 20);
    let mut filtered = spec();
    filtered.filter = Some("MMSTAT in ('20','50') and not MMITTY = 'SP' and MMPUPR >= 10.5".into());
    let mf = CompiledMapping::compile(&filtered, &table).unwrap();
    let owned = rows();
    let rows: Vec<Vec<&str>> = owned.iter().map(|r| r.iter().map(String::as_str).collect()).collect();
    // Sanity: every row maps and the output is valid JSON.
    for r in &rows {
        let p = m.apply(r).unwrap();
        serde_json::from_str::<serde_json::Value>(&p.payload).unwrap();
    }

    let mut g = c.benchmark_group("mapping");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("apply", |b| {
        b.iter(|| {
            for r in &rows {
                black_box(m.apply(black_box(r)).unwrap());
            }
        })
    });
    g.bench_function("matches+apply", |b| {
        b.iter(|| {
            for r in &rows {
                if mf.matches(black_box(r)) {
                    black_box(mf.apply(r).unwrap());
                }
            }
        })
    });
    g.bench_function("serde_baseline", |b| {
        b.iter(|| {
            for r in &rows {
                black_box(serde_json::to_string(&Baseline::from_row(black_box(r))).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
