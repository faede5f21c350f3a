//! Cron schedules (five fields: minute hour day-of-month month day-of-week, in UTC) for the
//! periodic full re-sync, parsed and evaluated by the `croner` crate. The syntax is POSIX cron's:
//! `*`, numbers, lists `a,b`, ranges `a-b` and steps `*/n`, `a-b/n`, `a/n`; 0 and 7 are Sunday; when
//! day-of-month and day-of-week are both restricted, either matching is enough. A schedule that can
//! never fire (`0 0 30 2 *`, 30 February) is refused, naming the fields.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed cron schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    source: String,
    cron: Cron,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Schedule {}

/// Why a cron expression cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cron schedule {expression:?}: {message}")]
pub struct ScheduleError {
    /// The expression.
    pub expression: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// The fields in order, as errors name them, with their bounds.
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

/// Five fields, no seconds, no years; day-of-month OR day-of-week as POSIX cron.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(false)
        .build()
}

impl Schedule {
    /// Parse `m h dom mon dow`, e.g. `30 2 * * *` (02:30 every night).
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let err = |message: String| ScheduleError {
            expression: expr.to_string(),
            message,
        };
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                parts.len()
            )));
        }
        let parser = parser();
        // `*` inside a list (`*,5`) is the whole range; croner takes it alone only.
        let fields: Vec<String> = parts
            .iter()
            .zip(FIELDS)
            .map(|(part, (_, lo, hi))| match part.contains(',') {
                true => part
                    .split(',')
                    .map(|item| {
                        if item == "*" {
                            format!("{lo}-{hi}")
                        } else {
                            item.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                false => part.to_string(),
            })
            .collect();
        // Each field alone (the others `*`), so that an error names its field; croner's own
        // extensions (L, W, #, names, @nicknames) are kept out: the documented syntax is POSIX's.
        for (i, (part, (name, _, _))) in parts.iter().zip(FIELDS).enumerate() {
            let field_err = |m: &dyn std::fmt::Display| err(format!("{name} field {part:?}: {m}"));
            if let Some(bad) = part.chars().find(|c| !matches!(c, '0'..='9' | '*' | ',' | '/' | '-')) {
                return Err(field_err(&format_args!(
                    "unexpected {bad:?} (expected numbers, `*`, `,`, `-` and `/`)"
                )));
            }
            if part.split(',').any(str::is_empty) {
                return Err(field_err(&"empty list item"));
            }
            let mut alone = ["*"; 5];
            alone[i] = &fields[i];
            parser.parse(&alone.join(" ")).map_err(|e| field_err(&e))?;
        }
        let cron = parser.parse(&fields.join(" ")).map_err(|e| err(e.to_string()))?;
        let dates = parser
            .parse(&format!("0 0 {} {} {}", fields[2], fields[3], fields[4]))
            .map_err(|e| err(e.to_string()))?;
        if !possible(&dates) {
            return Err(err(format!(
                "day of month field {:?} and month field {:?}: no such date, the schedule never fires",
                parts[2], parts[3]
            )));
        }
        Ok(Schedule {
            source: expr.to_string(),
            cron,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first matching minute strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }
}

/// Whether `dates` (a schedule at midnight) matches some day of a leap year: every month-day and
/// every weekday occurs in one.
fn possible(dates: &Cron) -> bool {
    let mut day = NaiveDate::from_ymd_opt(2028, 1, 1).expect("a date");
    while day.year() == 2028 {
        let midnight = Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight"));
        if dates.is_time_matching(&midnight).unwrap_or(false) {
            return true;
        }
        day = day.succ_opt().expect("next day");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn nightly_and_stepped_schedules() {
        let s = Schedule::parse("30 2 * * *").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 17, 0)), Some(at(2026, 11, 26, 2, 30)));
        assert_eq!(s.next_after(at(2026, 11, 26, 2, 30)), Some(at(2026, 11, 27, 2, 30)));
        let s = Schedule::parse("*/15 * * * *").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 17, 1)), Some(at(2026, 11, 25, 17, 15)));
        // Sundays at 04:00 (7 and 0 both mean Sunday); 2026-11-29 is a Sunday.
        for dow in ["7", "0"] {
            let s = Schedule::parse(&format!("0 4 * * {dow}")).unwrap();
            assert_eq!(s.next_after(at(2026, 11, 25, 0, 0)), Some(at(2026, 11, 29, 4, 0)));
        }
        // Day of month and day of week both restricted: either is enough (POSIX). 2026-11-30 is
        // a Monday, the 1st of December a Tuesday.
        let s = Schedule::parse("0 0 1,15 * 1").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 0, 0)), Some(at(2026, 11, 30, 0, 0)));
        assert_eq!(s.next_after(at(2026, 11, 30, 0, 0)), Some(at(2026, 12, 1, 0, 0)));
        // 29 February exists in leap years only.
        let s = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 0, 0)), Some(at(2028, 2, 29, 0, 0)));
    }

    #[test]
    fn bad_expressions_name_the_field() {
        let e = Schedule::parse("61 * * * *").unwrap_err();
        assert!(e.message.starts_with("minute field \"61\": "), "{e}");
        let e = Schedule::parse("0 2 * *").unwrap_err();
        assert!(e.to_string().contains("expected 5 fields"), "{e}");
        let e = Schedule::parse("0 */0 * * *").unwrap_err();
        assert!(e.message.starts_with("hour field \"*/0\": "), "{e}");
        let e = Schedule::parse("0 0 1,,2 * *").unwrap_err();
        assert!(
            e.message.starts_with("day of month field \"1,,2\": empty list item"),
            "{e}"
        );
        let e = Schedule::parse("0 0 * JAN *").unwrap_err();
        assert!(e.message.starts_with("month field \"JAN\": unexpected 'J'"), "{e}");
        let e = Schedule::parse("0 0 * * 5-1").unwrap_err();
        assert!(e.message.starts_with("day of week field \"5-1\": "), "{e}");
    }

    #[test]
    fn impossible_dates_are_refused_naming_the_fields() {
        for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30-31 2 *"] {
            let e = Schedule::parse(expr).unwrap_err();
            assert!(
                e.message.starts_with("day of month field")
                    && e.message.contains("month field")
                    && e.message.contains("never fires"),
                "{expr}: {e}"
            );
        }
        // Possible once a month of them has the day; or through the day of week (either matches).
        Schedule::parse("0 0 31 2,3 *").unwrap();
        Schedule::parse("0 0 30 2 1").unwrap();
        // `*` in a list is the whole range.
        let s = Schedule::parse("*,5 0 * * *").unwrap();
        assert_eq!(s.next_after(at(2026, 11, 25, 0, 0)), Some(at(2026, 11, 25, 0, 1)));
    }
}
