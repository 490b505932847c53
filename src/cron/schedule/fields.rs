//! The five fields of a cron expression: standard cron in, saffron's dialect
//! out. Each field is checked on its own against the grammar cronq documents,
//! so an error names the field and says what is wrong with it, and is then
//! rewritten into text that saffron 0.1 parses *and computes correctly*.
//!
//! The choice a reader would question: why parse the fields here at all when
//! saffron parses them? Because saffron's grammar is Quartz's, not cron's, and
//! parts of it compute wrong answers:
//!
//! - weekdays are numbered 1 = Sunday .. 7 = Saturday and 0 is refused, so
//!   `0 9 * * 1` would fire on Sundays; a bare `L` in the day-of-week field
//!   means Saturday, `5L` the last Thursday, `5#2` the second Thursday;
//! - reversed ("wrapping") ranges such as `22-2` or `NOV-FEB` pick up one
//!   value too many (21, OCT), and wrapping steps such as `28-3/2` or
//!   `FRI-MON/2` trip a debug assertion (a panic in debug builds);
//! - `L-3W` subtracts past zero on Mondays (another debug-build panic);
//! - `*` inside a list means the field's first value (`5,*` is 0 and 5);
//! - `L` and `W` are recognised in capitals only.
//!
//! So numeric weekdays become names (`1-5` is `MON,TUE,WED,THU,FRI`), `*` in a
//! list becomes the full range, reversed ranges and `L-nW` are refused with a
//! message, and everything is upper-cased. What saffron then sees is a subset
//! of its grammar whose meaning is the same in cron and in Quartz.

use super::error::{Bound, ScheduleError};

/// One of the five fields, in the order they are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Field {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Field {
    pub(super) const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
        }
    }

    fn min(self) -> u32 {
        match self {
            Field::Minute | Field::Hour | Field::DayOfWeek => 0,
            Field::DayOfMonth | Field::Month => 1,
        }
    }

    /// The largest value one may write; for weekdays 7, Sunday's second name.
    fn max(self) -> u32 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 31,
            Field::Month => 12,
            Field::DayOfWeek => 7,
        }
    }

    /// Where `*` and `N/step` end. For weekdays Saturday: 7 is only an alias,
    /// so `*/2` is Sunday, Tuesday, Thursday, Saturday, as in cronie.
    fn last(self) -> u32 {
        match self {
            Field::DayOfWeek => 6,
            other => other.max(),
        }
    }

    fn range_text(self) -> &'static str {
        match self {
            Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12",
            Field::DayOfWeek => "0-7",
        }
    }

    /// saffron's limits on a step: one less than the number of values.
    fn max_step(self) -> u32 {
        match self {
            Field::Minute => 59,
            Field::Hour => 23,
            Field::DayOfMonth => 30,
            Field::Month => 11,
            Field::DayOfWeek => 6,
        }
    }

    fn step_range_text(self) -> &'static str {
        match self {
            Field::Minute => "1-59",
            Field::Hour => "1-23",
            Field::DayOfMonth => "1-30",
            Field::Month => "1-11",
            Field::DayOfWeek => "1-6",
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            Field::Month => &MONTH_NAMES,
            Field::DayOfWeek => &WEEKDAY_NAMES,
            _ => &[],
        }
    }
}

/// Checks one field as the user wrote it and returns it in saffron's syntax.
pub(super) fn rewrite(field: Field, text: &str) -> Result<String, ScheduleError> {
    let cx = Cx { field, text };
    let upper = text.to_ascii_uppercase();
    if upper.contains('?') {
        return Err(cx.invalid(Some("cron has no \"?\"; write * instead")));
    }
    match field {
        Field::DayOfMonth => rewrite_day_of_month(&cx, &upper),
        Field::DayOfWeek => rewrite_day_of_week(&cx, &upper),
        Field::Minute | Field::Hour | Field::Month => {
            Ok(render_list(field, &parse_list(&cx, &upper)?))
        }
    }
}

/// A field whose minute or hour is a plain value, list or range runs at that
/// wall-clock time whatever DST does; `*` or a step follows elapsed time.
pub(super) fn is_fixed_time(minute: &str, hour: &str) -> bool {
    let plain = |text: &str| !text.contains(['*', '/']);
    plain(minute) && plain(hour)
}

const DOM_STANDALONE: &str = "L and W forms stand alone in the day-of-month field";
const DOW_STANDALONE: &str = "L and # forms stand alone in the day-of-week field";

fn rewrite_day_of_month(cx: &Cx, upper: &str) -> Result<String, ScheduleError> {
    if upper == "L" || upper == "LW" {
        return Ok(upper.to_string());
    }
    if let Some(offset) = upper.strip_prefix("L-") {
        if offset.ends_with('W') {
            return Err(cx.invalid(Some("L-nW is not supported; use L-n or LW")));
        }
        let offset = cx.number(offset, 1, 30, Bound::Offset, "1-30")?;
        return Ok(format!("L-{offset}"));
    }
    if upper.contains(',') && upper.contains(['L', 'W']) {
        return Err(cx.invalid(Some(DOM_STANDALONE)));
    }
    if let Some(day) = upper.strip_suffix('W') {
        if !day.is_empty() && day.bytes().all(|b| b.is_ascii_digit()) {
            let day = cx.number(day, 1, 31, Bound::Value, "1-31")?;
            return Ok(format!("{day}W"));
        }
        return Err(cx.invalid(Some(DOM_STANDALONE)));
    }
    if upper.contains('L') {
        return Err(cx.invalid(Some(DOM_STANDALONE)));
    }
    Ok(render_list(Field::DayOfMonth, &parse_list(cx, upper)?))
}

fn rewrite_day_of_week(cx: &Cx, upper: &str) -> Result<String, ScheduleError> {
    if upper == "L" {
        return Err(cx.invalid(Some(
            "a lone L is not a day; write 6 or SAT for Saturday, or 5L for the last Friday of the month",
        )));
    }
    if upper.contains(',') && upper.contains(['L', '#']) {
        return Err(cx.invalid(Some(DOW_STANDALONE)));
    }
    if let Some((day, nth)) = upper.split_once('#') {
        let day = cx.value(day)? % 7;
        let nth = cx.number(nth, 1, 5, Bound::Occurrence, "1-5")?;
        return Ok(format!("{}#{nth}", weekday_name(day)));
    }
    if let Some(day) = upper.strip_suffix('L') {
        let day = cx.value(day)? % 7;
        return Ok(format!("{}L", weekday_name(day)));
    }
    if upper.contains('L') {
        return Err(cx.invalid(Some(DOW_STANDALONE)));
    }
    let items = parse_list(cx, upper)?;
    if items == [Item::All] {
        // `*` must stay `*`: saffron, like cron, ORs the two day fields only
        // when neither is `*`.
        return Ok("*".to_string());
    }
    let mut days = [false; 7];
    for item in &items {
        for value in item.values(Field::DayOfWeek) {
            days[(value % 7) as usize] = true;
        }
    }
    let names: Vec<&str> = WEEKDAY_NAMES
        .iter()
        .zip(days)
        .filter_map(|(name, on)| on.then_some(*name))
        .collect();
    Ok(names.join(","))
}

fn weekday_name(day: u32) -> &'static str {
    WEEKDAY_NAMES[(day % 7) as usize]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Item {
    All,
    Value(u32),
    Range(u32, u32),
    Step { start: u32, end: u32, step: u32 },
}

impl Item {
    fn values(self, field: Field) -> impl Iterator<Item = u32> {
        let (start, end, step) = match self {
            Item::All => (field.min(), field.last(), 1),
            Item::Value(v) => (v, v, 1),
            Item::Range(a, b) => (a, b, 1),
            Item::Step { start, end, step } => (start, end, step),
        };
        (start..=end).step_by(step.max(1) as usize)
    }
}

fn parse_list(cx: &Cx, upper: &str) -> Result<Vec<Item>, ScheduleError> {
    upper.split(',').map(|item| parse_item(cx, item)).collect()
}

fn parse_item(cx: &Cx, item: &str) -> Result<Item, ScheduleError> {
    let field = cx.field;
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(cx.step(step)?)),
        None => (item, None),
    };
    if base == "*" {
        return Ok(match step {
            Some(step) => Item::Step {
                start: field.min(),
                end: field.last(),
                step,
            },
            None => Item::All,
        });
    }
    let (start, end) = match base.split_once('-') {
        Some((a, b)) => {
            let a = cx.value(a)?;
            let mut b = cx.value(b)?;
            if field == Field::DayOfWeek && b == 0 && a > 0 {
                // FRI-SUN: Sunday closes the week.
                b = 7;
            }
            (a, Some(b))
        }
        None => (cx.value(base)?, None),
    };
    let item = match (end, step) {
        (None, None) => Item::Value(start),
        (Some(end), None) => Item::Range(start, end),
        (end, Some(step)) => Item::Step {
            start,
            end: end.unwrap_or(field.last()),
            step,
        },
    };
    match item {
        Item::Range(a, b)
        | Item::Step {
            start: a, end: b, ..
        } if a > b => Err(cx.invalid(Some(
            "a range must run from low to high (write 22-23,0-2, not 22-2)",
        ))),
        item => Ok(item),
    }
}

/// saffron's text for a list; only `*` alone stays `*`.
fn render_list(field: Field, items: &[Item]) -> String {
    if items == [Item::All] {
        return "*".to_string();
    }
    let parts: Vec<String> = items
        .iter()
        .map(|item| match *item {
            Item::All => format!("{}-{}", field.min(), field.last()),
            Item::Value(v) => v.to_string(),
            Item::Range(a, b) => format!("{a}-{b}"),
            Item::Step { start, end, step } => format!("{start}-{end}/{step}"),
        })
        .collect();
    parts.join(",")
}

/// The field being checked, for building errors that quote it.
struct Cx<'a> {
    field: Field,
    text: &'a str,
}

impl Cx<'_> {
    fn invalid(&self, hint: Option<&'static str>) -> ScheduleError {
        ScheduleError::InvalidField {
            field: self.field.name(),
            text: self.text.to_string(),
            hint,
        }
    }

    fn out_of_range(&self, bound: Bound, range: &'static str) -> ScheduleError {
        ScheduleError::OutOfRange {
            field: self.field.name(),
            text: self.text.to_string(),
            bound,
            range,
        }
    }

    /// A number or, in the month and day-of-week fields, a three-letter name.
    fn value(&self, token: &str) -> Result<u32, ScheduleError> {
        let field = self.field;
        if let Some(index) = field.names().iter().position(|name| *name == token) {
            // Months count from 1, weekdays from 0 (Sunday).
            return Ok(index as u32 + field.min());
        }
        self.number(
            token,
            field.min(),
            field.max(),
            Bound::Value,
            field.range_text(),
        )
    }

    fn step(&self, token: &str) -> Result<u32, ScheduleError> {
        let field = self.field;
        self.number(
            token,
            1,
            field.max_step(),
            Bound::Step,
            field.step_range_text(),
        )
    }

    fn number(
        &self,
        token: &str,
        min: u32,
        max: u32,
        bound: Bound,
        range: &'static str,
    ) -> Result<u32, ScheduleError> {
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.invalid(None));
        }
        // Too many digits for a u32 is out of range too, not a different error.
        let value = token.parse::<u32>().unwrap_or(u32::MAX);
        if value < min || value > max {
            return Err(self.out_of_range(bound, range));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(field: Field, text: &str) -> String {
        match rewrite(field, text) {
            Ok(out) => out,
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    fn err(field: Field, text: &str) -> String {
        match rewrite(field, text) {
            Ok(out) => panic!("{text:?} accepted as {out:?}"),
            Err(e) => {
                assert_eq!(e.field(), Some(field.name()), "{e}");
                e.to_string()
            }
        }
    }

    #[test]
    fn cron_numeric_weekdays_become_names() {
        use Field::DayOfWeek as D;
        assert_eq!(ok(D, "1"), "MON");
        assert_eq!(ok(D, "0"), "SUN");
        assert_eq!(ok(D, "7"), "SUN");
        assert_eq!(ok(D, "1-5"), "MON,TUE,WED,THU,FRI");
        assert_eq!(ok(D, "0,6"), "SUN,SAT");
        assert_eq!(ok(D, "5-7"), "SUN,FRI,SAT");
        assert_eq!(ok(D, "FRI-SUN"), "SUN,FRI,SAT");
        assert_eq!(ok(D, "*/2"), "SUN,TUE,THU,SAT");
        assert_eq!(ok(D, "1-5/2"), "MON,WED,FRI");
        assert_eq!(ok(D, "mon-fri/2"), "MON,WED,FRI");
        assert_eq!(ok(D, "1/2"), "MON,WED,FRI");
        assert_eq!(ok(D, "0-7"), "SUN,MON,TUE,WED,THU,FRI,SAT");
        assert_eq!(ok(D, "*"), "*");
        assert_eq!(ok(D, "*,1"), "SUN,MON,TUE,WED,THU,FRI,SAT");
        assert_eq!(ok(D, "5#2"), "FRI#2");
        assert_eq!(ok(D, "7#1"), "SUN#1");
        assert_eq!(ok(D, "5L"), "FRIL");
        assert_eq!(ok(D, "0l"), "SUNL");
        assert_eq!(ok(D, "friL"), "FRIL");
    }

    #[test]
    fn cron_other_fields_reach_saffron_without_wrapping_or_stars_in_lists() {
        assert_eq!(ok(Field::Minute, "*"), "*");
        assert_eq!(ok(Field::Minute, "*/15"), "0-59/15");
        assert_eq!(ok(Field::Minute, "5,*"), "5,0-59");
        assert_eq!(ok(Field::Minute, "5/15"), "5-59/15");
        assert_eq!(ok(Field::Hour, "09"), "9");
        assert_eq!(ok(Field::Hour, "9-17/2"), "9-17/2");
        assert_eq!(ok(Field::Month, "jan,Mar-may"), "1,3-5");
        assert_eq!(ok(Field::Month, "*/3"), "1-12/3");
        assert_eq!(ok(Field::DayOfMonth, "*/10"), "1-31/10");
        assert_eq!(ok(Field::DayOfMonth, "l"), "L");
        assert_eq!(ok(Field::DayOfMonth, "lw"), "LW");
        assert_eq!(ok(Field::DayOfMonth, "L-3"), "L-3");
        assert_eq!(ok(Field::DayOfMonth, "15w"), "15W");
    }

    #[test]
    fn cron_field_errors_say_what_is_wrong() {
        assert_eq!(
            err(Field::Minute, "61"),
            "minute field \"61\" is out of range 0-59"
        );
        assert_eq!(
            err(Field::Minute, "*/60"),
            "minute field \"*/60\" has a step out of range 1-59"
        );
        assert_eq!(
            err(Field::Minute, "*/0"),
            "minute field \"*/0\" has a step out of range 1-59"
        );
        assert_eq!(
            err(Field::Hour, "99999999999"),
            "hour field \"99999999999\" is out of range 0-23"
        );
        assert_eq!(
            err(Field::DayOfWeek, "MON-FRX"),
            "day-of-week field \"MON-FRX\" is not valid"
        );
        assert_eq!(
            err(Field::DayOfWeek, "8"),
            "day-of-week field \"8\" is out of range 0-7"
        );
        assert_eq!(
            err(Field::DayOfWeek, "MON#6"),
            "day-of-week field \"MON#6\" has an occurrence out of range 1-5"
        );
        assert_eq!(
            err(Field::DayOfMonth, "L-31"),
            "day-of-month field \"L-31\" has an offset out of range 1-30"
        );
        assert_eq!(
            err(Field::DayOfMonth, "0"),
            "day-of-month field \"0\" is out of range 1-31"
        );
        assert_eq!(
            err(Field::Month, "13"),
            "month field \"13\" is out of range 1-12"
        );
        assert!(err(Field::Hour, "22-2").contains("a range must run from low to high"));
        assert!(err(Field::Month, "NOV-FEB").contains("from low to high"));
        assert!(err(Field::DayOfMonth, "L-3W").contains("L-nW is not supported"));
        assert!(err(Field::DayOfMonth, "L,15").contains("stand alone"));
        assert!(err(Field::DayOfMonth, "15W,20").contains("stand alone"));
        assert!(err(Field::DayOfWeek, "5L,MON").contains("stand alone"));
        assert!(err(Field::DayOfWeek, "MON,5#2").contains("stand alone"));
        assert!(err(Field::DayOfWeek, "L").contains("lone L"));
        assert!(err(Field::DayOfWeek, "?").contains("write * instead"));
        for bad in [
            "", "1,,2", "1-", "-1", "*-5", "1/", "a", "MONDAY", "1.5", "٣", "*/*",
        ] {
            err(Field::Minute, bad);
        }
    }

    #[test]
    fn cron_fixed_time_means_no_star_or_step_in_minute_and_hour() {
        assert!(is_fixed_time("30", "2"));
        assert!(is_fixed_time("0,30", "9-17"));
        assert!(!is_fixed_time("0", "*"));
        assert!(!is_fixed_time("*/15", "2"));
        assert!(!is_fixed_time("0", "0-23/2"));
    }
}
