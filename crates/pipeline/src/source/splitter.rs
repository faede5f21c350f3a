//! How a window whose answer may have been cut is split: into parts expected to come back
//! whole at about [`FILL`] of the row cap, from an estimate of how many rows the window holds.
//!
//! `EXPORTMI` cannot count, and a cut answer only says "at least the cap". What it does give
//! is a sample: the rows it returned, in an order unrelated to the change timestamp (M3 is
//! never asked to order), so their timestamps are spread like the window's. A window with no
//! estimate is cut at the ranks of a ladder ([`LADDER`]: parts holding 1, 1, 2, 4, ... 32 of
//! the returned rows, and the rest), so its small parts come back whole even for a table of
//! millions of rows. Those parts say how many rows stand behind one returned row (the group's
//! rows per sample point), and with it how many rows every other part of the group holds. A
//! part that comes back cut is then split into as many parts as it should need; one that comes
//! back cut before whole parts of its group held [`ESTIMATE_POINTS`] returned rows waits (is
//! parked) until they do or no part is out any more, and if no part came back whole, every
//! part of the group is laddered again.
//!
//! Halving instead (or cutting into a fixed number of parts) reads every level of a binary
//! tree of cut answers before the first whole one: a million-row load made 103 cut calls and
//! dropped 515,000 rows. A density per timestamp unit (tried before this) misjudges windows
//! wherever a table was changed more or less often than its average.

use std::collections::HashMap;

use crate::source::window::{Dimensions, Window};

/// Rows a part is expected to hold, as a share of the cap. The estimates err by a few tens of
/// per cent (a part holds about 15 sampled rows at a million rows); at 0.6 few parts come back
/// cut.
pub const FILL: f64 = 0.6;

/// Ranks of the returned timestamps at which a window with no estimate is cut, for readers of
/// several windows at once: parts of 1, 1, 2, 4, 8, 16 and 32 returned rows, then the rest
/// (eight reads, the load's default parallelism, so the ladder costs no extra round trip).
/// Only ranks up to an eighth of the rows returned are used: with a small cap (M3's default of
/// 100) the rest keeps most of them.
const LADDER: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

/// The ladder of readers of one window at a time (polls, reconciliation): every part is a round
/// trip, so parts of 4, 12 and 48 returned rows, then the rest (one part of 16 judged the rest
/// too roughly: a reconciliation pass read 27,000 rows of a 20,000-row table, 22,000 with
/// this). Below 32 returned rows it is empty, and cut windows are halved.
const SHORT_LADDER: [usize; 3] = [4, 16, 64];

/// Returned rows the whole parts of a group must hold before their rows per returned row size
/// other parts (unless no part of the group is out any more). The rows behind one returned row
/// vary several-fold, and the first part back whole is the smallest (one returned row): alone,
/// it sized the rest of a million-row load. Two of about a dozen such loads made 1,085 calls
/// where the others made 367 to 586, as an estimate three times too high would. With 16, the
/// estimate errs by about a quarter.
const ESTIMATE_POINTS: usize = 16;

/// What is known of a window about to be read.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// A part of a laddered window holding `points` of the rows it returned.
    Ladder { group: usize, points: usize },
    /// A part expected to hold this many rows.
    Expected(f64),
}

/// The parts of one laddered window.
#[derive(Debug, Default)]
struct Group {
    /// Rows and sample points of the parts that came back whole.
    rows: usize,
    points: usize,
    /// Parts not back yet.
    outstanding: usize,
    /// Parts that came back cut while no part had come back whole (nothing to size them by
    /// yet): the window, its points and its answer's sample.
    parked: Vec<(Window, usize, Vec<Vec<String>>)>,
}

impl Group {
    /// Rows per sample point, once whole parts hold enough returned rows to say (or all are
    /// back and at least one came back whole).
    fn per_point(&self) -> Option<f64> {
        let enough = self.points >= ESTIMATE_POINTS || (self.outstanding == 0 && self.points > 0);
        enough.then(|| self.rows as f64 / self.points as f64)
    }
}

/// The estimates of one pass over a table (a load, a reconciliation pass, a poll).
#[derive(Debug)]
pub struct Splitter {
    parts: HashMap<Window, Part>,
    groups: Vec<Group>,
    ladder: &'static [usize],
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// No estimate yet, for a reader of several windows at once (the load).
    pub fn new() -> Self {
        Self {
            parts: HashMap::new(),
            groups: Vec::new(),
            ladder: &LADDER,
        }
    }

    /// No estimate yet, for a reader of one window at a time (polls, reconciliation).
    pub fn sequential() -> Self {
        Self {
            ladder: &SHORT_LADDER,
            ..Self::new()
        }
    }

    /// The windows to read instead of `w`, whose answer may have been cut; `sample[d]` holds
    /// the values of dimension `d` in the rows it returned. `None` when it cannot be split (it
    /// is one key). Empty when `w` is parked until a part of its ladder comes back whole
    /// ([`Splitter::whole`] then returns its parts; [`Splitter::parked`] names it meanwhile).
    /// The parts to read first come last (readers pop their pending windows).
    pub fn cut(&mut self, dims: &Dimensions, w: &Window, sample: &[Vec<String>]) -> Option<Vec<Window>> {
        match self.parts.remove(w) {
            Some(Part::Expected(e)) => split_expected(&mut self.parts, dims, w, sample, e),
            Some(Part::Ladder { group, points }) => {
                let g = &mut self.groups[group];
                g.outstanding = g.outstanding.saturating_sub(1);
                if let Some(per_point) = g.per_point() {
                    // One key (`None`): its answer is used as it is; parts parked meanwhile stay
                    // parked until the reader runs out of windows, then are read from scratch.
                    let kids = split_expected(&mut self.parts, dims, w, sample, per_point * points as f64)?;
                    // This part being back may have made the estimate: parked parts go too.
                    let mut out = self.release(dims, group);
                    out.extend(kids);
                    return Some(out);
                }
                if g.outstanding > 0 {
                    g.parked.push((w.clone(), points, sample.to_vec()));
                    return Some(Vec::new());
                }
                // Every part came back cut: nothing will size them; ladder each again.
                let parked = std::mem::take(&mut g.parked);
                let mut out = Vec::new();
                for (pw, _, ps) in parked {
                    out.extend(self.ladder(dims, &pw, &ps).unwrap_or_else(|| vec![pw]));
                }
                match self.ladder(dims, w, sample) {
                    Some(kids) => out.extend(kids),
                    // It cannot be split: read it again (with no estimate, its answer is then used).
                    None if !out.is_empty() => out.push(w.clone()),
                    None => return None,
                }
                Some(out)
            }
            None => self.ladder(dims, w, sample),
        }
    }

    /// `w` came back whole with `rows` rows: the parts of windows parked until now.
    pub fn whole(&mut self, dims: &Dimensions, w: &Window, rows: usize) -> Vec<Window> {
        let Some(Part::Ladder { group, points }) = self.parts.remove(w) else {
            return Vec::new();
        };
        let g = &mut self.groups[group];
        g.outstanding = g.outstanding.saturating_sub(1);
        g.rows += rows;
        g.points += points;
        self.release(dims, group)
    }

    /// The parts of the windows of `group` parked until now, once its estimate can size them
    /// (none before).
    fn release(&mut self, dims: &Dimensions, group: usize) -> Vec<Window> {
        let g = &mut self.groups[group];
        let Some(per_point) = g.per_point() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (pw, pp, ps) in std::mem::take(&mut g.parked) {
            let kids = split_expected(&mut self.parts, dims, &pw, &ps, per_point * pp as f64);
            out.extend(kids.unwrap_or_else(|| vec![pw]));
        }
        out
    }

    /// Windows parked (not pending, not being read): a stored position must name them.
    pub fn parked(&self) -> Vec<Window> {
        self.groups
            .iter()
            .flat_map(|g| g.parked.iter().map(|(w, _, _)| w.clone()))
            .collect()
    }

    /// Give up the parked windows, to be read again from scratch (a reader with nothing
    /// pending or in flight, which cannot happen while every part is read to its end).
    pub fn take_parked(&mut self) -> Vec<Window> {
        self.groups
            .iter_mut()
            .flat_map(|g| g.parked.drain(..).map(|(w, _, _)| w))
            .collect()
    }

    /// For a reader of one window at a time: the next window of `todo` to read (the last), or
    /// when none is left, one given up from the parked ones (see [`Splitter::take_parked`]).
    pub fn next(&mut self, todo: &mut Vec<Window>) -> Option<Window> {
        if todo.is_empty() {
            *todo = self.take_parked();
        }
        todo.pop()
    }

    /// Cut a window with no estimate at the ranks of the ladder (or, with one timestamp, on
    /// the key).
    fn ladder(&mut self, dims: &Dimensions, w: &Window, sample: &[Vec<String>]) -> Option<Vec<Window>> {
        let returned = sample.first().map_or(0, Vec::len);
        let ranks: Vec<usize> = self
            .ladder
            .iter()
            .copied()
            .filter(|r| *r <= returned / MIN_POINTS)
            .collect();
        match dims.split_at_ranks(w, sample, &ranks) {
            Some(mut kids) => {
                let group = self.groups.len();
                self.groups.push(Group {
                    outstanding: kids.len(),
                    ..Group::default()
                });
                for (k, points) in &kids {
                    self.parts.insert(k.clone(), Part::Ladder { group, points: *points });
                }
                // The rest (the last part) is read last: by then the small parts say what it holds.
                kids.reverse();
                Some(kids.into_iter().map(|(k, _)| k).collect())
            }
            // One timestamp (the key splits then) or none readable: no estimate to make.
            None => dims.split(w, sample, 2),
        }
    }
}

/// Split a window expected to hold `expected` rows that came back cut anyway.
fn split_expected(
    parts: &mut HashMap<Window, Part>,
    dims: &Dimensions,
    w: &Window,
    sample: &[Vec<String>],
    expected: f64,
) -> Option<Vec<Window>> {
    let returned = sample.first().map_or(0, Vec::len);
    // It came back cut: it holds more than the cap, whatever was expected.
    let e = expected.max(1.25 * returned as f64);
    let kids = dims.split(w, sample, parts_for(e, returned))?;
    let each = e / kids.len() as f64;
    for k in &kids {
        parts.insert(k.clone(), Part::Expected(each));
    }
    Some(kids)
}

/// Into how many parts a window expected to hold `expected` rows is split, at quantiles of the
/// `returned` rows of its cut answer. A part should hold at least [`MIN_POINTS`] of them: fewer
/// say too little of its size (one returned row may stand for anywhere between none and
/// twice its share). When parts of [`FILL`] of the cap would hold fewer, the window is split
/// into parts that will come back cut themselves, each small enough that its own answer's
/// rows resolve parts of the right size (a second level; a third beyond about `cap^3 / 13`
/// rows).
fn parts_for(expected: f64, returned: usize) -> usize {
    let cap = returned.max(1) as f64;
    let wanted = expected / (FILL * cap);
    let most = (cap / MIN_POINTS as f64).floor().max(2.0);
    let parts = if wanted <= most {
        wanted
    } else {
        // Parts that the next level can split into whole parts of `MIN_POINTS` returned rows.
        expected / (FILL * cap * cap / MIN_POINTS as f64)
    };
    (parts.ceil() as usize).clamp(2, most as usize)
}

/// The fewest returned rows a part of a split should hold (see [`parts_for`]).
const MIN_POINTS: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use mapping::catalog::standard_table;

    fn dims() -> Dimensions {
        let t = standard_table("MITMAS").unwrap();
        Dimensions::of(&t, &["MMCONO".to_string(), "MMITNO".to_string()])
    }

    /// `n` returned timestamps from `start`, `step` apart.
    fn sample(n: usize, start: i64, step: i64) -> Vec<Vec<String>> {
        vec![(0..n as i64).map(|i| (start + i * step).to_string()).collect()]
    }

    #[test]
    fn a_window_with_no_estimate_is_laddered_and_its_rest_split_by_what_the_ladder_found() {
        let d = dims();
        let mut s = Splitter::new();
        // 1,000 rows returned over timestamps 0..10,000: one returned row per 10 units.
        let kids = s.cut(&d, &Window::all(), &sample(1000, 0, 10)).unwrap();
        assert_eq!(kids.len(), 8, "seven ladder parts and the rest");
        let conds: Vec<String> = kids.iter().map(|k| d.condition(k).unwrap()).collect();
        assert_eq!(conds[7], "MMLMTS < 10", "the smallest part is read first");
        assert_eq!(conds[0], "MMLMTS >= 640", "the rest is read last");
        // Each returned row stands for 20 rows: the parts up to 32 points come back whole.
        for k in &kids[1..] {
            let (lo, hi) = k.lmts_bounds();
            let points = ((hi.unwrap() - lo.unwrap_or(0)) / 10) as usize;
            assert!(s.whole(&d, k, points * 20).is_empty());
        }
        // The rest holds 936 returned rows' worth: 18,720 rows; at 60 % of a 1,000-row cap,
        // 32 parts.
        let rest = s.cut(&d, &kids[0], &sample(1000, 640, 10)).unwrap();
        assert_eq!(rest.len(), 32);
        // A part that comes back cut anyway is split at least in three.
        let again = s.cut(&d, &rest[3], &sample(1000, 5000, 1)).unwrap();
        assert!(again.len() >= 3, "{}", again.len());
    }

    #[test]
    fn a_part_cut_waits_until_whole_parts_hold_enough_returned_rows() {
        let d = dims();
        let mut s = Splitter::new();
        let kids = s.cut(&d, &Window::all(), &sample(1000, 0, 10)).unwrap();
        // The rest comes back first: parked, and named for the stored position.
        assert_eq!(s.cut(&d, &kids[0], &sample(1000, 640, 10)), Some(vec![]));
        assert_eq!(s.parked(), vec![kids[0].clone()]);
        // The smallest part comes back whole with three times the rows of the others' per
        // returned row: alone, it would size the rest at 56,160 rows (94 parts).
        assert!(s.whole(&d, &kids[7], 60).is_empty());
        assert!(s.whole(&d, &kids[6], 20).is_empty());
        assert!(s.whole(&d, &kids[5], 40).is_empty());
        assert!(s.whole(&d, &kids[4], 80).is_empty());
        assert_eq!(s.parked(), vec![kids[0].clone()], "8 returned rows say too little");
        // 16 returned rows stood for 360 rows: the rest (936 of them) holds 21,060, 36 parts
        // at 60 % of the cap.
        let rest = s.whole(&d, &kids[3], 160);
        assert_eq!(rest.len(), 36);
        assert!(s.parked().is_empty());
    }

    #[test]
    fn with_a_small_cap_the_parts_size_the_rest_once_all_are_back() {
        let d = dims();
        let mut s = Splitter::new();
        // 100 returned rows: ladder parts of 1, 1, 2 and 4 of them, and the rest.
        let kids = s.cut(&d, &Window::all(), &sample(100, 0, 10)).unwrap();
        assert_eq!(kids.len(), 5);
        assert_eq!(s.cut(&d, &kids[0], &sample(100, 80, 10)), Some(vec![]));
        assert!(s.whole(&d, &kids[4], 20).is_empty());
        assert!(s.whole(&d, &kids[3], 20).is_empty());
        assert!(s.whole(&d, &kids[2], 40).is_empty());
        // The last part out: 8 returned rows are all there is to go by.
        assert!(!s.whole(&d, &kids[1], 80).is_empty());
        assert!(s.parked().is_empty());
    }

    #[test]
    fn when_every_part_comes_back_cut_each_is_laddered_again() {
        let d = dims();
        let mut s = Splitter::new();
        let kids = s.cut(&d, &Window::all(), &sample(1000, 0, 10)).unwrap();
        let mut out = Vec::new();
        for k in &kids {
            let (lo, _) = k.lmts_bounds();
            out.push(s.cut(&d, k, &sample(1000, lo.unwrap_or(0), 1)).unwrap());
        }
        assert!(out[..7].iter().all(Vec::is_empty), "parked while parts were out");
        assert_eq!(out[7].len(), 8 * 8, "the last one ladders all eight");
        assert!(s.parked().is_empty());
    }

    #[test]
    fn parts_hold_enough_returned_rows_to_judge_their_size() {
        // A 5,000-row cap: a million rows in one level of parts of 3,000 rows.
        assert_eq!(parts_for(1_000_000.0, 5000), 334);
        // A 100-row cap: 6,000 rows need a second level, parts of up to 750 rows first.
        assert_eq!(parts_for(6000.0, 100), 8);
        assert_eq!(parts_for(700.0, 100), 12);
        assert_eq!(parts_for(125.0, 100), 3);
        assert_eq!(parts_for(10.0, 100), 2);
    }

    #[test]
    fn a_reader_of_one_window_at_a_time_ladders_once() {
        let d = dims();
        let mut s = Splitter::sequential();
        let kids = s.cut(&d, &Window::all(), &sample(1000, 0, 10)).unwrap();
        let conds: Vec<String> = kids.iter().map(|k| d.condition(k).unwrap()).collect();
        assert_eq!(
            conds,
            vec![
                "MMLMTS >= 640",
                "MMLMTS >= 160 and MMLMTS < 640",
                "MMLMTS >= 40 and MMLMTS < 160",
                "MMLMTS < 40"
            ]
        );
        // 4 returned rows say too little: the rest waits for the part of 12.
        assert!(s.whole(&d, &kids[3], 80).is_empty());
        assert_eq!(s.cut(&d, &kids[0], &sample(1000, 640, 10)), Some(vec![]));
        // 16 returned rows stood for 320 rows: the rest (936 of them) holds 18,720.
        assert_eq!(s.whole(&d, &kids[2], 240).len(), 32);
        // A small cap halves.
        let mut s = Splitter::sequential();
        assert_eq!(s.cut(&d, &Window::all(), &sample(30, 0, 10)).unwrap().len(), 2);
    }

    #[test]
    fn one_timestamp_splits_on_the_key() {
        let d = dims();
        let mut s = Splitter::new();
        let sample = vec![
            vec!["7".to_string(); 4],
            vec!["A".into(), "B".into(), "C".into(), "D".into()],
        ];
        let kids = s.cut(&d, &Window::all(), &sample).unwrap();
        let conds: Vec<String> = kids.iter().map(|k| d.condition(k).unwrap()).collect();
        assert_eq!(conds, vec!["MMLMTS < 7", "MMLMTS = 7", "MMLMTS > 7"]);
    }
}
