//! Strict modes: one switch per M3 behaviour that Infor does not document, so that a client
//! can be tested against each possibility. [`SimModes::default`] is the simulator's long
//! standing behaviour (everything honoured, no commit delay, no separator characters in data).
//!
//! JSON (`GET`/`POST /admin/modes`, [`crate::SimConfig::modes`]), every field optional,
//! unknown fields rejected:
//! ```json
//! {"order_by":"honoured","company_condition":"honoured","maxrecs":"honoured",
//!  "mdp_text_types":"standard","commit_delay_ms":0,"separator_values":"never"}
//! ```

use serde::{Deserialize, Serialize};

/// How EXPORTMI treats `order by` in `QERY`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// Rows come back sorted as asked.
    #[default]
    Honoured,
    /// Parsed, then ignored: rows come back in the table's key order (like a DB2 table scan).
    Ignored,
    /// Any query with `order by` is answered with a NOK.
    Rejected,
}

/// How EXPORTMI treats a comparison on the company column (`xxCONO`) inside `where`.
/// The session company restricts the rows in every mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompanyCondition {
    /// The comparison is evaluated like any other.
    #[default]
    Honoured,
    /// The comparison counts as true (so `MMCONO = 200 and ...` keeps only the rest).
    Ignored,
    /// The query is answered with the NOK "Filters including company selections are not
    /// supported".
    Rejected,
}

/// How list transactions and `EXPORTMI/Select` apply `maxrecs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Maxrecs {
    /// At most `maxrecs` rows, `0` meaning no limit.
    #[default]
    Honoured,
    /// At most 100 rows whatever `maxrecs` says, `0` and values above 100 included.
    #[serde(rename = "capped_100")]
    Capped100,
}

/// The `dataType` names MDP `getColumnsUsedByTable` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MdpTextTypes {
    /// `String` for alphanumeric columns, `Decimal` for numeric and date columns.
    #[default]
    Standard,
    /// Other names: text columns `NChar`, `VarGraphic`, `Graphic` (rotating by column
    /// position), numeric and date columns `Numeric` or `Packed` (rotating likewise).
    Alternative,
}

/// Whether item names and descriptions contain EXPORTMI separator characters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeparatorValues {
    /// No item text contains `~`, `|`, `;` or `,` (beyond what the seed words have).
    #[default]
    Never,
    /// Every 97th seeded item (the mode given in [`crate::SimConfig::modes`] at seeding) and
    /// about one in ten workload inserts and name/description updates carry all four
    /// characters [`SEPARATOR_MARK`] in MMITDS and MMFUDS.
    Sometimes,
}

/// The characters written into item texts with [`SeparatorValues::Sometimes`].
pub const SEPARATOR_MARK: &str = " ~|;,";

/// Every undocumented behaviour the simulator can switch. See the module docs for the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimModes {
    /// `order by` in EXPORTMI queries.
    pub order_by: OrderBy,
    /// Company comparisons in EXPORTMI `where`.
    pub company_condition: CompanyCondition,
    /// `maxrecs` of lists and EXPORTMI.
    pub maxrecs: Maxrecs,
    /// MDP column type names.
    pub mdp_text_types: MdpTextTypes,
    /// Late commit: a write (workload, MI, direct) gets its LMTS, LMDT etc. when it is made,
    /// but reads (EXPORTMI, Get/Lst transactions, [`crate::Simulator::rows`]) see it and
    /// webhook subscribers get it only this many milliseconds later. Writes see each other at
    /// once (an update after a pending insert works). `0`: visible at once.
    pub commit_delay_ms: u64,
    /// Separator characters inside item texts.
    pub separator_values: SeparatorValues,
}

impl SimModes {
    /// The row limit a list applies for a caller's `maxrecs` (`0` = no limit, returned as
    /// `0`).
    pub fn effective_maxrecs(&self, maxrecs: usize) -> usize {
        match self.maxrecs {
            Maxrecs::Honoured => maxrecs,
            Maxrecs::Capped100 if maxrecs == 0 => 100,
            Maxrecs::Capped100 => maxrecs.min(100),
        }
    }
}

/// An item text with [`SEPARATOR_MARK`] in it, at most `max` characters.
pub(crate) fn with_separators(text: &str, max: usize) -> String {
    let mark = SEPARATOR_MARK.chars().count();
    let base: String = text.trim_end().chars().take(max.saturating_sub(mark)).collect();
    format!("{}{SEPARATOR_MARK}", base.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_and_defaults() {
        let m: SimModes = serde_json::from_str(r#"{"maxrecs":"capped_100","order_by":"ignored"}"#).unwrap();
        assert_eq!(m.maxrecs, Maxrecs::Capped100);
        assert_eq!(m.order_by, OrderBy::Ignored);
        assert_eq!(m.commit_delay_ms, 0);
        assert!(serde_json::from_str::<SimModes>(r#"{"nope":1}"#).is_err());
        assert_eq!(
            serde_json::to_value(SimModes::default()).unwrap()["mdp_text_types"],
            "standard"
        );
        assert_eq!(m.effective_maxrecs(0), 100);
        assert_eq!(m.effective_maxrecs(500), 100);
        assert_eq!(m.effective_maxrecs(7), 7);
        assert_eq!(SimModes::default().effective_maxrecs(0), 0);
    }

    #[test]
    fn separator_text_fits() {
        let t = with_separators("Hex bolt M8x40 zinc plated steel", 30);
        assert!(t.chars().count() <= 30, "{t}");
        assert!(t.ends_with(SEPARATOR_MARK));
        for c in ['~', '|', ';', ','] {
            assert!(t.contains(c));
        }
    }
}
