//! A daemon as the store registers it: every daemon on a database
//! heartbeats its row, so the reservations of a dead one can be released.

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
}
