//! What time it is, and how timestamps are written.
//!
//! The queue and the scheduler read the wall clock through the [`Clock`]
//! trait rather than calling `SystemTime::now()`, so tests can move time by
//! hand (a clock stepping backward, a long downtime) without waiting. The
//! store keeps instants as integer milliseconds since the Unix epoch: they
//! index and compare cheaply; the protocol shows them as RFC 3339 in UTC with
//! milliseconds.
//!
//! Written and parsed through jiff's civil date-time rather than its
//! `Timestamp`: a `Timestamp` ends at 9999-12-30T22:00Z (it must fit every
//! offset), which would make the last hours of year 9999 unwritable, while
//! RFC 3339 and the protocol's range run to 9999-12-31T23:59:59.999Z.

use std::sync::Mutex;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::fmt::temporal::Pieces;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;

mod timerfd;

/// Milliseconds since the Unix epoch, as stored.
pub type Millis = i64;

/// The longest a sleep toward a wall-clock deadline lasts before the wall
/// clock is read again: a monotonic sleep does not notice a clock step or a
/// suspend.
pub const MAX_WALL_SLEEP: Duration = Duration::from_secs(60);

#[async_trait::async_trait]
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> Timestamp;

    /// Returns at `deadline` by the wall clock, or within [`MAX_WALL_SLEEP`]
    /// of being called, whichever is first; the caller re-reads `now()`.
    async fn sleep_toward(&self, deadline: Timestamp);

    fn now_ms(&self) -> Millis {
        self.now().as_millisecond()
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn sleep_toward(&self, deadline: Timestamp) {
        let now = self.now_ms();
        let left = deadline.as_millisecond() - now;
        if left > 0 {
            let left = Duration::from_millis(left as u64).min(MAX_WALL_SLEEP);
            let at = now + left.as_millis() as Millis;
            if timerfd::sleep_until(at).await.is_err() {
                let rest = (at - self.now_ms()).clamp(0, left.as_millis() as Millis);
                tokio::time::sleep(Duration::from_millis(rest as u64)).await;
            }
        }
    }
}

/// A clock that moves only when told: for tests of schedules, catch-up and
/// clock steps.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    moved: Notify,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
            moved: Notify::new(),
        }
    }

    /// Sets the time, forward or backward, and wakes every sleeper.
    pub fn set(&self, to: Timestamp) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
        self.moved.notify_waiters();
    }

    pub fn advance(&self, by: Duration) {
        let to =
            self.now() + jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
        self.set(to);
    }
}

#[async_trait::async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns at the next move of the clock: each move is a chance for the
    /// caller to re-read it, as the real clock's capped sleep gives.
    async fn sleep_toward(&self, deadline: Timestamp) {
        // Created before the check, so a move in between is not missed.
        let moved = self.moved.notified();
        if self.now() >= deadline {
            return;
        }
        moved.await;
    }
}

/// The earliest instant written: 0000-01-01T00:00:00.000Z, the first of
/// RFC 3339's four-digit years.
pub const MIN_MS: Millis = -62_167_219_200_000;
/// The latest instant a job may be given or written:
/// 9999-12-31T23:59:59.999Z.
pub const MAX_MS: Millis = 253_402_300_799_999;

const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// RFC 3339 in UTC with milliseconds: `2026-01-01T02:00:00.000Z`. Always a
/// timestamp: an instant outside years 0000 to 9999 (only a row another
/// program wrote can hold one) is written as the nearest end of that range.
pub fn format_ms(ms: Millis) -> String {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    // Within the clamped range the addition cannot overflow.
    let at = EPOCH
        .checked_add(SignedDuration::from_millis(ms))
        .unwrap_or(if ms < 0 { DateTime::MIN } else { DateTime::MAX });
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses an RFC 3339 timestamp (any offset) into milliseconds, from year
/// 0000 to 9999.
pub fn parse_rfc3339(text: &str) -> Result<Millis, String> {
    let bad = || format!("{text:?} is not an RFC 3339 timestamp such as 2026-01-01T02:00:00Z");
    let pieces = Pieces::parse(text).map_err(|_| bad())?;
    let (Some(time), Some(offset)) = (pieces.time(), pieces.to_numeric_offset()) else {
        return Err(bad());
    };
    let local = pieces.date().to_datetime(time).duration_since(EPOCH);
    let ms = local.as_millis() - i128::from(offset.seconds()) * 1000;
    match Millis::try_from(ms) {
        Ok(ms) if (MIN_MS..=MAX_MS).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "{text:?} is outside the years 0000 to 9999 (in UTC)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_milliseconds() {
        let ms = parse_rfc3339("2026-01-01T02:00:00.123Z").unwrap();
        assert_eq!(format_ms(ms), "2026-01-01T02:00:00.123Z");
        let ms = parse_rfc3339("2026-01-01T03:00:00+01:00").unwrap();
        assert_eq!(format_ms(ms), "2026-01-01T02:00:00.000Z");
        assert!(parse_rfc3339("yesterday").is_err());
        assert!(parse_rfc3339("2026-01-01").is_err());
        assert!(parse_rfc3339("2026-01-01T02:00:00").is_err(), "no offset");
    }

    #[test]
    fn the_whole_of_year_9999_is_written_and_read_and_nothing_is_a_bare_number() {
        let last = parse_rfc3339("9999-12-31T23:59:59.999Z").unwrap();
        assert_eq!(last, MAX_MS);
        assert_eq!(format_ms(MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            parse_rfc3339("9999-12-31T12:00:00Z").map(format_ms),
            Ok("9999-12-31T12:00:00.000Z".to_string())
        );
        assert_eq!(
            parse_rfc3339("9999-12-31T23:59:59-01:00").unwrap_err(),
            "\"9999-12-31T23:59:59-01:00\" is outside the years 0000 to 9999 (in UTC)"
        );
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(MIN_MS), "0000-01-01T00:00:00.000Z");
        for ms in [i64::MAX, i64::MIN, MAX_MS + 1, MIN_MS - 1] {
            let text = format_ms(ms);
            assert!(parse_rfc3339(&text).is_ok(), "{ms} was written {text}");
        }
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_when_moved() {
        let start: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let clock = std::sync::Arc::new(ManualClock::new(start));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move {
                let deadline = start + jiff::SignedDuration::from_secs(60);
                while clock.now() < deadline {
                    clock.sleep_toward(deadline).await;
                }
                clock.now()
            })
        };
        tokio::task::yield_now().await;
        clock.advance(Duration::from_secs(30));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(30));
        let woke = tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(woke, start + jiff::SignedDuration::from_secs(60));
    }
}
