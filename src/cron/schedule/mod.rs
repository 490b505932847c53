//! Cron schedules: parsing an expression (5 fields or a macro) and computing
//! its fire times on the wall clock of a time zone.
//!
//! - `fields`: standard cron grammar, checked field by field into sets;
//! - `pattern`: which civil minutes the sets match, and the search for the
//!   next one;
//! - `wall_clock`: evaluation on local time and cronie's DST rules;
//! - `zone`: time zone names.
//!
//! Semantics, as in cronie, so that a crontab moved from cronie fires on the
//! same minutes (`tests/cron_croniter.rs` checks this against croniter):
//! - fields are separated by spaces and tabs only; any other whitespace
//!   (a no-break space pasted from a web page) is refused, naming it;
//! - weekdays 0 and 7 are Sunday, 1 Monday; `*/2` in day-of-week is Sunday,
//!   Tuesday, Thursday, Saturday;
//! - the two day fields: when either one's text starts with `*` (so `*/2`
//!   counts), a day must match both; only when both are restricted does
//!   either suffice (`0 0 1 * MON`: the 1st and every Monday; `0 0 */2 * MON`:
//!   Mondays with an odd date);
//! - and, from Quartz, where cronie has nothing: `L` (last day), `LW` (last
//!   weekday), `L-n` (n days before the last), `nW` (the weekday nearest the
//!   nth, n clamped to the month's last day, never leaving the month: `1W` on
//!   a Saturday the 1st is Monday the 3rd, `31W` on a Sunday the 31st is
//!   Friday the 29th, `31W` in June 2027 Wednesday the 30th) in day-of-month;
//!   `5L` (the last Friday) and `5#2` (the second Friday) in day-of-week;
//! - reversed ranges (`22-2`) are refused, and an expression that can never
//!   fire (`0 0 31 2 *`) is refused at parse time.

mod error;
mod fields;
mod pattern;
mod wall_clock;
mod zone;

#[cfg(test)]
mod dst_tests;
#[cfg(test)]
mod tests;

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use error::{Bound, ScheduleError};
pub use zone::{default_timezone, parse_timezone, timezone_name};

use pattern::{DayRule, Pattern};

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    pattern: Pattern,
    /// Minute and hour are plain values: DST gaps and folds are resolved to
    /// one run per day (see `wall_clock`).
    fixed_time: bool,
}

/// The macros and the expressions they stand for (cronie's, minus
/// `@reboot`: cronq fires on time only).
const MACROS: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

impl Schedule {
    /// Parses a 5-field expression or a macro. Errors name the faulty field,
    /// or the character that is not a space or tab between fields.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let expr = expr.trim_matches(|c: char| c.is_ascii_whitespace());
        if let Some(c) = expr.chars().find(|&c| is_bad_separator(c)) {
            return Err(ScheduleError::Separator {
                name: separator_name(c),
                code: u32::from(c),
            });
        }
        let expanded = if expr.starts_with('@') {
            MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(expr))
                .map(|(_, fields)| *fields)
                .ok_or_else(|| ScheduleError::UnknownMacro {
                    text: expr.to_string(),
                })?
        } else {
            expr
        };
        let texts: Vec<&str> = expanded
            .split([' ', '\t'])
            .filter(|text| !text.is_empty())
            .collect();
        let [minute, hour, dom, month, dow]: [&str; 5] = texts
            .as_slice()
            .try_into()
            .map_err(|_| ScheduleError::FieldCount { got: texts.len() })?;

        let pattern = Pattern {
            minutes: fields::values(fields::Field::Minute, minute)?,
            hours: fields::values(fields::Field::Hour, hour)? as u32,
            dom: fields::day_of_month(dom)?,
            months: fields::values(fields::Field::Month, month)? as u16,
            dow: fields::day_of_week(dow)?,
            rule: if fields::starts_with_star(dom) || fields::starts_with_star(dow) {
                DayRule::Both
            } else {
                DayRule::Either
            },
        };
        if !pattern.fires_at_all() {
            return Err(ScheduleError::NeverFires {
                expr: expr.to_string(),
            });
        }
        Ok(Schedule {
            expr: expr.to_string(),
            pattern,
            fixed_time: fields::is_fixed_time(minute, hour),
        })
    }

    /// The text as the user wrote it (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first fire time strictly after `after`, evaluated on wall-clock
    /// time in `tz`. `None` only past the end of the supported calendar
    /// (year 9999).
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if self.fixed_time {
            wall_clock::next_fixed(&self.pattern, after, tz)
        } else {
            wall_clock::next_elapsed(&self.pattern, after, tz)
        }
    }

    /// The next `count` fire times strictly after `after` (fewer if it stops
    /// firing).
    pub fn upcoming(&self, after: Timestamp, tz: &TimeZone, count: usize) -> Vec<Timestamp> {
        // Capped so that a silly count cannot reserve memory up front.
        let mut times = Vec::with_capacity(count.min(128));
        let mut from = after;
        while times.len() < count {
            match self.next_after(from, tz) {
                Some(at) => {
                    times.push(at);
                    from = at;
                }
                None => break,
            }
        }
        times
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

/// Whether `c` may not appear in an expression although it may look like
/// a blank: whitespace other than space and tab (no-break spaces, line
/// breaks), control characters, and the zero-width characters that word
/// processors insert. Other characters reach the field checks, whose errors
/// quote them.
fn is_bad_separator(c: char) -> bool {
    c != ' '
        && c != '\t'
        && (c.is_whitespace()
            || c.is_control()
            || matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'))
}

/// What to call a refused separator in an error (its code point follows).
fn separator_name(c: char) -> &'static str {
    match c {
        '\u{A0}' => "a no-break space",
        '\u{202F}' => "a narrow no-break space",
        '\u{2007}' => "a figure space",
        '\u{3000}' => "an ideographic space",
        '\u{2000}'..='\u{200A}' => "a typographic space",
        '\n' => "a line feed",
        '\r' => "a carriage return",
        '\u{B}' => "a vertical tab",
        '\u{C}' => "a form feed",
        '\u{85}' | '\u{2028}' | '\u{2029}' => "a line separator",
        '\u{200B}' => "a zero-width space",
        '\u{FEFF}' => "a byte order mark",
        c if c.is_whitespace() => "a Unicode space",
        c if c.is_control() => "a control character",
        _ => "an invisible character",
    }
}
