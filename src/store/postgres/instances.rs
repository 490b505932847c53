//! The `instances` table on PostgreSQL: every daemon of the cluster
//! registers and heartbeats, so whichever live node first sees a dead
//! one's heartbeat expire releases its reservations. Each heartbeat also
//! re-measures this daemon's clock offset and records it in the row.

use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Transaction};

use super::PgStore;
use super::time::Frame;
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::instance::InstanceRow;

impl PgStore {
    pub async fn register_instance(&self, row: InstanceRow) -> Result<(), StoreError> {
        let client = self.client().await?;
        self.measure_offset(&client).await?;
        let f = self.frame();
        let at = row.heartbeat_at;
        upsert_on(&client, &row, f.db(at), self.clock_offset_ms(), f)
            .await
            .map_err(|e| self.err(&e))
    }

    /// Marks `row` alive at `now`; re-registers it if another daemon removed
    /// it as dead while this one was stalled. False when it had to.
    pub async fn heartbeat_instance(
        &self,
        row: InstanceRow,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        self.measure_offset(&client).await?;
        let f = self.frame();
        let tx = client.transaction().await.map_err(|e| self.err(&e))?;
        let found = heartbeat_on(&tx, row, now, self.clock_offset_ms(), f)
            .await
            .map_err(|e| self.err(&e))?;
        tx.commit().await.map_err(|e| self.err(&e))?;
        Ok(found)
    }

    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let f = self.frame();
        let client = self.client().await?;
        instances_on(&client, f).await.map_err(|e| self.err(&e))
    }

    pub async fn remove_instances(&self, ids: Vec<String>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.client().await?;
        remove_instances_on(&client, &ids)
            .await
            .map_err(|e| self.err(&e))
    }
}

async fn upsert_on(
    client: &impl GenericClient,
    row: &InstanceRow,
    heartbeat_at: SystemTime,
    offset_ms: i64,
    f: Frame,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO instances
                 (id, host, boot_id, pid, start_ticks, version, started, heartbeat_at,
                  clock_offset_ms, workers_max, workers_busy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (id) DO UPDATE SET
                 host = excluded.host, boot_id = excluded.boot_id, pid = excluded.pid,
                 start_ticks = excluded.start_ticks, version = excluded.version,
                 started = excluded.started, heartbeat_at = excluded.heartbeat_at,
                 clock_offset_ms = excluded.clock_offset_ms,
                 workers_max = excluded.workers_max, workers_busy = excluded.workers_busy",
            &[
                &row.id,
                &row.host,
                &row.boot_id,
                &row.pid,
                &row.start_ticks,
                &row.version,
                &f.db(row.started),
                &heartbeat_at,
                &offset_ms,
                &row.workers_max,
                &row.workers_busy,
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn heartbeat_on(
    tx: &Transaction<'_>,
    row: InstanceRow,
    now: Millis,
    offset_ms: i64,
    f: Frame,
) -> Result<bool, tokio_postgres::Error> {
    let update = tx
        .prepare_cached(
            "UPDATE instances SET heartbeat_at = $2, clock_offset_ms = $3, workers_busy = $4
              WHERE id = $1",
        )
        .await?;
    let n = tx
        .execute(
            &update,
            &[&row.id, &f.db(now), &offset_ms, &row.workers_busy],
        )
        .await?;
    if n == 0 {
        upsert_on(tx, &row, f.db(now), offset_ms, f).await?;
    }
    Ok(n == 1)
}

pub(super) async fn instances_on(
    client: &impl GenericClient,
    f: Frame,
) -> Result<Vec<InstanceRow>, tokio_postgres::Error> {
    let select = client
        .prepare_cached(
            "SELECT id, host, boot_id, pid, start_ticks, version, started, heartbeat_at,
                    workers_max, workers_busy, clock_offset_ms
               FROM instances ORDER BY started",
        )
        .await?;
    let rows = client.query(&select, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(InstanceRow {
                id: row.try_get(0)?,
                host: row.try_get(1)?,
                boot_id: row.try_get(2)?,
                pid: row.try_get(3)?,
                start_ticks: row.try_get(4)?,
                version: row.try_get(5)?,
                started: f.ms(row.try_get(6)?),
                heartbeat_at: f.ms(row.try_get(7)?),
                workers_max: row.try_get(8)?,
                workers_busy: row.try_get(9)?,
                clock_offset_ms: row.try_get(10)?,
            })
        })
        .collect()
}

pub(super) async fn remove_instances_on(
    client: &impl GenericClient,
    ids: &[String],
) -> Result<(), tokio_postgres::Error> {
    if !ids.is_empty() {
        client
            .execute("DELETE FROM instances WHERE id = ANY($1)", &[&ids])
            .await?;
        super::definitions::remove_definitions_on(client, ids).await?;
    }
    Ok(())
}
