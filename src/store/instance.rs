//! A daemon as the store registers it: every daemon on a database
//! heartbeats its row, so the reservations of a dead one can be released,
//! and `instances` lists them with their workers and clock offset.

use crate::clock::Millis;

/// A daemon process, as registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub id: String,
    pub host: String,
    pub boot_id: String,
    pub pid: i64,
    pub start_ticks: i64,
    pub version: String,
    pub started: Millis,
    pub heartbeat_at: Millis,
    /// Its JOB_MAX_WORKERS, and its workers running a job, at its last
    /// heartbeat.
    pub workers_max: i64,
    pub workers_busy: i64,
    /// Its clock minus the database server's, in milliseconds, at its last
    /// heartbeat; always 0 on a database without a clock of its own
    /// (SQLite). Written by the store, which measures it: the value given
    /// to `register_instance` or `heartbeat_instance` is not used.
    pub clock_offset_ms: i64,
}
