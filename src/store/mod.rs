//! The store: every SQL statement cronq runs lives below this module.
//!
//! This module is the interface: the [`Backend`] verbs (the queue's, the
//! crons', the instances', the imports'), the row types they take and
//! return (`job`, `run`, `instance`, `tick`, `import`, `definition`;
//! `history` holds those of finished jobs, pauses, bulk verbs and
//! pruning), and [`Store`], the cheap `Clone` handle the rest of the
//! daemon holds. Each database is a folder below: `sqlite/` (the embedded
//! default) and `postgres/` (many daemons on many hosts). [`open`] is the one place that picks a backend,
//! from the configuration's [`Database`]; nothing above the store knows
//! which one answers, and where the rest needs a backend's facts (is the
//! database shared by other hosts, its wake-ups, its clock) it asks
//! [`Backend`]. The conformance suite says what each must do.
//!
//! `data` is apart: the data handler's own SQLite file (`DATA_DIR/data.db`),
//! whatever database holds the queue. So is `pocketbase`: the replaced
//! system's `pb_data/data.db`, read by `cronq import-pocketbase`.

pub mod backend;
pub mod copy;
pub mod data;
pub mod definition;
mod error;
pub mod history;
pub mod import;
pub mod instance;
pub mod job;
pub mod limits;
mod pending;
pub mod pocketbase;
pub mod postgres;
pub mod run;
pub mod sqlite;
pub mod tick;

#[cfg(test)]
mod conformance;

use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Database;

pub use backend::{Backend, BackendInfo, Wakeups};
pub use error::StoreError;
pub use job::{JobDefaults, ListFilter};
pub use pending::{AfterCommit, Pending};
pub use sqlite::daemon_table_names;

/// A handle on the database, whichever backend holds it. Every verb of
/// [`Backend`] is called through it (`store.enqueue(..)`).
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl Store {
    /// Wraps a backend.
    pub fn new(backend: impl Backend) -> Store {
        Store {
            backend: Arc::new(backend),
        }
    }

    /// Opens (creating if needed) the SQLite database at `path` and applies
    /// pending migrations. Blocks: call it off the async runtime.
    pub fn sqlite(path: &Path, defaults: JobDefaults) -> Result<Store, StoreError> {
        sqlite::SqliteStore::open(path, defaults).map(Store::new)
    }
}

/// Why the database could not be opened at start-up: the message names the
/// file, or the variable and the server (never the password).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sqlite(StoreError),
    #[error(transparent)]
    Postgres(#[from] postgres::OpenError),
}

/// Opens the database `database` names, applies pending migrations, and
/// returns once it answers: the daemon says READY only after this.
/// `clock` is the daemon's, against which a server's clock offset is
/// measured.
pub async fn open(
    database: &Database,
    defaults: JobDefaults,
    clock: Arc<dyn Clock>,
) -> Result<Store, OpenError> {
    match database {
        Database::Sqlite(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || Store::sqlite(&path, defaults))
                .await
                .map_err(|e| {
                    OpenError::Sqlite(StoreError::Database(format!(
                        "opening the database panicked: {e}"
                    )))
                })?
                .map_err(OpenError::Sqlite)
        }
        Database::Postgres(settings) => {
            let options = postgres::PgOptions::new(defaults, clock);
            let store = postgres::PgStore::open(settings.clone(), options).await?;
            Ok(Store::new(store))
        }
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.backend
    }
}

/// The version of the SQLite library linked in: the embedded backend's, and
/// the data handler's whatever the backend.
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}
