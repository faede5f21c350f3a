//! Conversions of M3's string values into JSON: trimmed strings, numbers, `yyyyMMdd` dates, booleans.
//! They write straight into the output buffer, since this is the hot path.

use crate::zone::{self, TimeZone};

/// Bytes that need escaping inside a JSON string: control characters, `"` and `\\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Append `s` as a JSON string literal. Runs without escapes are copied in one go.
pub fn write_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        out.push_str(&s[start..i]);
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Append an integer given as M3 text; blank means 0. `None` if it is not an integer that fits
/// an `i64`. Written without allocating: the digits are copied, leading zeros dropped.
pub fn write_integer(out: &mut String, raw: &str) -> Option<()> {
    let d = Decimal::parse(raw)?;
    if !d.frac.is_empty() {
        return None;
    }
    // i64 holds every 18-digit number; longer ones need checking.
    if d.int.len() > 18 {
        let mut s = String::with_capacity(d.int.len() + 1);
        if d.neg {
            s.push('-');
        }
        s.push_str(d.int);
        s.parse::<i64>().ok()?;
    }
    if d.int.is_empty() {
        out.push('0');
        return Some(());
    }
    if d.neg {
        out.push('-');
    }
    out.push_str(d.int);
    Some(())
}

/// A decimal number as M3 text, split and normalised without allocating: no leading zeros in
/// `int`, no trailing zeros in `frac`, and zero is never negative. Blank text is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal<'a> {
    /// Negative (never for zero).
    pub neg: bool,
    /// Integer digits without leading zeros (empty for zero).
    pub int: &'a str,
    /// Fraction digits without trailing zeros.
    pub frac: &'a str,
}

impl<'a> Decimal<'a> {
    /// Parse `[+-]digits[.digits]` (surrounding blanks allowed; blank is zero). `None` otherwise.
    pub fn parse(raw: &'a str) -> Option<Self> {
        let t = raw.trim_ascii();
        if t.is_empty() {
            return Some(Self {
                neg: false,
                int: "",
                frac: "",
            });
        }
        let (neg, digits) = match t.as_bytes()[0] {
            b'-' => (true, &t[1..]),
            b'+' => (false, &t[1..]),
            _ => (false, t),
        };
        let (int, frac) = match digits.find('.') {
            Some(i) => (&digits[..i], &digits[i + 1..]),
            None => (digits, ""),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        Some(Self {
            neg: neg && !(int.is_empty() && frac.is_empty()),
            int,
            frac,
        })
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }
}

impl Ord for Decimal<'_> {
    /// Exact numeric order.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self.neg, other.neg) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(other.int))
            .then_with(|| self.frac.cmp(other.frac));
        if self.neg {
            magnitude.reverse()
        } else {
            magnitude
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Decimal<'_> {
    /// The normalised text (`12.5`, `0`, `-3.1`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        if self.neg {
            f.write_str("-")?;
        }
        f.write_str(if self.int.is_empty() { "0" } else { self.int })?;
        if !self.frac.is_empty() {
            write!(f, ".{}", self.frac)?;
        }
        Ok(())
    }
}

/// Append a decimal given as M3 text, normalised (`0012.500000` -> `12.5`), as a JSON number
/// written exactly, without a round trip through floating point.
pub fn write_decimal(out: &mut String, raw: &str) -> Option<()> {
    let d = Decimal::parse(raw)?;
    if d.is_zero() {
        out.push('0');
        return Some(());
    }
    if d.neg {
        out.push('-');
    }
    out.push_str(if d.int.is_empty() { "0" } else { d.int });
    if !d.frac.is_empty() {
        out.push('.');
        out.push_str(d.frac);
    }
    Some(())
}

/// Append an M3 `yyyyMMdd` date as an ISO date string, or `null` for `0`/blank.
pub fn write_date(out: &mut String, raw: &str) -> Option<()> {
    let Some(t) = parse_date(raw)? else {
        out.push_str("null");
        return Some(());
    };
    out.push('"');
    push_date(out, t);
    out.push('"');
    Some(())
}

/// The 8 digits of a valid date, `Some(None)` for no date (`0`/blank), `None` if invalid.
fn parse_date(raw: &str) -> Option<Option<&str>> {
    let t = raw.trim_ascii();
    if t.is_empty() || t.bytes().all(|b| b == b'0') {
        return Some(None);
    }
    // M3 sometimes renders numbers with a zero fraction ("20261125.0").
    let t = match t.find('.') {
        Some(i) if t[i + 1..].bytes().all(|b| b == b'0') => &t[..i],
        Some(_) => return None,
        None => t,
    };
    let b = t.as_bytes();
    if b.len() != 8 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (year, month, day) = ymd(t);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(Some(t))
}

/// Year, month and day of 8 `yyyyMMdd` digits.
fn ymd(t: &str) -> (i32, u32, u32) {
    let n = |r: std::ops::Range<usize>| t.as_bytes()[r].iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
    (n(0..4) as i32, n(4..6), n(6..8))
}

/// Days in `month` of `year` (Gregorian: 2024-02 has 29, 2100-02 has 28).
fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn push_date(out: &mut String, t: &str) {
    out.push_str(&t[0..4]);
    out.push('-');
    out.push_str(&t[4..6]);
    out.push('-');
    out.push_str(&t[6..8]);
}

/// Append an M3 date (`yyyyMMdd`) and time (`HHmmss`, leading zeros optional: `93000` is
/// 09:30:00; blank is midnight), local to `zone`, as an RFC 3339 date-time string with the
/// zone's offset at that moment (`"2026-11-25T09:30:00Z"`, `"2026-11-25T09:30:00+01:00"`), or
/// `null` when the date is `0`/blank. `Err(true)` if the date is invalid (also 30 February),
/// `Err(false)` if the time is.
pub fn write_datetime(out: &mut String, date: &str, time: &str, zone: &TimeZone) -> Result<(), bool> {
    let Some(d) = parse_date(date).ok_or(true)? else {
        out.push_str("null");
        return Ok(());
    };
    let t = Decimal::parse(time).ok_or(false)?;
    if t.neg || !t.frac.is_empty() || t.int.len() > 6 {
        return Err(false);
    }
    let mut hms = [b'0'; 6];
    hms[6 - t.int.len()..].copy_from_slice(t.int.as_bytes());
    let two = |i: usize| (hms[i] - b'0') * 10 + (hms[i + 1] - b'0');
    if two(0) > 23 || two(2) > 59 || two(4) > 59 {
        return Err(false);
    }
    let hms = std::str::from_utf8(&hms).expect("ascii digits");
    out.push('"');
    push_date(out, d);
    out.push('T');
    out.push_str(&hms[0..2]);
    out.push(':');
    out.push_str(&hms[2..4]);
    out.push(':');
    out.push_str(&hms[4..6]);
    let (y, mo, d) = ymd(d);
    let n = |i: usize| u32::from(two(i));
    zone::push_offset(out, zone.offset_at(y, mo, d, n(0), n(2), n(4)));
    out.push('"');
    Ok(())
}

/// Append a boolean from M3's `1`/`0` (also `true`/`false`; blank is false).
pub fn write_boolean(out: &mut String, raw: &str) -> Option<()> {
    match raw.trim_ascii() {
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
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "a\"b\\c\nd\u{1}é");
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
        assert_eq!(run(write_date, "20261125").as_deref(), Some("\"2026-11-25\""));
        assert_eq!(run(write_date, "0").as_deref(), Some("null"));
        assert_eq!(run(write_date, "20261325"), None);
        // Calendar days only: `format: date` accepts no 30 February or 31 April.
        assert_eq!(run(write_date, "20260230"), None);
        assert_eq!(run(write_date, "20260431"), None);
        assert_eq!(run(write_date, "21000229"), None);
        assert_eq!(run(write_date, "20000229").as_deref(), Some("\"2000-02-29\""));
        assert_eq!(run(write_date, "20261231").as_deref(), Some("\"2026-12-31\""));
        assert_eq!(run(write_boolean, "1").as_deref(), Some("true"));
        assert_eq!(run(write_boolean, "2"), None);
        assert_eq!(run(write_integer, "-0").as_deref(), Some("0"));
        assert_eq!(run(write_integer, "  0042").as_deref(), Some("42"));
        assert_eq!(run(write_integer, "").as_deref(), Some("0"));
        assert_eq!(
            run(write_integer, "9223372036854775807").as_deref(),
            Some("9223372036854775807")
        );
        assert_eq!(run(write_integer, "9223372036854775808"), None);
        assert_eq!(run(write_integer, "12a"), None);
    }

    fn dt(date: &str, time: &str) -> Result<String, bool> {
        dtz(date, time, TimeZone::Utc)
    }

    fn dtz(date: &str, time: &str, zone: TimeZone) -> Result<String, bool> {
        let mut s = String::new();
        write_datetime(&mut s, date, time, &zone).map(|_| s)
    }

    #[test]
    fn datetimes_join_a_date_and_a_time_column() {
        assert_eq!(dt("20261125", "140307").unwrap(), "\"2026-11-25T14:03:07Z\"");
        assert_eq!(dt("20261125", "93000 ").unwrap(), "\"2026-11-25T09:30:00Z\"");
        assert_eq!(dt("20261125", "").unwrap(), "\"2026-11-25T00:00:00Z\"");
        let se: TimeZone = "Europe/Stockholm".parse().unwrap();
        assert_eq!(dtz("20261030", "232956", se).unwrap(), "\"2026-10-30T23:29:56+01:00\"");
        assert_eq!(dtz("20260630", "232956", se).unwrap(), "\"2026-06-30T23:29:56+02:00\"");
        assert_eq!(
            dtz("20260630", "0", TimeZone::Fixed(-16200)).unwrap(),
            "\"2026-06-30T00:00:00-04:30\""
        );
        assert_eq!(dt("20260229", "0"), Err(true));
        assert_eq!(dt("20280229", "0").unwrap(), "\"2028-02-29T00:00:00Z\"");
        assert_eq!(dt("0", "140307").unwrap(), "null");
        assert_eq!(dt("20261325", "0"), Err(true));
        assert_eq!(dt("20261125", "240000"), Err(false));
        assert_eq!(dt("20261125", "126000"), Err(false));
        assert_eq!(dt("20261125", "1234567"), Err(false));
    }

    #[test]
    fn decimals_compare_exactly() {
        let d = |s| Decimal::parse(s).unwrap();
        assert!(d("10.5") > d("10.49999999999999999999"));
        assert!(d("-2") < d("-1.5"));
        assert!(d("0.05") < d("0.5"));
        assert!(d("100") > d("99.999"));
        assert_eq!(d(" 010.50 "), d("10.5"));
        assert_eq!(d("-0.0"), d(""));
        assert_eq!(d("-0012.340").to_string(), "-12.34");
        assert_eq!(Decimal::parse("1e5"), None);
    }
}
