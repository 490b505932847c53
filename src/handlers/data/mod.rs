//! `data_processing`: export, import, transform and aggregate rows between
//! tables of the data database (`DATA_DIR/data.db`) and CSV / JSON / JSON
//! lines files under DATA_DIR. Also home of the export housekeeping
//! ([`clear_exports`]).
//!
//! This module owns the handler: it parses the payload, runs the work on a
//! blocking thread and logs the result. The pipeline is in `ops`, endpoints
//! in `endpoint` and `path` (and the PocketBase source in `pocketbase`), formats in `format` above `csv` and `json`
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
mod pocketbase;
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
use crate::queue::handler::{Handler, JobContext, JobError, ProgressReporter};

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
    /// The PocketBase `pocketbase:` sources read, when one is configured.
    pocketbase: Option<Arc<pocketbase::PocketBaseSource>>,
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
            pocketbase: None,
        }
    }

    /// Lets jobs read the collections of this PocketBase (`pocketbase:NAME`
    /// sources); without one, such a job is refused.
    pub fn with_pocketbase(
        mut self,
        config: Option<crate::config::PocketBaseConfig>,
    ) -> DataProcessing {
        self.pocketbase = config.map(|c| Arc::new(pocketbase::PocketBaseSource::new(c)));
        self
    }

    /// Parses `data`, refusing a PocketBase source when none is configured.
    fn request(&self, data: &Value) -> Result<payload::Request, DataError> {
        let request = payload::parse(data)?;
        if let endpoint::Endpoint::PocketBase(collection) = &request.source
            && self.pocketbase.is_none()
        {
            return Err(pocketbase::not_configured(collection));
        }
        Ok(request)
    }

    /// Runs one job's `data` to the end: the work of [`Handler::run`]
    /// without the queue, for embedders and benchmarks.
    pub async fn execute(&self, job_id: &str, data: &Value) -> Result<Outcome, DataError> {
        self.execute_reporting(job_id, data, ProgressReporter::default())
            .await
    }

    /// [`DataProcessing::execute`], reporting the rows read to `progress`
    /// as it streams (a job's, throttled to one report a second).
    pub async fn execute_reporting(
        &self,
        job_id: &str,
        data: &Value,
        progress: ProgressReporter,
    ) -> Result<Outcome, DataError> {
        let request = self.request(data)?;
        let pocketbase = self.pocketbase.clone();
        let runtime = tokio::runtime::Handle::current();
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
                pocketbase: pocketbase.as_deref().map(|source| (source, runtime)),
            };
            let report = |rows| progress.report(rows, None, Some("rows read".to_string()));
            ops::execute(&task_request, &root, &job_id, &cancel, &report, &bounds)
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
        self.request(data).map(|_| ()).map_err(|e| e.to_string())
    }

    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        // A forced cancel drops the work: its guard stops the blocking
        // part at the next row, and nothing is published.
        let work = self.execute_reporting(&job.id, &job.data, job.reporter.clone());
        let outcome = tokio::select! {
            done = work => done?,
            () = job.cancel.cancelled() => {
                return Err(JobError::permanent(DataError::Cancelled));
            }
        };
        let request = self.request(&job.data)?;
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
