//! `next 'EXPR'`: the next fire times of a cron expression, computed in this
//! process with the daemon's own schedule code, so it works with no daemon
//! running and always agrees with what the scheduler will do.
//!
//! The layout follows `systemd-analyze calendar`: each time in the zone,
//! then in UTC, then how far from now. An invalid expression or zone is
//! reported like the daemon's `next` would (`bad_request`, exit 1).

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::client::args::NextArgs;
use crate::client::table::Fields;
use crate::client::{ClientError, timefmt};
use crate::cron::schedule::{Schedule, default_timezone, parse_timezone, timezone_name};

pub fn run(args: &NextArgs, json: bool, now: Timestamp) -> Result<String, ClientError> {
    let bad = |field: &str, err: &dyn std::fmt::Display| ClientError::Refused {
        code: "bad_request".to_string(),
        message: format!("{field}: {err}"),
    };
    let schedule = Schedule::parse(&args.expr).map_err(|e| bad("schedule", &e))?;
    let tz = match &args.tz {
        Some(name) => parse_timezone(name).map_err(|e| bad("timezone", &e))?,
        None => {
            let cron_tz = std::env::var("CRON_TZ")
                .ok()
                .filter(|v| !v.trim().is_empty());
            default_timezone(cron_tz.as_deref()).map_err(|e| bad("CRON_TZ", &e))?
        }
    };
    let after = match &args.after {
        Some(text) => timefmt::parse(text).ok_or_else(|| {
            ClientError::Usage(format!(
                "--after: {text:?} is not an RFC 3339 time such as 2026-01-01T02:00:00Z"
            ))
        })?,
        None => now,
    };
    let times = schedule.upcoming(after, &tz, args.count as usize);
    if json {
        // The shape of the daemon's `next` answer, so scripts need not care
        // which one computed it.
        let next: Vec<String> = times.iter().map(|t| timefmt::protocol(*t)).collect();
        return Ok(serde_json::json!({"ok": true, "next": next}).to_string());
    }
    Ok(render(&schedule, &tz, &times, now))
}

fn render(schedule: &Schedule, tz: &TimeZone, times: &[Timestamp], now: Timestamp) -> String {
    let mut f = Fields::new();
    f.add("Expression", schedule.expr());
    f.add("Time zone", timezone_name(tz));
    if times.is_empty() {
        f.add("Next elapse", "never");
    }
    for (i, at) in times.iter().enumerate() {
        let key = if i == 0 {
            "Next elapse".to_string()
        } else {
            format!("Iter. #{}", i + 1)
        };
        let local = at.to_zoned_datetime(tz.clone());
        f.add(&key, local.strftime("%a %Y-%m-%d %H:%M:%S %Z").to_string());
        f.add(
            "(in UTC)",
            at.strftime("%a %Y-%m-%d %H:%M:%S UTC").to_string(),
        );
        f.add("From now", timefmt::relative(*at, now));
    }
    f.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::args::{Cli, Command};
    use clap::Parser;

    fn next(argv: &[&str], json: bool) -> Result<String, ClientError> {
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Next(args) = cli.command else {
            panic!("not next")
        };
        run(&args, json, "2026-03-28T12:00:00Z".parse().unwrap())
    }

    #[test]
    fn systemd_analyze_layout_across_a_dst_change() {
        let out = next(
            &[
                "cronq",
                "next",
                "30 2 * * *",
                "-n",
                "2",
                "--tz",
                "Europe/Berlin",
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            out,
            " Expression: 30 2 * * *\n  \
               Time zone: Europe/Berlin\n\
             Next elapse: Sun 2026-03-29 03:00:00 CEST\n   \
                (in UTC): Sun 2026-03-29 01:00:00 UTC\n   \
                From now: in 13h\n   \
                Iter. #2: Mon 2026-03-30 02:30:00 CEST\n   \
                (in UTC): Mon 2026-03-30 00:30:00 UTC\n   \
                From now: in 1d\n"
        );
    }

    #[test]
    fn json_has_the_daemons_shape() {
        let out = next(
            &["cronq", "next", "@hourly", "-n", "2", "--tz", "UTC"],
            true,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"next":["2026-03-28T13:00:00.000Z","2026-03-28T14:00:00.000Z"],"ok":true}"#
        );
        let out = next(
            &[
                "cronq",
                "next",
                "0 0 * * *",
                "-n",
                "1",
                "--tz",
                "UTC",
                "--after",
                "2030-01-01T00:00:00Z",
            ],
            true,
        )
        .unwrap();
        assert!(out.contains("2030-01-02T00:00:00.000Z"), "{out}");
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = next(&["cronq", "next", "61 * * * *"], false).unwrap_err();
        assert_eq!(err.exit_code(), crate::client::exit::REFUSED);
        assert!(
            err.to_string().starts_with("bad_request: schedule:"),
            "{err}"
        );
        let err = next(&["cronq", "next", "* * * * *", "--tz", "Mars/Base"], false).unwrap_err();
        assert!(
            err.to_string().starts_with("bad_request: timezone:"),
            "{err}"
        );
        let err = next(&["cronq", "next", "* * * * *", "--after", "soon"], false).unwrap_err();
        assert_eq!(err.exit_code(), crate::client::exit::USAGE);
    }
}
