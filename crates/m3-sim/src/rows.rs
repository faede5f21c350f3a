//! A simulated table's rows: the rows by primary key plus a secondary index on the change
//! timestamp (`xxLMTS`), kept in step by the only methods that change rows ([`Rows::insert`],
//! [`Rows::remove`], [`Rows::update`], [`Rows::replace_all`]). Reads go through `Deref` to the
//! key-ordered map, so nothing can change a row without the index seeing it.
//!
//! The index lets EXPORTMI answer a window on the change timestamp (`xxLMTS >= a and xxLMTS <
//! b`) by reading the rows in the window instead of the whole table.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Bound, Deref};
use std::sync::Arc;

use crate::db::{parse_dec, KeyPart};

/// A primary key.
pub(crate) type Key = Vec<KeyPart>;

/// A primary key as the map and the index share it.
type SharedKey = Arc<[KeyPart]>;

/// A stored row, values in schema order.
pub(crate) type Row = Vec<String>;

/// Scale of [`parse_dec`] values (9 decimals).
const UNIT: i128 = 1_000_000_000;

/// A row's LMTS as the index holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// A whole number of milliseconds (every LMTS the simulator writes).
    Ms(i64),
    /// Anything else (not a number, decimals, out of range): such rows are candidates of
    /// every window, the filter compares them as it always does.
    Other,
}

/// Bounds on LMTS as fixed-point decimals (the units of [`parse_dec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StampRange {
    /// Lowest value included.
    pub lower: Bound<i128>,
    /// Highest value included.
    pub upper: Bound<i128>,
}

/// A table's rows in primary-key order, with the LMTS index. The index shares the keys of
/// the map (one allocation per key).
#[derive(Debug, Clone)]
pub(crate) struct Rows {
    map: BTreeMap<SharedKey, Row>,
    /// Position of the LMTS column; `None`: the table has none and nothing is indexed.
    lmts_pos: Option<usize>,
    /// Rows with a [`Stamp::Ms`], by stamp then key.
    by_lmts: BTreeSet<(i64, SharedKey)>,
    /// Rows with a [`Stamp::Other`].
    other: BTreeSet<SharedKey>,
}

impl Deref for Rows {
    type Target = BTreeMap<SharedKey, Row>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

/// The stamp of a row whose LMTS column is at `lmts_pos`; `None` when nothing is indexed.
fn stamp_at(lmts_pos: Option<usize>, row: &[String]) -> Option<Stamp> {
    let p = lmts_pos?;
    let ms = row
        .get(p)
        .and_then(|v| parse_dec(v))
        .filter(|x| x % UNIT == 0)
        .and_then(|x| i64::try_from(x / UNIT).ok());
    Some(ms.map_or(Stamp::Other, Stamp::Ms))
}

impl Rows {
    /// No rows; `lmts_pos` is the position of the table's LMTS column, if it has one.
    pub fn new(lmts_pos: Option<usize>) -> Rows {
        Rows {
            map: BTreeMap::new(),
            lmts_pos,
            by_lmts: BTreeSet::new(),
            other: BTreeSet::new(),
        }
    }

    /// Position of the indexed LMTS column, if the table has one.
    pub fn lmts_pos(&self) -> Option<usize> {
        self.lmts_pos
    }

    fn stamp(&self, row: &[String]) -> Option<Stamp> {
        stamp_at(self.lmts_pos, row)
    }

    /// Moves a key's index entry from one stamp to another (`None`: no entry).
    fn reindex(&mut self, key: &SharedKey, was: Option<Stamp>, now: Option<Stamp>) {
        if was == now {
            return;
        }
        match was {
            Some(Stamp::Ms(ms)) => {
                self.by_lmts.remove(&(ms, key.clone()));
            }
            Some(Stamp::Other) => {
                self.other.remove(key);
            }
            None => {}
        }
        match now {
            Some(Stamp::Ms(ms)) => {
                self.by_lmts.insert((ms, key.clone()));
            }
            Some(Stamp::Other) => {
                self.other.insert(key.clone());
            }
            None => {}
        }
    }

    /// Inserts or replaces a row; the replaced row is returned.
    pub fn insert(&mut self, key: Key, row: Row) -> Option<Row> {
        let now = self.stamp(&row);
        let (key, was) = match self.map.get_key_value(key.as_slice()) {
            Some((k, old)) => (k.clone(), self.stamp(old)),
            None => (SharedKey::from(key), None),
        };
        let old = self.map.insert(key.clone(), row);
        self.reindex(&key, was, now);
        old
    }

    /// Removes a row by key.
    pub fn remove(&mut self, key: &[KeyPart]) -> Option<Row> {
        let (key, old) = self.map.remove_entry(key)?;
        let was = self.stamp(&old);
        self.reindex(&key, was, None);
        Some(old)
    }

    /// Changes a row in place; `false` when there is no row with that key.
    pub fn update(&mut self, key: &[KeyPart], change: impl FnOnce(&mut Row)) -> bool {
        let lmts_pos = self.lmts_pos;
        let Some(key) = self.map.get_key_value(key).map(|(k, _)| k.clone()) else {
            return false;
        };
        let Some(row) = self.map.get_mut(&key) else {
            return false;
        };
        let was = stamp_at(lmts_pos, row);
        change(row);
        let now = stamp_at(lmts_pos, row);
        self.reindex(&key, was, now);
        true
    }

    /// The row with a key (shadows the map's `get`, which cannot take a slice).
    pub fn get(&self, key: &[KeyPart]) -> Option<&Row> {
        self.map.get(key)
    }

    /// The rows from a key on, in key order.
    pub fn range_from(&self, start: &[KeyPart]) -> std::collections::btree_map::Range<'_, SharedKey, Row> {
        self.map
            .range::<[KeyPart], _>((Bound::Included(start), Bound::Unbounded))
    }

    /// Whether a row has this key.
    pub fn contains_key(&self, key: &[KeyPart]) -> bool {
        self.map.contains_key(key)
    }

    /// Replaces every row (a snapshot load) and rebuilds the index.
    pub fn replace_all(&mut self, map: BTreeMap<Key, Row>) {
        let mut rows = Rows::new(self.lmts_pos);
        for (k, r) in map {
            rows.insert(k, r);
        }
        *self = rows;
    }

    /// The keys of the rows whose LMTS lies in `range` (and of those whose LMTS is not a
    /// whole number of milliseconds) that `keep` accepts, in no particular order; `None` when
    /// the table has no LMTS index or more than `cap` keys would be returned.
    pub fn keys_by_stamp(
        &self,
        range: StampRange,
        cap: usize,
        keep: impl Fn(&[KeyPart]) -> bool,
    ) -> Option<Vec<&[KeyPart]>> {
        self.lmts_pos?;
        // Inclusive bounds in parse_dec units (`> x` is `>= x + 1` in those units), then in
        // whole milliseconds: [ceil(lo), floor(hi)].
        let lo = match range.lower {
            Bound::Included(x) => Some(x),
            Bound::Excluded(x) => Some(x.checked_add(1)?),
            Bound::Unbounded => None,
        };
        let hi = match range.upper {
            Bound::Included(x) => Some(x),
            Bound::Excluded(x) => Some(x.checked_sub(1)?),
            Bound::Unbounded => None,
        };
        let lo_ms = lo.map_or(i64::MIN, |x| {
            let ms = -(-x).div_euclid(UNIT);
            i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
        });
        let lo_empty = lo.is_some_and(|x| -(-x).div_euclid(UNIT) > i128::from(i64::MAX));
        let hi_ms = hi.map(|x| x.div_euclid(UNIT));
        let hi_empty = hi_ms.is_some_and(|ms| ms < i128::from(i64::MIN));
        let hi_ms = hi_ms.map(|ms| i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX }));
        let empty = lo_empty || hi_empty || hi_ms.is_some_and(|h| h < lo_ms);
        let none: SharedKey = Arc::from([]);
        let in_range: Box<dyn Iterator<Item = &(i64, SharedKey)>> = if empty {
            Box::new(std::iter::empty())
        } else {
            let start = Bound::Included((lo_ms, none.clone()));
            let end = match hi_ms.and_then(|h| h.checked_add(1)) {
                Some(h) => Bound::Excluded((h, none)),
                None => Bound::Unbounded,
            };
            Box::new(self.by_lmts.range((start, end)))
        };
        let mut keys = Vec::new();
        for k in self.other.iter().chain(in_range.map(|(_, k)| k)) {
            if keep(k) {
                if keys.len() == cap {
                    return None;
                }
                keys.push(&**k);
            }
        }
        Some(keys)
    }

    /// Whether the index holds exactly one entry per row, with the row's stamp.
    #[cfg(test)]
    pub fn index_in_step(&self) -> bool {
        self.by_lmts.len() + self.other.len() == self.map.len()
            && self.map.iter().all(|(k, r)| match self.stamp(r) {
                Some(Stamp::Ms(ms)) => self.by_lmts.contains(&(ms, k.clone())),
                Some(Stamp::Other) => self.other.contains(k),
                None => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        vec![KeyPart::Num(100), KeyPart::Str(s.into())]
    }

    fn row(s: &str, lmts: &str) -> Row {
        vec!["100".into(), s.into(), lmts.into()]
    }

    fn window(rows: &Rows, lower: Bound<i128>, upper: Bound<i128>) -> Vec<String> {
        let mut keys: Vec<String> = rows
            .keys_by_stamp(StampRange { lower, upper }, usize::MAX, |_| true)
            .unwrap()
            .into_iter()
            .map(|k| match &k[1] {
                KeyPart::Str(s) => s.clone(),
                KeyPart::Num(_) => unreachable!("string keys only"),
            })
            .collect();
        keys.sort();
        keys
    }

    const E9: i128 = 1_000_000_000;

    #[test]
    fn index_follows_every_change() {
        let mut rows = Rows::new(Some(2));
        rows.insert(key("A"), row("A", "10"));
        rows.insert(key("B"), row("B", "20"));
        rows.insert(key("C"), row("C", "20"));
        rows.insert(key("D"), row("D", "x"));
        assert!(rows.index_in_step());
        let (inc, exc) = (Bound::Included, Bound::Excluded);
        assert_eq!(window(&rows, inc(20 * E9), inc(20 * E9)), ["B", "C", "D"]);
        assert_eq!(window(&rows, exc(10 * E9), Bound::Unbounded), ["B", "C", "D"]);
        assert_eq!(window(&rows, Bound::Unbounded, exc(20 * E9)), ["A", "D"]);
        assert_eq!(window(&rows, inc(30 * E9), exc(20 * E9)), ["D"]);
        // Bounds between two milliseconds round inwards.
        assert_eq!(window(&rows, inc(10 * E9 + 1), inc(20 * E9 - 1)), ["D"]);
        assert_eq!(window(&rows, exc(10 * E9 - 1), exc(20 * E9 + 1)), ["A", "B", "C", "D"]);
        // A stamp with decimals is a candidate of every window, like one that is no number.
        rows.insert(key("F"), row("F", "20.5"));
        assert_eq!(window(&rows, inc(40 * E9), Bound::Unbounded), ["D", "F"]);
        rows.remove(&key("F"));
        // Replacing a row moves its index entry.
        rows.insert(key("B"), row("B", "30"));
        assert!(rows.index_in_step());
        assert_eq!(window(&rows, inc(20 * E9), inc(20 * E9)), ["C", "D"]);
        assert!(rows.update(&key("C"), |r| r[2] = "5".into()));
        assert!(!rows.update(&key("Z"), |r| r[2] = "5".into()));
        assert_eq!(window(&rows, Bound::Unbounded, exc(10 * E9)), ["C", "D"]);
        rows.remove(&key("D"));
        assert!(rows.index_in_step());
        assert_eq!(window(&rows, Bound::Unbounded, Bound::Unbounded), ["A", "B", "C"]);
        assert!(rows
            .keys_by_stamp(
                StampRange {
                    lower: Bound::Unbounded,
                    upper: Bound::Unbounded
                },
                2,
                |_| true
            )
            .is_none());
        let mut all = BTreeMap::new();
        all.insert(key("E"), row("E", "7"));
        rows.replace_all(all);
        assert!(rows.index_in_step());
        assert_eq!(window(&rows, inc(7 * E9), exc(8 * E9)), ["E"]);
        assert!(Rows::new(None)
            .keys_by_stamp(
                StampRange {
                    lower: Bound::Unbounded,
                    upper: Bound::Unbounded
                },
                9,
                |_| true
            )
            .is_none());
    }
}
