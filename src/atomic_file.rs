//! Files that appear whole or not at all: written under a random temporary
//! name in the target's own folder, synced, then renamed over the target.
//! The data handler's outputs and the metrics textfile both go through here.
//!
//! Design choice: the temporary name is random and is created with
//! `O_EXCL|O_NOFOLLOW`, so nothing planted in advance (a symlink at a name
//! someone could guess, say from the pid `status` shows) is ever opened or
//! written through: a clash fails the create instead. The file lives in the
//! target's folder (not /tmp) because only a rename within one file system
//! is atomic; the folder is held open, so a folder swapped for a symlink
//! after it was opened is not followed; and the temporary file's removal is
//! tied to `Drop`, so an error, a cancellation or a panic before the rename
//! leaves no partial file behind. Only a process killed in between leaves
//! one, and its name says whose it was ([`parse_temp_name`]), so a sweep can
//! find it without touching anything else.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// How much of the target's name the temporary name keeps, so that the
/// temporary name stays within the 255 bytes a file name may have.
const NAME_KEPT: usize = 100;

/// The random part of a temporary name: 16 lowercase hex digits.
const RANDOM_DIGITS: usize = 16;

/// A folder held open, so that names inside it are resolved in that folder
/// even if its path is changed afterwards.
#[derive(Debug)]
pub struct PinnedDir {
    handle: File,
    /// `/proc/self/fd/N` while /proc is there, else the folder's path.
    path: PathBuf,
}

impl PinnedDir {
    /// Opens the folder at `path`.
    pub fn open(path: &Path) -> io::Result<PinnedDir> {
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(PinnedDir::from_handle(handle, path.to_path_buf()))
    }

    /// Wraps a folder already opened (and checked) by the caller; `path` is
    /// used only where /proc is missing.
    pub fn from_handle(handle: File, path: PathBuf) -> PinnedDir {
        let proc_path = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
        let path = if proc_path.exists() { proc_path } else { path };
        PinnedDir { handle, path }
    }

    /// The path of `name` inside this folder.
    pub fn entry(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Makes the folder's entries (a rename) durable.
    pub fn sync(&self) -> io::Result<()> {
        self.handle.sync_all()
    }
}

/// Which step of writing a file failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct WriteError {
    pub step: &'static str,
    #[source]
    pub source: io::Error,
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> WriteError {
    move |source| WriteError { step, source }
}

/// A temporary file waiting to be renamed over its target.
#[derive(Debug)]
pub struct TempFile {
    dir: PinnedDir,
    name: OsString,
    temp: OsString,
    armed: bool,
}

impl TempFile {
    /// Creates `.NAME.PID-RANDOM.tmp` in `dir`, next to where `name` will
    /// be, with permissions `mode` (less whatever the umask takes away).
    pub fn create(
        dir: PinnedDir,
        name: OsString,
        mode: u32,
    ) -> Result<(TempFile, File), WriteError> {
        let temp = temp_name(&name);
        let file =
            create_exclusive(&dir, &temp, mode).map_err(step("creating the temporary file"))?;
        Ok((
            TempFile {
                dir,
                name,
                temp,
                armed: true,
            },
            file,
        ))
    }

    /// Syncs `file` (the one [`TempFile::create`] returned) and renames it
    /// over the target, then syncs the folder so the rename survives a
    /// power cut. A symlink at the target's name is replaced, not followed.
    pub fn persist(mut self, file: File) -> Result<(), WriteError> {
        file.sync_all().map_err(step("syncing the file"))?;
        drop(file);
        fs::rename(self.dir.entry(&self.temp), self.dir.entry(&self.name))
            .map_err(step("renaming the file into place"))?;
        self.armed = false;
        self.dir.sync().map_err(step("syncing the folder"))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(self.dir.entry(&self.temp));
        }
    }
}

/// Creates `name` in `dir` only if nothing at all is there: `O_EXCL` never
/// reuses an existing entry, and with it a symlink is not followed either
/// (`O_NOFOLLOW` says so twice).
fn create_exclusive(dir: &PinnedDir, name: &OsStr, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.entry(name))
}

/// `.NAME.PID-RANDOM.tmp`, with NAME cut to [`NAME_KEPT`] bytes.
fn temp_name(name: &OsStr) -> OsString {
    let shown = name.to_string_lossy();
    let mut end = shown.len().min(NAME_KEPT);
    while !shown.is_char_boundary(end) {
        end -= 1;
    }
    OsString::from(format!(
        ".{}.{}-{:016x}.tmp",
        &shown[..end],
        std::process::id(),
        fastrand::u64(..)
    ))
}

/// The pid in a name [`TempFile::create`] made, or `None` when `name` is
/// not one: `.` NAME `.` PID `-` 16 hex digits `.tmp`, NAME not empty.
pub fn parse_temp_name(name: &OsStr) -> Option<u32> {
    let rest = name.as_bytes().strip_prefix(b".")?.strip_suffix(b".tmp")?;
    let (rest, random) = rest.split_at(rest.len().checked_sub(RANDOM_DIGITS)?);
    if !random
        .iter()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let rest = rest.strip_suffix(b"-")?;
    let dot = rest.iter().rposition(|&b| b == b'.')?;
    let (kept, pid) = (&rest[..dot], &rest[dot + 1..]);
    if kept.is_empty() || pid.is_empty() || !pid.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn temp_files(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn persist_replaces_the_target_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.csv"), "old").unwrap();

        let pinned = PinnedDir::open(dir.path()).unwrap();
        let (temp, mut file) = TempFile::create(pinned, "x.csv".into(), 0o640).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(temp_files(dir.path()).len(), 1);
        temp.persist(file).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("x.csv")).unwrap(), "new");
        assert!(temp_files(dir.path()).is_empty());

        let pinned = PinnedDir::open(dir.path()).unwrap();
        let (temp, mut file) = TempFile::create(pinned, "x.csv".into(), 0o640).unwrap();
        file.write_all(b"abandoned").unwrap();
        drop(temp);
        assert_eq!(fs::read_to_string(dir.path().join("x.csv")).unwrap(), "new");
        assert!(temp_files(dir.path()).is_empty());
    }

    #[test]
    fn a_symlink_at_the_target_name_is_replaced_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim.csv"), "keep me").unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(outside.path().join("victim.csv"), dir.path().join("x.csv")).unwrap();
        let pinned = PinnedDir::open(dir.path()).unwrap();
        let (temp, mut file) = TempFile::create(pinned, "x.csv".into(), 0o640).unwrap();
        file.write_all(b"mine").unwrap();
        temp.persist(file).unwrap();
        assert_eq!(
            fs::read_to_string(outside.path().join("victim.csv")).unwrap(),
            "keep me"
        );
        let meta = fs::symlink_metadata(dir.path().join("x.csv")).unwrap();
        assert!(!meta.file_type().is_symlink());
    }

    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_never_written_through() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim"), "keep me").unwrap();
        let dir = tempfile::tempdir().unwrap();
        symlink(outside.path().join("victim"), dir.path().join("planted")).unwrap();
        symlink(outside.path().join("absent"), dir.path().join("dangling")).unwrap();
        let pinned = PinnedDir::open(dir.path()).unwrap();
        for name in ["planted", "dangling"] {
            let err = create_exclusive(&pinned, OsStr::new(name), 0o600).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{name}: {err}");
        }
        assert_eq!(
            fs::read_to_string(outside.path().join("victim")).unwrap(),
            "keep me"
        );
        assert!(!outside.path().join("absent").exists());
    }

    #[test]
    fn temporary_names_are_random_and_recognised() {
        let a = temp_name(OsStr::new("users.csv"));
        let b = temp_name(OsStr::new("users.csv"));
        assert_ne!(a, b);
        let pid = std::process::id();
        assert_eq!(parse_temp_name(&a), Some(pid));
        assert!(a.to_string_lossy().starts_with(".users.csv."));
        let long = temp_name(OsStr::new(&"é".repeat(200)));
        assert!(long.len() <= 255);
        assert_eq!(parse_temp_name(&long), Some(pid));
        for not_ours in [
            "users.csv",
            ".users.csv.tmp",
            ".users.csv.12-0123456789abcdef.csv",
            "..12-0123456789abcdef.tmp",
            ".x.-0123456789abcdef.tmp",
            ".x.12-0123456789ABCDEF.tmp",
            ".x.12-0123456789abcde.tmp",
            ".x.1a-0123456789abcdef.tmp",
            "x.12-0123456789abcdef.tmp",
        ] {
            assert_eq!(parse_temp_name(OsStr::new(not_ours)), None, "{not_ours}");
        }
        assert_eq!(
            parse_temp_name(OsStr::new(".a.b.csv.12-0123456789abcdef.tmp")),
            Some(12)
        );
    }

    #[test]
    fn the_file_gets_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let pinned = PinnedDir::open(dir.path()).unwrap();
        let (temp, file) = TempFile::create(pinned, "m".into(), 0o600).unwrap();
        temp.persist(file).unwrap();
        let mode = fs::metadata(dir.path().join("m"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
