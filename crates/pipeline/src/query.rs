//! Builds the `EXPORTMI/Select` queries of the sources: key-ordered pages for the initial load and
//! key reconciliation, and `(timestamp, key)`-ordered pages for polling.

use mapping::catalog::{ColumnKind, Table};

/// A column and the value a keyset condition compares it with.
fn literal(table: &Table, column: &str, value: &str) -> String {
    match table.column(column).map(|c| c.kind) {
        Some(ColumnKind::Numeric | ColumnKind::Date) if is_number(value) => value.to_string(),
        _ => format!("'{}'", value.replace('\'', "''")),
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

/// `(c1 > v1) or (c1 = v1 and c2 > v2) or ...`: rows strictly after `after` in `columns` order.
pub fn after_condition(table: &Table, columns: &[String], after: &[String]) -> String {
    let mut alternatives = Vec::with_capacity(columns.len());
    for i in 0..columns.len().min(after.len()) {
        let mut parts: Vec<String> = (0..i)
            .map(|j| format!("{} = {}", columns[j], literal(table, &columns[j], &after[j])))
            .collect();
        parts.push(format!("{} > {}", columns[i], literal(table, &columns[i], &after[i])));
        alternatives.push(format!("({})", parts.join(" and ")));
    }
    alternatives.join(" or ")
}

/// `c1 = v1 and c2 = v2 ...`: the row with this key.
pub fn equals_condition(table: &Table, columns: &[String], values: &[String]) -> String {
    columns
        .iter()
        .zip(values)
        .map(|(c, v)| format!("{c} = {}", literal(table, c, v.trim())))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// `select` columns from `table` ordered by `order`, strictly after `after` (if given), with an
/// optional extra condition.
pub fn paged_select(
    table: &Table,
    select: &[String],
    order: &[String],
    after: Option<&[String]>,
    extra: Option<&str>,
) -> String {
    let mut conds = Vec::new();
    if let Some(extra) = extra {
        conds.push(format!("({extra})"));
    }
    if let Some(after) = after {
        conds.push(format!("({})", after_condition(table, order, after)));
    }
    let mut q = format!("{} from {}", select.join(", "), table.name);
    if !conds.is_empty() {
        q.push_str(" where ");
        q.push_str(&conds.join(" and "));
    }
    q.push_str(" order by ");
    q.push_str(&order.join(", "));
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapping::catalog::standard_table;

    #[test]
    fn keyset_conditions_quote_alpha_and_not_numeric_columns() {
        let t = standard_table("MITMAS").unwrap();
        let cols = vec!["MMLMTS".to_string(), "MMCONO".to_string(), "MMITNO".to_string()];
        let q = paged_select(
            &t,
            &["MMITNO".into()],
            &cols,
            Some(&["1700".into(), "100".into(), "O'Neil".into()]),
            Some("MMLMTS >= 1690"),
        );
        assert_eq!(
            q,
            "MMITNO from MITMAS where (MMLMTS >= 1690) and ((MMLMTS > 1700) or (MMLMTS = 1700 and MMCONO > 100) or (MMLMTS = 1700 and MMCONO = 100 and MMITNO > 'O''Neil')) order by MMLMTS, MMCONO, MMITNO"
        );
        assert_eq!(
            paged_select(&t, &["MMITNO".into()], &["MMITNO".into()], None, None),
            "MMITNO from MITMAS order by MMITNO"
        );
    }
}
