//! Windows: the unit in which every source reads a table, built on documented `EXPORTMI` ground
//! only. A window is a conjunction of ranges on the change timestamp (`xxLMTS`) and then on the
//! key columns (the company column excluded: the session's company always applies), rendered
//! as `QERY` comparisons joined by `and`. No `order by`, no company condition, and never "a
//! short page means the end": a window whose answer may have been cut by the server's row cap
//! is split into smaller windows (how many: `splitter.rs`) and read again, until every window
//! comes back below the cap. Rows are ordered in the client.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use mapping::catalog::{ColumnKind, Table};
use serde::{Deserialize, Serialize};

/// One end of a range.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Edge {
    /// The value, as M3 writes it (trimmed).
    pub value: String,
    /// Whether the value itself is inside the range.
    pub inclusive: bool,
}

/// A range on one dimension (a column); `None` = unbounded on that side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Range {
    /// Lower end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lo: Option<Edge>,
    /// Upper end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hi: Option<Edge>,
}

impl Range {
    fn is_point(&self) -> bool {
        matches!((&self.lo, &self.hi), (Some(l), Some(h)) if l.inclusive && h.inclusive && l.value == h.value)
    }
    /// Exactly one value.
    pub fn point(v: &str) -> Self {
        let e = Edge {
            value: v.to_string(),
            inclusive: true,
        };
        Self {
            lo: Some(e.clone()),
            hi: Some(e),
        }
    }
}

/// A window: one range per dimension of the table's [`Dimensions`]; missing trailing ranges are
/// unbounded. Serialised into the stored cursor (the initial load's pending windows).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    /// Ranges in dimension order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
}

impl Window {
    /// The whole table.
    pub fn all() -> Self {
        Self::default()
    }

    /// Rows whose timestamp is at or after `lmts`.
    pub fn since(lmts: i64) -> Self {
        Self {
            ranges: vec![Range {
                lo: Some(Edge {
                    value: lmts.to_string(),
                    inclusive: true,
                }),
                hi: None,
            }],
        }
    }

    /// The timestamp range `[lo, hi)` this window covers (`None` = open), for comparing with
    /// stored entity positions.
    pub fn lmts_bounds(&self) -> (Option<i64>, Option<i64>) {
        let Some(r) = self.ranges.first() else {
            return (None, None);
        };
        let parse = |e: &Edge| e.value.parse::<i64>().ok();
        let lo =
            r.lo.as_ref()
                .and_then(|e| parse(e).map(|v| if e.inclusive { v } else { v + 1 }));
        let hi =
            r.hi.as_ref()
                .and_then(|e| parse(e).map(|v| if e.inclusive { v + 1 } else { v }));
        (lo, hi)
    }

    fn range(&self, d: usize) -> Range {
        self.ranges.get(d).cloned().unwrap_or_default()
    }

    fn with(&self, d: usize, r: Range) -> Self {
        let mut w = self.clone();
        if w.ranges.len() <= d {
            w.ranges.resize(d + 1, Range::default());
        }
        w.ranges[d] = r;
        w
    }
}

/// The dimensions a table's windows range over: its change timestamp, then its key columns
/// without the company.
#[derive(Debug, Clone)]
pub struct Dimensions {
    /// Column names.
    pub columns: Vec<String>,
    kinds: Vec<ColumnKind>,
}

impl Dimensions {
    /// `xxLMTS`, then the key columns other than `xxCONO`.
    pub fn of(table: &Table, key_columns: &[String]) -> Self {
        let company = table.column_for_field("CONO");
        let mut columns = vec![table.column_for_field("LMTS")];
        columns.extend(key_columns.iter().filter(|c| **c != company).cloned());
        let kinds = columns
            .iter()
            .map(|c| table.column(c).map(|c| c.kind).unwrap_or(ColumnKind::Alpha))
            .collect();
        Self { columns, kinds }
    }

    /// The `where` condition of a window (`None` for the whole table).
    pub fn condition(&self, w: &Window) -> Option<String> {
        let mut parts = Vec::new();
        for (d, r) in w.ranges.iter().enumerate() {
            let Some(col) = self.columns.get(d) else { break };
            let lit = |v: &str| literal(self.kinds[d], v);
            if r.is_point() {
                let v = &r.lo.as_ref().expect("a point has ends").value;
                parts.push(format!("{col} = {}", lit(v)));
                continue;
            }
            if let Some(e) = &r.lo {
                let op = if e.inclusive { ">=" } else { ">" };
                parts.push(format!("{col} {op} {}", lit(&e.value)));
            }
            if let Some(e) = &r.hi {
                let op = if e.inclusive { "<=" } else { "<" };
                parts.push(format!("{col} {op} {}", lit(&e.value)));
            }
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }

    /// `select` columns from the table, restricted to the window (a `QERY`).
    pub fn query(&self, table: &str, select: &[String], w: &Window) -> String {
        let mut q = format!("{} from {table}", select.join(", "));
        if let Some(c) = self.condition(w) {
            q.push_str(" where ");
            q.push_str(&c);
        }
        q
    }

    /// Compare two values of dimension `d` the way the client orders rows.
    pub fn compare(&self, d: usize, a: &str, b: &str) -> Ordering {
        compare_values(self.kinds[d], a, b)
    }

    /// Split a window whose answer may have been cut, given the values of each dimension in the
    /// rows it returned (`sample[d]` = the values of dimension `d`). Every child leaves out rows
    /// the parent returned, so splitting always ends; the children together cover the parent.
    /// `None` when the window is one key already (it cannot hold more than one row). A
    /// numeric dimension is cut into up to `parts` parts at quantiles of the returned values.
    pub fn split(&self, w: &Window, sample: &[Vec<String>], parts: usize) -> Option<Vec<Window>> {
        for d in 0..self.columns.len() {
            let r = w.range(d);
            if r.is_point() {
                continue;
            }
            let mut sorted: Vec<&str> = sample
                .get(d)
                .map(|v| v.iter().map(|s| s.trim()).collect())
                .unwrap_or_default();
            sorted.sort_by(|a, b| self.compare(d, a, b));
            let mut vals = sorted.clone();
            vals.dedup_by(|a, b| self.compare(d, a, b) == Ordering::Equal);
            if vals.is_empty() {
                continue;
            }
            let numeric = self.kinds[d] != ColumnKind::Alpha;
            if numeric && vals.len() >= 2 {
                // Cut at quantiles of the returned values: [lo, c1), [c1, c2) ... [cn, hi).
                // Every cut lies above the smallest value returned, so the first part holds
                // rows the parent returned and the last one the largest (numbers order the same
                // everywhere); each part is a strict subset of the parent.
                let parts = parts.max(2);
                let mut cuts: Vec<&str> = (1..parts).map(|i| sorted[i * sorted.len() / parts]).collect();
                cuts.dedup_by(|a, b| self.compare(d, a, b) == Ordering::Equal);
                cuts.retain(|c| self.compare(d, c, vals[0]) == Ordering::Greater);
                if cuts.is_empty() {
                    cuts.push(vals[1]);
                }
                return Some(between_cuts(w, d, &cuts));
            }
            // Text may collate differently in M3 than here, so split three ways around one
            // value: `< m`, `= m` (this dimension then fixed) and `> m`. Each child lacks the
            // rows equal to `m`, or is fixed on one more dimension.
            let m = vals[vals.len() / 2];
            let below = Range {
                lo: r.lo.clone(),
                hi: Some(Edge {
                    value: m.to_string(),
                    inclusive: false,
                }),
            };
            let above = Range {
                lo: Some(Edge {
                    value: m.to_string(),
                    inclusive: false,
                }),
                hi: r.hi.clone(),
            };
            return Some(vec![w.with(d, below), w.with(d, Range::point(m)), w.with(d, above)]);
        }
        None
    }
}

impl Dimensions {
    /// Split a window on its timestamp at the returned timestamps of the given ranks (in
    /// increasing order; `sample[0]` holds the timestamps of the rows returned): part `i` runs
    /// from the value of rank `ranks[i-1]` to that of rank `ranks[i]`, the last part to the
    /// window's end. Each part is returned with how many of the returned rows lie in it. Cuts
    /// lie above the smallest value returned, so every part is a strict subset of the window.
    /// `None` when the timestamp is fixed already, not a number, or the rows returned hold
    /// fewer than two timestamps (then [`Dimensions::split`] applies).
    pub fn split_at_ranks(&self, w: &Window, sample: &[Vec<String>], ranks: &[usize]) -> Option<Vec<(Window, usize)>> {
        if w.range(0).is_point() || self.kinds.first() == Some(&ColumnKind::Alpha) {
            return None;
        }
        let mut values: Vec<i64> = sample
            .first()?
            .iter()
            .map(|v| v.trim().parse().ok())
            .collect::<Option<_>>()?;
        values.sort_unstable();
        let smallest = *values.first()?;
        let mut cuts: Vec<i64> = ranks.iter().filter_map(|&i| values.get(i).copied()).collect();
        cuts.retain(|c| *c > smallest);
        cuts.dedup();
        if cuts.is_empty() {
            return None;
        }
        // The returned rows in each part: those below its cut and not below the one before.
        let mut counts = Vec::with_capacity(cuts.len() + 1);
        let mut below = 0;
        for c in &cuts {
            let upto = values.partition_point(|v| v < c);
            counts.push(upto - below);
            below = upto;
        }
        counts.push(values.len() - below);
        let cuts: Vec<String> = cuts.iter().map(i64::to_string).collect();
        Some(between_cuts(w, 0, &cuts).into_iter().zip(counts).collect())
    }
}

/// The parts of `w` between increasing `cuts` on dimension `d`: `[lo, c1)`, `[c1, c2)` ...
/// `[cn, hi)`, where `lo` and `hi` are the window's own ends.
fn between_cuts(w: &Window, d: usize, cuts: &[impl AsRef<str>]) -> Vec<Window> {
    let r = w.range(d);
    let edge = |v: &str, inclusive| {
        Some(Edge {
            value: v.to_string(),
            inclusive,
        })
    };
    let mut kids = Vec::with_capacity(cuts.len() + 1);
    let mut lo = r.lo.clone();
    for c in cuts {
        kids.push(w.with(
            d,
            Range {
                lo: lo.clone(),
                hi: edge(c.as_ref(), false),
            },
        ));
        lo = edge(c.as_ref(), true);
    }
    kids.push(w.with(d, Range { lo, hi: r.hi }));
    kids
}

/// What the server's row cap is learned to be: an answer is complete only when it holds fewer
/// rows than both the number asked for and the most rows any answer ever held. A server that
/// cuts answers at a fixed cap can never return more than the cap, so a cut answer always
/// counts as full, whatever the cap is; at worst a window that happened to match the count is
/// split once more.
#[derive(Debug, Default)]
pub struct RowCap {
    most: AtomicUsize,
}

impl RowCap {
    /// Record an answer of `rows` rows to a request for `asked`; whether it may have been cut.
    pub fn may_be_cut(&self, rows: usize, asked: usize) -> bool {
        let most = self.most.fetch_max(rows, AtomicOrdering::Relaxed).max(rows);
        rows > 0 && rows >= asked.min(most)
    }

    /// The largest answer seen (the cap, once a cut answer was seen).
    pub fn most_seen(&self) -> usize {
        self.most.load(AtomicOrdering::Relaxed)
    }
}

/// `-?digits(.digits)?`: what may stand unquoted in a query.
pub fn is_number(v: &str) -> bool {
    let v = v.strip_prefix('-').unwrap_or(v);
    let (int, frac) = v.split_once('.').unwrap_or((v, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn literal(kind: ColumnKind, value: &str) -> String {
    match kind {
        ColumnKind::Numeric | ColumnKind::Date if is_number(value) => value.to_string(),
        _ => format!("'{}'", value.replace('\'', "''")),
    }
}

fn compare_values(kind: ColumnKind, a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim(), b.trim());
    match kind {
        ColumnKind::Alpha => a.cmp(b),
        _ => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => a.cmp(b),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapping::catalog::standard_table;

    fn dims() -> Dimensions {
        let t = standard_table("MITMAS").unwrap();
        Dimensions::of(&t, &["MMCONO".to_string(), "MMITNO".to_string()])
    }

    #[test]
    fn queries_use_only_comparisons_joined_by_and() {
        let d = dims();
        assert_eq!(d.columns, vec!["MMLMTS", "MMITNO"], "the company is never a condition");
        assert_eq!(
            d.query("MITMAS", &["MMITNO".into()], &Window::all()),
            "MMITNO from MITMAS"
        );
        assert_eq!(
            d.query("MITMAS", &["MMITNO".into()], &Window::since(1700)),
            "MMITNO from MITMAS where MMLMTS >= 1700"
        );
        let w = Window {
            ranges: vec![
                Range::point("5"),
                Range {
                    lo: Some(Edge {
                        value: "O'N".into(),
                        inclusive: false,
                    }),
                    hi: None,
                },
            ],
        };
        assert_eq!(d.condition(&w).unwrap(), "MMLMTS = 5 and MMITNO > 'O''N'");
    }

    #[test]
    fn numeric_split_halves_around_the_median_and_keeps_rows_on_both_sides() {
        let d = dims();
        let w = Window::since(10);
        let sample = vec![vec!["10".into(), "20".into(), "30".into(), "40".into()]];
        let kids = d.split(&w, &sample, 2).unwrap();
        assert_eq!(kids.len(), 2);
        assert_eq!(d.condition(&kids[0]).unwrap(), "MMLMTS >= 10 and MMLMTS < 30");
        assert_eq!(d.condition(&kids[1]).unwrap(), "MMLMTS >= 30");
        assert_eq!(kids[0].lmts_bounds(), (Some(10), Some(30)));
    }

    #[test]
    fn numeric_split_into_parts_cuts_at_quantiles_and_covers_the_window() {
        let d = dims();
        let sample = vec![(1..=12).map(|v| v.to_string()).collect::<Vec<_>>()];
        let kids = d.split(&Window::since(1), &sample, 4).unwrap();
        let conds: Vec<String> = kids.iter().map(|k| d.condition(k).unwrap()).collect();
        assert_eq!(
            conds,
            vec![
                "MMLMTS >= 1 and MMLMTS < 4",
                "MMLMTS >= 4 and MMLMTS < 7",
                "MMLMTS >= 7 and MMLMTS < 10",
                "MMLMTS >= 10"
            ]
        );
        // Cuts never fall on the smallest value: the first part always holds returned rows.
        let skewed = vec![vec!["5".into(), "5".into(), "5".into(), "9".into()]];
        let kids = d.split(&Window::all(), &skewed, 4).unwrap();
        let conds: Vec<String> = kids.iter().map(|k| d.condition(k).unwrap()).collect();
        assert_eq!(conds, vec!["MMLMTS < 9", "MMLMTS >= 9"]);
    }

    #[test]
    fn one_timestamp_splits_three_ways_then_on_the_key() {
        let d = dims();
        let sample = vec![vec!["7".into(), "7".into()], vec!["A".into(), "B".into()]];
        let kids = d.split(&Window::all(), &sample, 2).unwrap();
        let conds: Vec<String> = kids.iter().map(|k| d.condition(k).unwrap()).collect();
        assert_eq!(conds, vec!["MMLMTS < 7", "MMLMTS = 7", "MMLMTS > 7"]);
        let again = d.split(&kids[1], &sample, 2).unwrap();
        let conds: Vec<String> = again.iter().map(|k| d.condition(k).unwrap()).collect();
        assert_eq!(
            conds,
            vec![
                "MMLMTS = 7 and MMITNO < 'B'",
                "MMLMTS = 7 and MMITNO = 'B'",
                "MMLMTS = 7 and MMITNO > 'B'"
            ]
        );
        assert!(d.split(&again[1], &sample, 2).is_none(), "one key cannot be split");
    }

    #[test]
    fn only_plain_numbers_stand_unquoted() {
        for n in ["0", "-12", "3.50", "20261130"] {
            assert!(is_number(n), "{n}");
        }
        for t in ["", "-", "1.", ".5", "1e3", "12a", "1 2"] {
            assert!(!is_number(t), "{t}");
        }
    }

    #[test]
    fn a_cut_answer_is_always_full_whatever_the_cap() {
        let cap = RowCap::default();
        // The server cuts at 100 although 1000 were asked for.
        assert!(cap.may_be_cut(100, 1000), "the first full-looking answer");
        assert!(!cap.may_be_cut(60, 1000));
        assert!(cap.may_be_cut(100, 1000), "a cut answer holds the cap");
        assert!(!cap.may_be_cut(0, 1000));
        assert!(cap.may_be_cut(1000, 1000));
        assert_eq!(cap.most_seen(), 1000);
    }
}
