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
    (
        4,
        "0004_instance_workers",
        include_str!("../../../migrations/sqlite/0004_instance_workers.sql"),
    ),
    (
        5,
        "0005_import_ledger",
        include_str!("../../../migrations/sqlite/0005_import_ledger.sql"),
    ),
    (
        6,
        "0006_cron_definitions",
        include_str!("../../../migrations/sqlite/0006_cron_definitions.sql"),
    ),
    (
        7,
        "0007_history",
        include_str!("../../../migrations/sqlite/0007_history.sql"),
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

/// Tables the daemon's database has whatever its migrations say: the
/// migrations' own record, and `schema_version`, kept for whatever names
/// its schema version next.
const ALWAYS_RESERVED: &[&str] = &["schema_migrations", "schema_version"];

/// Every table and view name of the daemon's own schema, in lowercase and
/// in order: those any migration creates (read from the migrations
/// themselves, so a new one is covered without a list to keep), and
/// [`ALWAYS_RESERVED`]. The data handler refuses them as its table names.
pub fn daemon_table_names() -> &'static [String] {
    static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let mut names: Vec<String> = Vec::new();
        let created = MIGRATIONS.iter().flat_map(|(_, _, sql)| created_names(sql));
        for name in created.chain(ALWAYS_RESERVED.iter().map(|n| n.to_string())) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    });
    &NAMES
}

/// The names `CREATE [TEMP] [VIRTUAL] TABLE|VIEW [IF NOT EXISTS] NAME`
/// statements in `sql` create, in lowercase, comments left out.
fn created_names(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut names = Vec::new();
    for (i, word) in words.iter().enumerate() {
        if word != "create" {
            continue;
        }
        let mut rest = words[i + 1..].iter().map(String::as_str).peekable();
        while rest
            .next_if(|w| matches!(*w, "temp" | "temporary" | "virtual"))
            .is_some()
        {}
        if rest.next_if(|w| matches!(*w, "table" | "view")).is_none() {
            continue;
        }
        if rest.peek() == Some(&"if") {
            rest.nth(2);
        }
        if let Some(name) = rest.next() {
            let name = name.rsplit('.').next().unwrap_or(name);
            names.push(
                name.trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'))
                    .to_string(),
            );
        }
    }
    names
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

    #[test]
    fn the_daemons_tables_are_named_from_the_migrations() {
        let names = daemon_table_names();
        for table in [
            "queues",
            "queue_counts",
            "job_errors",
            "instances",
            "cron_runs",
            "cron_state",
            "schema_migrations",
            "schema_version",
        ] {
            assert!(
                names.iter().any(|n| n == table),
                "{table} missing from {names:?}"
            );
        }
        // Indexes and triggers are not tables.
        assert!(!names.iter().any(|n| n == "queues_ready"), "{names:?}");
        assert_eq!(
            created_names(
                "-- CREATE TABLE commented_out (x)\nCREATE TABLE IF NOT EXISTS \"Quoted\"(a);\n\
                 create temp view v as select 1; CREATE VIRTUAL TABLE main.fts USING fts5(x);\n\
                 CREATE INDEX i ON t (a); CREATE UNIQUE INDEX j ON t (a)"
            ),
            vec!["quoted", "v", "fts"]
        );
    }
}
