//! What happens after a failed attempt: another attempt after an
//! exponential backoff with jitter, or burial.
//!
//! Jitter spreads the retries of jobs that failed together (a mail server
//! that was down for a minute) so they do not all come back in one burst.

use std::time::Duration;

use crate::clock::Millis;
use crate::queue::handler::JobError;
use crate::store::job::AfterFailure;

/// The delay before attempt `attempt + 1`, after attempt `attempt` failed:
/// `base * 2^(attempt-1)`, capped at `max`, then drawn from its upper half
/// ("equal jitter"), so delays still grow from one attempt to the next.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let full = base.saturating_mul(1u32 << exponent.min(31)).min(max);
    let half = full / 2;
    let jitter_ms = fastrand::u64(0..=half.as_millis().min(u64::MAX as u128) as u64);
    half + Duration::from_millis(jitter_ms)
}

/// Decides the fate of a job whose attempt `attempt` of `max_attempts`
/// failed with `error` at `now`.
pub fn after_failure(
    error: &JobError,
    attempt: u32,
    max_attempts: u32,
    now: Millis,
    base: Duration,
    max: Duration,
) -> AfterFailure {
    if error.is_permanent() || attempt >= max_attempts {
        return AfterFailure::Dead;
    }
    let delay = backoff(attempt, base, max)
        .as_millis()
        .min(i64::MAX as u128) as i64;
    AfterFailure::RetryAt(now.saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn delays_double_within_their_jitter_band() {
        for _ in 0..200 {
            for attempt in 1..=5u32 {
                let full = BASE * 2u32.pow(attempt - 1);
                let d = backoff(attempt, BASE, MAX);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn delays_are_capped() {
        for attempt in [13, 40, u32::MAX] {
            let d = backoff(attempt, BASE, MAX);
            assert!(d >= MAX / 2 && d <= MAX, "{d:?}");
        }
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(3, BASE, MAX)).collect();
        assert!(draws.len() > 10);
    }

    #[test]
    fn permanent_errors_and_last_attempts_bury() {
        let retry = JobError::retry("busy");
        let permanent = JobError::permanent("bad address");
        assert_eq!(
            after_failure(&permanent, 1, 4, 0, BASE, MAX),
            AfterFailure::Dead
        );
        assert_eq!(
            after_failure(&retry, 4, 4, 0, BASE, MAX),
            AfterFailure::Dead
        );
        match after_failure(&retry, 1, 4, 1_000, BASE, MAX) {
            AfterFailure::RetryAt(at) => assert!((6_000..=11_000).contains(&at), "{at}"),
            other => panic!("{other:?}"),
        }
    }
}
