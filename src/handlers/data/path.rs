//! Where a job's data lives: `table:NAME` and `file:REL/PATH` endpoints,
//! checked without touching the disk at enqueue time, then resolved against
//! the real DATA_DIR when the job runs.
//!
//! Design choice: symlinks are not refused outright, only those that lead
//! out of DATA_DIR, because operators legitimately link folders inside it.
//! So every existing component is canonicalized and must stay under
//! DATA_DIR's real path; a missing target folder is created one level at a
//! time and each level checked again. The check is then repeated on the
//! opened descriptor (`/proc/self/fd`), and a target is written through a
//! handle on its folder rather than through the folder's path, so a symlink
//! swapped in between the check and the use is caught too.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};

use super::error::DataError;
use super::format::Format;

/// Longest table name accepted; SQLite has no limit, people need no more.
const MAX_TABLE_NAME: usize = 64;

/// Longest `file:` path accepted, in bytes.
const MAX_FILE_PATH: usize = 1024;

/// The file name of the data database inside DATA_DIR.
pub const DATABASE_FILE: &str = "data.db";

/// A table in the data database: `[A-Za-z_][A-Za-z0-9_]*`.
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
/// `exports/users.csv`. Holds no `..`, no root, no empty components.
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
                Component::Normal(part) => rel.push(part),
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

/// One side of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Table(TableName),
    File(FilePath),
}

impl Endpoint {
    /// Parses `table:NAME` or `file:REL/PATH`; the error is the reason only,
    /// the caller adds the field.
    pub fn parse(value: &str) -> Result<Endpoint, String> {
        if let Some(name) = value.strip_prefix("table:") {
            TableName::parse(name).map(Endpoint::Table)
        } else if let Some(path) = value.strip_prefix("file:") {
            FilePath::parse(path).map(Endpoint::File)
        } else {
            Err(format!(
                "expected table:NAME or file:PATH.{{csv,json,jsonl}}, got {value:?}"
            ))
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Endpoint::Table(_))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Table(t) => write!(f, "table:{}", t.0),
            Endpoint::File(p) => write!(f, "file:{}", p.rel().display()),
        }
    }
}

/// DATA_DIR, by its real path.
#[derive(Debug)]
pub struct DataRoot {
    real: PathBuf,
}

/// A folder under DATA_DIR held open, so that names inside it are resolved
/// in that folder even if its path is changed afterwards.
#[derive(Debug)]
pub struct PinnedDir {
    handle: File,
    /// `/proc/self/fd/N` while /proc is there, else the folder's real path.
    path: PathBuf,
}

impl PinnedDir {
    /// The path of `name` inside this folder.
    pub fn entry(&self, name: &std::ffi::OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Makes the folder's entries (a rename) durable.
    pub fn sync(&self) -> io::Result<()> {
        self.handle.sync_all()
    }
}

impl DataRoot {
    /// Creates DATA_DIR when missing and finds its real path.
    pub fn open(data_dir: &Path) -> Result<DataRoot, DataError> {
        fs::create_dir_all(data_dir)
            .map_err(|e| DataError::io(format!("creating DATA_DIR {}", data_dir.display()), e))?;
        let real = fs::canonicalize(data_dir)
            .map_err(|e| DataError::io(format!("resolving DATA_DIR {}", data_dir.display()), e))?;
        Ok(DataRoot { real })
    }

    pub fn database_path(&self) -> PathBuf {
        self.real.join(DATABASE_FILE)
    }

    /// Opens an existing source file for reading.
    pub fn open_source(&self, field: &'static str, path: &FilePath) -> Result<File, DataError> {
        let joined = self.real.join(&path.rel);
        let real = match fs::canonicalize(&joined) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::Missing {
                    field,
                    what: format!("file {:?}", path.rel.display().to_string()),
                });
            }
            Err(e) => return Err(DataError::io(format!("{field}: resolving the path"), e)),
        };
        self.check_inside(field, &real)?;
        // O_NOFOLLOW: the last component was no symlink a moment ago and must
        // not have become one. O_NONBLOCK: a FIFO must not hang the open.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&real)
            .map_err(|e| self.open_error(field, e))?;
        let meta = file
            .metadata()
            .map_err(|e| DataError::io(format!("{field}: reading the file's metadata"), e))?;
        if !meta.is_file() {
            return Err(DataError::refused(field, "is not a regular file"));
        }
        self.check_descriptor(field, &file)?;
        Ok(file)
    }

    /// Finds (creating when missing) the folder a target file goes in, and
    /// returns it held open together with the file's name.
    pub fn target_dir(
        &self,
        field: &'static str,
        path: &FilePath,
    ) -> Result<(PinnedDir, OsString), DataError> {
        let name = path
            .rel
            .file_name()
            .ok_or_else(|| DataError::invalid(field, "names a folder, not a file"))?
            .to_os_string();
        let mut current = self.real.clone();
        if let Some(parent) = path.rel.parent() {
            for part in parent.components() {
                let next = current.join(part);
                match fs::symlink_metadata(&next) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&next) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => {
                            return Err(DataError::io(
                                format!("{field}: creating folder {}", next.display()),
                                e,
                            ));
                        }
                    },
                    Err(e) => {
                        return Err(DataError::io(
                            format!("{field}: looking at {}", next.display()),
                            e,
                        ));
                    }
                }
                let real = fs::canonicalize(&next)
                    .map_err(|e| DataError::io(format!("{field}: resolving the path"), e))?;
                self.check_inside(field, &real)?;
                if !real.is_dir() {
                    return Err(DataError::refused(
                        field,
                        format!("{:?} is not a folder", part.as_os_str()),
                    ));
                }
                current = real;
            }
        }
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&current)
            .map_err(|e| self.open_error(field, e))?;
        self.check_descriptor(field, &handle)?;
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
        let path = if proc_path.exists() {
            proc_path
        } else {
            current
        };
        let dir = PinnedDir { handle, path };
        if fs::symlink_metadata(dir.entry(&name)).is_ok_and(|meta| meta.is_dir()) {
            return Err(DataError::refused(field, "names an existing folder"));
        }
        Ok((dir, name))
    }

    fn check_inside(&self, field: &'static str, real: &Path) -> Result<(), DataError> {
        if real.starts_with(&self.real) {
            Ok(())
        } else {
            Err(DataError::refused(
                field,
                "the path leads out of DATA_DIR through a symlink",
            ))
        }
    }

    /// Checks where an opened descriptor really is. Without /proc (an
    /// unusual sandbox) the path checks made before opening stand alone.
    fn check_descriptor(&self, field: &'static str, file: &File) -> Result<(), DataError> {
        match fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            Ok(real) => self.check_inside(field, &real),
            Err(_) => Ok(()),
        }
    }

    fn open_error(&self, field: &'static str, e: io::Error) -> DataError {
        if e.raw_os_error() == Some(libc::ELOOP) {
            DataError::refused(
                field,
                "the path was changed into a symlink while it was opened",
            )
        } else {
            DataError::io(format!("{field}: opening"), e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

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
    fn endpoints_need_a_known_scheme() {
        assert!(matches!(Endpoint::parse("table:t"), Ok(Endpoint::Table(_))));
        assert!(matches!(
            Endpoint::parse("file:a.csv"),
            Ok(Endpoint::File(_))
        ));
        assert!(Endpoint::parse("http://x/a.csv").is_err());
        assert_eq!(
            Endpoint::parse("file:./a/b.csv").unwrap().to_string(),
            "file:a/b.csv"
        );
    }

    #[test]
    fn a_symlink_out_of_data_dir_is_refused_for_reading() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.csv"), "a\n1\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        symlink(
            outside.path().join("secret.csv"),
            dir.path().join("link.csv"),
        )
        .unwrap();
        symlink(outside.path(), dir.path().join("out")).unwrap();
        for path in ["link.csv", "out/secret.csv"] {
            let err = root
                .open_source("source", &FilePath::parse(path).unwrap())
                .unwrap_err();
            assert!(matches!(err, DataError::Refused { .. }), "{path}: {err}");
        }
    }

    #[test]
    fn a_symlink_inside_data_dir_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/a.csv"), "a\n1\n").unwrap();
        symlink(dir.path().join("real"), dir.path().join("alias")).unwrap();
        root.open_source("source", &FilePath::parse("alias/a.csv").unwrap())
            .unwrap();
    }

    #[test]
    fn a_target_folder_is_created_but_a_planted_symlink_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        let (pinned, name) = root
            .target_dir("target", &FilePath::parse("new/deeper/x.csv").unwrap())
            .unwrap();
        assert_eq!(name, "x.csv");
        assert!(dir.path().join("new/deeper").is_dir());
        std::fs::write(pinned.entry(&name), "via the pinned folder").unwrap();
        assert!(dir.path().join("new/deeper/x.csv").is_file());

        symlink(outside.path(), dir.path().join("planted")).unwrap();
        let err = root
            .target_dir("target", &FilePath::parse("planted/sub/x.csv").unwrap())
            .unwrap_err();
        assert!(matches!(err, DataError::Refused { .. }), "{err}");
        assert!(!outside.path().join("sub").exists());
    }

    #[test]
    fn a_missing_source_is_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        let err = root
            .open_source("source", &FilePath::parse("nope.csv").unwrap())
            .unwrap_err();
        assert_eq!(err.to_string(), "source: file \"nope.csv\" does not exist");
        assert!(err.is_retryable());
    }
}
