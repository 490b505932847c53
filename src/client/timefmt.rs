//! Times for people: "in 42s", "3m ago", and RFC 3339 shortened.
//!
//! The daemon speaks RFC 3339 with milliseconds in UTC; at a terminal the
//! milliseconds, the `T` and the seconds' fraction are noise, and "how long
//! from now" is usually the question. Relative times use one unit, rounded
//! down, like `systemctl list-timers`: precise enough to read at a glance.

use jiff::Timestamp;

/// Parses a timestamp from the daemon or the user (RFC 3339).
pub fn parse(text: &str) -> Option<Timestamp> {
    text.trim().parse().ok()
}

/// The protocol's form: RFC 3339 in UTC with milliseconds.
pub fn protocol(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `2026-01-01 02:00:00` (UTC), or the text unchanged if it is not a timestamp.
pub fn short(text: &str) -> String {
    match parse(text) {
        Some(at) => at.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        None => text.to_string(),
    }
}

/// "in 42s", "3m ago", "now": `at` seen from `now`.
pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let ms = at.as_millisecond() - now.as_millisecond();
    // Within a second either way reads as "now", so a job stored this
    // instant does not flicker between "in 0s" and "0s ago".
    if ms.abs() < 1000 {
        return "now".to_string();
    }
    let span = duration(ms.unsigned_abs() / 1000);
    if ms > 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A timestamp from the daemon as "3m ago" / "in 42s", "-" for null, or the
/// text unchanged if it cannot be read.
pub fn relative_text(text: Option<&str>, now: Timestamp) -> String {
    match text {
        None => "-".to_string(),
        Some(text) => match parse(text) {
            Some(at) => relative(at, now),
            None => text.to_string(),
        },
    }
}

/// A length of time in one unit, rounded down: 42s, 3m, 2h, 5d.
pub fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Milliseconds as people read them: 12ms, 1.5s, 3m.
pub fn millis(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => duration(ms / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        parse(text).unwrap()
    }

    #[test]
    fn relative_times() {
        let now = at("2026-01-01T00:00:00.000Z");
        assert_eq!(relative(at("2026-01-01T00:00:42.000Z"), now), "in 42s");
        assert_eq!(relative(at("2025-12-31T23:57:00.000Z"), now), "3m ago");
        assert_eq!(relative(at("2025-12-31T22:00:00.000Z"), now), "2h ago");
        assert_eq!(relative(at("2025-12-31T21:59:59.500Z"), now), "2h ago");
        assert_eq!(relative(at("2026-01-04T01:00:00.000Z"), now), "in 3d");
        assert_eq!(relative(at("2026-01-01T00:00:00.400Z"), now), "now");
        assert_eq!(relative(at("2025-12-31T23:59:59.000Z"), now), "1s ago");
    }

    #[test]
    fn unit_boundaries() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(60), "1m");
        assert_eq!(duration(3599), "59m");
        assert_eq!(duration(3600), "1h");
        assert_eq!(duration(86_399), "23h");
        assert_eq!(duration(86_400), "1d");
    }

    #[test]
    fn shortened_rfc3339() {
        assert_eq!(short("2026-01-01T02:00:00.000Z"), "2026-01-01 02:00:00");
        assert_eq!(short("2026-01-01T03:00:00+01:00"), "2026-01-01 02:00:00");
        assert_eq!(short("not a time"), "not a time");
        assert_eq!(
            protocol(at("2026-01-01T03:00:00.5+01:00")),
            "2026-01-01T02:00:00.500Z"
        );
    }

    #[test]
    fn null_and_garbage_from_the_daemon() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(relative_text(None, now), "-");
        assert_eq!(relative_text(Some("soon"), now), "soon");
        assert_eq!(
            relative_text(Some("2026-01-01T00:01:00.000Z"), now),
            "in 1m"
        );
    }

    #[test]
    fn milliseconds() {
        assert_eq!(millis(12), "12ms");
        assert_eq!(millis(1500), "1.5s");
        assert_eq!(millis(180_000), "3m");
    }
}
