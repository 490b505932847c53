//! Instants at the edge, and the offset between the caller's clock and the
//! server's.
//!
//! The Rust side keeps [`Millis`] (ms since the epoch) as everywhere else;
//! columns are `timestamptz`. Each verb's `now` and every instant it
//! writes is moved into the server's frame by adding the measured offset
//! (server minus caller), and every instant read is moved back. So due
//! times and reservation ages are judged by the database server's clock:
//! a daemon whose clock runs two minutes ahead writes "now" as the
//! server's now, claims nothing early, and sees another node's fresh
//! reservation as fresh. Within one daemon the frame is consistent, so a
//! caller that compares stored instants with its own `now` keeps working.
//!
//! The offset is measured at open and at every heartbeat (a
//! `clock_timestamp()` query timed on the caller's clock, the midpoint of
//! the round trip taken as the server's reading), and only replaced when it
//! moved by more than [`HYSTERESIS_MS`], so paging cursors and stored
//! instants do not wobble by a millisecond each minute. Cron runs'
//! `scheduled_for` is a label of the schedule (the same instant on every
//! node), not a reading of a clock, and is stored as given.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::GenericClient;

use crate::clock::{Clock, Millis};

/// A new measurement replaces the offset in force only past this change.
pub const HYSTERESIS_MS: i64 = 10;
/// An offset past this is logged as a warning (issue 13, item 6).
pub const WARN_PAST_MS: i64 = 1_000;

/// PostgreSQL's `timestamptz` range, within which instants are clamped.
const MIN_MS: Millis = -200_000_000_000_000;
const MAX_MS: Millis = 9_000_000_000_000_000;

/// How the store learns the caller's offset from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSync {
    /// Measured at open and at each heartbeat: a daemon.
    Measure,
    /// Fixed (usually 0): for tests that move a manual clock by hand and
    /// want the database to follow it.
    Fixed(i64),
}

/// The offset in force; see the module docs.
pub(super) struct ClockOffset {
    ms: AtomicI64,
    sync: ClockSync,
    warned: AtomicBool,
    /// This host's name and the server's `host:port`, for the warning.
    host: String,
    server: String,
}

/// One verb's view of the offset, taken once so the verb is consistent.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame(pub i64);

impl Frame {
    /// A caller's instant as the server's.
    pub fn db(self, ms: Millis) -> SystemTime {
        time_of(ms.saturating_add(self.0))
    }

    /// A stored instant as the caller's.
    pub fn ms(self, t: SystemTime) -> Millis {
        millis_of(t).saturating_sub(self.0)
    }
}

/// A stored instant that is a label, not a clock reading (scheduled_for).
pub(super) fn time_of(ms: Millis) -> SystemTime {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

pub(super) fn millis_of(t: SystemTime) -> Millis {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(MAX_MS as u128) as Millis,
        // Before 1970: round toward the past, as a floor of microseconds.
        Err(e) => {
            let d = e.duration();
            -((d.as_micros().div_ceil(1000)).min(MIN_MS.unsigned_abs() as u128) as Millis)
        }
    }
}

impl ClockOffset {
    /// `server` is `host:port`, for the warning past [`WARN_PAST_MS`].
    pub fn new(sync: ClockSync, server: String) -> ClockOffset {
        let start = match sync {
            ClockSync::Measure => 0,
            ClockSync::Fixed(ms) => ms,
        };
        ClockOffset {
            ms: AtomicI64::new(start),
            sync,
            warned: AtomicBool::new(false),
            host: this_host(),
            server,
        }
    }

    pub fn frame(&self) -> Frame {
        Frame(self.ms.load(Ordering::Relaxed))
    }

    pub fn get(&self) -> i64 {
        self.ms.load(Ordering::Relaxed)
    }

    /// Measures the offset on `client` against `clock`, and keeps it if it
    /// moved past the hysteresis (or this is the first measurement).
    pub async fn measure(
        &self,
        client: &impl GenericClient,
        clock: &dyn Clock,
        first: bool,
    ) -> Result<(), tokio_postgres::Error> {
        if let ClockSync::Fixed(_) = self.sync {
            return Ok(());
        }
        // A simple query: one round trip, where a prepared one takes two.
        let before = clock.now_ms();
        let messages = client
            .simple_query("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::int8")
            .await?;
        let after = clock.now_ms();
        let server = messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse::<i64>().ok(),
            _ => None,
        });
        // The server answers its own integer; should it not, the offset in
        // force stays rather than one made up.
        if let Some(server) = server {
            self.record(before, server, after, first);
        }
        Ok(())
    }

    /// Takes in a reading of the server's clock (`server`, ms) made
    /// between the caller's instants `before` and `after` (the midpoint is
    /// taken as its time), as [`ClockOffset::measure`] does; for a
    /// statement that reads the server's clock on its way (the tick).
    pub fn record(&self, before: Millis, server: Millis, after: Millis, first: bool) {
        if let ClockSync::Fixed(_) = self.sync {
            return;
        }
        let measured = server - (before + (after - before) / 2);
        let current = self.get();
        if first || (measured - current).abs() > HYSTERESIS_MS {
            self.ms.store(measured, Ordering::Relaxed);
        }
        self.report(measured);
    }

    /// Warns once when the offset goes past [`WARN_PAST_MS`], and says so
    /// when it is back under.
    fn report(&self, measured: i64) {
        let far = measured.abs() > WARN_PAST_MS;
        let was = self.warned.swap(far, Ordering::Relaxed);
        let (host, server) = (self.host.as_str(), self.server.as_str());
        if far && !was {
            tracing::warn!(
                host,
                server,
                clock_offset_ms = -measured,
                "{}",
                skew_warning(host, server, -measured)
            );
        } else if was && !far {
            tracing::info!(
                host,
                server,
                clock_offset_ms = -measured,
                "the clock of {host} is within a second of the PostgreSQL server's at {server} again"
            );
        }
    }
}

/// The warning for a host whose clock is `offset_ms` off the server's
/// (positive: ahead).
pub(super) fn skew_warning(host: &str, server: &str, offset_ms: i64) -> String {
    let way = if offset_ms > 0 { "ahead of" } else { "behind" };
    format!(
        "the clock of {host} is {:.1} s {way} the PostgreSQL server's at {server}: due times and \
         reservations follow the server's clock, but this host fires its crons by its own, so \
         set its time right (chrony, systemd-timesyncd)",
        offset_ms.unsigned_abs() as f64 / 1000.0
    )
}

/// This host's name, for messages.
fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this host".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_system_time() {
        for ms in [0, 1, -1, -1_500, 1_800_000_000_123, i64::MAX / 2 / 1000] {
            assert_eq!(millis_of(time_of(ms)), ms, "{ms}");
        }
        assert_eq!(millis_of(time_of(i64::MAX)), MAX_MS);
    }

    #[test]
    fn the_skew_warning_names_the_host_the_server_and_how_far() {
        assert_eq!(
            skew_warning("node-2", "db.example:5432", 120_400),
            "the clock of node-2 is 120.4 s ahead of the PostgreSQL server's at db.example:5432: \
             due times and reservations follow the server's clock, but this host fires its crons \
             by its own, so set its time right (chrony, systemd-timesyncd)"
        );
        assert!(skew_warning("h", "s:1", -1_500).contains("is 1.5 s behind the PostgreSQL"));
    }

    #[test]
    fn a_frame_moves_instants_both_ways() {
        let f = Frame(-120_000);
        let stored = f.db(1_000_000);
        assert_eq!(millis_of(stored), 880_000);
        assert_eq!(f.ms(stored), 1_000_000);
    }
}
