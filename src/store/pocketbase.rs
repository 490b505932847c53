//! The replaced system's PocketBase file, `pb_data/data.db`, read for
//! `cronq import-pocketbase`: one collection's table, a page at a time,
//! newest first, each row turned into the JSON PocketBase's own API
//! answers, so one reader (`bridge::pocketbase::record`) serves the file
//! and the API alike.
//!
//! PocketBase may be running: the file is opened read-only (read-write
//! only for `--delete`, and never created), with a busy timeout, in the
//! journal mode it has (WAL). Values are read by their stored type, not
//! by the column's: a `JSON` column has numeric affinity, so a payload
//! `'123'` is the integer 123, which is what the API says too.
//!
//! Opening a WAL database creates its `-wal` and `-shm` files when
//! PocketBase is stopped. Made by root (a `sudo cronq import-pocketbase`)
//! they would keep PocketBase, running as its own user, from opening its
//! database; SQLite itself gives them the database's owner when it runs
//! as root (`robust_open` in its unix layer), which a test here pins.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, params};
use serde_json::{Map, Number, Value};

/// How long a statement waits for PocketBase's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The columns read, as PocketBase's API names them; the first six must
/// exist.
const COLUMNS: [&str; 8] = [
    "id",
    "name",
    "payload",
    "attempts",
    "reserved_at",
    "created",
    "description",
    "updated",
];
const REQUIRED: usize = 6;

/// Why the file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum PbFileError {
    #[error("cannot open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "{path} is not a PocketBase data.db: it has no _collections table (give PATH/pb_data/data.db)"
    )]
    NotPocketBase { path: String },
    #[error("{path} has no collection {collection:?}; its collections: {}", if tables.is_empty() { "none".to_string() } else { tables.join(", ") })]
    NoCollection {
        path: String,
        collection: String,
        tables: Vec<String>,
    },
    #[error(
        "the collection {collection:?} in {path} has no {column:?} field, so it is not the replaced system's queue (id, name, payload, attempts, reserved_at, created)"
    )]
    NoColumn {
        path: String,
        collection: String,
        column: String,
    },
    #[error("reading {path}: {reason}")]
    Sqlite { path: String, reason: String },
}

/// The open file and the collection read.
pub struct PbFile {
    conn: Connection,
    path: PathBuf,
    table: String,
    /// Which optional columns exist.
    has: [bool; COLUMNS.len()],
}

impl PbFile {
    /// Opens `path` for reading `collection` (a plain name: letters,
    /// digits and `_`); `writable` only to delete imported records.
    pub fn open(path: &Path, collection: &str, writable: bool) -> Result<PbFile, PbFileError> {
        let shown = path.display().to_string();
        let open_error = |reason: String| PbFileError::Open {
            path: shown.clone(),
            reason,
        };
        if !collection
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || collection.is_empty()
        {
            return Err(open_error(format!(
                "{collection:?} is not a collection name (letters, digits and _)"
            )));
        }
        let meta = std::fs::metadata(path).map_err(|e| open_error(e.to_string()))?;
        if !meta.is_file() {
            return Err(open_error("not a file".into()));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_NO_MUTEX;
        flags |= if writable {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let conn =
            Connection::open_with_flags(path, flags).map_err(|e| open_error(e.to_string()))?;
        let mut file = PbFile {
            conn,
            path: path.to_path_buf(),
            table: collection.to_string(),
            has: [false; COLUMNS.len()],
        };
        file.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| file.sqlite(e))?;
        file.check_table()?;
        Ok(file)
    }

    fn sqlite(&self, e: rusqlite::Error) -> PbFileError {
        PbFileError::Sqlite {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// The table exists in a PocketBase file and has the queue's columns.
    fn check_table(&mut self) -> Result<(), PbFileError> {
        let conn = &self.conn;
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.sqlite(e))?;
        let path = self.path.display().to_string();
        if !tables.iter().any(|t| t == "_collections") {
            return Err(PbFileError::NotPocketBase { path });
        }
        if !tables.contains(&self.table) {
            return Err(PbFileError::NoCollection {
                path,
                collection: self.table.clone(),
                tables: tables
                    .into_iter()
                    .filter(|t| !t.starts_with('_') && !t.starts_with("sqlite_"))
                    .collect(),
            });
        }
        let columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{}')",
                self.table
            ))
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(|e| self.sqlite(e))?;
        for (i, column) in COLUMNS.iter().enumerate() {
            self.has[i] = columns.iter().any(|c| c == column);
            if i < REQUIRED && !self.has[i] {
                return Err(PbFileError::NoColumn {
                    path,
                    collection: self.table.clone(),
                    column: column.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Up to `limit` records after the cursor `(created, id)`, newest
    /// first, each as PocketBase's API writes a record.
    pub fn page(
        &self,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Vec<Value>, PbFileError> {
        let select: Vec<String> = COLUMNS
            .iter()
            .zip(self.has)
            .map(|(c, has)| {
                if has {
                    format!("\"{c}\"")
                } else {
                    "NULL".into()
                }
            })
            .collect();
        let filter = if after.is_some() {
            "WHERE (created, id) < (?1, ?2)"
        } else {
            "WHERE ?1 IS NULL AND ?2 IS NULL"
        };
        let sql = format!(
            "SELECT {} FROM \"{}\" {filter} ORDER BY created DESC, id DESC LIMIT ?3",
            select.join(", "),
            self.table
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sqlite(e))?;
        let (created, id) = match after {
            Some((created, id)) => (Some(created.as_str()), Some(id.as_str())),
            None => (None, None),
        };
        let rows = stmt
            .query_map(params![created, id, limit as i64], |row| {
                let mut record = Map::new();
                for (i, column) in COLUMNS.iter().enumerate() {
                    if self.has[i] {
                        record.insert(column.to_string(), json_of(column, row.get_ref(i)?));
                    }
                }
                Ok(Value::Object(record))
            })
            .map_err(|e| self.sqlite(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sqlite(e))
    }

    /// Deletes the records `ids` in one transaction; returns how many were
    /// there. Needs the file opened `writable`.
    pub fn delete(&mut self, ids: &[String]) -> Result<usize, PbFileError> {
        let table = self.table.clone();
        let path = self.path.display().to_string();
        let failed = |e: rusqlite::Error| PbFileError::Sqlite {
            path: path.clone(),
            reason: format!("deleting imported records: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(failed)?;
        let mut deleted = 0;
        {
            let mut stmt = tx
                .prepare(&format!("DELETE FROM \"{table}\" WHERE id = ?1"))
                .map_err(failed)?;
            for id in ids {
                deleted += stmt.execute([id]).map_err(failed)?;
            }
        }
        tx.commit().map_err(failed)?;
        Ok(deleted)
    }
}

/// A stored value as PocketBase's API writes it: JSON text of the JSON
/// column parsed (text that is not JSON stays text, for the reader to
/// refuse), numbers as numbers, whatever their column.
fn json_of(column: &str, value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Number(i.into()),
        ValueRef::Real(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            if column == "payload" {
                serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.into_owned()))
            } else {
                Value::String(text.into_owned())
            }
        }
        ValueRef::Blob(bytes) => Value::String(format!("(binary data, {} bytes)", bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A file laid out as PocketBase 0.40 lays out the replaced system's
    /// collection (types as `core/field_*.go` declare them).
    fn pocketbase_file(dir: &Path) -> PathBuf {
        let path = dir.join("data.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE _collections (id TEXT PRIMARY KEY, name TEXT);
             CREATE TABLE users (id TEXT PRIMARY KEY);
             CREATE TABLE queues (
                 id TEXT PRIMARY KEY DEFAULT ('r'||lower(hex(randomblob(7)))) NOT NULL,
                 name TEXT DEFAULT '' NOT NULL, description TEXT DEFAULT '' NOT NULL,
                 payload JSON DEFAULT NULL, attempts NUMERIC DEFAULT 0 NOT NULL,
                 reserved_at TEXT DEFAULT '' NOT NULL,
                 created TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL);
             INSERT INTO queues VALUES
                 ('a1', 'welcome', '', '{\"type\":\"email\",\"data\":{}}', 0, '', '2026-12-01 08:00:00.000Z', ''),
                 ('a2', 'digits', '', '123', 2, '', '2026-12-01 09:00:00.000Z', ''),
                 ('a3', 'float', '', 'not json', 1.5, '2026-12-01 09:30:00.000Z', '2026-12-01 09:00:00.000Z', ''),
                 ('a4', 'none', '', NULL, '7', '', '2026-12-01 10:00:00.000Z', '');",
        )
        .unwrap();
        path
    }

    #[test]
    fn rows_read_newest_first_with_their_stored_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = pocketbase_file(dir.path());
        let file = PbFile::open(&path, "queues", false).unwrap();
        let first = file.page(None, 2).unwrap();
        let ids: Vec<&str> = first.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a4", "a3"]);
        // NUMERIC affinity: '7' is stored as 7.
        assert_eq!(first[0]["attempts"], json!(7));
        assert_eq!(first[0]["payload"], Value::Null);
        assert_eq!(first[1]["payload"], json!("not json"));
        assert_eq!(first[1]["attempts"], json!(1.5));
        assert_eq!(first[1]["reserved_at"], "2026-12-01 09:30:00.000Z");
        let cursor = ("2026-12-01 09:00:00.000Z".to_string(), "a3".to_string());
        let rest = file.page(Some(&cursor), 10).unwrap();
        let ids: Vec<&str> = rest.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["a2", "a1"]);
        // JSON '123' has numeric affinity: the integer 123, as the API says.
        assert_eq!(rest[0]["payload"], json!(123));
        assert_eq!(rest[1]["payload"], json!({"type": "email", "data": {}}));
        assert_eq!(rest[1]["description"], "");
    }

    #[test]
    fn a_read_only_file_refuses_deletes_and_a_writable_one_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = pocketbase_file(dir.path());
        let mut file = PbFile::open(&path, "queues", false).unwrap();
        let err = file.delete(&["a1".into()]).unwrap_err().to_string();
        assert!(err.contains("readonly"), "{err}");
        drop(file);
        let mut file = PbFile::open(&path, "queues", true).unwrap();
        assert_eq!(file.delete(&["a1".into(), "zz".into()]).unwrap(), 1);
        assert_eq!(file.page(None, 10).unwrap().len(), 3);
    }

    #[test]
    fn a_wrong_file_or_collection_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = pocketbase_file(dir.path());
        let err = PbFile::open(&path, "jobs", false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.ends_with("has no collection \"jobs\"; its collections: queues, users"),
            "{err}"
        );
        let err = PbFile::open(&path, "users", false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("has no \"name\" field"), "{err}");
        let err = PbFile::open(&dir.path().join("missing.db"), "queues", false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("cannot open"), "{err}");
        assert!(!dir.path().join("missing.db").exists(), "never created");
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE queues (id TEXT)")
            .unwrap();
        let err = PbFile::open(&other, "queues", false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is not a PocketBase data.db"), "{err}");
    }

    fn sibling(path: &Path, suffix: &str) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    #[test]
    fn wal_files_made_by_root_are_given_the_databases_owner() {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: only root can make files for another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = pocketbase_file(dir.path());
        for file in [sibling(&path, "-wal"), sibling(&path, "-shm")] {
            let _ = std::fs::remove_file(file);
        }
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let file = PbFile::open(&path, "queues", false).unwrap();
        file.page(None, 1).unwrap();
        drop(file);
        for made in [sibling(&path, "-wal"), sibling(&path, "-shm")] {
            let meta = std::fs::metadata(&made).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65534, 65534),
                "{}",
                made.display()
            );
        }
    }
}
