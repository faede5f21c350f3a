//! A mapping validated against its table: resolves columns, key, types, enum codes, the filter
//! and constants once, then turns rows into message payloads with a content hash,
//! allocation-light (the payload is written straight into one `String`).
//!
//! Row layout: a row handed to [`CompiledMapping::apply`] or [`CompiledMapping::matches`] holds
//! the values of [`CompiledMapping::columns`], in that order: first the mapped columns (same order
//! as [`CompiledMapping::fields`]), then the columns only the mapping needs besides them (the
//! time columns of datetime fields, then the filter's columns, in order of first use).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};

use crate::catalog::{ColumnKind, Table};
use crate::convert::{self, Decimal};
use crate::error::{MappingError, ValueError};
use crate::filter::Filter;
use crate::names::{self, Case, MessageTypeName};
use crate::spec::{FieldType, MappingSpec};
use crate::zone::TimeZone;
/// The key of one entity: the trimmed primary-key values, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey(pub Vec<String>);

impl EntityKey {
    /// Separator between key values in the textual form (`100|A100`).
    pub const SEPARATOR: char = '|';

    /// Parse the textual form; `parts` is the expected number of key values. Values are
    /// unescaped (`%7C` -> `|`, `%25` -> `%`); `None` for a wrong count or a bad escape.
    pub fn parse(s: &str, parts: usize) -> Option<Self> {
        let v = s
            .split(Self::SEPARATOR)
            .map(unescape)
            .collect::<Option<Vec<String>>>()?;
        (v.len() == parts).then_some(Self(v))
    }
}

/// Key values may contain the separator: `%` and `|` are written as `%25` and `%7C`, so the
/// textual form always splits back into the same values.
impl std::fmt::Display for EntityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "{}", Self::SEPARATOR)?;
            }
            if v.contains(['%', Self::SEPARATOR]) {
                f.write_str(&v.replace('%', "%25").replace(Self::SEPARATOR, "%7C"))?;
            } else {
                f.write_str(v)?;
            }
        }
        Ok(())
    }
}

fn unescape(part: &str) -> Option<String> {
    if !part.contains('%') {
        return Some(part.to_string());
    }
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("25") => out.push('%'),
            Some("7C" | "7c") => out.push('|'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// One mapped field, resolved.
#[derive(Debug, Clone)]
pub struct CompiledField {
    /// Domain name.
    pub name: String,
    /// M3 column (for a datetime, the date column).
    pub column: String,
    /// Domain type.
    pub ty: FieldType,
    /// Description (from the mapping, else M3's).
    pub description: String,
    /// Whether the column is part of the primary key.
    pub is_key: bool,
    /// For [`FieldType::DateTime`]: the time column.
    pub time_column: Option<String>,
    /// For [`FieldType::Enum`]: M3 code -> domain value, as written in the spec.
    pub values: Option<BTreeMap<String, String>>,
    /// For [`FieldType::Enum`]: the domain value of unknown codes (else they are refused).
    pub default: Option<String>,
    /// `"name":` pre-rendered.
    prefix: String,
    /// Row index of the time column (datetime only).
    time_index: usize,
    /// Enum codes (normalised; sorted for alpha columns) with their JSON-rendered domain value.
    codes: Vec<(String, String)>,
    /// Whether enum codes compare as numbers.
    numeric_codes: bool,
    /// JSON-rendered default.
    default_json: Option<String>,
}

/// The output of mapping one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// Entity key.
    pub key: EntityKey,
    /// JSON payload of the `...Updated` message.
    pub payload: String,
    /// Content hash of the payload, to drop updates that change no mapped field.
    pub hash: u64,
}

/// A mapping validated against its table.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    /// Message type name.
    pub name: MessageTypeName,
    /// Description.
    pub description: String,
    /// Source table.
    pub table: String,
    /// REST resource name of the read model.
    pub resource: String,
    /// Fields in payload order (key fields included).
    pub fields: Vec<CompiledField>,
    /// Index into `fields` of each primary-key column, in key order.
    key_fields: Vec<usize>,
    /// Columns after the mapped ones in the row layout.
    extra_columns: Vec<String>,
    /// The row filter.
    filter: Option<Filter>,
    /// Constant fields.
    constants: BTreeMap<String, Value>,
    /// `,"name":value` for every constant, pre-rendered.
    constants_json: String,
    /// Initial capacity of a payload.
    capacity: usize,
    /// The zone of M3's dates and times.
    time_zone: TimeZone,
}

impl CompiledMapping {
    /// Validate `spec` against `table` (from MDP or the standard catalogue).
    pub fn compile(spec: &MappingSpec, table: &Table) -> Result<Self, MappingError> {
        let mapping = spec.name.clone();
        let name = MessageTypeName::parse(&spec.name)?;
        if spec.table != table.name {
            return Err(MappingError::UnknownTable {
                mapping,
                table: spec.table.clone(),
                suggestion: None,
            });
        }
        let suggest = |wanted: &str| names::closest(wanted, table.columns.iter().map(|c| c.name.as_str()));
        let mut fields = Vec::with_capacity(spec.fields.len() + table.primary_key.len());
        let mut names_seen = HashSet::new();
        let mut cols_seen = HashSet::new();
        for (index, f) in spec.fields.iter().enumerate() {
            let column = f.column.trim().to_ascii_uppercase();
            let Some(col) = table.column(&column) else {
                return Err(MappingError::UnknownColumn {
                    mapping,
                    index,
                    table: table.name.clone(),
                    column: f.column.clone(),
                    suggestion: suggest(&f.column),
                });
            };
            if !names::is_valid_field_name(&f.name) {
                return Err(MappingError::BadFieldName {
                    mapping,
                    index,
                    got: f.name.clone(),
                });
            }
            if !names_seen.insert(f.name.clone()) {
                return Err(MappingError::DuplicateField {
                    mapping,
                    index,
                    field: f.name.clone(),
                });
            }
            if !cols_seen.insert(column.clone()) {
                return Err(MappingError::DuplicateColumn { mapping, index, column });
            }
            let ty = match f.ty {
                Some(ty) => {
                    let ok = match (col.kind, ty) {
                        (_, FieldType::String) => true,
                        (ColumnKind::Date, FieldType::Date | FieldType::Integer) => true,
                        (ColumnKind::Date | ColumnKind::Numeric, FieldType::DateTime) => true,
                        (ColumnKind::Alpha, FieldType::DateTime) => false,
                        (ColumnKind::Date, _) => false,
                        (ColumnKind::Alpha | ColumnKind::Numeric, _) => true,
                    };
                    if !ok {
                        return Err(MappingError::IncompatibleType {
                            mapping,
                            index,
                            column,
                            kind: col.kind,
                            ty: ty.as_str().to_string(),
                        });
                    }
                    ty
                }
                None => default_type(col.kind, col.decimals),
            };
            let misplaced = |option: &'static str, allowed_with: &'static str| MappingError::MisplacedOption {
                mapping: mapping.clone(),
                index,
                option,
                allowed_with,
                ty: ty.as_str().to_string(),
            };
            // Options that belong to one type only.
            if ty != FieldType::DateTime && f.time_column.is_some() {
                return Err(misplaced("timeColumn", "datetime"));
            }
            if ty != FieldType::Enum && f.values.is_some() {
                return Err(misplaced("values", "enum"));
            }
            if ty != FieldType::Enum && f.default.is_some() {
                return Err(misplaced("default", "enum"));
            }
            let time_column = if ty == FieldType::DateTime {
                let Some(tc) = &f.time_column else {
                    return Err(MappingError::MissingTimeColumn { mapping, index, column });
                };
                let upper = tc.trim().to_ascii_uppercase();
                let Some(tcol) = table.column(&upper) else {
                    return Err(MappingError::UnknownTimeColumn {
                        mapping,
                        index,
                        table: table.name.clone(),
                        column: tc.clone(),
                        suggestion: suggest(tc),
                    });
                };
                if tcol.kind == ColumnKind::Date || upper == column {
                    return Err(MappingError::BadTimeColumn {
                        mapping,
                        index,
                        column: upper,
                        kind: tcol.kind,
                    });
                }
                Some(upper)
            } else {
                None
            };
            let mut codes = Vec::new();
            let numeric_codes = ty == FieldType::Enum && col.kind != ColumnKind::Alpha;
            if ty == FieldType::Enum {
                let values = f.values.as_ref().filter(|v| !v.is_empty());
                let Some(values) = values else {
                    return Err(MappingError::MissingValues { mapping, index });
                };
                for (code, value) in values {
                    let code = if numeric_codes {
                        match Decimal::parse(code) {
                            Some(d) => d.to_string(),
                            None => {
                                return Err(MappingError::BadEnumCode {
                                    mapping,
                                    index,
                                    column,
                                    code: code.clone(),
                                })
                            }
                        }
                    } else {
                        code.trim().to_string()
                    };
                    let mut rendered = String::new();
                    convert::write_json_str(&mut rendered, value);
                    codes.push((code, rendered));
                }
                codes.sort();
            }
            let mut field = compiled_field(
                &f.name,
                &column,
                ty,
                if f.description.is_empty() {
                    &col.description
                } else {
                    &f.description
                },
                table.primary_key.contains(&column),
            );
            field.time_column = time_column;
            field.values = f.values.clone();
            field.default = f.default.clone();
            field.default_json = f.default.as_deref().map(|d| {
                let mut s = String::new();
                convert::write_json_str(&mut s, d);
                s
            });
            field.codes = codes;
            field.numeric_codes = numeric_codes;
            fields.push(field);
        }
        // Constants: valid names that no mapped field uses.
        let mut constants_json = String::new();
        for (cname, value) in &spec.constants {
            if !names::is_valid_field_name(cname) {
                return Err(MappingError::BadConstantName {
                    mapping,
                    name: cname.clone(),
                });
            }
            if !names_seen.insert(cname.clone()) {
                return Err(MappingError::ConstantClash {
                    mapping,
                    name: cname.clone(),
                });
            }
            constants_json.push(',');
            convert::write_json_str(&mut constants_json, cname);
            constants_json.push(':');
            constants_json.push_str(&value.to_string());
        }
        // The key cannot be deselected: add missing key columns with suggested names, in key
        // order, before the mapped fields.
        let mut added = 0;
        for k in &table.primary_key {
            if !cols_seen.contains(k) {
                let col = table.column(k).expect("catalogue keys are columns");
                let mut name = names::suggest_field_name(&col.description, Case::Camel);
                let base = name.clone();
                let mut n = 2;
                while names_seen.contains(&name) {
                    name = format!("{base}{n}");
                    n += 1;
                }
                names_seen.insert(name.clone());
                fields.insert(
                    added,
                    compiled_field(&name, k, default_type(col.kind, col.decimals), &col.description, true),
                );
                added += 1;
            }
        }
        let key_fields = table
            .primary_key
            .iter()
            .map(|k| fields.iter().position(|f| &f.column == k).expect("key added above"))
            .collect();
        // Row layout: mapped columns, then time columns and filter columns not mapped.
        let mut layout: Vec<String> = fields.iter().map(|f| f.column.clone()).collect();
        let mut slot = |c: &str| match layout.iter().position(|l| l == c) {
            Some(i) => i,
            None => {
                layout.push(c.to_string());
                layout.len() - 1
            }
        };
        for f in &mut fields {
            if let Some(tc) = &f.time_column {
                f.time_index = slot(tc);
            }
        }
        let filter = match spec.filter.as_deref() {
            Some(src) => Some(
                Filter::compile(src, table, &mut slot).map_err(|source| MappingError::Filter {
                    mapping: mapping.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let extra_columns = layout.split_off(fields.len());
        let resource = match &spec.resource {
            Some(r) => {
                let ok = !r.is_empty()
                    && r.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !ok {
                    return Err(MappingError::BadResource {
                        mapping,
                        got: r.clone(),
                    });
                }
                r.clone()
            }
            None => names::resource_name(&name),
        };
        let time_zone = match &spec.time_zone {
            Some(z) => z
                .parse::<TimeZone>()
                .map_err(|source| MappingError::BadTimeZone { mapping, source })?,
            None => TimeZone::Utc,
        };
        let capacity = 2
            + constants_json.len()
            + fields
                .iter()
                .map(|f| f.prefix.len() + 1 + estimated_width(table, f))
                .sum::<usize>();
        Ok(Self {
            name,
            description: spec.description.clone(),
            table: table.name.clone(),
            resource,
            fields,
            key_fields,
            extra_columns,
            filter,
            constants: spec.constants.clone(),
            constants_json,
            capacity,
            time_zone,
        })
    }

    /// `<Name>Updated`.
    pub fn updated_type(&self) -> String {
        format!("{}Updated", self.name)
    }

    /// `<Name>Deleted`.
    pub fn deleted_type(&self) -> String {
        format!("{}Deleted", self.name)
    }

    /// The columns a row handed to [`Self::apply`] and [`Self::matches`] must hold, in this
    /// order: the mapped columns (as [`Self::fields`]), then the time columns of datetime fields
    /// and the filter's columns that are not mapped.
    pub fn columns(&self) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| f.column.clone())
            .chain(self.extra_columns.iter().cloned())
            .collect()
    }

    /// The primary-key columns, in key order.
    pub fn key_columns(&self) -> Vec<String> {
        self.key_fields.iter().map(|&i| self.fields[i].column.clone()).collect()
    }

    /// The key fields (domain names), in key order.
    pub fn key_field_names(&self) -> Vec<&str> {
        self.key_fields.iter().map(|&i| self.fields[i].name.as_str()).collect()
    }

    /// The entity key of a row laid out as [`Self::columns`].
    pub fn key_of(&self, row: &[&str]) -> EntityKey {
        EntityKey(self.key_fields.iter().map(|&i| row[i].trim().to_string()).collect())
    }

    /// The filter as written in the spec, if any.
    pub fn filter(&self) -> Option<&str> {
        self.filter.as_ref().map(Filter::source)
    }

    /// Whether a row laid out as [`Self::columns`] belongs to the message type (passes the
    /// filter; always true without one). A row that does not match is to be treated as absent:
    /// its entity is deleted if it was there. Missing trailing values count as blank.
    pub fn matches(&self, row: &[&str]) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(row))
    }

    /// The zone M3's dates and times are in (the offset `datetime` fields carry).
    pub fn time_zone(&self) -> TimeZone {
        self.time_zone
    }

    /// The constant fields added to every `...Updated` payload.
    pub fn constants(&self) -> &BTreeMap<String, Value> {
        &self.constants
    }

    /// Map a row laid out as [`Self::columns`] (extra trailing values are ignored) to the
    /// `...Updated` payload: the fields in order, then the constants. Does not look at the
    /// filter (see [`Self::matches`]).
    pub fn apply(&self, row: &[&str]) -> Result<Projection, ValueError> {
        let mut payload = String::with_capacity(self.capacity);
        payload.push('{');
        for (i, (f, raw)) in self.fields.iter().zip(row.iter().copied()).enumerate() {
            if i > 0 {
                payload.push(',');
            }
            payload.push_str(&f.prefix);
            let time = if f.ty == FieldType::DateTime {
                row.get(f.time_index).copied().unwrap_or("")
            } else {
                ""
            };
            write_value(&mut payload, f, raw, time, &self.time_zone)?;
        }
        payload.push_str(&self.constants_json);
        payload.push('}');
        let hash = xxhash_rust::xxh3::xxh3_64(payload.as_bytes());
        Ok(Projection {
            key: self.key_of(row),
            payload,
            hash,
        })
    }

    /// The `...Deleted` payload: the key fields only (a datetime key field gets midnight, as
    /// the key carries no time).
    pub fn deleted_payload(&self, key: &EntityKey) -> Result<String, ValueError> {
        let mut payload = String::with_capacity(64);
        payload.push('{');
        for (i, (&fi, raw)) in self.key_fields.iter().zip(&key.0).enumerate() {
            if i > 0 {
                payload.push(',');
            }
            let f = &self.fields[fi];
            payload.push_str(&f.prefix);
            write_value(&mut payload, f, raw, "", &self.time_zone)?;
        }
        payload.push('}');
        Ok(payload)
    }

    /// The JSON Schema (2020-12) of field `field_index` of [`Self::fields`]: `type`, `format`
    /// (`date`, `date-time`), `enum` (the domain values, in code order, then the default) and
    /// `description`. Dates and date-times may be `null` (M3's date `0`). Date-times are RFC 3339
    /// with the offset of the mapping's time zone (`Z` for UTC), which a `pattern` states.
    ///
    /// # Panics
    /// If `field_index` is out of range.
    pub fn field_json_schema(&self, field_index: usize) -> Value {
        let f = &self.fields[field_index];
        let mut s = match f.ty {
            FieldType::String => json!({"type": "string"}),
            FieldType::Integer => json!({"type": "integer"}),
            FieldType::Decimal => json!({"type": "number"}),
            FieldType::Boolean => json!({"type": "boolean"}),
            FieldType::Date => json!({"type": ["string", "null"], "format": "date"}),
            FieldType::DateTime => json!({
                "type": ["string", "null"],
                "format": "date-time",
                "pattern": format!(
                    "^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}{}$",
                    self.time_zone.offset_pattern()
                ),
            }),
            FieldType::Enum => {
                let mut domain: Vec<&str> = Vec::new();
                let values = f.values.iter().flat_map(|v| v.values());
                for v in values.chain(f.default.as_ref()) {
                    if !domain.contains(&v.as_str()) {
                        domain.push(v);
                    }
                }
                json!({"type": "string", "enum": domain})
            }
        };
        if !f.description.is_empty() {
            s["description"] = json!(f.description);
        }
        s
    }

    /// The JSON Schema of constant `name` (`{"const": value}`), if there is one by that name.
    pub fn constant_json_schema(&self, name: &str) -> Option<Value> {
        self.constants.get(name).map(|v| json!({"const": v}))
    }
}

fn write_value(out: &mut String, f: &CompiledField, raw: &str, time: &str, zone: &TimeZone) -> Result<(), ValueError> {
    let ok = match f.ty {
        FieldType::String => {
            // M3 pads with blanks; other trailing characters are data.
            convert::write_json_str(out, raw.trim_ascii_end());
            Some(())
        }
        FieldType::Integer => convert::write_integer(out, raw),
        FieldType::Decimal => convert::write_decimal(out, raw),
        FieldType::Boolean => convert::write_boolean(out, raw),
        FieldType::Date => convert::write_date(out, raw),
        FieldType::DateTime => {
            return convert::write_datetime(out, raw, time, zone).map_err(|date| {
                let (column, value, expected) = if date {
                    (&f.column, raw, "a yyyyMMdd date or 0")
                } else {
                    let tc = f.time_column.as_ref().expect("datetime has a time column");
                    (tc, time, "an HHmmss time")
                };
                ValueError {
                    column: column.clone(),
                    field: f.name.clone(),
                    expected: Cow::Borrowed(expected),
                    value: value.to_string(),
                }
            })
        }
        FieldType::Enum => {
            let value = lookup_code(f, raw).or(f.default_json.as_deref());
            value.map(|v| out.push_str(v))
        }
    };
    ok.ok_or_else(|| ValueError {
        column: f.column.clone(),
        field: f.name.clone(),
        expected: match f.ty {
            FieldType::String => Cow::Borrowed("text"),
            FieldType::Integer => Cow::Borrowed("an integer"),
            FieldType::Decimal => Cow::Borrowed("a decimal number"),
            FieldType::Boolean => Cow::Borrowed("1 or 0"),
            FieldType::Date | FieldType::DateTime => Cow::Borrowed("a yyyyMMdd date or 0"),
            FieldType::Enum => Cow::Owned(format!(
                "one of the codes {}",
                f.values
                    .iter()
                    .flat_map(|v| v.keys())
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
        value: raw.to_string(),
    })
}

/// The JSON-rendered domain value of an enum code.
fn lookup_code<'f>(f: &'f CompiledField, raw: &str) -> Option<&'f str> {
    if f.numeric_codes {
        let d = Decimal::parse(raw)?;
        f.codes
            .iter()
            .find(|(c, _)| Decimal::parse(c) == Some(d))
            .map(|(_, v)| v.as_str())
    } else {
        let t = raw.trim();
        f.codes
            .binary_search_by(|(c, _)| c.as_str().cmp(t))
            .ok()
            .map(|i| f.codes[i].1.as_str())
    }
}

/// The rendered width of a field's value without escapes (an upper bound for well-formed
/// values), so that a payload is allocated once.
fn estimated_width(table: &Table, f: &CompiledField) -> usize {
    match f.ty {
        FieldType::DateTime => 27,
        FieldType::Date => 12,
        FieldType::Boolean => 5,
        FieldType::Enum => f.codes.iter().map(|(_, v)| v.len()).max().unwrap_or(8),
        // Quotes or sign and decimal point.
        _ => table.column(&f.column).map_or(16, |c| c.length as usize + 2),
    }
}

fn default_type(kind: ColumnKind, decimals: u8) -> FieldType {
    match kind {
        ColumnKind::Alpha => FieldType::String,
        ColumnKind::Numeric if decimals > 0 => FieldType::Decimal,
        ColumnKind::Numeric => FieldType::Integer,
        ColumnKind::Date => FieldType::Date,
    }
}

fn compiled_field(name: &str, column: &str, ty: FieldType, description: &str, is_key: bool) -> CompiledField {
    let mut prefix = String::new();
    convert::write_json_str(&mut prefix, name);
    prefix.push(':');
    CompiledField {
        name: name.to_string(),
        column: column.to_string(),
        ty,
        description: description.to_string(),
        is_key,
        time_column: None,
        values: None,
        default: None,
        prefix,
        time_index: 0,
        codes: Vec::new(),
        numeric_codes: false,
        default_json: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::standard_table;
    use crate::catalog::Table;
    use crate::spec::{default_item_mapping, FieldSpec};

    fn item() -> CompiledMapping {
        CompiledMapping::compile(&default_item_mapping(), &standard_table("MITMAS").unwrap()).unwrap()
    }

    #[test]
    fn a_row_becomes_a_typed_payload_with_a_content_hash() {
        let m = item();
        assert_eq!(m.columns()[..2], ["MMCONO".to_string(), "MMITNO".to_string()]);
        let row = [
            "100",
            "A100           ",
            "Bolt M8  ",
            "Zinc \"plated\"",
            "20",
            "PCS",
            "FG ",
        ];
        let p = m.apply(&row).unwrap();
        assert_eq!(p.key.to_string(), "100|A100");
        let v: serde_json::Value = serde_json::from_str(&p.payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"company":100,"itemNumber":"A100","name":"Bolt M8","description":"Zinc \"plated\"","status":"20","unit":"PCS","itemType":"FG"})
        );
        // Padding differences do not change the content hash; a real change does.
        let same = m
            .apply(&["100", "A100", "Bolt M8", "Zinc \"plated\"", "20", "PCS", "FG"])
            .unwrap();
        assert_eq!(same.hash, p.hash);
        let changed = m
            .apply(&["100", "A100", "Bolt M10", "Zinc \"plated\"", "20", "PCS", "FG"])
            .unwrap();
        assert_ne!(changed.hash, p.hash);
        assert_eq!(
            m.deleted_payload(&p.key).unwrap(),
            r#"{"company":100,"itemNumber":"A100"}"#
        );
    }

    #[test]
    fn entity_keys_with_the_separator_round_trip() {
        let k = EntityKey(vec!["100".into(), "PIPE|1 50%".into()]);
        assert_eq!(k.to_string(), "100|PIPE%7C1 50%25");
        assert_eq!(EntityKey::parse(&k.to_string(), 2), Some(k));
        assert_eq!(
            EntityKey::parse("100|A", 2),
            Some(EntityKey(vec!["100".into(), "A".into()]))
        );
        assert_eq!(EntityKey::parse("100|A|B", 2), None);
        assert_eq!(EntityKey::parse("100|A%zz", 2), None);
    }

    #[test]
    fn bad_values_name_the_column_and_field() {
        let err = item().apply(&["1X0", "A100", "", "", "", "", ""]).unwrap_err();
        assert_eq!(err.column, "MMCONO");
        assert_eq!(err.field, "company");
        assert!(err.to_string().contains("expected an integer"), "{err}");
    }

    #[test]
    fn unknown_columns_are_named_with_the_closest_valid_name() {
        let mut spec = default_item_mapping();
        spec.fields[2].column = "MMITDX".into();
        let err = CompiledMapping::compile(&spec, &standard_table("MITMAS").unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping `Item`: fields[2].column: table MITMAS has no column `MMITDX`; did you mean `MMITDS`?"
        );
    }

    #[test]
    fn key_columns_cannot_be_left_out() {
        let mut spec = default_item_mapping();
        spec.fields.retain(|f| f.column != "MMCONO");
        let m = CompiledMapping::compile(&spec, &standard_table("MITMAS").unwrap()).unwrap();
        assert_eq!(m.key_columns(), vec!["MMCONO", "MMITNO"]);
        assert_eq!(m.key_field_names(), vec!["company", "itemNumber"]);
    }

    #[test]
    fn duplicate_field_names_and_bad_types_are_refused() {
        let table = standard_table("MITMAS").unwrap();
        let mut spec = default_item_mapping();
        spec.fields[3].name = "name".into();
        let err = CompiledMapping::compile(&spec, &table).unwrap_err();
        assert!(matches!(err, MappingError::DuplicateField { index: 3, .. }), "{err}");
        let mut spec = default_item_mapping();
        spec.fields.push(FieldSpec {
            ty: Some(FieldType::Boolean),
            ..FieldSpec::new("MMLMDT", "changed")
        });
        let err = CompiledMapping::compile(&spec, &table).unwrap_err();
        assert!(err.to_string().contains("fields[7].type"), "{err}");
    }

    fn mitmas() -> Table {
        standard_table("MITMAS").unwrap()
    }

    fn status_enum() -> FieldSpec {
        FieldSpec {
            ty: Some(FieldType::Enum),
            values: Some(
                [
                    ("10", "preliminary"),
                    ("20", "active"),
                    ("50", "blocked"),
                    ("90", "deactivated"),
                ]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ),
            ..FieldSpec::new("MMSTAT", "status")
        }
    }

    fn created() -> FieldSpec {
        FieldSpec {
            ty: Some(FieldType::DateTime),
            time_column: Some("MMRGTM".into()),
            ..FieldSpec::new("MMRGDT", "created")
        }
    }

    fn spec(fields: Vec<FieldSpec>) -> MappingSpec {
        MappingSpec {
            fields,
            ..default_item_mapping()
        }
    }

    #[test]
    fn filter_only_columns_are_appended_after_the_mapped_ones() {
        let mut s = default_item_mapping();
        s.filter = Some("MMSTAT in ('20','50') and not MMITTY = 'SP' and MMPUPR >= 10.5".into());
        let m = CompiledMapping::compile(&s, &mitmas()).unwrap();
        assert_eq!(
            m.columns(),
            vec!["MMCONO", "MMITNO", "MMITDS", "MMFUDS", "MMSTAT", "MMUNMS", "MMITTY", "MMPUPR"]
        );
        assert_eq!(m.fields.len(), 7);
        assert_eq!(m.filter(), s.filter.as_deref());
        let row = ["100", "A1", "Bolt", "", "20", "PCS", "FG ", "12.000000"];
        assert!(m.matches(&row));
        assert!(!m.matches(&["100", "A1", "Bolt", "", "20", "PCS", "SP ", "12.0"]));
        assert!(!m.matches(&["100", "A1", "Bolt", "", "20", "PCS", "FG", "10.4"]));
        assert!(!m.matches(&["100", "A1", "Bolt", "", "90", "PCS", "FG", "12"]));
        // The payload holds only the mapped fields.
        assert_eq!(
            m.apply(&row).unwrap().payload,
            r#"{"company":100,"itemNumber":"A1","name":"Bolt","description":"","status":"20","unit":"PCS","itemType":"FG"}"#
        );
        assert!(item().matches(&[]), "no filter: everything matches");
        assert_eq!(item().filter(), None);
    }

    #[test]
    fn filter_errors_name_the_mapping_the_position_and_a_suggestion() {
        let mut s = default_item_mapping();
        s.filter = Some("MMSTAT = '20' and MMITYY = 'SP'".into());
        let err = CompiledMapping::compile(&s, &mitmas()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping `Item`: filter: at character 19: table MITMAS has no column `MMITYY`; did you mean `MMITTY`?"
        );
        s.filter = Some("MMSTAT in '20'".into());
        let err = CompiledMapping::compile(&s, &mitmas()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mapping `Item`: filter: at character 11: expected `(` opening the list of values, found '20'"
        );
    }

    #[test]
    fn enums_translate_codes_and_refuse_unknown_ones() {
        let mut fields = default_item_mapping().fields;
        fields[4] = status_enum();
        let m = CompiledMapping::compile(&spec(fields.clone()), &mitmas()).unwrap();
        let mut row = ["100", "A1", "Bolt", "", "50", "PCS", "FG"];
        let v: Value = serde_json::from_str(&m.apply(&row).unwrap().payload).unwrap();
        assert_eq!(v["status"], "blocked");
        row[4] = "30";
        let err = m.apply(&row).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"column MMSTAT (field `status`): expected one of the codes "10", "20", "50", "90", got "30""#
        );
        // With a default, unknown codes take it.
        fields[4].default = Some("unknown".into());
        let m = CompiledMapping::compile(&spec(fields.clone()), &mitmas()).unwrap();
        let v: Value = serde_json::from_str(&m.apply(&row).unwrap().payload).unwrap();
        assert_eq!(v["status"], "unknown");
        assert_eq!(
            m.field_json_schema(4),
            json!({"type": "string", "enum": ["preliminary", "active", "blocked", "deactivated", "unknown"], "description": "Status"})
        );
        // Numeric columns compare codes as numbers.
        fields.push(FieldSpec {
            ty: Some(FieldType::Enum),
            values: Some([("1".to_string(), "one".to_string())].into()),
            ..FieldSpec::new("MMCHNO", "changes")
        });
        let m = CompiledMapping::compile(&spec(fields.clone()), &mitmas()).unwrap();
        let p = m.apply(&["100", "A1", "Bolt", "", "50", "PCS", "FG", "001"]).unwrap();
        assert!(p.payload.ends_with(r#""changes":"one"}"#), "{}", p.payload);
    }

    #[test]
    fn enum_options_are_validated_with_their_path() {
        let table = mitmas();
        let mut fields = default_item_mapping().fields;
        fields[4] = FieldSpec {
            values: None,
            ..status_enum()
        };
        assert_eq!(
            CompiledMapping::compile(&spec(fields.clone()), &table)
                .unwrap_err()
                .to_string(),
            "mapping `Item`: fields[4].values: type enum needs a non-empty map of M3 code -> domain value"
        );
        fields[4] = FieldSpec {
            values: Some(BTreeMap::new()),
            ..status_enum()
        };
        assert!(matches!(
            CompiledMapping::compile(&spec(fields.clone()), &table),
            Err(MappingError::MissingValues { index: 4, .. })
        ));
        fields[4] = FieldSpec {
            ty: None,
            ..status_enum()
        };
        assert_eq!(
            CompiledMapping::compile(&spec(fields.clone()), &table)
                .unwrap_err()
                .to_string(),
            "mapping `Item`: fields[4].values: only allowed with type enum, the field is string"
        );
        fields[4] = FieldSpec {
            values: Some([("X".to_string(), "x".to_string())].into()),
            ..FieldSpec {
                column: "MMCONO".into(),
                name: "company".into(),
                ..status_enum()
            }
        };
        fields.remove(0);
        assert_eq!(
            CompiledMapping::compile(&spec(fields), &table).unwrap_err().to_string(),
            r#"mapping `Item`: fields[3].values: column `MMCONO` is numeric; expected numeric codes, got "X""#
        );
    }

    #[test]
    fn datetimes_join_the_time_column_which_is_selected_too() {
        let mut fields = default_item_mapping().fields;
        fields.push(created());
        let m = CompiledMapping::compile(&spec(fields), &mitmas()).unwrap();
        assert_eq!(m.columns()[7..], ["MMRGDT".to_string(), "MMRGTM".to_string()]);
        let mut row = ["100", "A1", "Bolt", "", "20", "PCS", "FG", "20261125", "140307"];
        let v: Value = serde_json::from_str(&m.apply(&row).unwrap().payload).unwrap();
        assert_eq!(v["created"], "2026-11-25T14:03:07Z");
        row[7] = "0";
        let v: Value = serde_json::from_str(&m.apply(&row).unwrap().payload).unwrap();
        assert_eq!(v["created"], Value::Null);
        row[7] = "20261125";
        row[8] = "250000";
        let err = m.apply(&row).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"column MMRGTM (field `created`): expected an HHmmss time, got "250000""#
        );
        assert_eq!(m.field_json_schema(7)["format"], "date-time",);
        assert_eq!(m.field_json_schema(7)["type"], json!(["string", "null"]));
        assert_eq!(m.time_zone(), TimeZone::Utc);
    }

    #[test]
    fn datetimes_carry_the_offset_of_the_mappings_time_zone() {
        let mut fields = default_item_mapping().fields;
        fields.push(created());
        let mut s = spec(fields);
        s.time_zone = Some("Europe/Stockholm".into());
        let m = CompiledMapping::compile(&s, &mitmas()).unwrap();
        let winter = ["100", "A1", "Bolt", "", "20", "PCS", "FG", "20261030", "232956"];
        let v: Value = serde_json::from_str(&m.apply(&winter).unwrap().payload).unwrap();
        assert_eq!(v["created"], "2026-10-30T23:29:56+01:00");
        let summer = ["100", "A1", "Bolt", "", "20", "PCS", "FG", "20260630", "232956"];
        let v: Value = serde_json::from_str(&m.apply(&summer).unwrap().payload).unwrap();
        assert_eq!(v["created"], "2026-06-30T23:29:56+02:00");
        let pattern = m.field_json_schema(7)["pattern"].as_str().unwrap().to_string();
        assert!(pattern.ends_with("[+-][0-9]{2}:[0-9]{2}$"), "{pattern}");
        s.time_zone = Some("Europe/Stockholmm".into());
        assert_eq!(
            CompiledMapping::compile(&s, &mitmas()).unwrap_err().to_string(),
            "mapping `Item`: timeZone: expected `UTC`, an offset like `+01:00` or an IANA time zone like `Europe/Stockholm`, got \"Europe/Stockholmm\""
        );
    }

    #[test]
    fn datetime_options_are_validated_with_their_path() {
        let table = mitmas();
        let err = |f: FieldSpec| {
            let mut fields = default_item_mapping().fields;
            fields.push(f);
            CompiledMapping::compile(&spec(fields), &table).unwrap_err().to_string()
        };
        assert_eq!(
            err(FieldSpec {
                time_column: None,
                ..created()
            }),
            "mapping `Item`: fields[7].timeColumn: type datetime needs the HHmmss time column that goes with date column `MMRGDT`"
        );
        assert_eq!(
            err(FieldSpec {
                time_column: Some("MMRGTN".into()),
                ..created()
            }),
            "mapping `Item`: fields[7].timeColumn: table MITMAS has no column `MMRGTN`; did you mean `MMRGTM`?"
        );
        assert_eq!(
            err(FieldSpec {
                time_column: Some("MMLMDT".into()),
                ..created()
            }),
            "mapping `Item`: fields[7].timeColumn: expected a numeric HHmmss time column, got `MMLMDT` (Date)"
        );
        assert_eq!(
            err(FieldSpec { ty: None, ..created() }),
            "mapping `Item`: fields[7].timeColumn: only allowed with type datetime, the field is date"
        );
        assert_eq!(
            err(FieldSpec {
                column: "MMITCL".into(),
                ..created()
            }),
            "mapping `Item`: fields[7].type: column `MMITCL` is Alpha and cannot be mapped as datetime"
        );
    }

    #[test]
    fn a_time_column_that_is_also_mapped_is_not_selected_twice() {
        let mut fields = default_item_mapping().fields;
        fields.push(FieldSpec::new("MMRGTM", "createdTime"));
        fields.push(created());
        let mut s = spec(fields);
        s.filter = Some("MMRGTM > 0 and MMLMDT > 0".into());
        let m = CompiledMapping::compile(&s, &mitmas()).unwrap();
        assert_eq!(m.columns().len(), 10);
        assert_eq!(m.columns()[9], "MMLMDT");
        let row = ["1", "A", "", "", "", "", "", "93000", "20260101", "20260102"];
        assert!(m.matches(&row));
        let v: Value = serde_json::from_str(&m.apply(&row).unwrap().payload).unwrap();
        assert_eq!(v["created"], "2026-01-01T09:30:00Z");
        assert_eq!(v["createdTime"], 93000);
    }

    #[test]
    fn constants_follow_the_fields_and_are_validated() {
        let mut s = default_item_mapping();
        s.constants = [("source".to_string(), json!("m3")), ("version".to_string(), json!(2))].into();
        let m = CompiledMapping::compile(&s, &mitmas()).unwrap();
        let p = m.apply(&["1", "A", "", "", "", "", ""]).unwrap();
        assert!(
            p.payload.ends_with(r#""itemType":"","source":"m3","version":2}"#),
            "{}",
            p.payload
        );
        assert_eq!(m.deleted_payload(&p.key).unwrap(), r#"{"company":1,"itemNumber":"A"}"#);
        assert_eq!(m.constant_json_schema("source"), Some(json!({"const": "m3"})));
        assert_eq!(m.constants().len(), 2);
        s.constants = [("name".to_string(), json!("x"))].into();
        assert_eq!(
            CompiledMapping::compile(&s, &mitmas()).unwrap_err().to_string(),
            "mapping `Item`: constants.name: clashes with the field of the same name; expected a name no field uses"
        );
        s.constants = [("bad name".to_string(), json!("x"))].into();
        assert!(matches!(
            CompiledMapping::compile(&s, &mitmas()),
            Err(MappingError::BadConstantName { .. })
        ));
        // Auto-added key fields avoid constant names.
        s.fields.retain(|f| f.column != "MMCONO");
        s.constants = [("company".to_string(), json!("ACME"))].into();
        let m = CompiledMapping::compile(&s, &mitmas()).unwrap();
        assert_eq!(m.key_field_names(), vec!["company2", "itemNumber"]);
    }

    #[test]
    fn field_schemas_have_types_formats_and_descriptions() {
        let mut fields = default_item_mapping().fields;
        fields.push(FieldSpec::new("MMPUPR", "purchasePrice"));
        fields.push(FieldSpec::new("MMLMDT", "changed"));
        let m = CompiledMapping::compile(&spec(fields), &mitmas()).unwrap();
        assert_eq!(
            m.field_json_schema(0),
            json!({"type": "integer", "description": "Company"})
        );
        assert_eq!(
            m.field_json_schema(1),
            json!({"type": "string", "description": "Item number"})
        );
        assert_eq!(
            m.field_json_schema(7),
            json!({"type": "number", "description": "Purchase price"})
        );
        assert_eq!(
            m.field_json_schema(8),
            json!({"type": ["string", "null"], "format": "date", "description": "Change date"})
        );
    }

    #[test]
    fn missing_key_columns_are_added_in_key_order() {
        let mut s = default_item_mapping();
        s.fields.retain(|f| f.column != "MMCONO" && f.column != "MMITNO");
        let m = CompiledMapping::compile(&s, &mitmas()).unwrap();
        assert_eq!(m.columns()[..2], ["MMCONO".to_string(), "MMITNO".to_string()]);
        assert_eq!(m.key_field_names(), vec!["company", "itemNumber"]);
    }
}
