//! Opening a connection and the settings every connection runs with.
//!
//! `synchronous`: the writer switches between NORMAL and FULL per
//! transaction (see `writer`). NORMAL in WAL mode never corrupts the file and
//! loses nothing on a process crash (`kill -9`); a power cut may drop the
//! last transactions. FULL, used when a transaction holds an enqueue, fsyncs
//! the WAL before the answer, so an acknowledged job survives a power cut.
//! Because the WAL is one append-only file, that fsync also makes every
//! earlier NORMAL transaction durable: order is kept.
//!
//! File modes: a new database is created 0600 before SQLite opens it, so
//! job payloads are not readable by every local user under a loose umask
//! (outside systemd, whose unit sets `UMask=0077`). SQLite gives the WAL
//! and shared-memory files the mode of the database file, exactly.

use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::BUSY_TIMEOUT;

pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    configure(&mut conn)?;
    Ok(conn)
}

/// Creates the database file at `path`, mode 0600 whatever the umask, if it
/// does not exist; an existing file keeps its mode (an operator may have
/// chosen it), with a warning when other users can read it. A URI
/// (`file:...`) is left to SQLite.
pub(super) fn create_private(path: &Path) -> io::Result<()> {
    if path.to_str().is_some_and(|p| p.starts_with("file:")) {
        return Ok(());
    }
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match created {
        // The umask may have taken bits away; fchmod is not subject to it.
        Ok(file) => file.set_permissions(std::fs::Permissions::from_mode(0o600)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:04o}", meta.permissions().mode() & 0o7777),
                    "the database file is readable by other users; `chmod 600` it unless that is meant"
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Per-connection settings; also the r2d2 pool's init hook.
pub(super) fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every operation runs in its own savepoint (see `writer`), and SQLite
    // copies each page a savepoint first touches to a sub-journal. On disk
    // that was a temp file written page by page and truncated at every
    // commit: over a third of the writer's time in profiles. In memory it
    // is a copy, bounded by the pages one transaction touches.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Switches the file to WAL and checks SQLite agreed: a pragma SQLite does
/// not know is silently ignored, and a queue without WAL still "works".
pub(super) fn enable_wal(conn: &Connection) -> Result<(), String> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "SQLite refused WAL mode (journal_mode is {mode}); is the file on a network file system?"
        ));
    }
    Ok(())
}
