//! The four operations, as one pipeline: a source pushes rows through a
//! step (none for export and import, transform, or aggregate) into a
//! target, and the target is published only once every row got there.
//!
//! Design choice: a table write checks and records the job id in the same
//! transaction as the rows (`_cronq_applied`). The queue deletes a finished
//! job in *another* database, so a crash can fall between our commit and
//! that delete; the retry then finds its id and does nothing, instead of
//! appending the rows a second time. This holds for `replace` too, so a
//! late retry cannot wipe out what other jobs appended since.
//!
//! Every write is charged to the job's [`Quota`] as it happens (file bytes
//! as written, table rows by their values' size), so DATA_MAX_BYTES stops
//! a job in the middle, not only at its start.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::runtime::Handle;

use super::aggregate::Aggregate;
use super::endpoint::{Endpoint, FilePath, TableName};
use super::error::DataError;
use super::format::{self, FileWriter, Format};
use super::path::DataRoot;
use super::payload::{Request, Step};
use super::pocketbase::PocketBaseSource;
use super::quota::{self, Charged, Ledger, Quota};
use super::rows::{Flow, Row, RowSink};
use super::transform::Transform;
use crate::atomic_file::{TempFile, WriteError};
use crate::store::data::{self as store, OpenError, TableWriter, TargetError, WriteMode};

/// Permissions of an output file, whatever the umask: the daemon's user
/// and group may read it, no one else.
const OUTPUT_MODE: u32 = 0o640;

/// What bounds a job, besides its time, and what it may reach.
pub struct Bounds<'a> {
    /// DATA_MAX_BYTES, shared by the handler's running jobs.
    pub ledger: &'a Arc<Ledger>,
    /// DATA_MAX_GROUPS.
    pub max_groups: usize,
    /// The configured PocketBase, and the runtime its requests wait on.
    pub pocketbase: Option<(&'a PocketBaseSource, Handle)>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    pub rows_read: u64,
    pub rows_written: u64,
    /// The job had already committed its table write on an earlier
    /// attempt; nothing was done this time.
    pub already_applied: bool,
}

/// Where rows come from.
enum Source<'c> {
    File(File, Format),
    Table(&'c Connection, &'c TableName),
    PocketBase(&'c PocketBaseSource, &'c Handle, &'c str),
}

/// How many rows between two calls of the progress report.
pub const REPORT_EVERY_ROWS: u64 = 4096;

/// Runs `request` to the end. Blocking; `cancel` is checked between rows,
/// and when it is set nothing is published. `report` is told the rows
/// read so far, every [`REPORT_EVERY_ROWS`].
pub fn execute(
    request: &Request,
    root: &DataRoot,
    job_id: &str,
    cancel: &AtomicBool,
    report: &dyn Fn(u64),
    bounds: &Bounds<'_>,
) -> Result<Outcome, DataError> {
    let work = Work { cancel, report };
    match &request.target {
        Endpoint::File(path) => write_file(request, root, path, &work, bounds),
        Endpoint::Table(table) => write_table(request, root, table, job_id, &work, bounds),
        Endpoint::PocketBase(_) => Err(DataError::invalid(
            "target",
            "a PocketBase collection is read, never written",
        )),
    }
}

/// What the blocking work looks at as it goes: the flag that stops it and
/// where its progress goes.
struct Work<'a> {
    cancel: &'a AtomicBool,
    report: &'a dyn Fn(u64),
}

fn write_file(
    request: &Request,
    root: &DataRoot,
    path: &FilePath,
    work: &Work<'_>,
    bounds: &Bounds<'_>,
) -> Result<Outcome, DataError> {
    let cancel = work.cancel;
    let read_conn = match &request.source {
        Endpoint::Table(_) => Some(open_database(root)?),
        Endpoint::File(_) | Endpoint::PocketBase(_) => None,
    };
    // The source first: a missing one is found before a temporary file is made.
    let source = open_source(&request.source, root, read_conn.as_ref(), bounds)?;
    let quota = Quota::start(bounds.ledger, root.path())?;
    let (dir, name) = root.target_dir("target", path)?;
    let (temp, file) = TempFile::create(dir, name, OUTPUT_MODE).map_err(target_error)?;
    let mut target = FileTarget {
        writer: Some(FileWriter::new(
            Charged::new(file, quota),
            path.format(),
            request.csv_formula_escape,
        )),
        done: None,
        rows: 0,
    };
    let rows_read = pump(&request.step, source, &mut target, work, bounds)?;
    let charged = target
        .done
        .take()
        .ok_or_else(|| DataError::Task("the output was never finished".to_string()))?;
    // The quota is held until the file is in place, where the next job's
    // measure of DATA_DIR finds it.
    let (file, _quota) = charged.into_parts();
    check(cancel)?;
    temp.persist(file).map_err(target_error)?;
    Ok(Outcome {
        rows_read,
        rows_written: target.rows,
        already_applied: false,
    })
}

fn target_error(err: WriteError) -> DataError {
    DataError::io(format!("target: {}", err.step), err.source)
}

fn write_table(
    request: &Request,
    root: &DataRoot,
    table: &TableName,
    job_id: &str,
    work: &Work<'_>,
    bounds: &Bounds<'_>,
) -> Result<Outcome, DataError> {
    let cancel = work.cancel;
    let mut conn = open_database(root)?;
    let tx = store::begin_write(&mut conn)
        .map_err(|e| DataError::sqlite("starting the write transaction", e))?;
    // Before the source is even opened: a retry of a job that committed
    // must succeed even if its source file has been removed since.
    if store::already_applied(&tx, job_id)
        .map_err(|e| DataError::sqlite("reading _cronq_applied", e))?
    {
        return Ok(Outcome {
            already_applied: true,
            ..Outcome::default()
        });
    }
    let source = open_source(&request.source, root, Some(&tx), bounds)?;
    let mut target = TableTarget {
        conn: &tx,
        table,
        mode: request.mode,
        writer: None,
        quota: Quota::start(bounds.ledger, root.path())?,
        rows: 0,
    };
    let rows_read = pump(&request.step, source, &mut target, work, bounds)?;
    let rows_written = target.rows;
    drop(target);
    store::record_applied(&tx, job_id, &request.target.to_string(), unix_now())
        .map_err(|e| DataError::sqlite("recording the job in _cronq_applied", e))?;
    check(cancel)?;
    tx.commit()
        .map_err(|e| DataError::sqlite("committing", e))?;
    Ok(Outcome {
        rows_read,
        rows_written,
        already_applied: false,
    })
}

/// Opens a file source, or pairs a table source with the connection it is
/// read through (the write transaction when the target is a table too),
/// or a collection with the PocketBase it is read from.
fn open_source<'c>(
    endpoint: &'c Endpoint,
    root: &DataRoot,
    conn: Option<&'c Connection>,
    bounds: &'c Bounds<'_>,
) -> Result<Source<'c>, DataError> {
    match endpoint {
        Endpoint::File(path) => Ok(Source::File(
            root.open_source("source", path)?,
            path.format(),
        )),
        Endpoint::Table(table) => match conn {
            Some(conn) => Ok(Source::Table(conn, table)),
            None => Err(DataError::Task(
                "a table source needs the data database".to_string(),
            )),
        },
        Endpoint::PocketBase(collection) => match &bounds.pocketbase {
            Some((source, runtime)) => Ok(Source::PocketBase(source, runtime, collection)),
            None => Err(super::pocketbase::not_configured(collection)),
        },
    }
}

fn open_database(root: &DataRoot) -> Result<Connection, DataError> {
    store::open(&root.database_path()).map_err(|e| match e {
        OpenError::Refused(reason) => DataError::refused("data.db", reason),
        OpenError::Io { context, source } => DataError::io(context, source),
        OpenError::Sqlite(e) => DataError::sqlite("opening data.db", e),
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn check(cancel: &AtomicBool) -> Result<(), DataError> {
    if cancel.load(Ordering::Relaxed) {
        Err(DataError::Cancelled)
    } else {
        Ok(())
    }
}

/// Reads `source` through `step` into `target`; returns the rows read.
fn pump(
    step: &Step,
    source: Source<'_>,
    target: &mut dyn RowSink,
    work: &Work<'_>,
    bounds: &Bounds<'_>,
) -> Result<u64, DataError> {
    match step {
        Step::Copy => feed(source, target, work),
        Step::Transform(spec) => feed(source, &mut Transform::new(spec, target), work),
        Step::Aggregate(spec) => feed(
            source,
            &mut Aggregate::new(spec, target, bounds.max_groups),
            work,
        ),
    }
}

fn feed(source: Source<'_>, sink: &mut dyn RowSink, work: &Work<'_>) -> Result<u64, DataError> {
    let mut counted = Counted {
        inner: sink,
        cancel: work.cancel,
        report: work.report,
        rows: 0,
    };
    match source {
        Source::File(file, format) => format::read(file, format, &mut counted)?,
        Source::Table(conn, table) => read_table(conn, table, &mut counted)?,
        Source::PocketBase(source, runtime, collection) => {
            source.read(runtime, collection, &mut counted)?
        }
    }
    counted.finish()?;
    Ok(counted.rows)
}

fn read_table(
    conn: &Connection,
    table: &TableName,
    sink: &mut dyn RowSink,
) -> Result<(), DataError> {
    let context = || format!("reading table {:?}", table.as_str());
    let Some(mut cursor) =
        store::select_all(conn, table.as_str()).map_err(|e| DataError::sqlite(context(), e))?
    else {
        return Err(DataError::Missing {
            field: "source",
            what: format!("table {:?}", table.as_str()),
        });
    };
    sink.begin(cursor.columns().to_vec())?;
    let mut failure = None;
    cursor
        .for_each(|row| match sink.row(row) {
            Ok(flow) => flow == Flow::Continue,
            Err(err) => {
                failure = Some(err);
                false
            }
        })
        .map_err(|e| DataError::sqlite(context(), e))?;
    failure.map_or(Ok(()), Err)
}

/// The first sink after the source: counts rows, reports them, and stops
/// the work once the job has been abandoned.
struct Counted<'a> {
    inner: &'a mut dyn RowSink,
    cancel: &'a AtomicBool,
    report: &'a dyn Fn(u64),
    rows: u64,
}

impl RowSink for Counted<'_> {
    fn begin(&mut self, columns: Vec<String>) -> Result<(), DataError> {
        check(self.cancel)?;
        self.inner.begin(columns)
    }

    fn row(&mut self, row: Row) -> Result<Flow, DataError> {
        check(self.cancel)?;
        self.rows += 1;
        if self.rows.is_multiple_of(REPORT_EVERY_ROWS) {
            (self.report)(self.rows);
        }
        self.inner.row(row)
    }

    fn finish(&mut self) -> Result<(), DataError> {
        check(self.cancel)?;
        self.inner.finish()
    }
}

struct FileTarget {
    writer: Option<FileWriter>,
    /// The written file, once finished, waiting to be published.
    done: Option<Charged<File>>,
    rows: u64,
}

impl FileTarget {
    fn writer(&mut self) -> Result<&mut FileWriter, DataError> {
        self.writer.as_mut().ok_or_else(|| {
            DataError::Task("a row arrived after the output was finished".to_string())
        })
    }
}

impl RowSink for FileTarget {
    fn begin(&mut self, columns: Vec<String>) -> Result<(), DataError> {
        self.writer()?.begin(&columns).map_err(quota::write_error)
    }

    fn row(&mut self, row: Row) -> Result<Flow, DataError> {
        self.writer()?.write(&row).map_err(quota::write_error)?;
        self.rows += 1;
        Ok(Flow::Continue)
    }

    fn finish(&mut self) -> Result<(), DataError> {
        if let Some(writer) = self.writer.take() {
            self.done = Some(writer.finish().map_err(quota::write_error)?);
        }
        Ok(())
    }
}

struct TableTarget<'c> {
    conn: &'c Connection,
    table: &'c TableName,
    mode: WriteMode,
    writer: Option<TableWriter<'c>>,
    quota: Quota,
    rows: u64,
}

impl RowSink for TableTarget<'_> {
    fn begin(&mut self, columns: Vec<String>) -> Result<(), DataError> {
        let table = self.table.as_str();
        self.writer =
            store::prepare_target(self.conn, table, &columns, self.mode).map_err(|e| match e {
                TargetError::UnknownColumn { .. } => DataError::invalid("target", e.to_string()),
                TargetError::Sqlite(e) => {
                    DataError::sqlite(format!("preparing table {table:?}"), e)
                }
            })?;
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<Flow, DataError> {
        if let Some(writer) = &mut self.writer {
            self.quota.charge(quota::row_bytes(&row))?;
            writer.insert(&row).map_err(|e| {
                DataError::sqlite(format!("inserting into {:?}", self.table.as_str()), e)
            })?;
            self.rows += 1;
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self) -> Result<(), DataError> {
        self.writer = None;
        Ok(())
    }
}
