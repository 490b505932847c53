//! Time zones for crons: looking a name up in the system tz database, the
//! default zone (`CRON_TZ`, else the system's), and a zone's name for display.
//!
//! The choice a reader would question: zones come from the system database
//! (/usr/share/zoneinfo, through jiff) rather than data compiled into the
//! binary, so a tzdata package update changes cron times without a rebuild.
//! jiff re-reads a zone whose file changed the next time it is looked up, so
//! a caller that wants new rules re-parses the name (e.g. on reload).

use jiff::tz::TimeZone;

use super::error::ScheduleError;

/// An IANA zone name from the system tz database ("UTC" needs none).
pub fn parse_timezone(name: &str) -> Result<TimeZone, ScheduleError> {
    let name = name.trim();
    let unknown = |reason| ScheduleError::UnknownTimeZone {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(unknown("the name is empty"));
    }
    // jiff answers this name with a stand-in that behaves like UTC; a cron
    // that names it almost certainly meant something else.
    if name.eq_ignore_ascii_case("Etc/Unknown") {
        return Err(unknown("it is a placeholder, not a time zone"));
    }
    TimeZone::get(name).map_err(|_| unknown("not in the system time zone database"))
}

/// The zone crons use when they name none: `CRON_TZ` if given, else the
/// system's local zone, else UTC (with a warning) when the system's cannot be
/// determined.
pub fn default_timezone(cron_tz: Option<&str>) -> Result<TimeZone, ScheduleError> {
    if let Some(name) = cron_tz {
        return parse_timezone(name);
    }
    match TimeZone::try_system() {
        Ok(tz) => Ok(tz),
        Err(err) => {
            tracing::warn!("cannot determine the system time zone ({err}); crons use UTC");
            Ok(TimeZone::UTC)
        }
    }
}

/// A zone's IANA name for display: "Europe/Berlin", "UTC", and for a system
/// zone without a known name, "local".
pub fn timezone_name(tz: &TimeZone) -> String {
    tz.iana_name().unwrap_or("local").to_string()
}
