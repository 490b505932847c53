//! The store: every SQL statement cronq runs lives below this module.
//!
//! This module is the interface: the [`Backend`] verbs (the queue's, the
//! crons', the instances'), the row types they take and return (`job`,
//! `run`, `instance`, `tick`), and [`Store`], the cheap `Clone` handle the
//! rest of the daemon holds (`history` holds the finished jobs' types,
//! and those of pauses, bulk verbs and pruning). Each database is a folder below: `sqlite/`
//! (the embedded default). Nothing above the store knows which one
//! answers; the conformance suite says what each must do.
//!
//! `data` is apart: the data handler's own SQLite file (`DATA_DIR/data.db`),
//! whatever database holds the queue.

pub mod backend;
pub mod data;
mod error;
pub mod history;
pub mod instance;
pub mod job;
mod pending;
pub mod postgres;
pub mod run;
pub mod sqlite;
pub mod tick;

#[cfg(test)]
mod conformance;

use std::path::Path;
use std::sync::Arc;

pub use backend::{Backend, BackendInfo};
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
