//! Figures kept in memory since the daemon started: jobs succeeded and
//! failed by type, and how long attempts took.
//!
//! Durations go two ways: a histogram with fixed buckets (what Prometheus
//! wants, cheap and unbounded in time) and the last [`RECENT`] durations per
//! type, from which `stats` reads exact percentiles of recent work.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the duration histogram's buckets, in seconds.
pub const BUCKETS_S: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Durations kept per type for percentiles.
const RECENT: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeStats {
    pub succeeded: u64,
    pub failed: u64,
    /// Attempts per bucket of [`BUCKETS_S`]; the last entry counts the rest.
    pub buckets: [u64; BUCKETS_S.len() + 1],
    pub sum_s: f64,
    pub count: u64,
    pub max_ms: f64,
    recent_ms: VecDeque<f64>,
}

impl TypeStats {
    /// The `q`-quantile (0..=1) of recent durations, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.recent_ms.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = self.recent_ms.iter().copied().collect();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(sorted[rank - 1])
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    by_type: Mutex<BTreeMap<String, TypeStats>>,
}

impl Stats {
    pub fn record(&self, job_type: &str, ok: bool, took: Duration) {
        let mut by_type = self.by_type.lock().unwrap_or_else(|e| e.into_inner());
        let s = by_type.entry(job_type.to_string()).or_default();
        if ok {
            s.succeeded += 1;
        } else {
            s.failed += 1;
        }
        let secs = took.as_secs_f64();
        let bucket = BUCKETS_S
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS_S.len());
        s.buckets[bucket] += 1;
        s.sum_s += secs;
        s.count += 1;
        let ms = secs * 1000.0;
        s.max_ms = s.max_ms.max(ms);
        if s.recent_ms.len() == RECENT {
            s.recent_ms.pop_front();
        }
        s.recent_ms.push_back(ms);
    }

    pub fn snapshot(&self) -> BTreeMap<String, TypeStats> {
        self.by_type
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_buckets_and_percentiles() {
        let stats = Stats::default();
        for ms in 1..=100u64 {
            stats.record("noop", ms % 10 != 0, Duration::from_millis(ms));
        }
        let s = &stats.snapshot()["noop"];
        assert_eq!((s.succeeded, s.failed, s.count), (90, 10, 100));
        assert_eq!(s.quantile_ms(0.5), Some(50.0));
        assert_eq!(s.quantile_ms(0.95), Some(95.0));
        assert_eq!(s.max_ms, 100.0);
        assert_eq!(s.buckets.iter().sum::<u64>(), 100);
        // 1..=5 ms fall in the first two buckets.
        assert_eq!(s.buckets[0] + s.buckets[1], 5);
    }

    #[test]
    fn recent_durations_are_bounded() {
        let stats = Stats::default();
        for _ in 0..(RECENT + 500) {
            stats.record("t", true, Duration::from_millis(1));
        }
        assert_eq!(stats.snapshot()["t"].recent_ms.len(), RECENT);
    }
}
