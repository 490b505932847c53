//! Housekeeping of DATA_DIR. Export housekeeping deletes files under
//! `DATA_DIR/exports` older than the retention, as the replaced system's
//! `clean_exported_files` cron did; the daemon runs [`clear_exports`] as the
//! built-in `clear_exports` cron. And at start-up the daemon runs
//! [`sweep_temp_files`], which deletes the temporary files of jobs killed
//! in the middle of writing (a rename never came), and nothing else.
//!
//! Design choice: the sweep never follows a symlink: entries are judged by
//! `symlink_metadata`, only regular files are deleted, and a symlinked
//! folder is neither entered nor removed. So a link inside `exports` cannot
//! turn the sweep loose on files elsewhere. Folders are removed only when
//! the sweep itself emptied them, so a folder an export just created for
//! its output is left alone.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::atomic_file::parse_temp_name;

/// The folder below DATA_DIR that is swept.
pub const EXPORTS_DIR: &str = "exports";

/// How deep the sweep goes; deeper folders are left alone.
const MAX_DEPTH: usize = 32;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClearReport {
    pub files_deleted: u64,
    pub bytes_freed: u64,
    pub folders_deleted: u64,
    /// Regular files young enough to keep.
    pub files_kept: u64,
    /// Entries that could not be read or deleted (each logged).
    pub failures: u64,
}

/// Deletes regular files under `DATA_DIR/exports` whose modification time
/// is more than `retention_days` before `now`, and the folders that leaves
/// empty. A missing `exports` folder is nothing to do; one that is a
/// symlink, or cannot be read, is an error.
pub fn clear_exports(
    data_dir: &Path,
    retention_days: u32,
    now: SystemTime,
) -> io::Result<ClearReport> {
    let exports = data_dir.join(EXPORTS_DIR);
    let meta = match fs::symlink_metadata(&exports) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ClearReport::default()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return Err(io::Error::other(format!(
            "{} is not a folder (a symlink is not followed)",
            exports.display()
        )));
    }
    let cutoff = now
        .checked_sub(Duration::from_secs(u64::from(retention_days) * 86_400))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = ClearReport::default();
    // An unreadable exports folder fails the cron as a whole; below it, an
    // entry that cannot be handled is counted and the sweep goes on.
    fs::read_dir(&exports)?;
    sweep(&exports, cutoff, 0, &mut report);
    tracing::info!(
        files_deleted = report.files_deleted,
        bytes_freed = report.bytes_freed,
        folders_deleted = report.folders_deleted,
        files_kept = report.files_kept,
        failures = report.failures,
        "clear_exports finished"
    );
    Ok(report)
}

/// Sweeps one folder; returns whether it deleted anything in it.
fn sweep(dir: &Path, cutoff: SystemTime, depth: usize, report: &mut ClearReport) -> bool {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            fail(report, dir, &e);
            return false;
        }
    };
    let mut deleted_any = false;
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                fail(report, dir, &e);
                continue;
            }
        };
        let path = entry.path();
        // DirEntry::file_type does not follow symlinks.
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(e) => {
                fail(report, &path, &e);
                continue;
            }
        };
        if kind.is_dir() {
            if depth + 1 >= MAX_DEPTH {
                continue;
            }
            if sweep(&path, cutoff, depth + 1, report) {
                match fs::remove_dir(&path) {
                    Ok(()) => {
                        report.folders_deleted += 1;
                        deleted_any = true;
                    }
                    // Not empty: something young is still in it.
                    Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
                    Err(e) => fail(report, &path, &e),
                }
            }
        } else if kind.is_file() {
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    fail(report, &path, &e);
                    continue;
                }
            };
            let old = meta.modified().is_ok_and(|mtime| mtime < cutoff);
            if !old {
                report.files_kept += 1;
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.files_deleted += 1;
                    report.bytes_freed += meta.len();
                    deleted_any = true;
                }
                Err(e) => fail(report, &path, &e),
            }
        }
    }
    deleted_any
}

fn fail(report: &mut ClearReport, path: &Path, err: &io::Error) {
    report.failures += 1;
    tracing::warn!(path = %path.display(), error = %err, "clear_exports could not handle an entry");
}

/// What the start-up sweep of temporary files did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub files_deleted: u64,
    pub bytes_freed: u64,
    /// Entries that could not be read or deleted (each logged).
    pub failures: u64,
}

/// Deletes the temporary files a data job killed mid-write left anywhere
/// under DATA_DIR: regular files named as the handler names them
/// (`.NAME.PID-RANDOM.tmp`) whose process is gone or is this one. Call it
/// before any data job of this process runs, as the daemon does at
/// start-up. Symlinks are not followed and no other file is touched; a file
/// of a live process (another daemon sharing DATA_DIR) is left alone. A
/// missing DATA_DIR is nothing to do.
pub fn sweep_temp_files(data_dir: &Path) -> io::Result<SweepReport> {
    let root = match fs::canonicalize(data_dir) {
        Ok(root) => root,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SweepReport::default()),
        Err(e) => return Err(e),
    };
    fs::read_dir(&root)?;
    let mut report = SweepReport::default();
    sweep_temps(&root, 0, &mut report);
    Ok(report)
}

fn sweep_temps(dir: &Path, depth: usize, report: &mut SweepReport) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            temp_failure(report, dir, &e);
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                temp_failure(report, dir, &e);
                continue;
            }
        };
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if depth + 1 < MAX_DEPTH {
                sweep_temps(&path, depth + 1, report);
            }
            continue;
        }
        let Some(pid) = parse_temp_name(&entry.file_name()) else {
            continue;
        };
        if !kind.is_file() || (pid != std::process::id() && process_alive(pid)) {
            continue;
        }
        let size = entry.metadata().map_or(0, |m| m.len());
        match fs::remove_file(&path) {
            Ok(()) => {
                report.files_deleted += 1;
                report.bytes_freed += size;
            }
            Err(e) => temp_failure(report, &path, &e),
        }
    }
}

/// Whether a process `pid` exists (one we may not signal exists too).
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn temp_failure(report: &mut SweepReport, path: &Path, err: &io::Error) {
    report.failures += 1;
    tracing::warn!(path = %path.display(), error = %err, "the temporary-file sweep could not handle an entry");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    const DAY: Duration = Duration::from_secs(86_400);

    fn aged(path: &Path, age: Duration) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, "data").unwrap();
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn old_files_go_new_files_stay_and_emptied_folders_go() {
        let dir = tempfile::tempdir().unwrap();
        let exports = dir.path().join("exports");
        aged(&exports.join("old.csv"), 10 * DAY);
        aged(&exports.join("new.csv"), DAY);
        aged(&exports.join("2024/01/old.json"), 30 * DAY);
        aged(&exports.join("mixed/old.jsonl"), 8 * DAY);
        aged(&exports.join("mixed/new.jsonl"), Duration::ZERO);
        fs::create_dir(exports.join("empty_already")).unwrap();
        aged(&dir.path().join("outside_exports.csv"), 100 * DAY);

        let report = clear_exports(dir.path(), 7, SystemTime::now()).unwrap();
        assert_eq!(
            report,
            ClearReport {
                files_deleted: 3,
                bytes_freed: 12,
                folders_deleted: 2,
                files_kept: 2,
                failures: 0,
            }
        );
        assert!(!exports.join("old.csv").exists());
        assert!(exports.join("new.csv").exists());
        assert!(!exports.join("2024").exists());
        assert!(exports.join("mixed/new.jsonl").exists());
        assert!(exports.join("empty_already").exists());
        assert!(dir.path().join("outside_exports.csv").exists());
        assert!(exports.is_dir());
    }

    #[test]
    fn symlinks_are_never_followed() {
        let outside = tempfile::tempdir().unwrap();
        aged(&outside.path().join("precious.csv"), 100 * DAY);
        let dir = tempfile::tempdir().unwrap();
        let exports = dir.path().join("exports");
        fs::create_dir(&exports).unwrap();
        std::os::unix::fs::symlink(outside.path(), exports.join("linked_dir")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("precious.csv"),
            exports.join("linked.csv"),
        )
        .unwrap();

        let report = clear_exports(dir.path(), 1, SystemTime::now()).unwrap();
        assert_eq!(report.files_deleted, 0);
        assert!(outside.path().join("precious.csv").exists());
        assert!(fs::symlink_metadata(exports.join("linked.csv")).is_ok());

        let other = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), other.path().join("exports")).unwrap();
        assert!(clear_exports(other.path(), 1, SystemTime::now()).is_err());
        assert!(outside.path().join("precious.csv").exists());
    }

    #[test]
    fn no_exports_folder_is_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            clear_exports(dir.path(), 7, SystemTime::now()).unwrap(),
            ClearReport::default()
        );
    }

    /// A pid no process has: one that just exited.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn the_sweep_deletes_dead_jobs_temporary_files_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let dead = dead_pid();
        let stale = [
            format!(".users.csv.{dead}-0123456789abcdef.tmp"),
            format!("exports/deep/.x.json.{dead}-fedcba9876543210.tmp"),
            format!(".mine.csv.{}-0000000000000000.tmp", std::process::id()),
        ];
        let kept = [
            "users.csv".to_string(),
            ".notes.tmp".to_string(),
            format!("exports/.x.csv.{dead}-0123456789abcde.tmp"),
            format!("exports/x.csv.{dead}-0123456789abcdef.tmp"),
            // pid 1 is alive: another daemon's file, still being written.
            ".live.csv.1-0123456789abcdef.tmp".to_string(),
        ];
        for rel in stale.iter().chain(&kept) {
            aged(&data.join(rel), Duration::ZERO);
        }
        let folder = data.join(format!(".f.csv.{dead}-0123456789abcdef.tmp"));
        fs::create_dir(&folder).unwrap();
        let outside = tempfile::tempdir().unwrap();
        aged(&outside.path().join("precious"), Duration::ZERO);
        let link = data.join(format!(".l.csv.{dead}-0123456789abcdef.tmp"));
        std::os::unix::fs::symlink(outside.path().join("precious"), &link).unwrap();

        let report = sweep_temp_files(data).unwrap();
        assert_eq!(
            report,
            SweepReport {
                files_deleted: 3,
                bytes_freed: 12,
                failures: 0
            }
        );
        for rel in &stale {
            assert!(!data.join(rel).exists(), "{rel} was kept");
        }
        for rel in &kept {
            assert!(data.join(rel).exists(), "{rel} was deleted");
        }
        assert!(folder.is_dir());
        assert!(fs::symlink_metadata(&link).is_ok());
        assert!(outside.path().join("precious").exists());
        assert_eq!(
            sweep_temp_files(&data.join("missing")).unwrap(),
            SweepReport::default()
        );
    }
}
