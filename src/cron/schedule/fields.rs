//! The five fields of a cron expression, each checked on its own against the
//! grammar cronq documents and turned into the sets `pattern` searches. An
//! error names the field and says what is wrong with it.
//!
//! The grammar is cronie's (values, ranges, steps, lists, names, 0 and 7 for
//! Sunday) with Quartz's `L`, `W` and `#` and its `N/step`. Where cronie
//! would silently run something other than what the text seems to say,
//! cronq refuses the field instead, with a hint:
//!
//! - reversed ("wrapping") ranges such as `22-2` or `NOV-FEB`: cronie runs
//!   nothing for them; `FRI-SUN` and `5-0` are the exception, as in cronie;
//! - a weekday range ending on Sunday written 0 or `SUN` *with a step*
//!   (`5-0/2`): cronie applies its Sunday fix-up only without a step, so it
//!   runs nothing for it; `5-7/2` says the same thing and works in both;
//! - a step as large as the field (`*/60`), which cronie only warns about.
//!
//! `L`, `W` and `#` forms stand alone in their field; `L-nW` is not
//! supported; `?` (Quartz's "no value") is refused with a hint.

use super::error::{Bound, ScheduleError};
use super::pattern::{DayOfMonth, DayOfWeek};

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

    /// The largest step: one less than the number of values, since a
    /// larger one could only ever give the start (cronie warns about it).
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

/// The minute, hour or month field as a set: bit `n` set when value `n`
/// matches.
pub(super) fn values(field: Field, text: &str) -> Result<u64, ScheduleError> {
    let cx = Cx { field, text };
    let upper = cx.upper()?;
    let mut set = 0u64;
    for item in parse_list(&cx, &upper)? {
        for value in item.values(field) {
            set |= 1 << value;
        }
    }
    Ok(set)
}

/// Whether a day field leaves the days unrestricted for the rule that
/// combines the two: cronie looks at the field's first character only, so
/// `*/2` counts as `*` does.
pub(super) fn starts_with_star(text: &str) -> bool {
    text.starts_with('*')
}

/// A field whose minute or hour is a plain value, list or range runs at that
/// wall-clock time whatever DST does; `*` or a step follows elapsed time.
pub(super) fn is_fixed_time(minute: &str, hour: &str) -> bool {
    let plain = |text: &str| !text.contains(['*', '/']);
    plain(minute) && plain(hour)
}

const DOM_STANDALONE: &str = "L and W forms stand alone in the day-of-month field";
const DOW_STANDALONE: &str = "L and # forms stand alone in the day-of-week field";

pub(super) fn day_of_month(text: &str) -> Result<DayOfMonth, ScheduleError> {
    let cx = Cx {
        field: Field::DayOfMonth,
        text,
    };
    let upper = cx.upper()?;
    match upper.as_str() {
        "L" => return Ok(DayOfMonth::Last),
        "LW" => return Ok(DayOfMonth::LastWeekday),
        _ => {}
    }
    if let Some(offset) = upper.strip_prefix("L-") {
        if offset.ends_with('W') {
            return Err(cx.invalid(Some("L-nW is not supported; use L-n or LW")));
        }
        let offset = cx.number(offset, 1, 30, Bound::Offset, "1-30")?;
        return Ok(DayOfMonth::BeforeLast(offset as u8));
    }
    if upper.contains(',') && upper.contains(['L', 'W']) {
        return Err(cx.invalid(Some(DOM_STANDALONE)));
    }
    if let Some(day) = upper.strip_suffix('W') {
        if !day.is_empty() && day.bytes().all(|b| b.is_ascii_digit()) {
            let day = cx.number(day, 1, 31, Bound::Value, "1-31")?;
            return Ok(DayOfMonth::NearestWeekday(day as u8));
        }
        return Err(cx.invalid(Some(DOM_STANDALONE)));
    }
    if upper.contains('L') {
        return Err(cx.invalid(Some(DOM_STANDALONE)));
    }
    let mut days = 0u32;
    for item in parse_list(&cx, &upper)? {
        for day in item.values(Field::DayOfMonth) {
            days |= 1 << day;
        }
    }
    Ok(DayOfMonth::Days(days))
}

pub(super) fn day_of_week(text: &str) -> Result<DayOfWeek, ScheduleError> {
    let cx = Cx {
        field: Field::DayOfWeek,
        text,
    };
    let upper = cx.upper()?;
    if upper == "L" {
        return Err(cx.invalid(Some(
            "a lone L is not a day; write 6 or SAT for Saturday, or 5L for the last Friday of the month",
        )));
    }
    if upper.contains(',') && upper.contains(['L', '#']) {
        return Err(cx.invalid(Some(DOW_STANDALONE)));
    }
    if let Some((day, nth)) = upper.split_once('#') {
        let weekday = (cx.value(day)? % 7) as u8;
        let nth = cx.number(nth, 1, 5, Bound::Occurrence, "1-5")? as u8;
        return Ok(DayOfWeek::Nth { weekday, nth });
    }
    if let Some(day) = upper.strip_suffix('L') {
        return Ok(DayOfWeek::Last((cx.value(day)? % 7) as u8));
    }
    if upper.contains('L') {
        return Err(cx.invalid(Some(DOW_STANDALONE)));
    }
    let mut weekdays = 0u8;
    for item in parse_list(&cx, &upper)? {
        for value in item.values(Field::DayOfWeek) {
            weekdays |= 1 << (value % 7);
        }
    }
    Ok(DayOfWeek::Days(weekdays))
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
                if step.is_some() {
                    return Err(cx.invalid(Some(
                        "with a step, end a range on Sunday with 7 (5-7/2): cronie runs nothing for 5-0/2",
                    )));
                }
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

/// The field being checked, for building errors that quote it.
struct Cx<'a> {
    field: Field,
    text: &'a str,
}

impl Cx<'_> {
    /// The text in capitals (names, `L` and `W` are read in any case),
    /// refusing Quartz's `?`.
    fn upper(&self) -> Result<String, ScheduleError> {
        if self.text.contains('?') {
            return Err(self.invalid(Some("cron has no \"?\"; write * instead")));
        }
        Ok(self.text.to_ascii_uppercase())
    }

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

    /// The field as parsed, in words a test can compare: values as a list,
    /// weekdays by name, the `L`/`W`/`#` forms as cron writes them.
    fn parse(field: Field, text: &str) -> Result<String, ScheduleError> {
        let list = |set: u64, names: &[&str]| {
            let items: Vec<String> = (0..64)
                .filter(|v| set & (1 << v) != 0)
                .map(|v| {
                    names
                        .get(v)
                        .map_or_else(|| v.to_string(), |n| n.to_string())
                })
                .collect();
            items.join(",")
        };
        Ok(match field {
            Field::DayOfMonth => match day_of_month(text)? {
                DayOfMonth::Days(days) => list(u64::from(days), &[]),
                DayOfMonth::Last => "L".to_string(),
                DayOfMonth::LastWeekday => "LW".to_string(),
                DayOfMonth::BeforeLast(n) => format!("L-{n}"),
                DayOfMonth::NearestWeekday(n) => format!("{n}W"),
            },
            Field::DayOfWeek => match day_of_week(text)? {
                DayOfWeek::Days(days) => list(u64::from(days), &WEEKDAY_NAMES),
                DayOfWeek::Last(w) => format!("{}L", WEEKDAY_NAMES[w as usize]),
                DayOfWeek::Nth { weekday, nth } => {
                    format!("{}#{nth}", WEEKDAY_NAMES[weekday as usize])
                }
            },
            _ => list(values(field, text)?, &[]),
        })
    }

    fn ok(field: Field, text: &str) -> String {
        match parse(field, text) {
            Ok(out) => out,
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    fn err(field: Field, text: &str) -> String {
        match parse(field, text) {
            Ok(out) => panic!("{text:?} accepted as {out:?}"),
            Err(e) => {
                assert_eq!(e.field(), Some(field.name()), "{e}");
                e.to_string()
            }
        }
    }

    const WEEK: &str = "SUN,MON,TUE,WED,THU,FRI,SAT";

    #[test]
    fn cron_numeric_weekdays_count_from_sunday() {
        use Field::DayOfWeek as D;
        assert_eq!(ok(D, "1"), "MON");
        assert_eq!(ok(D, "0"), "SUN");
        assert_eq!(ok(D, "7"), "SUN");
        assert_eq!(ok(D, "1-5"), "MON,TUE,WED,THU,FRI");
        assert_eq!(ok(D, "0,6"), "SUN,SAT");
        assert_eq!(ok(D, "5-7"), "SUN,FRI,SAT");
        assert_eq!(ok(D, "FRI-SUN"), "SUN,FRI,SAT");
        assert_eq!(ok(D, "5-0"), "SUN,FRI,SAT");
        assert_eq!(ok(D, "5-7/2"), "SUN,FRI");
        assert_eq!(ok(D, "*/2"), "SUN,TUE,THU,SAT");
        assert_eq!(ok(D, "1-5/2"), "MON,WED,FRI");
        assert_eq!(ok(D, "mon-fri/2"), "MON,WED,FRI");
        assert_eq!(ok(D, "1/2"), "MON,WED,FRI");
        assert_eq!(ok(D, "0-7"), WEEK);
        assert_eq!(ok(D, "*"), WEEK);
        assert_eq!(ok(D, "*,1"), WEEK);
        assert_eq!(ok(D, "5#2"), "FRI#2");
        assert_eq!(ok(D, "7#1"), "SUN#1");
        assert_eq!(ok(D, "5L"), "FRIL");
        assert_eq!(ok(D, "0l"), "SUNL");
        assert_eq!(ok(D, "friL"), "FRIL");
    }

    #[test]
    fn cron_other_fields_are_sets_with_stars_in_lists_meaning_all() {
        let all_minutes: Vec<String> = (0..60).map(|m| m.to_string()).collect();
        assert_eq!(ok(Field::Minute, "*"), all_minutes.join(","));
        assert_eq!(ok(Field::Minute, "*/15"), "0,15,30,45");
        assert_eq!(ok(Field::Minute, "5,*"), all_minutes.join(","));
        assert_eq!(ok(Field::Minute, "5/15"), "5,20,35,50");
        assert_eq!(ok(Field::Minute, "7-7"), "7");
        assert_eq!(ok(Field::Hour, "09"), "9");
        assert_eq!(ok(Field::Hour, "9-17/2"), "9,11,13,15,17");
        assert_eq!(ok(Field::Month, "jan,Mar-may"), "1,3,4,5");
        assert_eq!(ok(Field::Month, "*/3"), "1,4,7,10");
        assert_eq!(ok(Field::DayOfMonth, "*/10"), "1,11,21,31");
        assert_eq!(ok(Field::DayOfMonth, "l"), "L");
        assert_eq!(ok(Field::DayOfMonth, "lw"), "LW");
        assert_eq!(ok(Field::DayOfMonth, "L-3"), "L-3");
        assert_eq!(ok(Field::DayOfMonth, "15w"), "15W");
        assert_eq!(ok(Field::DayOfMonth, "31W"), "31W");
    }

    #[test]
    fn cron_day_fields_starting_with_a_star_are_unrestricted_for_the_day_rule() {
        for text in ["*", "*/2", "*,5", "*/1"] {
            assert!(starts_with_star(text), "{text}");
        }
        for text in ["1-31", "5,*", "0-7", "L", "1W"] {
            assert!(!starts_with_star(text), "{text}");
        }
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
        assert!(err(Field::DayOfWeek, "5-0/2").contains("end a range on Sunday with 7"));
        assert!(err(Field::DayOfWeek, "FRI-SUN/2").contains("(5-7/2)"));
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
