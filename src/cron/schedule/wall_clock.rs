//! Evaluating a cron on wall-clock time in a zone and mapping the matches back
//! to instants, with cronie's DST rules. `pattern` only knows civil time; it
//! never sees an offset.
//!
//! Two rules, chosen by the expression (see `fields::is_fixed_time`):
//!
//! - **Fixed time** (no `*` or `/` in minute and hour): the cron names a
//!   wall-clock time and runs once per matching day. A time in a DST gap runs
//!   at the instant the gap ends; a time in a repeated hour runs at its first
//!   occurrence only.
//! - **Elapsed time** (`*` or a step in minute or hour): the cron fires at
//!   every real instant whose wall-clock reading matches, walking the zone one
//!   constant-offset segment at a time. A repeated hour is matched twice, a
//!   skipped one not at all.
//!
//! The choice a reader would question: fold and gap resolution is done here
//! from the two offsets jiff reports, not with a library's "earliest" or
//! "compatible" helper, because the rule wanted (gap → the transition instant)
//! is not what those helpers give, and "earliest" has been seen to return the
//! later instant in other libraries (chrono issue 1625). The tests check the
//! offsets of the instants chosen.
//!
//! Every loop is bounded. The schedule was checked at parse time to fire at
//! least once in every 400-year Gregorian cycle, so the pattern's own search
//! always ends within 400 years of its start.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

use super::pattern::Pattern;

/// Iterations of the fixed-time loop: one per matching minute inside a
/// repeated stretch of wall-clock time, which is an hour in today's zones.
const MAX_FIXED_STEPS: usize = 10_000;

/// Offset segments the elapsed-time walk crosses before giving up: more than
/// 400 years of twice-yearly transitions.
const MAX_SEGMENTS: usize = 4_000;

/// The first fire of a fixed-time cron strictly after `after`.
pub(super) fn next_fixed(pattern: &Pattern, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
    // Mapping wall-clock times to instants this way never goes backwards, so
    // the first match whose instant is after `after` is the answer, and no
    // wall-clock time before `after`'s own can map past it. A match can map
    // to an instant not after `after` only when `after` is in the second
    // pass of a repeated hour: that time already ran in the first pass.
    let mut from = tz.to_datetime(after);
    for _ in 0..MAX_FIXED_STEPS {
        let candidate = pattern.next_after(from)?;
        let at = resolve_fixed(tz, candidate)?;
        if at > after {
            return Some(at);
        }
        from = candidate;
    }
    None
}

/// The first fire of an elapsed-time cron strictly after `after`.
pub(super) fn next_elapsed(
    pattern: &Pattern,
    after: Timestamp,
    tz: &TimeZone,
) -> Option<Timestamp> {
    let mut start = after;
    let mut first = true;
    for _ in 0..MAX_SEGMENTS {
        // Within [start, end) the offset is constant, so wall-clock time and
        // real time advance together and the first match is the answer if
        // it falls before the segment ends.
        let offset = tz.to_offset(start);
        let from = offset.to_datetime(start);
        let candidate = if first {
            pattern.next_after(from)?
        } else {
            pattern.next_at_or_after(from)?
        };
        let at = offset.to_timestamp(candidate).ok()?;
        match tz.following(start).next() {
            Some(transition) if at >= transition.timestamp() => {
                start = transition.timestamp();
                first = false;
            }
            _ => return Some(at),
        }
    }
    None
}

/// The instant a fixed-time cron runs for a wall-clock time.
fn resolve_fixed(tz: &TimeZone, civil: DateTime) -> Option<Timestamp> {
    match tz.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(civil).ok(),
        AmbiguousOffset::Fold { before, after } => {
            let first = before.to_timestamp(civil).ok()?;
            let second = after.to_timestamp(civil).ok()?;
            Some(first.min(second))
        }
        AmbiguousOffset::Gap { before, after } => {
            // The wall clock jumped over `civil`. Read with the later offset
            // it is an instant before the jump, with the earlier one an
            // instant after it; the transition lies between, and is the
            // first instant after the gap.
            let early = after.to_timestamp(civil).ok()?;
            let late = before.to_timestamp(civil).ok()?;
            let gap_end = tz
                .following(early)
                .next()
                .map(|t| t.timestamp())
                .filter(|t| *t <= late)
                .unwrap_or(late);
            Some(gap_end)
        }
    }
}
