//! Schema migrations: numbered .sql files in `migrations/sqlite/`, embedded in the
//! binary, applied in one transaction at start-up and recorded.
//!
//! The check and the apply share one `BEGIN IMMEDIATE` transaction, so two
//! daemons starting on a new file at once cannot both apply a migration.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// (version, name, SQL), in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "0002_claim_by_type",
        include_str!("../../../migrations/sqlite/0002_claim_by_type.sql"),
    ),
    (
        3,
        "0003_row_types",
        include_str!("../../../migrations/sqlite/0003_row_types.sql"),
    ),
];

/// The newest schema this binary knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub(super) fn run(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER NOT NULL PRIMARY KEY,
             name    TEXT    NOT NULL,
             applied INTEGER NOT NULL
         )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |row| row.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            at: path.display().to_string(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.execute_batch(sql)
            .map_err(|e| StoreError::Database(format!("migration {name} failed: {e}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied)
             VALUES (?1, ?2, CAST(unixepoch('subsec') * 1000 AS INTEGER))",
            rusqlite::params![version, name],
        )?;
        tracing::info!(version, name, "applied migration");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order() {
        for (i, (version, name, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1);
            assert!(name.starts_with(&format!("{:04}_", version)), "{name}");
        }
    }

    #[test]
    fn applies_once_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut conn = Connection::open(&path).unwrap();
        run(&mut conn, &path).unwrap();
        run(&mut conn, &path).unwrap();
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut conn = Connection::open(&path).unwrap();
        run(&mut conn, &path).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations VALUES (?1, 'from_the_future', 0)",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
        let err = run(&mut conn, &path).unwrap_err().to_string();
        assert!(err.contains("newer than this cronq"), "{err}");
        assert!(
            err.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{err}"
        );
    }
}
