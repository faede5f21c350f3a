//! Conversions of M3's string values into JSON: trimmed strings, numbers, `yyyyMMdd` dates, booleans.
//! They write straight into the output buffer, since this is the hot path.

/// Append `s` as a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Append an integer given as M3 text; blank means 0. `None` if it is not an integer.
pub fn write_integer(out: &mut String, raw: &str) -> Option<()> {
    let t = raw.trim();
    if t.is_empty() {
        out.push('0');
        return Some(());
    }
    // M3 sometimes renders integers with a zero fraction ("100.0").
    let t = match t.split_once('.') {
        Some((int, frac)) if frac.bytes().all(|b| b == b'0') => int,
        Some(_) => return None,
        None => t,
    };
    let v: i64 = t.parse().ok()?;
    out.push_str(itoa_buf(v).as_str());
    Some(())
}

fn itoa_buf(v: i64) -> String {
    v.to_string()
}

/// Append a decimal given as M3 text, normalised (`0012.500000` -> `12.5`), as a JSON number
/// written exactly, without a round trip through floating point.
pub fn write_decimal(out: &mut String, raw: &str) -> Option<()> {
    let t = raw.trim();
    if t.is_empty() {
        out.push('0');
        return Some(());
    }
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    if int.is_empty() && frac.is_empty() {
        out.push('0');
        return Some(());
    }
    if neg {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(())
}

/// Append an M3 `yyyyMMdd` date as an ISO date string, or `null` for `0`/blank.
pub fn write_date(out: &mut String, raw: &str) -> Option<()> {
    let t = raw.trim();
    if t.is_empty() || t.bytes().all(|b| b == b'0') {
        out.push_str("null");
        return Some(());
    }
    let b = t.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let month = (b[4] - b'0') * 10 + (b[5] - b'0');
    let day = (b[6] - b'0') * 10 + (b[7] - b'0');
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    out.push('"');
    out.push_str(&t[0..4]);
    out.push('-');
    out.push_str(&t[4..6]);
    out.push('-');
    out.push_str(&t[6..8]);
    out.push('"');
    Some(())
}

/// Append a boolean from M3's `1`/`0` (also `true`/`false`; blank is false).
pub fn write_boolean(out: &mut String, raw: &str) -> Option<()> {
    match raw.trim() {
        "1" | "true" | "TRUE" => out.push_str("true"),
        "0" | "" | "false" | "FALSE" => out.push_str("false"),
        _ => return None,
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: fn(&mut String, &str) -> Option<()>, raw: &str) -> Option<String> {
        let mut s = String::new();
        f(&mut s, raw).map(|_| s)
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        write_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "a\"b\\c\nd\u{1}é"
        );
    }

    #[test]
    fn decimals_are_normalised_exactly() {
        assert_eq!(run(write_decimal, "  0012.500000").as_deref(), Some("12.5"));
        assert_eq!(run(write_decimal, "-0.000").as_deref(), Some("0"));
        assert_eq!(run(write_decimal, "-3.10").as_deref(), Some("-3.1"));
        assert_eq!(run(write_decimal, ".5").as_deref(), Some("0.5"));
        assert_eq!(run(write_decimal, "1,5"), None);
        assert_eq!(run(write_decimal, "-"), None);
    }

    #[test]
    fn integers_dates_and_booleans() {
        assert_eq!(run(write_integer, "100 ").as_deref(), Some("100"));
        assert_eq!(run(write_integer, "100.00").as_deref(), Some("100"));
        assert_eq!(run(write_integer, "1.5"), None);
        assert_eq!(
            run(write_date, "20261125").as_deref(),
            Some("\"2026-11-25\"")
        );
        assert_eq!(run(write_date, "0").as_deref(), Some("null"));
        assert_eq!(run(write_date, "20261325"), None);
        assert_eq!(run(write_boolean, "1").as_deref(), Some("true"));
        assert_eq!(run(write_boolean, "2"), None);
    }
}
