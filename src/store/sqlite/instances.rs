//! The SQL of the `instances` table: every daemon on the file registers
//! itself and heartbeats, so reservations held by a dead one are released.

use rusqlite::{Connection, params};

use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::instance::InstanceRow;

impl SqliteStore {
    pub async fn register_instance(&self, row: InstanceRow) -> Result<(), StoreError> {
        self.write(Mode::Durable, move |conn, _| {
            let at = row.heartbeat_at;
            insert_on(conn, &row, at)
        })
        .await
    }

    /// Marks `id` alive at `now`; re-registers it if another daemon removed
    /// it as dead while this one was stalled (a stopped process, a long GC
    /// of the VM), so it is not treated as dead twice.
    pub async fn heartbeat_instance(
        &self,
        row: InstanceRow,
        now: Millis,
    ) -> Result<bool, StoreError> {
        self.write(Mode::Grouped, move |conn, _| heartbeat_on(conn, row, now))
            .await
    }

    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        self.read(|conn, _| instances_on(conn)).await
    }

    pub async fn remove_instances(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write(Mode::Grouped, move |conn, _| {
            remove_instances_on(conn, &ids)
        })
        .await
    }
}

fn insert_on(conn: &Connection, row: &InstanceRow, heartbeat_at: Millis) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO instances
             (id, host, boot_id, pid, start_ticks, version, started, heartbeat_at,
              workers_max, workers_busy)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        row.id,
        row.host,
        row.boot_id,
        row.pid,
        row.start_ticks,
        row.version,
        row.started,
        heartbeat_at,
        row.workers_max,
        row.workers_busy
    ])?;
    Ok(())
}

pub(super) fn heartbeat_on(
    conn: &Connection,
    row: InstanceRow,
    now: Millis,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached("UPDATE instances SET heartbeat_at = ?2, workers_busy = ?3 WHERE id = ?1")?
        .execute(params![row.id, now, row.workers_busy])?;
    if n == 0 {
        insert_on(conn, &row, now)?;
    }
    Ok(n == 1)
}

pub(super) fn instances_on(conn: &Connection) -> Result<Vec<InstanceRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, host, boot_id, pid, start_ticks, version, started, heartbeat_at,
                workers_max, workers_busy
           FROM instances ORDER BY started",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(InstanceRow {
            id: row.get(0)?,
            host: row.get(1)?,
            boot_id: row.get(2)?,
            pid: row.get(3)?,
            start_ticks: row.get(4)?,
            version: row.get(5)?,
            started: row.get(6)?,
            heartbeat_at: row.get(7)?,
            workers_max: row.get(8)?,
            workers_busy: row.get(9)?,
            clock_offset_ms: 0,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn remove_instances_on(conn: &Connection, ids: &[String]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached("DELETE FROM instances WHERE id = ?1")?;
    for id in ids {
        stmt.execute([id])?;
    }
    super::definitions::remove_definitions_on(conn, ids)
}
