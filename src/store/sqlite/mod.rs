//! The SQLite backend: today's embedded default.
//!
//! [`SqliteStore`] is a cheap `Clone` handle. Reads go through an r2d2 pool (WAL
//! lets them run beside a writer). Writes go to one writer thread that owns
//! its connection and commits whatever is waiting as one transaction, with a
//! savepoint per operation: SQLite takes one writer at a time anyway, and a
//! pool of writers would only take turns through the busy handler's sleeps.
//!
//! The statements the queue runs all the time write a `LIMIT` parameter as
//! `?N + 0`: SQLite (3.47 on) re-prepares a statement at every new binding
//! of a bare `LIMIT ?N`, to plan with its value, and these statements'
//! plans are fixed (`INDEXED BY`, rowid order), so it only cost every claim
//! a parse. Listings keep the bare form, where the value may pick the plan.

mod backend;
mod bulk;
mod checkpoint;
mod connection;
mod copy;
mod crons;
mod definitions;
mod filter;
mod history;
mod import;
mod instances;
mod jobs;
mod manage;
mod migrate;
mod outcomes;
mod pause;
mod rows;
mod tick;
mod writer;

use writer::Mode;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

pub use migrate::{SCHEMA_VERSION, daemon_table_names};

use super::job::JobDefaults;
use super::{AfterCommit, Pending, StoreError};

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
            _ => StoreError::Database(e.to_string()),
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

/// A handle on the SQLite database.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    pool: Pool<SqliteConnectionManager>,
    writer: writer::Writer,
    /// Outcomes waiting for the writer (see `outcomes`).
    outcomes: Arc<outcomes::Waiting>,
    defaults: JobDefaults,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies pending
    /// migrations, and starts the writer thread.
    pub fn open(path: &Path, defaults: JobDefaults) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // 0750: the admin socket may live here too (ARCHITECTURE.md, Security).
            std::os::unix::fs::DirBuilderExt::mode(
                std::fs::DirBuilder::new().recursive(true),
                0o750,
            )
            .create(parent)
            .map_err(|e| StoreError::Open {
                at: path.display().to_string(),
                reason: format!("cannot create {}: {e}", parent.display()),
            })?;
        }
        let open_error = |reason: String| StoreError::Open {
            at: path.display().to_string(),
            reason,
        };
        connection::create_private(path).map_err(|e| open_error(e.to_string()))?;
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
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                pool,
                writer,
                outcomes: Arc::default(),
                defaults,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a pooled reader connection, off the async runtime.
    async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
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
        .map_err(|e| StoreError::Database(format!("a read panicked: {e}")))?
    }

    /// Runs `f` inside the writer's next transaction and answers once that
    /// transaction has committed. `Mode::Durable` asks for the commit to
    /// reach the disk before the answer (enqueues: an acknowledged job
    /// survives a power cut); other writes (claims, completions) may be lost
    /// to a power cut, which only means a job runs again. `Mode::Alone` is
    /// durable and runs `f` in a transaction of its own (see `writer`).
    async fn write<R, F>(&self, mode: Mode, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &JobDefaults) -> Result<R, StoreError> + Send + 'static,
    {
        self.write_queued(mode, f, None).await?.committed().await
    }

    /// Like [`SqliteStore::write`], but returns as soon as `f` is queued: the
    /// caller goes on and awaits the commit later, or lets `then` see the
    /// answer on the writer thread right after the commit. Workers record
    /// outcomes this way, so a worker never idles while a commit runs.
    async fn write_queued<R, F>(
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
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::store::Store;

    /// A store on a fresh file; the directory goes when the guard drops.
    pub fn open_temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store =
            Store::sqlite(&dir.path().join("cronq.db"), JobDefaults::default()).expect("open");
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::job::NewJob;

    /// The watchdog's half of the store on a file: a write stuck behind
    /// another process's lock makes the store unresponsive, and it is
    /// responsive again once the write goes through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_stuck_on_a_lock_makes_the_store_unresponsive() {
        let (dir, store) = test_support::open_temp();
        let limit = Duration::from_millis(200);
        assert!(store.responsive(limit));
        let other = Connection::open(dir.path().join("cronq.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let enqueue = {
            let store = store.clone();
            tokio::spawn(async move {
                let job = NewJob::new("j", "noop", serde_json::Map::new());
                store.enqueue(vec![job], 0, 10).await
            })
        };
        let started = Instant::now();
        while store.responsive(limit) && started.elapsed() < Duration::from_secs(4) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!store.responsive(limit), "the stuck write was noticed");
        other.execute_batch("ROLLBACK").unwrap();
        enqueue.await.unwrap().unwrap();
        // The writer answers before it marks its transaction over.
        let answered = Instant::now();
        while !store.responsive(limit) && answered.elapsed() < Duration::from_secs(4) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(store.responsive(limit), "responsive again after the write");
        store.close().await;
    }
}
