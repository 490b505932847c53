//! Parsing, errors and UTC fire times. DST behaviour is in `dst_tests`.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::*;

pub(super) fn ts(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("bad test timestamp {text}: {e}"))
}

pub(super) fn schedule(expr: &str) -> Schedule {
    Schedule::parse(expr).unwrap_or_else(|e| panic!("{expr:?} refused: {e}"))
}

/// The next `count` fire times in UTC as "Mon 2026-01-05 09:00".
fn utc(expr: &str, after: &str, count: usize) -> Vec<String> {
    schedule(expr)
        .upcoming(ts(after), &TimeZone::UTC, count)
        .into_iter()
        .map(|at| at.strftime("%a %Y-%m-%d %H:%M").to_string())
        .collect()
}

fn parse_err(expr: &str) -> ScheduleError {
    match Schedule::parse(expr) {
        Ok(s) => panic!("{expr:?} accepted: {s:?}"),
        Err(e) => e,
    }
}

// 2026-01-01 is a Thursday.
const NEW_YEAR: &str = "2026-01-01T00:00:00Z";

#[test]
fn cron_weekday_1_is_monday() {
    assert_eq!(
        utc("0 9 * * 1", NEW_YEAR, 3),
        [
            "Mon 2026-01-05 09:00",
            "Mon 2026-01-12 09:00",
            "Mon 2026-01-19 09:00"
        ]
    );
}

#[test]
fn cron_weekdays_1_to_5_are_monday_to_friday() {
    assert_eq!(
        utc("0 9 * * 1-5", NEW_YEAR, 6),
        [
            "Thu 2026-01-01 09:00",
            "Fri 2026-01-02 09:00",
            "Mon 2026-01-05 09:00",
            "Tue 2026-01-06 09:00",
            "Wed 2026-01-07 09:00",
            "Thu 2026-01-08 09:00"
        ]
    );
}

#[test]
fn cron_weekday_0_and_7_are_sunday() {
    let sundays = ["Sun 2026-01-04 00:00", "Sun 2026-01-11 00:00"];
    assert_eq!(utc("0 0 * * 0", NEW_YEAR, 2), sundays);
    assert_eq!(utc("0 0 * * 7", NEW_YEAR, 2), sundays);
    assert_eq!(utc("0 0 * * sun", NEW_YEAR, 2), sundays);
    assert_eq!(
        utc("0 0 * * 6,7", NEW_YEAR, 2),
        ["Sat 2026-01-03 00:00", "Sun 2026-01-04 00:00"]
    );
    assert_eq!(
        utc("0 0 * * FRI-SUN", NEW_YEAR, 3),
        [
            "Fri 2026-01-02 00:00",
            "Sat 2026-01-03 00:00",
            "Sun 2026-01-04 00:00"
        ]
    );
}

#[test]
fn cron_weekday_step_every_other_day_from_sunday() {
    // 0,2,4,6 as in cronie: Sunday, Tuesday, Thursday, Saturday.
    assert_eq!(
        utc("0 0 * * */2", NEW_YEAR, 5),
        [
            "Sat 2026-01-03 00:00",
            "Sun 2026-01-04 00:00",
            "Tue 2026-01-06 00:00",
            "Thu 2026-01-08 00:00",
            "Sat 2026-01-10 00:00"
        ]
    );
}

#[test]
fn cron_nth_weekday_with_hash() {
    // Second Friday: 2026-01-09, 2026-02-13, 2026-03-13.
    assert_eq!(
        utc("0 12 * * 5#2", NEW_YEAR, 3),
        [
            "Fri 2026-01-09 12:00",
            "Fri 2026-02-13 12:00",
            "Fri 2026-03-13 12:00"
        ]
    );
    assert_eq!(
        utc("0 12 * * MON#1", NEW_YEAR, 2),
        ["Mon 2026-01-05 12:00", "Mon 2026-02-02 12:00"]
    );
    // Fifth Sunday: only some months have one (2026: March, May, August, November).
    assert_eq!(
        utc("0 0 * * 0#5", NEW_YEAR, 2),
        ["Sun 2026-03-29 00:00", "Sun 2026-05-31 00:00"]
    );
}

#[test]
fn cron_last_weekday_of_month_with_l() {
    // Last Friday: 2026-01-30, 2026-02-27.
    assert_eq!(
        utc("0 0 * * 5L", NEW_YEAR, 2),
        ["Fri 2026-01-30 00:00", "Fri 2026-02-27 00:00"]
    );
    assert_eq!(utc("0 0 * * 0L", NEW_YEAR, 1), ["Sun 2026-01-25 00:00"]);
}

#[test]
fn cron_last_day_of_month_forms() {
    assert_eq!(
        utc("0 0 L * *", NEW_YEAR, 3),
        [
            "Sat 2026-01-31 00:00",
            "Sat 2026-02-28 00:00",
            "Tue 2026-03-31 00:00"
        ]
    );
    assert_eq!(
        utc("0 0 L 2 *", "2028-01-01T00:00:00Z", 1),
        ["Tue 2028-02-29 00:00"]
    );
    // Last weekday: 2026-01-31 is a Saturday, so Friday the 30th.
    assert_eq!(
        utc("0 0 LW * *", NEW_YEAR, 2),
        ["Fri 2026-01-30 00:00", "Fri 2026-02-27 00:00"]
    );
    assert_eq!(
        utc("0 0 L-2 * *", NEW_YEAR, 2),
        ["Thu 2026-01-29 00:00", "Thu 2026-02-26 00:00"]
    );
}

#[test]
fn cron_nearest_weekday_with_w() {
    // 15th: Thu Jan 15; Feb 15 is a Sunday -> Mon 16th; Mar 15 Sunday -> Mon 16th.
    assert_eq!(
        utc("0 0 15W * *", NEW_YEAR, 3),
        [
            "Thu 2026-01-15 00:00",
            "Mon 2026-02-16 00:00",
            "Mon 2026-03-16 00:00"
        ]
    );
    // 1st: Aug 1 2026 is a Saturday; W does not leave the month, so Monday the 3rd.
    assert_eq!(utc("0 0 1W 8 *", NEW_YEAR, 1), ["Mon 2026-08-03 00:00"]);
    // 31st: May 31 2026 is a Sunday, so Friday the 29th.
    assert_eq!(utc("0 0 31W 5 *", NEW_YEAR, 1), ["Fri 2026-05-29 00:00"]);
}

#[test]
fn cron_nearest_weekday_in_a_month_without_that_day_is_clamped_to_its_end() {
    // June 2027 has no 31st: the 30th, a Wednesday. July 31 2027 is a
    // Saturday, so Friday the 30th.
    assert_eq!(
        utc("0 0 31W * *", "2027-05-20T00:00:00Z", 4),
        [
            "Mon 2027-05-31 00:00",
            "Wed 2027-06-30 00:00",
            "Fri 2027-07-30 00:00",
            "Tue 2027-08-31 00:00"
        ]
    );
    // February, every year, leap or not: its last day, or the Friday before
    // it when that is a Sunday (2027) or the day before a Saturday would
    // have been. 2028 and 2032 are leap years.
    let february = [
        "Fri 2027-02-26 00:00",
        "Tue 2028-02-29 00:00",
        "Wed 2029-02-28 00:00",
        "Thu 2030-02-28 00:00",
        "Fri 2031-02-28 00:00",
        "Fri 2032-02-27 00:00",
        "Mon 2033-02-28 00:00",
    ];
    for expr in ["0 0 30W 2 *", "0 0 31W 2 *"] {
        assert_eq!(utc(expr, "2027-01-01T00:00:00Z", 7), february, "{expr}");
    }
    // 29W: the 29th in leap years, clamped to the 28th in the others.
    assert_eq!(utc("0 0 29W 2 *", "2027-01-01T00:00:00Z", 3), february[..3]);
    // Around the turn of a century that is not a leap year (2100).
    assert_eq!(
        utc("0 0 30W 2 *", "2099-12-01T00:00:00Z", 2),
        ["Fri 2100-02-26 00:00", "Mon 2101-02-28 00:00"]
    );
}

#[test]
fn cron_day_of_month_or_day_of_week_when_both_restricted() {
    // The 1st and every Monday, as in every cron since Vixie's.
    assert_eq!(
        utc("0 0 1 * MON", "2026-01-20T00:00:00Z", 3),
        [
            "Mon 2026-01-26 00:00",
            "Sun 2026-02-01 00:00",
            "Mon 2026-02-02 00:00"
        ]
    );
    // A range that happens to cover every day is still a restriction.
    assert_eq!(
        utc("0 0 1-31/2 * MON", NEW_YEAR, 6),
        [
            "Sat 2026-01-03 00:00",
            "Mon 2026-01-05 00:00",
            "Wed 2026-01-07 00:00",
            "Fri 2026-01-09 00:00",
            "Sun 2026-01-11 00:00",
            "Mon 2026-01-12 00:00"
        ]
    );
    assert_eq!(utc("0 0 13 * *", NEW_YEAR, 1), ["Tue 2026-01-13 00:00"]);
}

#[test]
fn cron_a_day_field_starting_with_a_star_makes_both_day_fields_apply() {
    // cronie: `*/2` starts with `*`, so a day must be odd AND a Monday.
    assert_eq!(
        utc("0 0 */2 * MON", NEW_YEAR, 6),
        [
            "Mon 2026-01-05 00:00",
            "Mon 2026-01-19 00:00",
            "Mon 2026-02-09 00:00",
            "Mon 2026-02-23 00:00",
            "Mon 2026-03-09 00:00",
            "Mon 2026-03-23 00:00"
        ]
    );
    // The 1st, when it is a Sunday, Tuesday, Thursday or Saturday.
    assert_eq!(
        utc("0 0 1 * */2", NEW_YEAR, 5),
        [
            "Sun 2026-02-01 00:00",
            "Sun 2026-03-01 00:00",
            "Sat 2026-08-01 00:00",
            "Tue 2026-09-01 00:00",
            "Thu 2026-10-01 00:00"
        ]
    );
    // `*,15` starts with `*` too; the L, W and # forms follow the same rule.
    assert_eq!(
        utc("0 0 *,15 * FRI", NEW_YEAR, 2),
        ["Fri 2026-01-02 00:00", "Fri 2026-01-09 00:00"]
    );
    assert_eq!(
        utc("0 0 L * */2", NEW_YEAR, 3),
        [
            "Sat 2026-01-31 00:00",
            "Sat 2026-02-28 00:00",
            "Tue 2026-03-31 00:00"
        ]
    );
    // Second Fridays on an odd date: April to August's fall on even ones.
    assert_eq!(
        utc("0 0 */2 * 5#2", NEW_YEAR, 4),
        [
            "Fri 2026-01-09 00:00",
            "Fri 2026-02-13 00:00",
            "Fri 2026-03-13 00:00",
            "Fri 2026-09-11 00:00"
        ]
    );
}

#[test]
fn cron_names_of_months_and_days_in_any_case() {
    assert_eq!(
        utc("0 0 1 jan,Jul *", NEW_YEAR, 3),
        [
            "Wed 2026-07-01 00:00",
            "Fri 2027-01-01 00:00",
            "Thu 2027-07-01 00:00"
        ]
    );
    assert_eq!(
        utc("0 0 1 MAR-MAY *", NEW_YEAR, 2),
        ["Sun 2026-03-01 00:00", "Wed 2026-04-01 00:00"]
    );
    assert_eq!(
        utc("0 0 * * Mon-Wed", NEW_YEAR, 2),
        ["Mon 2026-01-05 00:00", "Tue 2026-01-06 00:00"]
    );
}

#[test]
fn cron_ranges_steps_and_lists_in_utc() {
    assert_eq!(
        utc("*/20 * * * *", NEW_YEAR, 4),
        [
            "Thu 2026-01-01 00:20",
            "Thu 2026-01-01 00:40",
            "Thu 2026-01-01 01:00",
            "Thu 2026-01-01 01:20"
        ]
    );
    assert_eq!(
        utc("5,35 9-10 * * *", NEW_YEAR, 5),
        [
            "Thu 2026-01-01 09:05",
            "Thu 2026-01-01 09:35",
            "Thu 2026-01-01 10:05",
            "Thu 2026-01-01 10:35",
            "Fri 2026-01-02 09:05"
        ]
    );
    assert_eq!(
        utc("0 0 1 */4 *", NEW_YEAR, 3),
        [
            "Fri 2026-05-01 00:00",
            "Tue 2026-09-01 00:00",
            "Fri 2027-01-01 00:00"
        ]
    );
    // `*` inside a list is the whole range.
    assert_eq!(
        utc("5,* 0 1 1 *", NEW_YEAR, 2),
        ["Thu 2026-01-01 00:01", "Thu 2026-01-01 00:02"]
    );
    assert_eq!(
        utc("* * * * *", "2026-01-01T00:00:30Z", 1),
        ["Thu 2026-01-01 00:01"]
    );
}

#[test]
fn cron_every_macro() {
    let cases = [
        ("@hourly", "Thu 2026-01-01 01:00"),
        ("@daily", "Fri 2026-01-02 00:00"),
        ("@midnight", "Fri 2026-01-02 00:00"),
        ("@weekly", "Sun 2026-01-04 00:00"),
        ("@monthly", "Sun 2026-02-01 00:00"),
        ("@yearly", "Fri 2027-01-01 00:00"),
        ("@annually", "Fri 2027-01-01 00:00"),
        ("@DAILY", "Fri 2026-01-02 00:00"),
    ];
    for (expr, first) in cases {
        assert_eq!(utc(expr, NEW_YEAR, 1), [first], "{expr}");
        assert_eq!(schedule(expr).expr(), expr);
    }
}

#[test]
fn cron_next_after_is_strictly_after() {
    let s = schedule("0 9 * * *");
    assert_eq!(
        s.next_after(ts("2026-01-01T09:00:00Z"), &TimeZone::UTC),
        Some(ts("2026-01-02T09:00:00Z"))
    );
    assert_eq!(
        s.next_after(ts("2026-01-01T08:59:59.999Z"), &TimeZone::UTC),
        Some(ts("2026-01-01T09:00:00Z"))
    );
}

#[test]
fn cron_expr_is_the_trimmed_text_and_fields_may_be_spaced() {
    let s = schedule("  0\t9  * *   mon-fri \n");
    assert_eq!(s.expr(), "0\t9  * *   mon-fri");
    assert_eq!(s.to_string(), s.expr());
}

#[test]
fn cron_fields_are_separated_by_spaces_and_tabs_only() {
    let cases = [
        ("0 9 * *\u{a0}MON", "a no-break space (U+00A0)"),
        ("0\u{a0}9 * * *", "a no-break space (U+00A0)"),
        ("0 9 * * *\u{a0}", "a no-break space (U+00A0)"),
        ("0 9 *\u{202f}* *", "a narrow no-break space (U+202F)"),
        ("0 9 * *\u{3000}*", "an ideographic space (U+3000)"),
        ("0 9\n* * *", "a line feed (U+000A)"),
        ("0 9 * * *\r0", "a carriage return (U+000D)"),
        ("0 9 * * \u{200b}MON", "a zero-width space (U+200B)"),
        ("@daily\u{a0}", "a no-break space (U+00A0)"),
    ];
    for (expr, named) in cases {
        let e = parse_err(expr);
        assert_eq!(
            e.to_string(),
            format!("the schedule contains {named}; separate fields with spaces or tabs only"),
            "{expr:?}"
        );
        assert_eq!(e.field(), None);
    }
    // Other characters reach the field checks, which quote them.
    assert_eq!(parse_err("0 9 * * MO\u{301}N").field(), Some("day-of-week"));
}

#[test]
fn cron_rare_schedules_are_found_quickly() {
    // Leap days, skipping 2100 which is not a leap year.
    let s = schedule("0 0 29 2 *");
    let times = s.upcoming(ts("2096-03-01T00:00:00Z"), &TimeZone::UTC, 2);
    assert_eq!(
        times,
        [ts("2104-02-29T00:00:00Z"), ts("2108-02-29T00:00:00Z")]
    );
}

#[test]
fn cron_upcoming_stops_at_the_end_of_the_calendar() {
    let s = schedule("@yearly");
    let times = s.upcoming(ts("9997-06-01T00:00:00Z"), &TimeZone::UTC, 5);
    assert_eq!(
        times,
        [ts("9998-01-01T00:00:00Z"), ts("9999-01-01T00:00:00Z")]
    );
    assert!(s.upcoming(Timestamp::MAX, &TimeZone::UTC, 3).is_empty());
    let berlin = parse_timezone("Europe/Berlin").expect("Europe/Berlin");
    assert!(s.upcoming(Timestamp::MAX, &berlin, 3).is_empty());
    assert!(
        schedule("* * * * *")
            .upcoming(Timestamp::MAX, &berlin, 3)
            .is_empty()
    );
    // The other end works too, in the local mean time Berlin kept before 1893.
    for expr in ["* * * * *", "30 2 * * *", "0 0 29 2 *"] {
        let times = schedule(expr).upcoming(Timestamp::MIN, &berlin, 2);
        assert_eq!(times.len(), 2, "{expr}");
        assert!(times[0] > Timestamp::MIN, "{expr}");
    }
}

#[test]
fn cron_field_count_errors() {
    let msg = "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, got";
    assert_eq!(parse_err("0 0 0 * * *").to_string(), format!("{msg} 6"));
    assert_eq!(parse_err("0 0 * *").to_string(), format!("{msg} 4"));
    assert_eq!(parse_err("").to_string(), format!("{msg} 0"));
    assert_eq!(parse_err("   ").field(), None);
}

#[test]
fn cron_unknown_macro() {
    let e = parse_err("@reboot");
    assert_eq!(
        e,
        ScheduleError::UnknownMacro {
            text: "@reboot".to_string()
        }
    );
    assert!(e.to_string().starts_with("unknown macro \"@reboot\""));
    assert!(matches!(
        parse_err("@daily 5"),
        ScheduleError::UnknownMacro { .. }
    ));
    assert_eq!(e.field(), None);
}

#[test]
fn cron_each_field_error_names_its_field() {
    let cases = [
        (
            "61 * * * *",
            "minute",
            "minute field \"61\" is out of range 0-59",
        ),
        (
            "*/60 * * * *",
            "minute",
            "minute field \"*/60\" has a step out of range 1-59",
        ),
        (
            "0 24 * * *",
            "hour",
            "hour field \"24\" is out of range 0-23",
        ),
        ("0 x * * *", "hour", "hour field \"x\" is not valid"),
        (
            "0 0 32 * *",
            "day-of-month",
            "day-of-month field \"32\" is out of range 1-31",
        ),
        (
            "0 0 ? * MON",
            "day-of-month",
            "day-of-month field \"?\" is not valid: cron has no \"?\"; write * instead",
        ),
        (
            "0 0 1 13 *",
            "month",
            "month field \"13\" is out of range 1-12",
        ),
        (
            "0 0 1 JANUARY *",
            "month",
            "month field \"JANUARY\" is not valid",
        ),
        (
            "0 0 * * MON-FRX",
            "day-of-week",
            "day-of-week field \"MON-FRX\" is not valid",
        ),
        (
            "0 0 * * 8",
            "day-of-week",
            "day-of-week field \"8\" is out of range 0-7",
        ),
        (
            "0 0 * * 1#6",
            "day-of-week",
            "day-of-week field \"1#6\" has an occurrence out of range 1-5",
        ),
    ];
    for (expr, field, message) in cases {
        let e = parse_err(expr);
        assert_eq!(e.field(), Some(field), "{expr}");
        assert_eq!(e.to_string(), message, "{expr}");
    }
    // The first bad field is reported.
    assert_eq!(parse_err("99 99 * * *").field(), Some("minute"));
}

#[test]
fn cron_never_firing_schedules_are_refused() {
    for expr in [
        "0 0 31 2 *",
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 L-30 2 *",
        // Both day fields apply (a `*` starts one): the 1st or 31st is never
        // a second Monday.
        "0 0 */30 * MON#2",
    ] {
        let e = parse_err(expr);
        assert_eq!(
            e,
            ScheduleError::NeverFires {
                expr: expr.to_string()
            }
        );
        assert_eq!(
            e.to_string(),
            format!("the schedule \"{expr}\" never fires")
        );
        assert_eq!(e.field(), None);
    }
    // Rare is not never: leap days, and the 31st in the months that have one.
    schedule("0 0 29 2 *");
    schedule("0 0 31 1-2 *");
    // A weekday restriction ORs with the day of month, so this fires on Mondays.
    schedule("0 0 31 2 MON");
    // W never leaves the month and is clamped to its end: February has one.
    schedule("0 0 31W 2 *");
}

#[test]
fn cron_accepted_input_never_panics() {
    // Every item shape in every field, against start dates on each weekday,
    // month end and leap day: the searches do bit and day arithmetic that
    // must stay in range for every input the parser accepts.
    let minutes = ["*", "0", "*/7", "5-10", "58-59/1", "0,30", "59/3"];
    let hours = ["*", "23", "*/5", "0-23/23", "1,2"];
    let doms = [
        "*", "1", "31", "L", "LW", "L-1", "L-30", "1W", "15W", "31W", "*/30", "28-31", "29-31/2",
    ];
    let months = ["*", "2", "2,4", "*/11", "NOV-DEC", "1-12/5"];
    let dows = [
        "*", "0", "7", "1-5", "5-0", "*/6", "SAT-SUN", "1#5", "0#1", "6L", "0L", "0-7/3",
    ];
    let starts = [
        "2026-01-31T23:59:59Z",
        "2026-02-28T12:00:00Z",
        "2028-02-29T00:00:00Z",
        "2026-03-02T00:00:00Z",
        "2026-08-31T23:00:00Z",
        "2026-11-30T00:30:00Z",
        "2026-12-31T23:59:00Z",
    ];
    let berlin = parse_timezone("Europe/Berlin").expect("Europe/Berlin");
    for (i, dom) in doms.iter().enumerate() {
        for (j, dow) in dows.iter().enumerate() {
            let month = months[(i + j) % months.len()];
            let minute = minutes[(i * 3 + j) % minutes.len()];
            let hour = hours[(i + j * 5) % hours.len()];
            let expr = format!("{minute} {hour} {dom} {month} {dow}");
            let Ok(s) = Schedule::parse(&expr) else {
                continue;
            };
            for start in starts {
                let start = ts(start);
                for tz in [&TimeZone::UTC, &berlin] {
                    let times = s.upcoming(start, tz, 3);
                    assert!(!times.is_empty(), "{expr} from {start}");
                    assert!(times.windows(2).all(|w| w[0] < w[1]), "{expr}");
                    assert!(times[0] > start, "{expr}");
                }
            }
        }
    }
}
