//! The time zone M3's dates and times are in. M3 stores local `yyyyMMdd` dates and `HHmmss`
//! times without an offset; a mapping says which zone they are in (`timeZone`, default `UTC`) so
//! that `datetime` fields become RFC 3339 date-times with an offset
//! (`2026-10-30T23:29:56Z`, `2026-10-30T23:29:56+01:00`), as `format: date-time` requires.

use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDate, Offset, TimeZone as _};

/// A time zone: UTC, a fixed offset (`+02:00`) or an IANA zone (`Europe/Stockholm`, with its
/// daylight-saving rules from the tz database compiled into the program).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeZone {
    /// UTC: values end in `Z`.
    #[default]
    Utc,
    /// A fixed offset east of UTC, in seconds (whole minutes, within ±23:59).
    Fixed(i32),
    /// An IANA zone.
    Named(chrono_tz::Tz),
}

/// A time zone that is neither `UTC`, `±HH:MM` nor an IANA zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `UTC`, an offset like `+01:00` or an IANA time zone like `Europe/Stockholm`, got {0:?}")]
pub struct TimeZoneError(pub String);

impl FromStr for TimeZone {
    type Err = TimeZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || TimeZoneError(s.to_string());
        match s {
            "UTC" | "Z" | "Etc/UTC" => return Ok(TimeZone::Utc),
            _ => {}
        }
        let b = s.as_bytes();
        if matches!(b.first(), Some(b'+' | b'-')) {
            let digits = |r: std::ops::Range<usize>| -> Option<i32> {
                let t = s.get(r)?;
                (t.len() == 2 && t.bytes().all(|c| c.is_ascii_digit())).then(|| t.parse().ok())?
            };
            if b.len() != 6 || b[3] != b':' {
                return Err(bad());
            }
            let (h, m) = (digits(1..3).ok_or_else(bad)?, digits(4..6).ok_or_else(bad)?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let secs = (h * 3600 + m * 60) * if b[0] == b'-' { -1 } else { 1 };
            return Ok(if secs == 0 {
                TimeZone::Utc
            } else {
                TimeZone::Fixed(secs)
            });
        }
        s.parse::<chrono_tz::Tz>().map(TimeZone::Named).map_err(|_| bad())
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeZone::Utc => f.write_str("UTC"),
            TimeZone::Fixed(secs) => {
                let mut s = String::new();
                push_offset(&mut s, *secs);
                f.write_str(&s)
            }
            TimeZone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

impl TimeZone {
    /// The UTC offset, in seconds, of the local date-time `date` (`yyyyMMdd` digits) at
    /// `h:m:s` in this zone. In a daylight-saving overlap the earlier (summer) offset is taken;
    /// in a gap (a local time that does not exist) the offset after the change.
    pub fn offset_at(&self, year: i32, month: u32, day: u32, h: u32, m: u32, s: u32) -> i32 {
        match self {
            TimeZone::Utc => 0,
            TimeZone::Fixed(secs) => *secs,
            TimeZone::Named(tz) => {
                let Some(naive) = NaiveDate::from_ymd_opt(year, month, day).and_then(|d| d.and_hms_opt(h, m, s)) else {
                    return 0;
                };
                match tz.from_local_datetime(&naive) {
                    chrono::LocalResult::Single(t) => t.offset().fix().local_minus_utc(),
                    chrono::LocalResult::Ambiguous(early, _) => early.offset().fix().local_minus_utc(),
                    chrono::LocalResult::None => tz.offset_from_utc_datetime(&naive).fix().local_minus_utc(),
                }
            }
        }
    }

    /// The regular expression of the offset part of values in this zone (for schemas).
    pub fn offset_pattern(&self) -> &'static str {
        match self {
            TimeZone::Utc => "Z",
            TimeZone::Fixed(_) | TimeZone::Named(_) => "[+-][0-9]{2}:[0-9]{2}",
        }
    }
}

/// Append an RFC 3339 offset: `Z` for 0, else `±HH:MM`.
pub fn push_offset(out: &mut String, secs: i32) {
    if secs == 0 {
        out.push('Z');
        return;
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs() / 60;
    let (h, m) = (a / 60, a % 60);
    out.push(sign);
    for n in [h, m] {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
        if n == h {
            out.push(':');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(s: &str) -> TimeZone {
        s.parse().unwrap()
    }

    #[test]
    fn zones_parse_and_print_back() {
        assert_eq!(z("UTC"), TimeZone::Utc);
        assert_eq!(z("+00:00"), TimeZone::Utc);
        assert_eq!(z("+01:30"), TimeZone::Fixed(5400));
        assert_eq!(z("-05:00"), TimeZone::Fixed(-18000));
        assert_eq!(z("-05:00").to_string(), "-05:00");
        assert_eq!(z("Europe/Stockholm").to_string(), "Europe/Stockholm");
        for bad in ["", "utc+1", "+1:00", "+24:00", "+01:60", "Mars/Olympus", "+01:0a"] {
            assert_eq!(bad.parse::<TimeZone>(), Err(TimeZoneError(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn named_zones_follow_daylight_saving() {
        let se = z("Europe/Stockholm");
        assert_eq!(se.offset_at(2026, 1, 15, 12, 0, 0), 3600);
        assert_eq!(se.offset_at(2026, 7, 15, 12, 0, 0), 7200);
        // 2026-10-25 02:30 happens twice in Stockholm: the earlier (summer) offset.
        assert_eq!(se.offset_at(2026, 10, 25, 2, 30, 0), 7200);
        // 2026-03-29 02:30 does not exist: the offset after the change.
        assert_eq!(se.offset_at(2026, 3, 29, 2, 30, 0), 7200);
        assert_eq!(z("-05:00").offset_at(2026, 7, 15, 12, 0, 0), -18000);
    }

    #[test]
    fn offsets_are_rfc3339() {
        let p = |secs| {
            let mut s = String::new();
            push_offset(&mut s, secs);
            s
        };
        assert_eq!(p(0), "Z");
        assert_eq!(p(3600), "+01:00");
        assert_eq!(p(-34200), "-09:30");
        assert_eq!(p(20700), "+05:45");
    }
}
