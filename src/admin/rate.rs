//! The optional per-peer enqueue rate limit (JOB_ENQUEUE_RATE): a token
//! bucket per uid, so one runaway script cannot fill the disk for all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::protocol::{AdminError, Code};
use crate::config::RateLimit;

#[derive(Clone)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Arc<Mutex<HashMap<u32, Bucket>>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes `jobs` tokens from `uid`'s bucket, or refuses without taking any.
    pub fn admit(&self, uid: u32, jobs: usize) -> Result<(), AdminError> {
        self.admit_at(uid, jobs, Instant::now())
    }

    fn admit_at(&self, uid: u32, jobs: usize, now: Instant) -> Result<(), AdminError> {
        let RateLimit { rate, burst } = self.limit;
        let burst = f64::from(burst);
        let wanted = jobs as f64;
        if wanted > burst {
            return Err(AdminError::new(
                Code::RateLimited,
                format!(
                    "a batch of {jobs} jobs is more than the enqueue burst of {burst} (JOB_ENQUEUE_RATE); send smaller batches"
                ),
            ));
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(uid).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens + 1e-9 < wanted {
            let wait = (wanted - bucket.tokens) / rate;
            return Err(AdminError::new(
                Code::RateLimited,
                format!(
                    "uid {uid} is over the enqueue rate of {rate} jobs/s (JOB_ENQUEUE_RATE); retry in {wait:.1} s"
                ),
            ));
        }
        bucket.tokens -= wanted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_the_rate_and_caps_at_the_burst() {
        let limiter = RateLimiter::new(RateLimit {
            rate: 10.0,
            burst: 5,
        });
        let t0 = Instant::now();
        limiter.admit_at(1, 5, t0).unwrap();
        let err = limiter.admit_at(1, 1, t0).unwrap_err();
        assert_eq!(err.code, Code::RateLimited);
        // Another uid has its own bucket.
        limiter.admit_at(2, 5, t0).unwrap();
        // 100 ms at 10/s is one job.
        limiter
            .admit_at(1, 1, t0 + Duration::from_millis(100))
            .unwrap();
        assert!(
            limiter
                .admit_at(1, 1, t0 + Duration::from_millis(100))
                .is_err()
        );
        // A long pause refills only up to the burst.
        limiter
            .admit_at(1, 5, t0 + Duration::from_secs(60))
            .unwrap();
        assert!(
            limiter
                .admit_at(1, 1, t0 + Duration::from_secs(60))
                .is_err()
        );
        assert!(
            limiter
                .admit_at(3, 6, t0)
                .unwrap_err()
                .message
                .contains("burst")
        );
    }
}
