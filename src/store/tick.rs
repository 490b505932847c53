//! The `system_queue` minute as one store operation: heartbeat, extend the
//! reservations of running jobs, record the run, recover what dead or
//! silent holders left, and claim a batch.
//!
//! One write instead of seven is what lets an idle daemon sleep: each
//! separate write wakes the database side and the task awaiting it, and an
//! idle minute should cost a handful of wake-ups, not dozens.

use super::history::{Prune, Pruned};
use super::instance::InstanceRow;
use super::job::{Claimed, Lease, Recovered};
use super::run::{NewRun, RunRow};
use crate::clock::Millis;

/// Judges whether a registered instance is dead.
pub type Judge = Box<dyn Fn(&InstanceRow) -> bool + Send>;

/// What one tick is to do.
pub struct Tick {
    pub now: Millis,
    /// This daemon's row, heartbeated.
    pub instance: InstanceRow,
    /// Reservations of running jobs, extended.
    pub leases: Vec<Lease>,
    /// The run to record first; when another process has it, the tick only
    /// heartbeats.
    pub run: Option<NewRun>,
    pub stale_before: Millis,
    pub judge: Judge,
    /// Types to claim, and how many.
    pub types: Vec<String>,
    pub limit: usize,
    /// Types claimed each up to its own number besides (the per-type
    /// limits), within `limit`.
    pub quotas: Vec<(String, usize)>,
    /// The first round of pruning: with the minute's `system_queue` run,
    /// or, while automatic processing is off, with a heartbeat.
    pub prune: Option<Prune>,
}

/// What the tick did.
#[derive(Debug, Default)]
pub struct Ticked {
    /// The recorded run; `Some` and already `ok` when nothing was claimed.
    pub run: Option<RunRow>,
    /// False when another process had already recorded this run.
    pub fired: bool,
    pub lost: Vec<Lease>,
    pub recovered: Vec<Recovered>,
    pub removed_instances: usize,
    pub orphan_runs: usize,
    pub claimed: Vec<Claimed>,
    pub pruned: Pruned,
}

/// `quotas` cut so that together they claim at most `room` jobs, in order.
pub fn within(quotas: &[(String, usize)], mut room: usize) -> Vec<(String, usize)> {
    let mut out = Vec::with_capacity(quotas.len());
    for (job_type, n) in quotas {
        let n = (*n).min(room);
        if n > 0 {
            out.push((job_type.clone(), n));
            room -= n;
        }
    }
    out
}
