//! How much disk the data handler may take: DATA_DIR's size cap
//! (`DATA_MAX_BYTES`) and a floor of free space on its file system.
//!
//! Design choice: the cap is enforced while writing, not only before. Each
//! job measures DATA_DIR's usage when it starts, then charges every byte it
//! writes (file output as written; table rows by the size of their values)
//! to a [`Ledger`] the handler's running jobs share, and stops with a
//! permanent error the moment usage at its start plus what all running jobs
//! have charged passes the cap. The walk at the start sees what earlier
//! jobs left behind, so two transform jobs appending tables into each other
//! hit the cap as surely as one large import does. A concurrent job's
//! half-written output may be counted twice (on disk and in the ledger),
//! never not at all. Whatever the cap, a job also stops when the file
//! system holding DATA_DIR would keep less than [`free_floor`] free, so the
//! queue's database, which usually shares that disk, can still be written.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::error::DataError;

/// How deep the usage walk goes; deeper folders are not counted.
const MAX_DEPTH: usize = 32;

/// Free space is looked at again after this many bytes were charged.
const FREE_CHECK_EVERY: u64 = 1 << 20;

/// The most the free-space floor asks for, however large the disk.
const MAX_FREE_FLOOR: u64 = 1 << 30;

/// The cap, and the bytes the handler's running jobs have charged to it.
#[derive(Debug)]
pub struct Ledger {
    max_bytes: u64,
    charged: AtomicU64,
}

impl Ledger {
    pub fn new(max_bytes: u64) -> Arc<Ledger> {
        Arc::new(Ledger {
            max_bytes,
            charged: AtomicU64::new(0),
        })
    }
}

/// Space on a file system: (available to the daemon, size), in bytes.
type FreeSpace = fn(&Path) -> io::Result<(u64, u64)>;

/// One job's share of the ledger; what it charged is given back on drop.
pub struct Quota {
    ledger: Arc<Ledger>,
    data_dir: PathBuf,
    /// DATA_DIR's usage when the job started.
    base: u64,
    own: u64,
    since_free_check: u64,
    free_space: FreeSpace,
}

impl Quota {
    /// Measures DATA_DIR and refuses to start a job when it is already at
    /// the cap or its disk at the floor.
    pub fn start(ledger: &Arc<Ledger>, data_dir: &Path) -> Result<Quota, DataError> {
        Quota::start_with(ledger, data_dir, statvfs)
    }

    fn start_with(
        ledger: &Arc<Ledger>,
        data_dir: &Path,
        free_space: FreeSpace,
    ) -> Result<Quota, DataError> {
        let quota = Quota {
            ledger: Arc::clone(ledger),
            data_dir: data_dir.to_path_buf(),
            base: usage(data_dir),
            own: 0,
            since_free_check: 0,
            free_space,
        };
        quota.check_room()?;
        quota.check_free()?;
        Ok(quota)
    }

    /// Counts `bytes` about to be written.
    pub fn charge(&mut self, bytes: u64) -> Result<(), DataError> {
        self.own += bytes;
        let charged = self.ledger.charged.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.check_cap(charged)?;
        self.since_free_check += bytes;
        if self.since_free_check >= FREE_CHECK_EVERY {
            self.since_free_check = 0;
            self.check_free()?;
        }
        Ok(())
    }

    /// At the start: is there any room left?
    fn check_room(&self) -> Result<(), DataError> {
        let max = self.ledger.max_bytes;
        let charged = self.ledger.charged.load(Ordering::Relaxed);
        if self.base.saturating_add(charged) < max {
            return Ok(());
        }
        Err(DataError::Full(format!(
            "DATA_DIR holds {} bytes{}, which reaches DATA_MAX_BYTES={max}; \
             delete files or tables under DATA_DIR, or raise DATA_MAX_BYTES",
            self.base,
            if charged > 0 {
                format!(" and running jobs are writing {charged} more")
            } else {
                String::new()
            }
        )))
    }

    fn check_cap(&self, charged: u64) -> Result<(), DataError> {
        let max = self.ledger.max_bytes;
        if self.base.saturating_add(charged) <= max {
            return Ok(());
        }
        Err(DataError::Full(format!(
            "writing would take DATA_DIR past DATA_MAX_BYTES={max} (it held {} bytes \
             when the job started; running jobs have written {charged} since); \
             delete files or tables under DATA_DIR, or raise DATA_MAX_BYTES",
            self.base
        )))
    }

    fn check_free(&self) -> Result<(), DataError> {
        // A file system that cannot say (an unusual sandbox) is not judged.
        let Ok((available, size)) = (self.free_space)(&self.data_dir) else {
            return Ok(());
        };
        let floor = free_floor(size);
        if available >= floor {
            return Ok(());
        }
        Err(DataError::Full(format!(
            "the file system holding DATA_DIR has {available} bytes free, less than the \
             {floor} kept free for the queue's database; free some space there"
        )))
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        self.ledger.charged.fetch_sub(self.own, Ordering::Relaxed);
    }
}

/// The free space a data job leaves on its disk: 5% of the file system's
/// size, at most 1 GiB.
pub fn free_floor(size: u64) -> u64 {
    (size / 20).min(MAX_FREE_FLOOR)
}

/// The bytes a row takes in a table, roughly: its values' sizes and a
/// little for the record around them.
pub fn row_bytes(row: &[Value]) -> u64 {
    8 + row.iter().map(|v| 1 + value_bytes(v)).sum::<u64>()
}

pub fn value_bytes(value: &Value) -> u64 {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(_) => 8,
        Value::String(s) => s.len() as u64,
        nested => {
            let mut counter = Counter(0);
            let _ = serde_json::to_writer(&mut counter, nested);
            counter.0
        }
    }
}

struct Counter(u64);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The size of every regular file under `dir`, symlinks not followed.
/// What cannot be read is not counted.
pub fn usage(dir: &Path) -> u64 {
    fn walk(dir: &Path, depth: usize) -> u64 {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        let mut total = 0u64;
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() && depth + 1 < MAX_DEPTH {
                total = total.saturating_add(walk(&entry.path(), depth + 1));
            } else if kind.is_file() {
                total = total.saturating_add(entry.metadata().map_or(0, |m| m.len()));
            }
        }
        total
    }
    walk(dir, 0)
}

fn statvfs(path: &Path) -> io::Result<(u64, u64)> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statvfs writes only into the struct it is given, and the
    // path is a valid NUL-terminated string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let unit = stat.f_frsize as u64;
    Ok((
        (stat.f_bavail as u64).saturating_mul(unit),
        (stat.f_blocks as u64).saturating_mul(unit),
    ))
}

/// A writer that charges what passes through it to a [`Quota`].
pub struct Charged<W> {
    inner: W,
    quota: Quota,
}

/// The error a [`Charged`] writer gives when the quota is used up; the
/// message is the quota's.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QuotaExceeded(pub String);

impl<W> Charged<W> {
    pub fn new(inner: W, quota: Quota) -> Charged<W> {
        Charged { inner, quota }
    }

    /// The writer, and the quota (keep it until the output is in place).
    pub fn into_parts(self) -> (W, Quota) {
        (self.inner, self.quota)
    }
}

impl<W: io::Write> io::Write for Charged<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(err) = self.quota.charge(buf.len() as u64) {
            return Err(io::Error::other(QuotaExceeded(err.to_string())));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A write error: a used-up quota is [`DataError::Full`], any other I/O
/// error is the machine's.
pub fn write_error(err: io::Error) -> DataError {
    match quota_exceeded(&err) {
        Some(QuotaExceeded(reason)) => DataError::Full(reason.clone()),
        None => DataError::io("target: writing", err),
    }
}

/// The [`QuotaExceeded`] inside `err`, however the writers above the
/// [`Charged`] one (the csv crate's among them) wrapped it.
fn quota_exceeded(err: &io::Error) -> Option<&QuotaExceeded> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
    while let Some(e) = current {
        if let Some(exceeded) = e.downcast_ref::<QuotaExceeded>() {
            return Some(exceeded);
        }
        // An io::Error's source() skips the error it wraps, and a csv
        // error has no source() at all: both are opened by hand.
        current = if let Some(io) = e.downcast_ref::<io::Error>() {
            io.get_ref().map(|e| e as _)
        } else if let Some(csv) = e.downcast_ref::<::csv::Error>() {
            match csv.kind() {
                ::csv::ErrorKind::Io(io) => io.get_ref().map(|e| e as _),
                _ => None,
            }
        } else {
            e.source()
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn plenty(_: &Path) -> io::Result<(u64, u64)> {
        Ok((1 << 40, 1 << 41))
    }

    fn nearly_full(_: &Path) -> io::Result<(u64, u64)> {
        Ok((10 << 20, 1 << 30))
    }

    #[test]
    fn usage_counts_regular_files_and_not_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/b"), [0u8; 50]).unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("big"), [0u8; 1000]).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        assert_eq!(usage(dir.path()), 150);
    }

    #[test]
    fn a_job_stops_when_it_would_pass_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        let ledger = Ledger::new(1000);
        let mut quota = Quota::start_with(&ledger, dir.path(), plenty).unwrap();
        quota.charge(800).unwrap();
        quota.charge(100).unwrap();
        let err = quota.charge(1).unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.to_string().contains("past DATA_MAX_BYTES=1000"),
            "{err}"
        );
        drop(quota);
        assert_eq!(ledger.charged.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn running_jobs_share_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(1000);
        let mut a = Quota::start_with(&ledger, dir.path(), plenty).unwrap();
        let mut b = Quota::start_with(&ledger, dir.path(), plenty).unwrap();
        a.charge(600).unwrap();
        assert!(b.charge(401).is_err());
        assert!(Quota::start_with(&ledger, dir.path(), plenty).is_err());
        drop(a);
        drop(b);
        let mut c = Quota::start_with(&ledger, dir.path(), plenty).unwrap();
        c.charge(1000).unwrap();
    }

    #[test]
    fn a_full_data_dir_refuses_the_job_at_its_start() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), [0u8; 1000]).unwrap();
        let err = Quota::start_with(&Ledger::new(1000), dir.path(), plenty)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "DATA_DIR is full: DATA_DIR holds 1000 bytes, which reaches DATA_MAX_BYTES=1000; \
             delete files or tables under DATA_DIR, or raise DATA_MAX_BYTES"
        );
    }

    #[test]
    fn a_nearly_full_disk_stops_a_job_whatever_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(u64::MAX);
        let err = Quota::start_with(&ledger, dir.path(), nearly_full)
            .err()
            .unwrap();
        assert!(err.to_string().contains("kept free"), "{err}");

        // Checked again while writing, once a MiB was charged.
        fn fills_up(_: &Path) -> io::Result<(u64, u64)> {
            use std::sync::atomic::AtomicBool;
            static CALLED: AtomicBool = AtomicBool::new(false);
            Ok(if CALLED.swap(true, Ordering::Relaxed) {
                (0, 1 << 30)
            } else {
                (1 << 30, 1 << 30)
            })
        }
        let mut quota = Quota::start_with(&ledger, dir.path(), fills_up).unwrap();
        quota.charge(FREE_CHECK_EVERY - 1).unwrap();
        assert!(quota.charge(1).is_err());
    }

    #[test]
    fn the_floor_is_five_percent_at_most_a_gib() {
        assert_eq!(free_floor(1 << 30), (1 << 30) / 20);
        assert_eq!(free_floor(1 << 40), 1 << 30);
        assert!(statvfs(Path::new("/")).unwrap().1 > 0);
    }

    #[test]
    fn a_charged_writer_fails_with_the_quotas_reason() {
        let dir = tempfile::tempdir().unwrap();
        let quota = Quota::start_with(&Ledger::new(10), dir.path(), plenty).unwrap();
        let mut w = Charged::new(Vec::new(), quota);
        w.write_all(b"12345").unwrap();
        let err = w.write_all(b"123456").unwrap_err();
        assert!(matches!(write_error(err), DataError::Full(_)));
        let (written, quota) = w.into_parts();
        assert_eq!(written, b"12345");

        // Wrapped by the csv crate, as a CSV export's writes are.
        let mut csv = ::csv::Writer::from_writer(Charged::new(Vec::new(), quota));
        let err = csv
            .write_field("x".repeat(100))
            .and_then(|()| csv.flush().map_err(Into::into));
        let err = io::Error::from(err.unwrap_err());
        assert!(matches!(write_error(err), DataError::Full(_)));
    }
}
