//! The standard M3 table catalogue: tables, columns, types and primary keys that every M3 has.
//!
//! Used to validate mappings when no Metadata Publisher is configured, and by the simulator as
//! the schema of its tables. Custom tables and columns are only visible through MDP.

use serde::Serialize;

/// How M3 stores a column's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ColumnKind {
    /// Alphanumeric, right-padded with blanks (MI type `A`).
    Alpha,
    /// Numeric with `decimals` decimals (MI type `N`).
    Numeric,
    /// A date stored as `yyyyMMdd` number, `0` meaning no date (MI type `D`).
    Date,
}

impl ColumnKind {
    /// The MI metadata letter (`A`, `N`, `D`).
    pub fn mi_type(self) -> &'static str {
        match self {
            ColumnKind::Alpha => "A",
            ColumnKind::Numeric => "N",
            ColumnKind::Date => "D",
        }
    }
}

/// How a Metadata Publisher `dataType` name was understood (see [`mdp_column_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MdpType {
    /// A name MDP is known to report (`String`, `Decimal`...).
    Known,
    /// An unknown name that looks numeric (`Numeric`, `Packed`, `Zoned`, `Dec...`, `Int...`): read
    /// as a number.
    GuessedNumeric,
    /// Any other unknown name (`NChar`, `Graphic`, `VarGraphic`...): read as text, which accepts
    /// every value, so no row is ever rejected because of the type.
    GuessedText,
}

/// The storage kind of a column as MDP describes it: its `dataType`, `editCode`, full name and
/// length. No public reference lists MDP's type names, so only the common ones are known; an
/// unknown numeric-looking name is read as a number and anything else as text (alphanumeric),
/// never the other way round, since a text column read as a number would fail on every row.
/// Numeric columns with edit code `Y`, or 8 digits long and named `..DT`, are dates.
pub fn mdp_column_kind(data_type: &str, edit_code: &str, name: &str, length: u16) -> (ColumnKind, MdpType) {
    let t = data_type.trim().to_ascii_lowercase();
    let (numeric, how) = match t.as_str() {
        "string" | "alpha" | "a" | "char" | "varchar" => (false, MdpType::Known),
        "decimal" | "integer" | "int" | "long" | "n" => (true, MdpType::Known),
        t if looks_numeric(t) => (true, MdpType::GuessedNumeric),
        _ => (false, MdpType::GuessedText),
    };
    let kind = if !numeric {
        ColumnKind::Alpha
    } else if edit_code.trim() == "Y" || (length == 8 && name.trim().to_ascii_uppercase().ends_with("DT")) {
        ColumnKind::Date
    } else {
        ColumnKind::Numeric
    };
    (kind, how)
}

/// Type names of numbers in DB2 for i, SQL and Java, and the DDS letters for packed, zoned,
/// binary and float (`P`, `S`, `B`, `F`).
fn looks_numeric(t: &str) -> bool {
    const PREFIXES: [&str; 14] = [
        "dec",
        "int",
        "num",
        "packed",
        "zoned",
        "float",
        "double",
        "real",
        "smallint",
        "bigint",
        "tinyint",
        "long",
        "short",
        "bigdecimal",
    ];
    matches!(t, "p" | "s" | "b" | "f") || PREFIXES.iter().any(|p| t.starts_with(p))
}

/// One column of an M3 table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Column {
    /// Full database name, table prefix included (`MMITNO`).
    pub name: String,
    /// M3's description, in English (`Item number`).
    pub description: String,
    /// Storage kind.
    pub kind: ColumnKind,
    /// Field length in characters or digits.
    pub length: u16,
    /// Decimals, for numeric columns.
    pub decimals: u8,
}

impl Column {
    /// The four-letter field name MI transactions use (`ITNO` for `MMITNO`).
    pub fn field(&self) -> &str {
        &self.name[2.min(self.name.len())..]
    }
}

/// One M3 table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Table {
    /// Table name (`MITMAS`).
    pub name: String,
    /// The two-letter column prefix (`MM`).
    pub prefix: String,
    /// Description (`Item master`).
    pub description: String,
    /// Columns in M3's order.
    pub columns: Vec<Column>,
    /// Primary key columns (index `00`), in key order; company first.
    pub primary_key: Vec<String>,
}

impl Table {
    /// The column with this full name, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Index of a column by full name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Full column name for a four-letter field (`ITNO` -> `MMITNO`).
    pub fn column_for_field(&self, field: &str) -> String {
        format!("{}{}", self.prefix, field)
    }
}

// (field, description, kind, length, decimals)
type Def = (&'static str, &'static str, ColumnKind, u16, u8);
use ColumnKind::{Alpha as A, Date as D, Numeric as N};

const AUDIT: &[Def] = &[
    ("RGDT", "Entry date", D, 8, 0),
    ("RGTM", "Entry time", N, 6, 0),
    ("LMDT", "Change date", D, 8, 0),
    ("CHNO", "Change number", N, 3, 0),
    ("CHID", "Changed by", A, 10, 0),
    ("LMTS", "Timestamp", N, 18, 0),
];

const MITMAS: &[Def] = &[
    ("CONO", "Company", N, 3, 0),
    ("ITNO", "Item number", A, 15, 0),
    ("ITDS", "Name", A, 30, 0),
    ("FUDS", "Description 2", A, 60, 0),
    ("STAT", "Status", A, 2, 0),
    ("UNMS", "Basic unit of measure", A, 3, 0),
    ("ITTY", "Item type", A, 3, 0),
    ("ITGR", "Item group", A, 8, 0),
    ("ITCL", "Product group", A, 5, 0),
    ("RESP", "Responsible", A, 10, 0),
    ("SUNO", "Supplier number", A, 10, 0),
    ("PUPR", "Purchase price", N, 17, 6),
    ("SAPR", "Sales price", N, 17, 6),
    ("CUCD", "Currency", A, 3, 0),
    ("NEWE", "Net weight", N, 9, 3),
    ("GRWE", "Gross weight", N, 9, 3),
    ("EVGR", "Environment group", A, 10, 0),
];

const OCUSMA: &[Def] = &[
    ("CONO", "Company", N, 3, 0),
    ("CUNO", "Customer", A, 10, 0),
    ("CUNM", "Customer name", A, 36, 0),
    ("CUA1", "Customer address line 1", A, 36, 0),
    ("CUA2", "Customer address line 2", A, 36, 0),
    ("STAT", "Status", A, 2, 0),
    ("CSCD", "Country", A, 3, 0),
    ("CUCD", "Currency", A, 3, 0),
    ("TEPY", "Payment terms", A, 3, 0),
    ("ORTP", "Customer order type", A, 3, 0),
    ("WHLO", "Warehouse", A, 3, 0),
    ("PHNO", "Telephone number 1", A, 16, 0),
    ("VRNO", "VAT registration number", A, 16, 0),
];

const CIDMAS: &[Def] = &[
    ("CONO", "Company", N, 3, 0),
    ("SUNO", "Supplier number", A, 10, 0),
    ("SUNM", "Supplier name", A, 36, 0),
    ("SUTY", "Supplier type", N, 1, 0),
    ("STAT", "Status", A, 2, 0),
    ("CSCD", "Country", A, 3, 0),
    ("PHNO", "Telephone number 1", A, 16, 0),
];

const OOHEAD: &[Def] = &[
    ("CONO", "Company", N, 3, 0),
    ("ORNO", "Customer order number", A, 10, 0),
    ("CUNO", "Customer", A, 10, 0),
    ("ORTP", "Customer order type", A, 3, 0),
    ("ORDT", "Order date", D, 8, 0),
    ("RLDT", "Requested delivery date", D, 8, 0),
    ("ORST", "Highest status - customer order", A, 2, 0),
    ("ORSL", "Lowest status - customer order", A, 2, 0),
    ("CUOR", "Customer's order number", A, 20, 0),
    ("NTAM", "Net order value", N, 17, 2),
    ("BRAM", "Gross order value", N, 17, 2),
    ("WHLO", "Warehouse", A, 3, 0),
    ("CUCD", "Currency", A, 3, 0),
];

const OOLINE: &[Def] = &[
    ("CONO", "Company", N, 3, 0),
    ("ORNO", "Customer order number", A, 10, 0),
    ("PONR", "Order line number", N, 5, 0),
    ("POSX", "Line suffix", N, 3, 0),
    ("ITNO", "Item number", A, 15, 0),
    ("ORQT", "Ordered quantity - basic U/M", N, 15, 6),
    ("ALQT", "Allocated quantity - basic U/M", N, 15, 6),
    ("DWDT", "Requested delivery date", D, 8, 0),
    ("SAPR", "Sales price", N, 17, 6),
    ("LNAM", "Line amount - order currency", N, 17, 2),
    ("ORST", "Status - customer order", A, 2, 0),
    ("WHLO", "Warehouse", A, 3, 0),
];

const MITBAL: &[Def] = &[
    ("CONO", "Company", N, 3, 0),
    ("WHLO", "Warehouse", A, 3, 0),
    ("ITNO", "Item number", A, 15, 0),
    ("STQT", "On-hand balance approved", N, 15, 6),
    ("ALQT", "Allocated quantity", N, 15, 6),
    ("REOP", "Reorder point", N, 15, 6),
    ("SSQT", "Safety stock", N, 15, 6),
    ("STAT", "Status - balance ID", A, 2, 0),
];

const MITWHL: &[Def] = &[
    ("CONO", "Company", N, 3, 0),
    ("WHLO", "Warehouse", A, 3, 0),
    ("WHNM", "Warehouse name", A, 36, 0),
    ("WHTY", "Warehouse type", A, 2, 0),
    ("FACI", "Facility", A, 3, 0),
    ("DIVI", "Division", A, 3, 0),
    ("CSCD", "Country", A, 3, 0),
];

fn build(name: &str, prefix: &str, description: &str, defs: &[Def], key: &[&str]) -> Table {
    let columns = defs
        .iter()
        .chain(AUDIT)
        .map(|&(field, desc, kind, length, decimals)| Column {
            name: format!("{prefix}{field}"),
            description: desc.to_string(),
            kind,
            length,
            decimals,
        })
        .collect();
    Table {
        name: name.to_string(),
        prefix: prefix.to_string(),
        description: description.to_string(),
        columns,
        primary_key: key.iter().map(|f| format!("{prefix}{f}")).collect(),
    }
}

/// The standard tables every M3 has, with their usual columns.
pub fn standard_tables() -> Vec<Table> {
    vec![
        build("MITMAS", "MM", "Item master", MITMAS, &["CONO", "ITNO"]),
        build("OCUSMA", "OK", "Customer master", OCUSMA, &["CONO", "CUNO"]),
        build("CIDMAS", "ID", "Supplier master", CIDMAS, &["CONO", "SUNO"]),
        build("OOHEAD", "OA", "Customer order head", OOHEAD, &["CONO", "ORNO"]),
        build(
            "OOLINE",
            "OB",
            "Customer order line",
            OOLINE,
            &["CONO", "ORNO", "PONR", "POSX"],
        ),
        build(
            "MITBAL",
            "MB",
            "Item warehouse balance",
            MITBAL,
            &["CONO", "WHLO", "ITNO"],
        ),
        build("MITWHL", "MW", "Warehouse", MITWHL, &["CONO", "WHLO"]),
    ]
}

/// One standard table by name.
pub fn standard_table(name: &str) -> Option<Table> {
    standard_tables().into_iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdp_types_known_guessed_numeric_and_guessed_text() {
        let kind = |t: &str| mdp_column_kind(t, "", "MMITDS", 30);
        assert_eq!(kind("String"), (ColumnKind::Alpha, MdpType::Known));
        assert_eq!(kind(" VARCHAR "), (ColumnKind::Alpha, MdpType::Known));
        assert_eq!(kind("Decimal"), (ColumnKind::Numeric, MdpType::Known));
        for t in [
            "Numeric",
            "Packed",
            "Zoned",
            "DECIMAL(15,2)",
            "Dec",
            "Int4",
            "Integer8",
            "SmallInt",
            "BigInt",
            "Float",
            "P",
            "s",
        ] {
            assert_eq!(kind(t), (ColumnKind::Numeric, MdpType::GuessedNumeric), "{t}");
        }
        for t in [
            "NChar",
            "NVarChar",
            "VarGraphic",
            "Graphic",
            "Clob",
            "Text",
            "Timestamp",
            "",
            "O",
        ] {
            assert_eq!(kind(t), (ColumnKind::Alpha, MdpType::GuessedText), "{t:?}");
        }
    }

    #[test]
    fn mdp_dates_are_numeric_columns_with_edit_code_y_or_named_dt() {
        assert_eq!(mdp_column_kind("Decimal", "Y", "MMRGDT", 8).0, ColumnKind::Date);
        assert_eq!(mdp_column_kind("Decimal", "4", "mmlmdt", 8).0, ColumnKind::Date);
        assert_eq!(
            mdp_column_kind("Packed", "Y", "MMXXDT", 8),
            (ColumnKind::Date, MdpType::GuessedNumeric)
        );
        assert_eq!(mdp_column_kind("Decimal", "4", "MMCHNO", 3).0, ColumnKind::Numeric);
        // A text column stays text whatever its edit code or name says.
        assert_eq!(
            mdp_column_kind("NChar", "Y", "MMZZDT", 8),
            (ColumnKind::Alpha, MdpType::GuessedText)
        );
        assert_eq!(mdp_column_kind("String", "", "MMZZDT", 8).0, ColumnKind::Alpha);
    }

    #[test]
    fn every_table_has_company_first_in_its_key_and_audit_columns() {
        for t in standard_tables() {
            assert_eq!(t.primary_key[0], format!("{}CONO", t.prefix), "{}", t.name);
            for k in &t.primary_key {
                assert!(t.column(k).is_some(), "{} key {k}", t.name);
            }
            assert!(t.column(&format!("{}LMTS", t.prefix)).is_some());
        }
        assert_eq!(
            standard_table("MITMAS").unwrap().column("MMITNO").unwrap().field(),
            "ITNO"
        );
    }
}
