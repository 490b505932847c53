//! Cron schedules: parsing an expression (5 fields or a macro) and computing
//! its fire times on the wall clock of a time zone.
//!
//! - `fields`: standard cron grammar, checked field by field and rewritten
//!   into the part of saffron's grammar that saffron computes correctly;
//! - `wall_clock`: evaluation on local time and cronie's DST rules;
//! - `zone`: time zone names.
//!
//! The choice a reader would question: saffron does the calendar work (which
//! minutes match, including `L`, `W` and `#`) although cronq must fix its
//! weekday numbering and step around its bugs. The alternative, a calendar
//! engine of our own, is more code to get wrong than a rewrite in front of a
//! tested one; `fields` lists what saffron gets wrong and how it is avoided.
//!
//! Semantics, as in cronie unless noted:
//! - weekdays 0 and 7 are Sunday, 1 Monday; `5L` is the last Friday of the
//!   month, `5#2` the second Friday; `*/2` in day-of-week is Sunday, Tuesday,
//!   Thursday, Saturday;
//! - when both day-of-month and day-of-week are restricted, a day matching
//!   either fires (`0 0 1 * MON`: the 1st and every Monday). cronie treats a
//!   field *starting* with `*` (such as `*/2`) as unrestricted here; cronq,
//!   like saffron, treats only `*` itself so;
//! - `L` (last day), `LW` (last weekday), `L-n` (n days before the last),
//!   `nW` (the weekday nearest the nth, within the month) in day-of-month;
//! - reversed ranges (`22-2`) are refused, and an expression that can never
//!   fire (`0 0 31 2 *`) is refused at parse time.

mod error;
mod fields;
mod wall_clock;
mod zone;

#[cfg(test)]
mod dst_tests;
#[cfg(test)]
mod tests;

use std::fmt;

use chrono::{TimeZone as _, Utc};
use jiff::Timestamp;
use jiff::tz::TimeZone;

pub use error::{Bound, ScheduleError};
pub use zone::{default_timezone, parse_timezone, timezone_name};

use fields::Field;

/// A parsed cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    expr: String,
    cron: saffron::Cron,
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
    /// Parses a 5-field expression or a macro. Errors name the faulty field.
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let expr = expr.trim();
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
        let texts: Vec<&str> = expanded.split_whitespace().collect();
        let texts: [&str; 5] = texts
            .as_slice()
            .try_into()
            .map_err(|_| ScheduleError::FieldCount { got: texts.len() })?;

        let mut rewritten = Vec::with_capacity(texts.len());
        for (field, text) in Field::ALL.into_iter().zip(texts) {
            rewritten.push(fields::rewrite(field, text)?);
        }
        let cron = parse_rewritten(&rewritten, &texts)?;
        if !fires_at_all(&cron) {
            return Err(ScheduleError::NeverFires {
                expr: expr.to_string(),
            });
        }
        Ok(Schedule {
            expr: expr.to_string(),
            cron,
            fixed_time: fields::is_fixed_time(texts[0], texts[1]),
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
            wall_clock::next_fixed(&self.cron, after, tz)
        } else {
            wall_clock::next_elapsed(&self.cron, after, tz)
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

/// Hands the rewritten fields to saffron. Its error says nothing, so on
/// failure each field is tried alone to name the culprit; `fields` should
/// have refused anything saffron refuses, so this is a safety net.
fn parse_rewritten(
    rewritten: &[String],
    texts: &[&str; 5],
) -> Result<saffron::Cron, ScheduleError> {
    if let Ok(cron) = rewritten.join(" ").parse::<saffron::Cron>() {
        return Ok(cron);
    }
    let culprit = Field::ALL
        .into_iter()
        .enumerate()
        .find(|&(i, _)| {
            let mut probe = ["*"; 5].map(String::from);
            probe[i] = rewritten[i].clone();
            probe.join(" ").parse::<saffron::Cron>().is_err()
        })
        .unwrap_or((4, Field::DayOfWeek));
    let (index, field) = culprit;
    Err(ScheduleError::InvalidField {
        field: field.name(),
        text: texts[index].to_string(),
        hint: None,
    })
}

/// Whether the expression matches any minute at all. The Gregorian calendar
/// repeats every 400 years and every field is a function of the calendar, so
/// a cron that fires fires within any 400-year window. saffron's `any()`
/// catches the common cases (`31 2`) cheaply; the search catches the rest
/// (`31W 2`), and ends at the end of chrono's calendar if nothing matches.
fn fires_at_all(cron: &saffron::Cron) -> bool {
    if !cron.any() {
        return false;
    }
    let (Some(start), Some(end)) = (
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 0).single(),
        Utc.with_ymd_and_hms(2400, 1, 1, 0, 0, 0).single(),
    ) else {
        return false;
    };
    matches!(cron.next_after(start), Some(at) if at < end)
}
