//! The daemon the reliability tests (tests/soak/) drive: a real cronq built
//! through the library API, plus a `record` handler that appends
//! `JOB_ID ATTEMPT\n` to the file named by `RECORD_FILE` for every attempt it
//! runs, and fails the attempt (to be retried) when `data.fail` is `true`.
//! `data.sleep_ms` makes it wait that long after writing its line, so a job
//! can be caught mid-run.
//!
//! The file is opened with `O_APPEND` and each line goes out in one
//! `write(2)`, so lines from concurrent workers, and from several daemons
//! sharing the file, never interleave. A line is written before the handler
//! returns: a job that is recorded but whose completion was not committed
//! when the process was killed shows up as a duplicate, which is what the
//! soak counts. `RECORD_FSYNC=1` also fsyncs each line (only needed to
//! survive a power cut, not `kill -9`). With `RECORD_TAG` set (the soak on
//! PostgreSQL, where daemons share a record file), each line also names the
//! daemon and the wall-clock millisecond: `JOB_ID ATTEMPT TAG MS`, so a
//! second recording of a job can be checked against the first holder's
//! reservation.
//!
//! Run it with `RECORD_FILE=/tmp/rec cargo run --example recording_daemon`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use cronq::{Config, Daemon, Handler, JobContext, JobError};
use serde_json::Value;

struct Record {
    file: Arc<File>,
    fsync: bool,
    tag: Option<String>,
}

#[async_trait::async_trait]
impl Handler for Record {
    fn job_type(&self) -> &str {
        "record"
    }

    fn description(&self) -> &str {
        "Appends the job id and attempt to RECORD_FILE"
    }

    fn validate(&self, data: &Value) -> Result<(), String> {
        match data.get("fail") {
            None | Some(Value::Bool(_)) => {}
            Some(_) => return Err("fail: must be true or false".into()),
        }
        match data.get("sleep_ms") {
            None => Ok(()),
            Some(ms) if ms.as_u64().is_some_and(|ms| ms <= 60_000) => Ok(()),
            Some(_) => Err("sleep_ms: must be whole milliseconds, at most 60000".into()),
        }
    }

    async fn run(&self, job: JobContext) -> Result<(), JobError> {
        let line = match &self.tag {
            None => format!("{} {}\n", job.id, job.attempt),
            Some(tag) => {
                let ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                format!("{} {} {tag} {ms}\n", job.id, job.attempt)
            }
        };
        // One small append to a local file: microseconds, not worth a trip
        // to the blocking pool (and the soak wants the line written before
        // anything else can happen to the attempt).
        let mut file: &File = &self.file;
        file.write_all(line.as_bytes())
            .map_err(|e| JobError::retry(format!("cannot append to RECORD_FILE: {e}")))?;
        if self.fsync {
            file.sync_data()
                .map_err(|e| JobError::retry(format!("cannot fsync RECORD_FILE: {e}")))?;
        }
        // After the line: a daemon killed meanwhile has recorded the job
        // without finishing it, as a crash mid-job does.
        if let Some(ms) = job.data.get("sleep_ms").and_then(Value::as_u64) {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if job.data.get("fail") == Some(&Value::Bool(true)) {
            return Err(JobError::retry("failing on purpose (data.fail = true)"));
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let Some(path) = std::env::var_os("RECORD_FILE") else {
        eprintln!("recording_daemon: RECORD_FILE must name the file to append to");
        return ExitCode::FAILURE;
    };
    let file = match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("recording_daemon: cannot open RECORD_FILE {path:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let record = Record {
        file: Arc::new(file),
        fsync: std::env::var("RECORD_FSYNC").is_ok_and(|v| v == "1"),
        tag: std::env::var("RECORD_TAG").ok().filter(|t| !t.is_empty()),
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("recording_daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log = match cronq::logging::init(config.log_format, &config.log_level) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("recording_daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("recording_daemon: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let builder = Daemon::builder(config)
        .handler(record)
        .log_level(std::sync::Arc::new(move |level: &str| log.set_level(level)));
    match runtime.block_on(builder.run()) {
        Ok(cronq::daemon::Stopped::Drained) => ExitCode::SUCCESS,
        Ok(cronq::daemon::Stopped::Forced) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("recording_daemon: {e}");
            ExitCode::FAILURE
        }
    }
}
