//! Jobs started, succeeded and failed per second over the last minute: a
//! ring of one bucket per wall-clock second.
//!
//! A bucket is keyed by the Unix second it counts, so adding to it and
//! reading it need no timer: a bucket whose key is not the second asked
//! for is stale and reads as zero, and is reset when that slot's second
//! comes round again. Sixty buckets whatever the rate: 20,000 events a
//! second cost three additions each, and memory never grows.

/// Seconds of history.
pub const WINDOW_S: usize = 60;

/// What one second counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    second: i64,
    pub started: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// Which counter an event adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Started,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throughput {
    buckets: [Bucket; WINDOW_S],
    /// The newest second counted: older than the window is dropped.
    newest: i64,
}

impl Default for Throughput {
    fn default() -> Throughput {
        Throughput {
            buckets: [Bucket {
                second: i64::MIN,
                ..Bucket::default()
            }; WINDOW_S],
            newest: i64::MIN,
        }
    }
}

impl Throughput {
    /// Adds `n` to `counter` in the bucket of Unix second `second`. A
    /// second that fell out of the window (a late event) is not counted.
    pub fn add(&mut self, second: i64, counter: Counter, n: u64) {
        if second <= self.newest.saturating_sub(WINDOW_S as i64) {
            return;
        }
        self.newest = self.newest.max(second);
        let b = &mut self.buckets[slot(second)];
        if b.second != second {
            *b = Bucket {
                second,
                ..Bucket::default()
            };
        }
        match counter {
            Counter::Started => b.started += n,
            Counter::Succeeded => b.succeeded += n,
            Counter::Failed => b.failed += n,
        }
    }

    /// The counts of second `second`, zero if nothing was counted then.
    pub fn at(&self, second: i64) -> Bucket {
        let b = self.buckets[slot(second)];
        if b.second == second {
            b
        } else {
            Bucket {
                second,
                ..Bucket::default()
            }
        }
    }

    /// The last [`WINDOW_S`] complete seconds before `now_s`, oldest first.
    pub fn series(&self, now_s: i64) -> Vec<Bucket> {
        (1..=WINDOW_S as i64)
            .rev()
            .map(|back| self.at(now_s - back))
            .collect()
    }
}

fn slot(second: i64) -> usize {
    second.rem_euclid(WINDOW_S as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_second_and_age_out() {
        let mut t = Throughput::default();
        t.add(1000, Counter::Started, 3);
        t.add(1000, Counter::Succeeded, 2);
        t.add(1001, Counter::Failed, 1);
        assert_eq!(t.at(1000).started, 3);
        assert_eq!(t.at(1000).succeeded, 2);
        assert_eq!(t.at(1001).failed, 1);
        let series = t.series(1002);
        assert_eq!(series.len(), WINDOW_S);
        assert_eq!(series[WINDOW_S - 2].started, 3);
        assert_eq!(series[WINDOW_S - 1].failed, 1);
        // A minute later the slot of second 1000 counts second 1060 afresh.
        t.add(1060, Counter::Started, 1);
        assert_eq!(t.at(1060).started, 1);
        assert_eq!(t.at(1000), Bucket::default().with_second(1000));
        assert!(t.series(1061).iter().all(|b| b.second != 1000));
    }

    #[test]
    fn a_late_event_outside_the_window_is_dropped() {
        let mut t = Throughput::default();
        t.add(2000, Counter::Started, 1);
        t.add(2000 - WINDOW_S as i64, Counter::Started, 5);
        assert_eq!(
            t.at(2000).started,
            1,
            "the late count did not reset the slot"
        );
        t.add(1990, Counter::Started, 2);
        assert_eq!(t.at(1990).started, 2);
    }

    impl Bucket {
        fn with_second(self, second: i64) -> Bucket {
            Bucket { second, ..self }
        }
    }
}
