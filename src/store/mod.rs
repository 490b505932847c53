//! The SQLite store: every SQL statement cronq runs lives below this module.
//!
//! [`Store`] is a cheap `Clone` handle. Reads go through an r2d2 pool (WAL
//! lets them run beside a writer). Writes go to one writer thread that owns
//! its connection and commits whatever is waiting as one transaction, with a
//! savepoint per operation: SQLite takes one writer at a time anyway, and a
//! pool of writers would only take turns through the busy handler's sleeps.
//! The interface is the queue's and the crons' verbs, so that another
//! database can sit beside this one without touching the rest.

mod checkpoint;
mod connection;
pub mod crons;
pub mod data;
pub mod instances;
pub mod jobs;
pub mod manage;
mod migrate;
pub mod tick;
mod writer;

use writer::Mode;
pub use writer::{AfterCommit, Pending};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub use jobs::{JobDefaults, ListFilter};
pub use migrate::{SCHEMA_VERSION, daemon_table_names};

/// Why the store could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another process held the write lock past the busy timeout.
    #[error("the database is busy (locked by another process): {0}")]
    Busy(String),
    /// The disk is full: nothing was written.
    #[error("the database cannot be written, the disk is full: {0}")]
    Full(String),
    /// The file cannot be written for another reason (read-only, I/O error).
    #[error("the database cannot be written: {0}")]
    Unwritable(String),
    #[error(
        "the database at {path} has schema version {found}, newer than this cronq (it knows up to {known}); upgrade cronq or use another database"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("cannot open the database at {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("the store is closed")]
    Closed,
    #[error("queue is full: {pending} jobs are pending, the limit is {limit}")]
    QueueFull { pending: u64, limit: u64 },
    #[error("database error: {0}")]
    Sqlite(String),
}

impl StoreError {
    /// Whether the failure is the database's state (busy, full, read-only),
    /// which the admin socket reports as `unavailable`.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Busy(_)
                | StoreError::Full(_)
                | StoreError::Unwritable(_)
                | StoreError::Closed
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                StoreError::Busy(e.to_string())
            }
            Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
            Some(
                ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied,
            ) => StoreError::Unwritable(e.to_string()),
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> StoreError {
        StoreError::Busy(format!("no database connection available: {e}"))
    }
}

/// How long a statement waits for another process's write lock before it
/// gives up with `Busy`. Long enough to ride out a checkpoint or a burst from
/// another daemon, short enough that a client gets an answer.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Readers kept by the pool; the writer has its own connection.
const READERS: u32 = 4;

/// A handle on the database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    pool: Pool<SqliteConnectionManager>,
    writer: writer::Writer,
    defaults: JobDefaults,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending
    /// migrations, and starts the writer thread.
    pub fn open(path: &Path, defaults: JobDefaults) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // 0750: the admin socket may live here too (ARCHITECTURE.md, Security).
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o750,
            )
            .create(parent)
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                reason: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let open_error = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        let mut first = connection::open(path).map_err(|e| open_error(e.to_string()))?;
        connection::enable_wal(&first).map_err(open_error)?;
        migrate::run(&mut first, path)?;
        drop(first);

        let manager = SqliteConnectionManager::file(path).with_init(connection::configure);
        // No idle timeout and no lifetime: either one makes r2d2 run a
        // reaper on its own thread that wakes every 30 s, even in a daemon
        // with nothing to do. Keeping up to READERS connections open is cheap.
        let pool = Pool::builder()
            .max_size(READERS)
            .min_idle(Some(0))
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)
            .map_err(|e| open_error(e.to_string()))?;
        let writer_conn = connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let checkpoint_conn = connection::open(path).map_err(|e| open_error(e.to_string()))?;
        let writer = writer::Writer::start(writer_conn, checkpoint_conn)
            .map_err(|e| open_error(e.to_string()))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                pool,
                writer,
                defaults,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn defaults(&self) -> &JobDefaults {
        &self.inner.defaults
    }

    /// Runs `f` on a pooled reader connection, off the async runtime.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &JobDefaults) -> Result<R, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let conn = inner.pool.get()?;
            f(&conn, &inner.defaults)
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("a read panicked: {e}")))?
    }

    /// Runs `f` inside the writer's next transaction and answers once that
    /// transaction has committed. `Mode::Durable` asks for the commit to
    /// reach the disk before the answer (enqueues: an acknowledged job
    /// survives a power cut); other writes (claims, completions) may be lost
    /// to a power cut, which only means a job runs again. `Mode::Alone` is
    /// durable and runs `f` in a transaction of its own (see `writer`).
    pub(crate) async fn write<R, F>(&self, mode: Mode, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &JobDefaults) -> Result<R, StoreError> + Send + 'static,
    {
        self.write_queued(mode, f, None).await?.committed().await
    }

    /// Like [`Store::write`], but returns as soon as `f` is queued: the
    /// caller goes on and awaits the commit later, or lets `then` see the
    /// answer on the writer thread right after the commit. Workers record
    /// outcomes this way, so a worker never idles while a commit runs.
    pub(crate) async fn write_queued<R, F>(
        &self,
        mode: Mode,
        f: F,
        then: Option<AfterCommit<R>>,
    ) -> Result<Pending<R>, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &JobDefaults) -> Result<R, StoreError> + Send + 'static,
    {
        let defaults = self.inner.defaults.clone();
        self.inner
            .writer
            .send(mode, move |conn| f(conn, &defaults), then)
            .await
    }

    /// Whether writes are getting through: the writer is idle, or its
    /// current transaction is younger than `limit`. Costs no I/O, so the
    /// watchdog can ask every few seconds without waking the database.
    pub fn responsive(&self, limit: Duration) -> bool {
        self.inner.writer.stalled_for() < limit
    }

    /// Waits for queued writes, checkpoints the WAL and stops the writer.
    /// Later writes fail with `Closed`.
    pub async fn close(&self) {
        self.inner.writer.close().await;
    }

    /// The SQLite library's version.
    pub fn sqlite_version() -> &'static str {
        rusqlite::version()
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn open_temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::open(&dir.path().join("cronq.db"), JobDefaults::default()).expect("open");
        (dir, store)
    }
}
