//! `data_processing`: export, import, transform and aggregate rows between
//! tables of the data database (`DATA_DIR/data.db`) and CSV / JSON / JSON
//! lines files under DATA_DIR. Also home of the export housekeeping
//! ([`clear_exports`]).
//!
//! This module owns the handler: it parses the payload, runs the work on a
//! blocking thread and logs the result. The pipeline is in `ops`, paths in
//! `path`, formats in `format`, `csv` and `json`, SQL in `crate::store::data`.
//!
//! Design choice: the queue abandons a handler future when the job's
//! timeout expires, but a blocking thread cannot be stopped from outside.
//! So the future holds a guard whose `Drop` raises a flag, and the blocking
//! work checks that flag between rows and once more just before it publishes
//! anything (rename or commit). An abandoned job thus stops within a row
//! and leaves no output: its temporary file is removed and its transaction
//! rolled back.

mod aggregate;
mod atomic;
mod csv;
mod error;
mod format;
mod housekeeping;
mod json;
mod ops;
mod path;
mod payload;
mod rows;
mod transform;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::queue::handler::{Handler, JobContext, JobError};

pub use error::DataError;
pub use housekeeping::{ClearReport, EXPORTS_DIR, clear_exports};
pub use ops::Outcome;
pub use path::DATABASE_FILE;

/// The `data_processing` handler.
#[derive(Debug, Clone)]
pub struct DataProcessing {
    data_dir: PathBuf,
}

impl DataProcessing {
    /// A handler whose files and database live in `data_dir` (`DATA_DIR`,
    /// i.e. `Config::data_dir`). The folder is created at the first job.
    pub fn new(data_dir: impl Into<PathBuf>) -> DataProcessing {
        DataProcessing {
            data_dir: data_dir.into(),
        }
    }

    /// Runs one job's `data` to the end: the work of [`Handler::run`]
    /// without the queue, for embedders and benchmarks.
    pub async fn execute(&self, job_id: &str, data: &Value) -> Result<Outcome, DataError> {
        let request = payload::parse(data)?;
        let cancel = Arc::new(AtomicBool::new(false));
        // Raised when this future is dropped (the job timed out): the
        // blocking work sees it at its next row.
        let _abandon = RaiseOnDrop(Arc::clone(&cancel));
        let data_dir = self.data_dir.clone();
        let job_id = job_id.to_string();
        let started = Instant::now();
        let task_request = request.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let root = path::DataRoot::open(&data_dir)?;
            ops::execute(&task_request, &root, &job_id, &cancel)
        })
        .await
        .map_err(|e| DataError::Task(e.to_string()))??;
        tracing::info!(
            operation = request.operation.name(),
            source = %request.source,
            target = %request.target,
            rows_read = outcome.rows_read,
            rows_written = outcome.rows_written,
            already_applied = outcome.already_applied,
            duration_ms = started.elapsed().as_millis() as u64,
            "data_processing finished"
        );
        Ok(outcome)
    }
}

#[async_trait::async_trait]
impl Handler for DataProcessing {
    fn job_type(&self) -> &str {
        "data_processing"
    }

    fn description(&self) -> &str {
        "Exports, imports, transforms and aggregates tables and CSV/JSON files under DATA_DIR"
    }

    fn validate(&self, data: &Value) -> Result<(), String> {
        payload::parse(data).map(|_| ()).map_err(|e| e.to_string())
    }

    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        self.execute(&job.id, &job.data).await?;
        Ok(())
    }
}

/// Sets its flag when dropped.
struct RaiseOnDrop(Arc<AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
