//! The SQL of `cron_definitions`: each daemon on the file publishes a digest
//! of every file cron it defines, so differences between their crons files
//! are reported (see `store::definition`).

use rusqlite::{Connection, params};

use super::crons::switches_on;
use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::definition::{ClusterCrons, CronDefinition, DefinitionRow};

impl SqliteStore {
    /// Replaces `instance`'s published definitions with `definitions`.
    pub async fn set_cron_definitions(
        &self,
        instance: String,
        definitions: Vec<CronDefinition>,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.write(Mode::Grouped, move |conn, _| {
            conn.prepare_cached("DELETE FROM cron_definitions WHERE instance_id = ?1")?
                .execute([&instance])?;
            let mut insert = conn.prepare_cached(
                "INSERT OR REPLACE INTO cron_definitions (instance_id, cron_id, digest, updated)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for d in &definitions {
                insert.execute(params![instance, d.cron_id, d.digest, now])?;
            }
            Ok(())
        })
        .await
    }

    /// The definitions of every registered instance.
    pub async fn cron_definitions(&self) -> Result<Vec<DefinitionRow>, StoreError> {
        self.read(|conn, _| definitions_on(conn)).await
    }

    /// The switches and every instance's definitions in one read: the
    /// scheduler takes them before each fire, and an idle minute is counted
    /// in wake-ups (each read is a trip to a blocking thread and back).
    pub async fn cron_cluster(&self) -> Result<ClusterCrons, StoreError> {
        self.read(|conn, _| {
            Ok(ClusterCrons {
                switches: switches_on(conn)?,
                definitions: definitions_on(conn)?,
            })
        })
        .await
    }
}

fn definitions_on(conn: &Connection) -> Result<Vec<DefinitionRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT d.instance_id, i.host, d.cron_id, d.digest
           FROM cron_definitions d JOIN instances i ON i.id = d.instance_id
          ORDER BY d.instance_id, d.cron_id",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(DefinitionRow {
            instance_id: row.get(0)?,
            host: row.get(1)?,
            cron_id: row.get(2)?,
            digest: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes the definitions of removed instances, in their removal's write.
pub(super) fn remove_definitions_on(conn: &Connection, ids: &[String]) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached("DELETE FROM cron_definitions WHERE instance_id = ?1")?;
    for id in ids {
        stmt.execute([id])?;
    }
    Ok(())
}
