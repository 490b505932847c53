//! DST behaviour on real transitions from the system tz database. Each fire
//! is shown as "instant = local time offset", so every assertion checks the
//! offset the instant really has in the zone, not just a wall-clock reading.

use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

use super::tests::{schedule, ts};
use super::*;

fn zone(name: &str) -> TimeZone {
    parse_timezone(name).unwrap_or_else(|e| panic!("{e}"))
}

fn offset_text(offset: Offset) -> String {
    let seconds = offset.seconds();
    let sign = if seconds < 0 { '-' } else { '+' };
    let seconds = seconds.abs();
    format!("{sign}{:02}:{:02}", seconds / 3600, seconds % 3600 / 60)
}

fn describe(at: Timestamp, tz: &TimeZone) -> String {
    format!(
        "{at} = {} {}",
        tz.to_datetime(at).strftime("%m-%d %H:%M"),
        offset_text(tz.to_offset(at))
    )
}

fn fires(expr: &str, tz: &TimeZone, after: &str, count: usize) -> Vec<String> {
    schedule(expr)
        .upcoming(ts(after), tz, count)
        .into_iter()
        .map(|at| describe(at, tz))
        .collect()
}

/// The zone's transitions in 2026, as "instant = new offset".
fn transitions_2026(tz: &TimeZone) -> Vec<String> {
    tz.following(ts("2026-01-01T00:00:00Z"))
        .take_while(|t| t.timestamp() < ts("2027-01-01T00:00:00Z"))
        .map(|t| format!("{} = {}", t.timestamp(), offset_text(t.offset())))
        .collect()
}

// ---- Europe/Berlin: gap 2026-03-29 02:00 -> 03:00, fold 2026-10-25 03:00 -> 02:00.

#[test]
fn cron_berlin_transitions_are_what_the_tests_assume() {
    assert_eq!(
        transitions_2026(&zone("Europe/Berlin")),
        [
            "2026-03-29T01:00:00Z = +02:00",
            "2026-10-25T01:00:00Z = +01:00"
        ]
    );
}

#[test]
fn cron_berlin_fixed_time_in_gap_fires_once_when_the_gap_ends() {
    let tz = zone("Europe/Berlin");
    assert_eq!(
        fires("30 2 * * *", &tz, "2026-03-28T00:00:00Z", 3),
        [
            "2026-03-28T01:30:00Z = 03-28 02:30 +01:00",
            "2026-03-29T01:00:00Z = 03-29 03:00 +02:00",
            "2026-03-30T00:30:00Z = 03-30 02:30 +02:00"
        ]
    );
    // 02:00 itself is the first minute of the gap.
    assert_eq!(
        fires("0 2 * * *", &tz, "2026-03-28T12:00:00Z", 1),
        ["2026-03-29T01:00:00Z = 03-29 03:00 +02:00"]
    );
    // Two times in the gap still make one run.
    assert_eq!(
        fires("0,30 2 * * *", &tz, "2026-03-28T12:00:00Z", 2),
        [
            "2026-03-29T01:00:00Z = 03-29 03:00 +02:00",
            "2026-03-30T00:00:00Z = 03-30 02:00 +02:00"
        ]
    );
}

#[test]
fn cron_berlin_fixed_time_in_fold_fires_once_at_first_occurrence() {
    let tz = zone("Europe/Berlin");
    assert_eq!(
        fires("30 2 * * *", &tz, "2026-10-24T12:00:00Z", 2),
        [
            "2026-10-25T00:30:00Z = 10-25 02:30 +02:00",
            "2026-10-26T01:30:00Z = 10-26 02:30 +01:00"
        ]
    );
    // Asked from inside the fold, first pass after 02:30 or second pass
    // before it: 02:30 has run already, so tomorrow.
    for after in ["2026-10-25T00:45:00Z", "2026-10-25T01:15:00Z"] {
        assert_eq!(
            fires("30 2 * * *", &tz, after, 1),
            ["2026-10-26T01:30:00Z = 10-26 02:30 +01:00"]
        );
    }
    assert_eq!(
        fires("0 2 * * *", &tz, "2026-10-24T12:00:00Z", 2),
        [
            "2026-10-25T00:00:00Z = 10-25 02:00 +02:00",
            "2026-10-26T01:00:00Z = 10-26 02:00 +01:00"
        ]
    );
}

#[test]
fn cron_berlin_hourly_follows_real_hours() {
    let tz = zone("Europe/Berlin");
    assert_eq!(
        fires("0 * * * *", &tz, "2026-03-28T23:30:00Z", 3),
        [
            "2026-03-29T00:00:00Z = 03-29 01:00 +01:00",
            "2026-03-29T01:00:00Z = 03-29 03:00 +02:00",
            "2026-03-29T02:00:00Z = 03-29 04:00 +02:00"
        ]
    );
    assert_eq!(
        fires("0 * * * *", &tz, "2026-10-24T22:30:00Z", 4),
        [
            "2026-10-24T23:00:00Z = 10-25 01:00 +02:00",
            "2026-10-25T00:00:00Z = 10-25 02:00 +02:00",
            "2026-10-25T01:00:00Z = 10-25 02:00 +01:00",
            "2026-10-25T02:00:00Z = 10-25 03:00 +01:00"
        ]
    );
}

#[test]
fn cron_berlin_every_quarter_hour_follows_real_time() {
    let tz = zone("Europe/Berlin");
    assert_eq!(
        fires("*/15 * * * *", &tz, "2026-03-29T00:30:00Z", 3),
        [
            "2026-03-29T00:45:00Z = 03-29 01:45 +01:00",
            "2026-03-29T01:00:00Z = 03-29 03:00 +02:00",
            "2026-03-29T01:15:00Z = 03-29 03:15 +02:00"
        ]
    );
    assert_eq!(
        fires("*/15 * * * *", &tz, "2026-10-25T00:30:00Z", 4),
        [
            "2026-10-25T00:45:00Z = 10-25 02:45 +02:00",
            "2026-10-25T01:00:00Z = 10-25 02:00 +01:00",
            "2026-10-25T01:15:00Z = 10-25 02:15 +01:00",
            "2026-10-25T01:30:00Z = 10-25 02:30 +01:00"
        ]
    );
}

#[test]
fn cron_berlin_step_in_a_skipped_hour_is_not_back_filled() {
    let tz = zone("Europe/Berlin");
    assert_eq!(
        fires("*/15 2 * * *", &tz, "2026-03-28T12:00:00Z", 1),
        ["2026-03-30T00:00:00Z = 03-30 02:00 +02:00"]
    );
    // ... and runs in both passes of a repeated hour.
    assert_eq!(
        fires("*/30 2 * * *", &tz, "2026-10-24T12:00:00Z", 4),
        [
            "2026-10-25T00:00:00Z = 10-25 02:00 +02:00",
            "2026-10-25T00:30:00Z = 10-25 02:30 +02:00",
            "2026-10-25T01:00:00Z = 10-25 02:00 +01:00",
            "2026-10-25T01:30:00Z = 10-25 02:30 +01:00"
        ]
    );
}

#[test]
fn cron_berlin_daily_around_transitions() {
    let tz = zone("Europe/Berlin");
    assert_eq!(
        fires("0 3 * * *", &tz, "2026-03-27T12:00:00Z", 3),
        [
            "2026-03-28T02:00:00Z = 03-28 03:00 +01:00",
            "2026-03-29T01:00:00Z = 03-29 03:00 +02:00",
            "2026-03-30T01:00:00Z = 03-30 03:00 +02:00"
        ]
    );
    assert_eq!(
        fires("@daily", &tz, "2026-10-23T12:00:00Z", 3),
        [
            "2026-10-23T22:00:00Z = 10-24 00:00 +02:00",
            "2026-10-24T22:00:00Z = 10-25 00:00 +02:00",
            "2026-10-25T23:00:00Z = 10-26 00:00 +01:00"
        ]
    );
}

// ---- America/New_York: gap 2026-03-08 02:00 -> 03:00, fold 2026-11-01 02:00 -> 01:00.

#[test]
fn cron_new_york_transitions_are_what_the_tests_assume() {
    assert_eq!(
        transitions_2026(&zone("America/New_York")),
        [
            "2026-03-08T07:00:00Z = -04:00",
            "2026-11-01T06:00:00Z = -05:00"
        ]
    );
}

#[test]
fn cron_new_york_fixed_time_in_gap_and_fold() {
    let tz = zone("America/New_York");
    assert_eq!(
        fires("30 2 * * *", &tz, "2026-03-07T00:00:00Z", 3),
        [
            "2026-03-07T07:30:00Z = 03-07 02:30 -05:00",
            "2026-03-08T07:00:00Z = 03-08 03:00 -04:00",
            "2026-03-09T06:30:00Z = 03-09 02:30 -04:00"
        ]
    );
    assert_eq!(
        fires("30 1 * * *", &tz, "2026-10-31T12:00:00Z", 2),
        [
            "2026-11-01T05:30:00Z = 11-01 01:30 -04:00",
            "2026-11-02T06:30:00Z = 11-02 01:30 -05:00"
        ]
    );
    // 02:30 is after New York's repeated hour: nothing special.
    assert_eq!(
        fires("30 2 * * *", &tz, "2026-10-31T12:00:00Z", 1),
        ["2026-11-01T07:30:00Z = 11-01 02:30 -05:00"]
    );
}

#[test]
fn cron_new_york_hourly_and_quarter_hourly() {
    let tz = zone("America/New_York");
    assert_eq!(
        fires("0 * * * *", &tz, "2026-03-08T05:30:00Z", 3),
        [
            "2026-03-08T06:00:00Z = 03-08 01:00 -05:00",
            "2026-03-08T07:00:00Z = 03-08 03:00 -04:00",
            "2026-03-08T08:00:00Z = 03-08 04:00 -04:00"
        ]
    );
    assert_eq!(
        fires("0 * * * *", &tz, "2026-11-01T04:30:00Z", 3),
        [
            "2026-11-01T05:00:00Z = 11-01 01:00 -04:00",
            "2026-11-01T06:00:00Z = 11-01 01:00 -05:00",
            "2026-11-01T07:00:00Z = 11-01 02:00 -05:00"
        ]
    );
    assert_eq!(
        fires("*/15 * * * *", &tz, "2026-03-08T06:30:00Z", 3),
        [
            "2026-03-08T06:45:00Z = 03-08 01:45 -05:00",
            "2026-03-08T07:00:00Z = 03-08 03:00 -04:00",
            "2026-03-08T07:15:00Z = 03-08 03:15 -04:00"
        ]
    );
    assert_eq!(
        fires("*/15 * * * *", &tz, "2026-11-01T05:30:00Z", 3),
        [
            "2026-11-01T05:45:00Z = 11-01 01:45 -04:00",
            "2026-11-01T06:00:00Z = 11-01 01:00 -05:00",
            "2026-11-01T06:15:00Z = 11-01 01:15 -05:00"
        ]
    );
}

#[test]
fn cron_new_york_daily_around_transitions() {
    let tz = zone("America/New_York");
    assert_eq!(
        fires("0 0 * * *", &tz, "2026-03-07T12:00:00Z", 2),
        [
            "2026-03-08T05:00:00Z = 03-08 00:00 -05:00",
            "2026-03-09T04:00:00Z = 03-09 00:00 -04:00"
        ]
    );
    assert_eq!(
        fires("0 0 * * *", &tz, "2026-10-31T12:00:00Z", 2),
        [
            "2026-11-01T04:00:00Z = 11-01 00:00 -04:00",
            "2026-11-02T05:00:00Z = 11-02 00:00 -05:00"
        ]
    );
}

// ---- Australia/Lord_Howe: a 30-minute shift. Fold 2026-04-05 02:00 -> 01:30,
// gap 2026-10-04 02:00 -> 02:30 (looked up below, not assumed).

#[test]
fn cron_lord_howe_transitions_are_what_the_tests_assume() {
    assert_eq!(
        transitions_2026(&zone("Australia/Lord_Howe")),
        [
            "2026-04-04T15:00:00Z = +10:30",
            "2026-10-03T15:30:00Z = +11:00"
        ]
    );
}

#[test]
fn cron_lord_howe_fixed_time_in_gap() {
    let tz = zone("Australia/Lord_Howe");
    // 02:30 exists on the 4th (it is the first minute after the gap).
    assert_eq!(
        fires("30 2 * * *", &tz, "2026-10-02T12:00:00Z", 2),
        [
            "2026-10-02T16:00:00Z = 10-03 02:30 +10:30",
            "2026-10-03T15:30:00Z = 10-04 02:30 +11:00"
        ]
    );
    // 02:00 and 02:15 do not; with 02:30 they make one run, at the gap's end.
    assert_eq!(
        fires("0,15,30 2 * * *", &tz, "2026-10-03T12:00:00Z", 2),
        [
            "2026-10-03T15:30:00Z = 10-04 02:30 +11:00",
            "2026-10-04T15:00:00Z = 10-05 02:00 +11:00"
        ]
    );
    assert_eq!(
        fires("15 2 * * *", &tz, "2026-10-03T12:00:00Z", 1),
        ["2026-10-03T15:30:00Z = 10-04 02:30 +11:00"]
    );
}

#[test]
fn cron_lord_howe_fixed_time_in_fold() {
    let tz = zone("Australia/Lord_Howe");
    assert_eq!(
        fires("45 1 * * *", &tz, "2026-04-04T12:00:00Z", 2),
        [
            "2026-04-04T14:45:00Z = 04-05 01:45 +11:00",
            "2026-04-05T15:15:00Z = 04-06 01:45 +10:30"
        ]
    );
    assert_eq!(
        fires("45 1 * * *", &tz, "2026-04-04T15:00:00Z", 1),
        ["2026-04-05T15:15:00Z = 04-06 01:45 +10:30"]
    );
    assert_eq!(
        fires("30 2 * * *", &tz, "2026-04-04T12:00:00Z", 1),
        ["2026-04-04T16:00:00Z = 04-05 02:30 +10:30"]
    );
}

#[test]
fn cron_lord_howe_hourly_and_quarter_hourly() {
    let tz = zone("Australia/Lord_Howe");
    // Minute 0 of the wall clock moves by half an hour against real time, so
    // the real gap between hourly runs is 90 minutes on both days.
    assert_eq!(
        fires("0 * * * *", &tz, "2026-10-03T14:00:00Z", 3),
        [
            "2026-10-03T14:30:00Z = 10-04 01:00 +10:30",
            "2026-10-03T16:00:00Z = 10-04 03:00 +11:00",
            "2026-10-03T17:00:00Z = 10-04 04:00 +11:00"
        ]
    );
    assert_eq!(
        fires("0 * * * *", &tz, "2026-04-04T13:30:00Z", 3),
        [
            "2026-04-04T14:00:00Z = 04-05 01:00 +11:00",
            "2026-04-04T15:30:00Z = 04-05 02:00 +10:30",
            "2026-04-04T16:30:00Z = 04-05 03:00 +10:30"
        ]
    );
    assert_eq!(
        fires("*/15 * * * *", &tz, "2026-10-03T15:00:00Z", 3),
        [
            "2026-10-03T15:15:00Z = 10-04 01:45 +10:30",
            "2026-10-03T15:30:00Z = 10-04 02:30 +11:00",
            "2026-10-03T15:45:00Z = 10-04 02:45 +11:00"
        ]
    );
    assert_eq!(
        fires("*/15 * * * *", &tz, "2026-04-04T14:20:00Z", 5),
        [
            "2026-04-04T14:30:00Z = 04-05 01:30 +11:00",
            "2026-04-04T14:45:00Z = 04-05 01:45 +11:00",
            "2026-04-04T15:00:00Z = 04-05 01:30 +10:30",
            "2026-04-04T15:15:00Z = 04-05 01:45 +10:30",
            "2026-04-04T15:30:00Z = 04-05 02:00 +10:30"
        ]
    );
}

#[test]
fn cron_lord_howe_daily_around_transitions() {
    let tz = zone("Australia/Lord_Howe");
    assert_eq!(
        fires("0 3 * * *", &tz, "2026-10-02T12:00:00Z", 2),
        [
            "2026-10-02T16:30:00Z = 10-03 03:00 +10:30",
            "2026-10-03T16:00:00Z = 10-04 03:00 +11:00"
        ]
    );
    assert_eq!(
        fires("0 3 * * *", &tz, "2026-04-03T12:00:00Z", 2),
        [
            "2026-04-03T16:00:00Z = 04-04 03:00 +11:00",
            "2026-04-04T16:30:00Z = 04-05 03:00 +10:30"
        ]
    );
}

// ---- Whole years: properties rather than examples.

#[test]
fn cron_elapsed_time_crons_keep_real_intervals_all_year() {
    for name in ["Europe/Berlin", "America/New_York"] {
        let tz = zone(name);
        for (expr, step, count) in [
            ("0 * * * *", 3600, 24 * 366),
            ("*/15 * * * *", 900, 4 * 24 * 40),
        ] {
            let times = schedule(expr).upcoming(ts("2026-01-01T00:00:00Z"), &tz, count);
            assert_eq!(times.len(), count);
            for w in times.windows(2) {
                assert_eq!(
                    w[1].duration_since(w[0]).as_secs(),
                    step,
                    "{name} {expr} at {}",
                    w[0]
                );
            }
        }
    }
}

#[test]
fn cron_fixed_time_crons_fire_once_every_day_all_year() {
    for name in ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"] {
        let tz = zone(name);
        for expr in ["30 2 * * *", "0 2 * * *", "45 1 * * *", "0 0 * * *"] {
            let times = schedule(expr).upcoming(ts("2025-12-31T00:00:00Z"), &tz, 400);
            let days: Vec<_> = times.iter().map(|at| tz.to_datetime(*at).date()).collect();
            for w in days.windows(2) {
                assert_eq!(w[0].tomorrow().ok(), Some(w[1]), "{name} {expr}");
            }
        }
    }
}

// ---- Time zone names.

#[test]
fn cron_timezone_names() {
    assert_eq!(timezone_name(&zone("UTC")), "UTC");
    assert_eq!(timezone_name(&zone("utc")), "UTC");
    assert_eq!(timezone_name(&zone("europe/berlin")), "Europe/Berlin");
    assert_eq!(timezone_name(&zone(" Asia/Tokyo ")), "Asia/Tokyo");
    let tokyo = default_timezone(Some("Asia/Tokyo")).expect("Asia/Tokyo");
    assert_eq!(timezone_name(&tokyo), "Asia/Tokyo");
    let system = default_timezone(None).expect("the system zone or UTC");
    assert!(!timezone_name(&system).is_empty());
}

#[test]
fn cron_timezone_errors_name_the_zone() {
    let e = parse_timezone("Mars/Olympus_Mons").expect_err("no such zone");
    assert_eq!(
        e.to_string(),
        "unknown time zone \"Mars/Olympus_Mons\": not in the system time zone database"
    );
    assert_eq!(e.field(), None);
    assert!(parse_timezone("").is_err());
    assert!(parse_timezone("Etc/Unknown").is_err());
    assert!(parse_timezone("../../../etc/passwd").is_err());
    assert!(parse_timezone("/usr/share/zoneinfo/Europe/Berlin").is_err());
    let e = default_timezone(Some("Europe/Berln")).expect_err("typo");
    assert!(e.to_string().contains("\"Europe/Berln\""));
}

// ---- Zones with unusual transitions.

#[test]
fn cron_samoa_skipped_day_runs_a_fixed_time_cron_when_the_day_is_over() {
    // Samoa moved across the date line: 2011-12-30 did not happen there.
    let tz = zone("Pacific/Apia");
    assert_eq!(
        fires("30 2 * * *", &tz, "2011-12-29T12:00:00Z", 3),
        [
            "2011-12-29T12:30:00Z = 12-29 02:30 -10:00",
            "2011-12-30T10:00:00Z = 12-31 00:00 +14:00",
            "2011-12-30T12:30:00Z = 12-31 02:30 +14:00"
        ]
    );
    assert_eq!(
        fires("0 */12 * * *", &tz, "2011-12-30T00:00:00Z", 3),
        [
            "2011-12-30T10:00:00Z = 12-31 00:00 +14:00",
            "2011-12-30T22:00:00Z = 12-31 12:00 +14:00",
            "2011-12-31T10:00:00Z = 01-01 00:00 +14:00"
        ]
    );
}

#[test]
fn cron_odd_zones_stay_ordered() {
    let zones = [
        ("America/Juneau", "1867-10-17T00:00:00Z"),
        ("Pacific/Apia", "2011-12-28T00:00:00Z"),
        ("Antarctica/Troll", "2026-03-28T00:00:00Z"),
        ("America/St_Johns", "2026-11-01T00:00:00Z"),
        ("Asia/Kolkata", "1945-10-14T00:00:00Z"),
        ("Europe/Dublin", "2026-10-24T00:00:00Z"),
    ];
    for (name, start) in zones {
        let tz = zone(name);
        for expr in [
            "* * * * *",
            "*/7 * * * *",
            "0 * * * *",
            "30 2 * * *",
            "0-59 0-23 * * *",
        ] {
            let times = schedule(expr).upcoming(ts(start), &tz, 3000);
            assert_eq!(times.len(), 3000, "{name} {expr}");
            assert!(times[0] > ts(start), "{name} {expr}");
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{name} {expr}");
        }
    }
}
