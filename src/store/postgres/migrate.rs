//! Schema migrations for PostgreSQL: numbered .sql files in
//! `migrations/postgres/`, embedded in the binary, applied in one
//! transaction and recorded, as on SQLite (`src/store/migrate.rs`).
//!
//! The transaction first takes a transaction-scoped advisory lock, so when
//! N daemons start on an empty database together one of them migrates and
//! the others, once it commits, find the schema current. A database newer
//! than this binary is refused with SQLite's message.

use tokio_postgres::Client;

use super::error::{OpenError, describe};

/// (version, name, SQL), in order.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "0002_import_ledger",
        include_str!("../../../migrations/postgres/0002_import_ledger.sql"),
    ),
    (
        3,
        "0003_cron_definitions",
        include_str!("../../../migrations/postgres/0003_cron_definitions.sql"),
    ),
    (
        4,
        "0004_history",
        include_str!("../../../migrations/postgres/0004_history.sql"),
    ),
    (
        5,
        "0005_round_trips",
        include_str!("../../../migrations/postgres/0005_round_trips.sql"),
    ),
    (
        6,
        "0006_time_ordered_ids",
        include_str!("../../../migrations/postgres/0006_time_ordered_ids.sql"),
    ),
];

/// The newest schema this binary knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock key: "cronq" and a 1, so no other program's key
/// collides by accident.
const LOCK_KEY: i64 = 0x6372_6f6e_7100_0001;

/// Brings the schema up to date; `url` is the display form for messages.
pub(super) async fn run(client: &mut Client, url: &str) -> Result<(), OpenError> {
    let failed = |e: tokio_postgres::Error| OpenError::Migrate {
        url: url.to_string(),
        reason: describe(&e),
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(failed)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version bigint      NOT NULL PRIMARY KEY,
             name    text        NOT NULL,
             applied timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(failed)?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(failed)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(OpenError::TooNew {
            url: url.to_string(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| OpenError::Migrate {
                url: url.to_string(),
                reason: format!("migration {name} failed: {}", describe(&e)),
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await
        .map_err(failed)?;
        tracing::info!(version, name, "applied migration");
    }
    tx.commit().await.map_err(failed)?;
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
}
