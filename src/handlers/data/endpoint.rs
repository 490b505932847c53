//! A job's two sides: `table:NAME` and `file:REL/PATH` endpoints (and, as
//! a source only, `pocketbase:COLLECTION`), parsed
//! and checked without touching the disk, so that the same rules refuse a
//! bad job at enqueue and at run time. Where they lead on disk is the
//! `path` module's business.
//!
//! Design choice: names the handler or the daemon own are refused here,
//! by name, rather than trusted to fail later. `data.db` and its `-wal`,
//! `-shm` and `-journal` files at the top of DATA_DIR, turned into folders
//! by a `file:` target, would break every table operation; a folder named
//! like the handler's temporary files would be mistaken for one; and a
//! table named like one of the daemon's own (`queues`, ...) is where the
//! damage would land if `data.db` were ever the daemon's database.

use std::path::{Component, Path, PathBuf};

use super::format::Format;
use crate::atomic_file::parse_temp_name;

/// Longest table name accepted; SQLite has no limit, people need no more.
const MAX_TABLE_NAME: usize = 64;

/// Longest `file:` path accepted, in bytes.
const MAX_FILE_PATH: usize = 1024;

/// Longest name of one file or folder, in bytes: Linux's NAME_MAX.
const MAX_NAME_BYTES: usize = 255;

/// The file name of the data database inside DATA_DIR.
pub const DATABASE_FILE: &str = "data.db";

/// A table in the data database: `[A-Za-z_][A-Za-z0-9_]*`, not one of
/// SQLite's, cronq's bookkeeping or the daemon's own table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName(String);

impl TableName {
    pub fn parse(name: &str) -> Result<TableName, String> {
        let mut chars = name.chars();
        let well_formed = match chars.next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            _ => false,
        };
        if !well_formed {
            return Err(format!(
                "table name {name:?} is not a plain identifier (letters, digits and _, not starting with a digit)"
            ));
        }
        if name.len() > MAX_TABLE_NAME {
            return Err(format!(
                "table name is {} characters long, at most {MAX_TABLE_NAME} are allowed",
                name.len()
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("sqlite_") || lower.starts_with("_cronq") {
            return Err(format!(
                "table name {name:?} is reserved (sqlite_* belongs to SQLite, _cronq* to cronq)"
            ));
        }
        let daemon = crate::store::daemon_table_names();
        if daemon.contains(&lower) {
            return Err(format!(
                "table name {name:?} is reserved: the daemon's own database has a table of that name ({})",
                daemon.join(", ")
            ));
        }
        Ok(TableName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SQLite compares names without regard to ASCII case.
    pub fn same_table(&self, other: &TableName) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

/// A relative path under DATA_DIR with a known format, e.g.
/// `exports/users.csv`. Holds no `..`, no root, no empty components, no
/// name over 255 bytes and no name the handler keeps for itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePath {
    rel: PathBuf,
    format: Format,
}

impl FilePath {
    pub fn parse(path: &str) -> Result<FilePath, String> {
        if path.is_empty() {
            return Err("a file path is required, e.g. file:exports/users.csv".to_string());
        }
        if path.len() > MAX_FILE_PATH {
            return Err(format!(
                "the path is {} bytes long, at most {MAX_FILE_PATH} are allowed",
                path.len()
            ));
        }
        if path.contains('\0') {
            return Err("the path contains a NUL character".to_string());
        }
        let raw = Path::new(path);
        let mut rel = PathBuf::new();
        for component in raw.components() {
            match component {
                Component::Normal(part) => {
                    check_name(
                        part.to_str().unwrap_or_default(),
                        rel.as_os_str().is_empty(),
                    )?;
                    rel.push(part);
                }
                Component::CurDir => {}
                Component::ParentDir => return Err("`..` is not allowed in a path".to_string()),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(
                        "absolute paths are not allowed; give a path relative to DATA_DIR"
                            .to_string(),
                    );
                }
            }
        }
        if path.ends_with('/') || rel.file_name().is_none() {
            return Err(format!("{path:?} names a folder, not a file"));
        }
        let format = Format::from_path(&rel).ok_or_else(|| {
            let ext = rel
                .extension()
                .map(|e| format!("extension \".{}\"", e.to_string_lossy()))
                .unwrap_or_else(|| "no extension".to_string());
            format!("unknown format: {ext}; expected .csv, .json or .jsonl")
        })?;
        Ok(FilePath { rel, format })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn rel(&self) -> &Path {
        &self.rel
    }
}

/// Checks one file or folder name of a path; `top` when it is the first,
/// which sits right in DATA_DIR beside the data database.
fn check_name(name: &str, top: bool) -> Result<(), String> {
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the name {} is {} bytes long; a file or folder name holds at most {MAX_NAME_BYTES}",
            shown(name),
            name.len()
        ));
    }
    let lower = name.to_ascii_lowercase();
    if top && (lower == DATABASE_FILE || lower.starts_with(&format!("{DATABASE_FILE}-"))) {
        return Err(format!(
            "{name:?} at the top of DATA_DIR belongs to the data database \
             ({DATABASE_FILE} and its -wal, -shm and -journal files); choose another name"
        ));
    }
    if parse_temp_name(name.as_ref()).is_some() {
        return Err(format!(
            "{name:?} has the form of the handler's temporary files (.NAME.PID-RANDOM.tmp), \
             which are deleted at start-up; choose another name"
        ));
    }
    Ok(())
}

/// A PocketBase collection's name, as PocketBase allows them, without its
/// system collections (`_superusers`, `_authOrigins`, ...).
fn collection_name(name: &str) -> Result<String, String> {
    let plain = !name.is_empty()
        && name.len() <= MAX_TABLE_NAME
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain {
        return Err(format!(
            "collection name {name:?} is not 1 to {MAX_TABLE_NAME} letters, digits and _"
        ));
    }
    if name.starts_with('_') {
        return Err(format!(
            "collection {name:?} is one of PocketBase's own (_*), which jobs do not read"
        ));
    }
    Ok(name.to_string())
}

/// The start of a long name, for a message.
fn shown(name: &str) -> String {
    const MAX: usize = 40;
    let mut end = name.len().min(MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    if end < name.len() {
        format!("\"{}…\"", &name[..end])
    } else {
        format!("{name:?}")
    }
}

/// One side of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Table(TableName),
    File(FilePath),
    /// A collection of the configured PocketBase (`pocketbase:users`):
    /// letters, digits and `_`, not one of its system collections (`_*`).
    /// A source only.
    PocketBase(String),
}

impl Endpoint {
    /// Parses `table:NAME` or `file:REL/PATH`; the error is the reason only,
    /// the caller adds the field.
    pub fn parse(value: &str) -> Result<Endpoint, String> {
        if let Some(name) = value.strip_prefix("table:") {
            TableName::parse(name).map(Endpoint::Table)
        } else if let Some(path) = value.strip_prefix("file:") {
            FilePath::parse(path).map(Endpoint::File)
        } else if let Some(collection) = value.strip_prefix("pocketbase:") {
            collection_name(collection).map(Endpoint::PocketBase)
        } else {
            Err(format!(
                "expected table:NAME, file:PATH.{{csv,json,jsonl}} or pocketbase:COLLECTION, got {value:?}"
            ))
        }
    }

    pub fn is_pocketbase(&self) -> bool {
        matches!(self, Endpoint::PocketBase(_))
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Endpoint::Table(_))
    }

    /// Whether this is a `.csv` file.
    pub fn is_csv_file(&self) -> bool {
        matches!(self, Endpoint::File(p) if p.format() == Format::Csv)
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Table(t) => write!(f, "table:{}", t.0),
            Endpoint::File(p) => write!(f, "file:{}", p.rel().display()),
            Endpoint::PocketBase(c) => write!(f, "pocketbase:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(TableName::parse("users_2024").is_ok());
        assert!(TableName::parse("_x").is_ok());
        for bad in [
            "",
            "1users",
            "users;drop",
            "a b",
            "naïve",
            "a\"b",
            "sqlite_master",
            "_cronq_applied",
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(TableName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn the_daemons_table_names_are_reserved() {
        for name in [
            "queues",
            "QUEUES",
            "job_errors",
            "cron_runs",
            "cron_state",
            "instances",
            "queue_counts",
            "schema_migrations",
            "schema_version",
            "sqlite_sequence",
        ] {
            let err = TableName::parse(name).unwrap_err();
            assert!(err.contains("reserved"), "{name}: {err}");
        }
        assert_eq!(
            TableName::parse("queues").unwrap_err(),
            format!(
                "table name \"queues\" is reserved: the daemon's own database has a table of that name ({})",
                crate::store::daemon_table_names().join(", ")
            )
        );
        assert!(TableName::parse("queues_archive").is_ok());
    }

    #[test]
    fn file_paths_stay_relative_and_known() {
        let p = FilePath::parse("./exports//ünïcode/Ä.jsonl").unwrap();
        assert_eq!(p.rel(), Path::new("exports/ünïcode/Ä.jsonl"));
        assert_eq!(p.format(), Format::Jsonl);
        assert_eq!(
            FilePath::parse("/etc/passwd.csv").unwrap_err(),
            "absolute paths are not allowed; give a path relative to DATA_DIR"
        );
        assert_eq!(
            FilePath::parse("a/../../b.csv").unwrap_err(),
            "`..` is not allowed in a path"
        );
        assert_eq!(
            FilePath::parse("a/b.txt").unwrap_err(),
            "unknown format: extension \".txt\"; expected .csv, .json or .jsonl"
        );
        assert!(FilePath::parse("a/b").unwrap_err().contains("no extension"));
        assert!(FilePath::parse("").is_err());
        assert!(FilePath::parse("dir.csv/").is_err());
        assert!(FilePath::parse("a\0.csv").is_err());
    }

    #[test]
    fn the_data_databases_files_are_refused_at_the_top_only() {
        for path in [
            "data.db/x.csv",
            "data.db-wal/x.csv",
            "./data.db-shm/x.csv",
            "data.db-journal/x.csv",
            "DATA.DB-WAL/x.csv",
            "data.db-mj0123/x.json",
        ] {
            let err = FilePath::parse(path).unwrap_err();
            assert!(
                err.contains("belongs to the data database"),
                "{path}: {err}"
            );
        }
        assert!(FilePath::parse("sub/data.db-wal/x.csv").is_ok());
        assert!(FilePath::parse("data.dbx/x.csv").is_ok());
        assert!(FilePath::parse("data.db.csv").is_ok());
    }

    #[test]
    fn a_name_shaped_like_a_temporary_file_is_refused() {
        let err = FilePath::parse("out/.x.csv.12-0123456789abcdef.tmp/y.csv").unwrap_err();
        assert!(err.contains("temporary files"), "{err}");
        assert!(FilePath::parse("out/.x.csv.tmp/y.csv").is_ok());
    }

    #[test]
    fn a_name_over_255_bytes_is_refused() {
        let name = format!("{}.csv", "é".repeat(126));
        assert_eq!(name.len(), 256);
        let err = FilePath::parse(&name).unwrap_err();
        assert!(
            err.ends_with("is 256 bytes long; a file or folder name holds at most 255"),
            "{err}"
        );
        let folder = format!("{}/x.csv", "d".repeat(256));
        assert!(FilePath::parse(&folder).is_err());
        let just = format!("{}.csv", "a".repeat(251));
        assert!(FilePath::parse(&just).is_ok());
    }

    #[test]
    fn endpoints_need_a_known_scheme() {
        assert!(matches!(Endpoint::parse("table:t"), Ok(Endpoint::Table(_))));
        assert!(matches!(
            Endpoint::parse("file:a.csv"),
            Ok(Endpoint::File(_))
        ));
        assert!(Endpoint::parse("http://x/a.csv").is_err());
        assert_eq!(
            Endpoint::parse("pocketbase:users"),
            Ok(Endpoint::PocketBase("users".into()))
        );
        assert!(
            Endpoint::parse("pocketbase:_superusers")
                .unwrap_err()
                .contains("PocketBase's own")
        );
        assert!(Endpoint::parse("pocketbase:a/b").is_err());
        assert!(Endpoint::parse("pocketbase:").is_err());
        assert_eq!(
            Endpoint::parse("file:./a/b.csv").unwrap().to_string(),
            "file:a/b.csv"
        );
    }
}
