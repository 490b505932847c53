//! `instances`: every daemon registered on the database, oldest first: on
//! PostgreSQL the cluster, on SQLite the daemons sharing the file.
//!
//! Each row is what its daemon last wrote with its heartbeat (its workers,
//! its clock offset from the server), so another daemon's figures are up
//! to one heartbeat interval old; this daemon's own row shows its workers
//! of now. A daemon killed without a goodbye stays listed, with an ageing
//! `heartbeat`, until a live one judges it dead and releases its jobs.

use serde_json::{Map, Value, json};

use super::Ctx;
use crate::admin::protocol::{self, AdminError};
use crate::store::instance::InstanceRow;

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let rows = ctx.queue.instances().await?;
    Ok(crate::result! {
        "instances": rows.iter().map(instance).collect::<Vec<Value>>(),
    })
}

/// One instance as the protocol writes it.
pub fn instance(row: &InstanceRow) -> Value {
    json!({
        "id": row.id,
        "host": row.host,
        "pid": row.pid,
        "version": row.version,
        "started": protocol::time(row.started),
        "heartbeat": protocol::time(row.heartbeat_at),
        "workers": {"max": row.workers_max, "busy": row.workers_busy},
        "clock_offset_ms": row.clock_offset_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_has_exactly_the_protocols_fields() {
        let row = InstanceRow {
            id: "k3j9x0c2m1q8z7a".into(),
            host: "node-1".into(),
            boot_id: "b:ns".into(),
            pid: 4242,
            start_ticks: 9,
            version: "0.1.0".into(),
            started: 1_767_225_600_000,
            heartbeat_at: 1_767_225_660_500,
            workers_max: 5,
            workers_busy: 2,
            clock_offset_ms: -37,
        };
        assert_eq!(
            instance(&row),
            json!({"id": "k3j9x0c2m1q8z7a", "host": "node-1", "pid": 4242, "version": "0.1.0",
                   "started": "2026-01-01T00:00:00.000Z", "heartbeat": "2026-01-01T00:01:00.500Z",
                   "workers": {"max": 5, "busy": 2}, "clock_offset_ms": -37})
        );
    }
}
