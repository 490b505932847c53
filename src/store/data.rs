//! The data database (`DATA_DIR/data.db`): every SQL statement the
//! `data_processing` handler runs against it, and the mapping between JSON
//! values and SQLite values.
//!
//! Design choice: tables created here declare their columns *without a type*.
//! A typeless column has no affinity, so SQLite keeps each value exactly as it
//! was bound: a JSON number stays an INTEGER or REAL, a CSV field (always a
//! string) stays TEXT. A declared `TEXT` column would silently turn imported
//! JSON numbers into strings, and a declared `INTEGER` column would turn
//! `"007"` into 7; storing what the source carried is the only choice that is
//! the same for every input.
//!
//! Table names reach this module already checked as plain identifiers, and
//! are still always quoted, so no name can change the meaning of a statement.
//!
//! The file is opened as itself and nothing else ([`open`]): never through a
//! symlink, never when it has a second hard link, and created 0600 so that
//! its WAL and shared-memory files (SQLite gives them the database's mode)
//! are the daemon's alone too. Linked to the daemon's own database, it would
//! otherwise let `export table:queues` read every payload.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags, Statement, ToSql, Transaction, TransactionBehavior};
use serde_json::{Number, Value};

/// How long a statement waits for another writer before giving up with
/// `SQLITE_BUSY` (the job is then retried later, not failed).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a job id is remembered in `_cronq_applied`. A job is retried for
/// a few days at most (bounded retries, backoff capped at an hour), so a
/// month is far beyond any retry of the same job.
const APPLIED_RETENTION_SECS: i64 = 30 * 86_400;

/// The WAL is truncated back to this size after a checkpoint, so one large
/// import does not leave a file of its size behind.
const JOURNAL_SIZE_LIMIT: i64 = 64 << 20;

/// How rows reach an existing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Rows are added to the table, which is created when missing.
    Append,
    /// The table is dropped and created anew with the input's columns.
    Replace,
}

/// Why rows cannot be written to a table.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("table {table:?} has no column {column:?}")]
    UnknownColumn { table: String, column: String },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// The data database's permissions when it is created, whatever the umask.
const DATABASE_MODE: u32 = 0o600;

/// Permissions an existing data database may keep; others are taken away.
const DATABASE_MODE_MAX: u32 = 0o640;

/// Why the data database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path is not a plain file of its own: a symlink, a second hard
    /// link, something other than a regular file.
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Opens (creating when missing) the data database in WAL mode, so that
/// exports read while an import writes another table.
///
/// The file is first opened (or created, 0600) by cronq itself with
/// `O_NOFOLLOW` and checked: a regular file with one link. SQLite then
/// opens it with `SQLITE_OPEN_NOFOLLOW`, which refuses a symlink anywhere
/// in the path, and the name is checked to still be the same file. Only a
/// swap within those few system calls by someone who can write DATA_DIR
/// could slip through, and the daemon's table names are reserved as well.
pub fn open(path: &Path) -> Result<Connection, OpenError> {
    let file = claim(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        if e.sqlite_error().map(|f| f.extended_code) == Some(rusqlite::ffi::SQLITE_CANTOPEN_SYMLINK)
        {
            OpenError::Refused(format!(
                "the path to {} holds a symlink; the data database is never opened through one",
                path.display()
            ))
        } else {
            OpenError::Sqlite(e)
        }
    })?;
    let now = std::fs::symlink_metadata(path).map_err(|source| OpenError::Io {
        context: "looking at the data database",
        source,
    })?;
    let checked = file.metadata().map_err(|source| OpenError::Io {
        context: "looking at the data database",
        source,
    })?;
    if (now.dev(), now.ino()) != (checked.dev(), checked.ino()) {
        return Err(OpenError::Refused(format!(
            "{} was replaced while it was being opened",
            path.display()
        )));
    }
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Some file systems cannot hold a WAL; rollback journaling is still
        // correct, only readers then wait for writers.
        tracing::warn!(path = %path.display(), mode, "the data database is not in WAL mode");
    }
    // FULL: a committed import must survive a power cut, because the job id
    // recorded with it is what stops a retry from applying it twice.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT};"
    ))?;
    Ok(conn)
}

/// Opens or creates `path` as a regular file without following a symlink,
/// and checks it is one the data database may be.
fn claim(path: &Path) -> Result<File, OpenError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(DATABASE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                OpenError::Refused(format!(
                    "{} is a symlink; the data database is opened only as a regular file of its own",
                    path.display()
                ))
            } else if source.raw_os_error() == Some(libc::EISDIR) {
                OpenError::Refused(format!(
                    "{} is a folder; the data database must be a regular file: remove or rename the folder",
                    path.display()
                ))
            } else {
                OpenError::Io {
                    context: "opening the data database",
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| OpenError::Io {
        context: "looking at the data database",
        source,
    })?;
    if !meta.is_file() {
        return Err(OpenError::Refused(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    if meta.nlink() > 1 {
        return Err(OpenError::Refused(format!(
            "{} has {} hard links; a data database that is also another file (say the queue's own database) is refused",
            path.display(),
            meta.nlink()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & !DATABASE_MODE_MAX != 0 {
        // Not fatal: a file someone else owns, shared on purpose, still
        // works as it did.
        let narrowed = mode & DATABASE_MODE_MAX;
        match file.set_permissions(std::fs::Permissions::from_mode(narrowed)) {
            Ok(()) => tracing::info!(
                path = %path.display(),
                was = format!("{mode:04o}"),
                now = format!("{narrowed:04o}"),
                "narrowed the data database's permissions"
            ),
            Err(e) => tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:04o}"),
                error = %e,
                "the data database is readable beyond its owner and group, and its permissions cannot be narrowed"
            ),
        }
    }
    Ok(file)
}

/// Starts the one transaction a table write happens in. IMMEDIATE takes the
/// write lock up front, so a busy database shows at once, before any work.
pub fn begin_write(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Whether the job `job_id` already committed its table write.
pub fn already_applied(conn: &Connection, job_id: &str) -> rusqlite::Result<bool> {
    ensure_applied_table(conn)?;
    let mut stmt = conn.prepare("SELECT 1 FROM _cronq_applied WHERE job_id = ?1")?;
    stmt.exists([job_id])
}

/// Records that `job_id` wrote `target`, in the caller's transaction, and
/// forgets records older than the retention.
pub fn record_applied(
    conn: &Connection,
    job_id: &str,
    target: &str,
    now_unix: i64,
) -> rusqlite::Result<()> {
    ensure_applied_table(conn)?;
    conn.execute(
        "INSERT INTO _cronq_applied (job_id, target, at) VALUES (?1, ?2, ?3)",
        (job_id, target, now_unix),
    )?;
    conn.execute(
        "DELETE FROM _cronq_applied WHERE at < ?1",
        [now_unix - APPLIED_RETENTION_SECS],
    )?;
    Ok(())
}

fn ensure_applied_table(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _cronq_applied (
             job_id TEXT PRIMARY KEY,
             target TEXT NOT NULL,
             at     INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS _cronq_applied_at ON _cronq_applied (at);",
    )
}

/// The columns of `table` in order, or `None` when there is no such table.
pub fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<Option<Vec<String>>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let columns = stmt
        .query_map([table], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    // Every table has at least one column, so none means no table.
    Ok((!columns.is_empty()).then_some(columns))
}

/// A running `SELECT *` over one table, read one row at a time.
pub struct TableCursor<'c> {
    stmt: Statement<'c>,
    columns: Vec<String>,
}

/// Opens a cursor over every row of `table`, in rowid order; `None` when
/// there is no such table.
pub fn select_all<'c>(
    conn: &'c Connection,
    table: &str,
) -> rusqlite::Result<Option<TableCursor<'c>>> {
    let Some(columns) = table_columns(conn, table)? else {
        return Ok(None);
    };
    let stmt = conn.prepare(&format!("SELECT * FROM {}", quote_ident(table)))?;
    Ok(Some(TableCursor { stmt, columns }))
}

impl TableCursor<'_> {
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Calls `f` with each row, as JSON values in column order, until the
    /// rows run out or `f` returns `false`.
    pub fn for_each(&mut self, mut f: impl FnMut(Vec<Value>) -> bool) -> rusqlite::Result<()> {
        let width = self.columns.len();
        let mut rows = self.stmt.query([])?;
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(to_json(row.get_ref(i)?));
            }
            if !f(values) {
                break;
            }
        }
        Ok(())
    }
}

/// A prepared INSERT into one table, inside the caller's transaction.
pub struct TableWriter<'c> {
    insert: Statement<'c>,
}

/// Makes `table` ready to receive rows with `columns`, per `mode`, and
/// prepares the INSERT. `None` when `columns` is empty (an input without
/// even a header): a replaced table is then emptied, a missing one is not
/// created, since there is nothing to create it with.
pub fn prepare_target<'c>(
    conn: &'c Connection,
    table: &str,
    columns: &[String],
    mode: WriteMode,
) -> Result<Option<TableWriter<'c>>, TargetError> {
    let quoted = quote_ident(table);
    let existing = table_columns(conn, table)?;
    if columns.is_empty() {
        if mode == WriteMode::Replace && existing.is_some() {
            conn.execute(&format!("DELETE FROM {quoted}"), [])?;
        }
        return Ok(None);
    }
    match (mode, existing) {
        (WriteMode::Append, Some(existing)) => {
            // SQLite compares column names without regard to ASCII case.
            if let Some(column) = columns
                .iter()
                .find(|c| !existing.iter().any(|e| e.eq_ignore_ascii_case(c)))
            {
                return Err(TargetError::UnknownColumn {
                    table: table.to_string(),
                    column: column.clone(),
                });
            }
        }
        (WriteMode::Append, None) => create_table(conn, &quoted, columns)?,
        (WriteMode::Replace, _) => {
            conn.execute(&format!("DROP TABLE IF EXISTS {quoted}"), [])?;
            create_table(conn, &quoted, columns)?;
        }
    }
    let names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let slots: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let insert = conn.prepare(&format!(
        "INSERT INTO {quoted} ({}) VALUES ({})",
        names.join(", "),
        slots.join(", ")
    ))?;
    Ok(Some(TableWriter { insert }))
}

fn create_table(conn: &Connection, quoted: &str, columns: &[String]) -> rusqlite::Result<()> {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    conn.execute(&format!("CREATE TABLE {quoted} ({})", names.join(", ")), [])?;
    Ok(())
}

impl TableWriter<'_> {
    /// Inserts one row; `row` has one value per column given to
    /// [`prepare_target`], in that order.
    pub fn insert(&mut self, row: &[Value]) -> rusqlite::Result<()> {
        self.insert
            .execute(rusqlite::params_from_iter(row.iter().map(Cell)))?;
        Ok(())
    }
}

/// `"name"`, with any `"` inside doubled: SQL's quoting of identifiers.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A JSON value bound as an SQLite value: strings without a copy, booleans
/// as 0/1, nested arrays and objects as their JSON text.
struct Cell<'a>(&'a Value);

impl ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
            Value::Number(n) => ToSqlOutput::Owned(match n.as_i64() {
                Some(i) => SqlValue::Integer(i),
                // Beyond i64 (or fractional): REAL, as SQLite itself does.
                None => n.as_f64().map_or(SqlValue::Null, SqlValue::Real),
            }),
            Value::String(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            nested => ToSqlOutput::Owned(SqlValue::Text(nested.to_string())),
        })
    }
}

/// An SQLite value as JSON: INTEGER and REAL as numbers, TEXT as a string,
/// NULL as null. A REAL that JSON cannot hold (an infinity) becomes null;
/// a BLOB becomes its lowercase hex text, the one lossless text form that
/// needs no extra crate.
fn to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Number(i.into()),
        ValueRef::Real(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        ValueRef::Blob(bytes) => {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            let mut hex = String::with_capacity(bytes.len() * 2);
            for b in bytes {
                hex.push(char::from(DIGITS[usize::from(b >> 4)]));
                hex.push(char::from(DIGITS[usize::from(b & 0xf)]));
            }
            Value::String(hex)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn read_all(conn: &Connection, table: &str) -> Vec<Vec<Value>> {
        let mut cursor = select_all(conn, table).unwrap().unwrap();
        let mut rows = Vec::new();
        cursor
            .for_each(|row| {
                rows.push(row);
                true
            })
            .unwrap();
        rows
    }

    #[test]
    fn values_keep_the_type_the_source_carried() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("data.db")).unwrap();
        let tx = begin_write(&mut conn).unwrap();
        let mut w = prepare_target(&tx, "t", &cols(&["a", "b"]), WriteMode::Append)
            .unwrap()
            .unwrap();
        w.insert(&[json!(7), json!("007")]).unwrap();
        w.insert(&[json!(1.5), json!(null)]).unwrap();
        w.insert(&[json!(true), json!({"k": [1]})]).unwrap();
        drop(w);
        tx.commit().unwrap();
        assert_eq!(
            read_all(&conn, "t"),
            vec![
                vec![json!(7), json!("007")],
                vec![json!(1.5), json!(null)],
                vec![json!(1), json!("{\"k\":[1]}")],
            ]
        );
    }

    #[test]
    fn append_refuses_an_unknown_column_and_replace_recreates() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("data.db")).unwrap();
        let tx = begin_write(&mut conn).unwrap();
        prepare_target(&tx, "t", &cols(&["a"]), WriteMode::Append).unwrap();
        let err = prepare_target(&tx, "t", &cols(&["A", "b"]), WriteMode::Append)
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "table \"t\" has no column \"b\"");
        prepare_target(&tx, "t", &cols(&["x", "y"]), WriteMode::Replace).unwrap();
        assert_eq!(table_columns(&tx, "t").unwrap(), Some(cols(&["x", "y"])));
    }

    #[test]
    fn odd_column_names_are_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("data.db")).unwrap();
        let tx = begin_write(&mut conn).unwrap();
        let names = cols(&["naïve \"x\"", "a,b", "select"]);
        let mut w = prepare_target(&tx, "t", &names, WriteMode::Append)
            .unwrap()
            .unwrap();
        w.insert(&[json!(1), json!(2), json!(3)]).unwrap();
        drop(w);
        assert_eq!(table_columns(&tx, "t").unwrap(), Some(names));
    }

    #[test]
    fn applied_jobs_are_remembered_and_old_ones_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("data.db")).unwrap();
        assert!(!already_applied(&conn, "j1").unwrap());
        record_applied(&conn, "j1", "table:t", 1_000).unwrap();
        assert!(already_applied(&conn, "j1").unwrap());
        record_applied(&conn, "j2", "table:t", 1_000 + APPLIED_RETENTION_SECS + 1).unwrap();
        assert!(!already_applied(&conn, "j1").unwrap());
        assert!(already_applied(&conn, "j2").unwrap());
    }

    #[test]
    fn a_missing_table_has_no_columns_and_no_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("data.db")).unwrap();
        assert_eq!(table_columns(&conn, "nope").unwrap(), None);
        assert!(select_all(&conn, "nope").unwrap().is_none());
    }

    #[test]
    fn the_database_and_its_wal_are_the_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.db");
        let mut conn = open(&path).unwrap();
        let tx = begin_write(&mut conn).unwrap();
        prepare_target(&tx, "t", &cols(&["a"]), WriteMode::Append).unwrap();
        tx.commit().unwrap();
        for name in ["data.db", "data.db-wal", "data.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
        }
        drop(conn);
        // An older, world-readable file loses what is beyond 0640.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn a_symlinked_or_hard_linked_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("queue.db");
        {
            let conn = Connection::open(&other).unwrap();
            conn.execute_batch(
                "CREATE TABLE queues (payload TEXT); INSERT INTO queues VALUES ('secret')",
            )
            .unwrap();
        }
        let linked = dir.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        std::os::unix::fs::symlink(&other, linked.join("data.db")).unwrap();
        let err = open(&linked.join("data.db")).err().unwrap();
        assert!(
            matches!(&err, OpenError::Refused(r) if r.contains("is a symlink")),
            "{err}"
        );

        let hard = dir.path().join("hard");
        std::fs::create_dir(&hard).unwrap();
        std::fs::hard_link(&other, hard.join("data.db")).unwrap();
        let err = open(&hard.join("data.db")).err().unwrap();
        assert!(
            matches!(&err, OpenError::Refused(r) if r.contains("2 hard links")),
            "{err}"
        );

        // A symlinked folder on the way is refused by SQLite's NOFOLLOW.
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("alias")).unwrap();
        let err = open(&dir.path().join("alias/data.db")).err().unwrap();
        assert!(
            matches!(&err, OpenError::Refused(r) if r.contains("holds a symlink")),
            "{err}"
        );
        assert!(open(&real.join("data.db")).is_ok());

        // A folder where the file should be, as `file:data.db/x.csv` made.
        let folder = dir.path().join("folder");
        std::fs::create_dir_all(folder.join("data.db")).unwrap();
        let err = open(&folder.join("data.db")).err().unwrap();
        assert!(
            matches!(&err, OpenError::Refused(r) if r.contains("is a folder")),
            "{err}"
        );
    }

    #[test]
    fn blobs_read_as_hex() {
        assert_eq!(
            to_json(ValueRef::Blob(&[0x00, 0xab, 0x10])),
            json!("00ab10")
        );
    }
}
