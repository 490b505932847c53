//! Pauses: job types no daemon on this file claims until resumed.
//!
//! Kept in a table, so a pause outlives a restart and every daemon sharing
//! the file honours it. Every claim reads the (tiny) table inside its own
//! transaction: a pause is in force for the next claim anywhere, with no
//! message between daemons to lose.

use rusqlite::{Connection, params};

use super::writer::Mode;
use super::{SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::history::{ALL_TYPES, MAX_PAUSES};

impl SqliteStore {
    pub async fn pause(
        &self,
        job_type: Option<String>,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        let job_type = job_type.unwrap_or_else(|| ALL_TYPES.to_string());
        self.write(Mode::Durable, move |conn, _| {
            conn.prepare_cached(
                "INSERT INTO job_pauses (type, paused_at)
                 SELECT ?1, ?2 WHERE ?1 = ?3 OR (SELECT count(*) FROM job_pauses WHERE type != ?3) < ?4
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![job_type, now, ALL_TYPES, MAX_PAUSES as i64])?;
            paused_on(conn)
        })
        .await
    }

    pub async fn resume(&self, job_type: Option<String>) -> Result<Vec<String>, StoreError> {
        self.write(Mode::Durable, move |conn, _| {
            match &job_type {
                Some(t) => conn
                    .prepare_cached("DELETE FROM job_pauses WHERE type = ?1")?
                    .execute([t])?,
                None => conn.prepare_cached("DELETE FROM job_pauses")?.execute([])?,
            };
            paused_on(conn)
        })
        .await
    }

    pub async fn paused(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn, _| paused_on(conn)).await
    }
}

/// The pauses in force, sorted.
pub(super) fn paused_on(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT type FROM job_pauses ORDER BY type")?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `types` without the paused ones (none when every type is paused).
pub(super) fn unpaused(conn: &Connection, types: &[String]) -> Result<Vec<String>, StoreError> {
    let paused = paused_on(conn)?;
    if paused.is_empty() {
        return Ok(types.to_vec());
    }
    if paused.iter().any(|p| p == ALL_TYPES) {
        return Ok(Vec::new());
    }
    Ok(types
        .iter()
        .filter(|t| !paused.contains(t))
        .cloned()
        .collect())
}
