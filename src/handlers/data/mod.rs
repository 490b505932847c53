//! `data_processing`: export, import, transform and aggregate rows between
//! tables of the data database (`DATA_DIR/data.db`) and CSV / JSON / JSON
//! lines files under DATA_DIR. Also home of the export housekeeping
//! ([`clear_exports`]).
//!
//! This module owns the handler: it parses the payload, runs the work on a
//! blocking thread and logs the result. The pipeline is in `ops`, endpoints
//! in `endpoint` and `path`, formats in `format` above `csv` and `json`
//! (which share `input` and `rows`), the disk bounds in `quota`, SQL in
//! `crate::store::data`. The start-up sweep of temporary files a killed job
//! left is [`sweep_temp_files`].
//!
//! Design choice: the queue abandons a handler future when the job's
//! timeout expires, but a blocking thread cannot be stopped from outside.
//! So the future holds a guard whose `Drop` raises a flag, and the blocking
//! work checks that flag between rows and once more just before it publishes
//! anything (rename or commit). An abandoned job thus stops within a row
//! and leaves no output: its temporary file is removed and its transaction
//! rolled back.

mod aggregate;
mod csv;
mod endpoint;
mod error;
mod format;
mod housekeeping;
mod input;
mod json;
mod ops;
mod path;
mod payload;
mod quota;
mod rows;
mod transform;
mod wide_int;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::config::{DEFAULT_DATA_MAX_BYTES, DEFAULT_DATA_MAX_GROUPS};
use crate::queue::handler::{Handler, JobContext, JobError};

pub use endpoint::DATABASE_FILE;
pub use error::DataError;
pub use housekeeping::{ClearReport, EXPORTS_DIR, SweepReport, clear_exports, sweep_temp_files};
pub use ops::Outcome;

/// What bounds the handler's jobs besides time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLimits {
    /// DATA_MAX_BYTES: what DATA_DIR may hold, data.db included.
    pub max_bytes: u64,
    /// DATA_MAX_GROUPS: the groups one aggregate may hold.
    pub max_groups: usize,
}

impl Default for DataLimits {
    fn default() -> DataLimits {
        DataLimits {
            max_bytes: DEFAULT_DATA_MAX_BYTES,
            max_groups: DEFAULT_DATA_MAX_GROUPS,
        }
    }
}

/// The `data_processing` handler.
#[derive(Debug, Clone)]
pub struct DataProcessing {
    data_dir: PathBuf,
    max_groups: usize,
    /// Shared by every clone, so running jobs count each other's writes.
    ledger: Arc<quota::Ledger>,
}

impl DataProcessing {
    /// A handler whose files and database live in `data_dir` (`DATA_DIR`,
    /// i.e. `Config::data_dir`), with the default [`DataLimits`]. The folder
    /// is created at the first job.
    pub fn new(data_dir: impl Into<PathBuf>) -> DataProcessing {
        DataProcessing::with_limits(data_dir, DataLimits::default())
    }

    /// A handler with the given limits.
    pub fn with_limits(data_dir: impl Into<PathBuf>, limits: DataLimits) -> DataProcessing {
        DataProcessing {
            data_dir: data_dir.into(),
            max_groups: limits.max_groups,
            ledger: quota::Ledger::new(limits.max_bytes),
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
        let (ledger, max_groups) = (Arc::clone(&self.ledger), self.max_groups);
        let outcome = tokio::task::spawn_blocking(move || {
            let root = path::DataRoot::open(&data_dir)?;
            let bounds = ops::Bounds {
                ledger: &ledger,
                max_groups,
            };
            ops::execute(&task_request, &root, &job_id, &cancel, &bounds)
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
        let outcome = self.execute(&job.id, &job.data).await?;
        let request = payload::parse(&job.data)?;
        job.set_result(serde_json::json!({
            "operation": request.operation.name(),
            "source": request.source.to_string(),
            "target": request.target.to_string(),
            "rows_read": outcome.rows_read,
            "rows_written": outcome.rows_written,
            "already_applied": outcome.already_applied,
        }));
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
