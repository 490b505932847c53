//! Where a job's data lives on disk: `table:` and `file:` endpoints
//! (already checked by the `endpoint` module) resolved against the real
//! DATA_DIR when the job runs.
//!
//! Design choice: symlinks are not refused outright, only those that lead
//! out of DATA_DIR, because operators legitimately link folders inside it.
//! So every existing component is canonicalized and must stay under
//! DATA_DIR's real path; a missing target folder is created one level at a
//! time and each level checked again. The check is then repeated on the
//! opened descriptor (`/proc/self/fd`), and a target is written through a
//! handle on its folder rather than through the folder's path, so a symlink
//! swapped in between the check and the use is caught too. Folders made
//! here are 0750, whatever the umask allows: file names can say a lot.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::endpoint::{DATABASE_FILE, FilePath};
use super::error::DataError;
use crate::atomic_file::PinnedDir;

/// Permissions of the folders the handler creates, before the umask.
const FOLDER_MODE: u32 = 0o750;

/// DATA_DIR, by its real path.
#[derive(Debug)]
pub struct DataRoot {
    real: PathBuf,
}

impl DataRoot {
    /// Creates DATA_DIR when missing and finds its real path.
    pub fn open(data_dir: &Path) -> Result<DataRoot, DataError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(FOLDER_MODE)
            .create(data_dir)
            .map_err(|e| DataError::io(format!("creating DATA_DIR {}", data_dir.display()), e))?;
        let real = fs::canonicalize(data_dir)
            .map_err(|e| DataError::io(format!("resolving DATA_DIR {}", data_dir.display()), e))?;
        Ok(DataRoot { real })
    }

    /// DATA_DIR's real path.
    pub fn path(&self) -> &Path {
        &self.real
    }

    pub fn database_path(&self) -> PathBuf {
        self.real.join(DATABASE_FILE)
    }

    /// Opens an existing source file for reading.
    pub fn open_source(&self, field: &'static str, path: &FilePath) -> Result<File, DataError> {
        let joined = self.real.join(path.rel());
        let real = match fs::canonicalize(&joined) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(DataError::Missing {
                    field,
                    what: format!("file {:?}", path.rel().display().to_string()),
                });
            }
            Err(e) => return Err(DataError::io(format!("{field}: resolving the path"), e)),
        };
        self.check_inside(field, &real)?;
        // O_NOFOLLOW: the last component was no symlink a moment ago and must
        // not have become one. O_NONBLOCK: a FIFO must not hang the open.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&real)
            .map_err(|e| self.open_error(field, e))?;
        let meta = file
            .metadata()
            .map_err(|e| DataError::io(format!("{field}: reading the file's metadata"), e))?;
        if !meta.is_file() {
            return Err(DataError::refused(field, "is not a regular file"));
        }
        self.check_descriptor(field, &file)?;
        Ok(file)
    }

    /// Finds (creating when missing) the folder a target file goes in, and
    /// returns it held open together with the file's name.
    pub fn target_dir(
        &self,
        field: &'static str,
        path: &FilePath,
    ) -> Result<(PinnedDir, OsString), DataError> {
        let name = path
            .rel()
            .file_name()
            .ok_or_else(|| DataError::invalid(field, "names a folder, not a file"))?
            .to_os_string();
        let mut current = self.real.clone();
        if let Some(parent) = path.rel().parent() {
            for part in parent.components() {
                let next = current.join(part);
                match fs::symlink_metadata(&next) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        match fs::DirBuilder::new().mode(FOLDER_MODE).create(&next) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                            Err(e) => {
                                return Err(DataError::io(
                                    format!("{field}: creating folder {}", next.display()),
                                    e,
                                ));
                            }
                        }
                    }
                    Err(e) => {
                        return Err(DataError::io(
                            format!("{field}: looking at {}", next.display()),
                            e,
                        ));
                    }
                }
                let real = fs::canonicalize(&next)
                    .map_err(|e| DataError::io(format!("{field}: resolving the path"), e))?;
                self.check_inside(field, &real)?;
                if !real.is_dir() {
                    return Err(DataError::refused(
                        field,
                        format!("{:?} is not a folder", part.as_os_str()),
                    ));
                }
                current = real;
            }
        }
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&current)
            .map_err(|e| self.open_error(field, e))?;
        self.check_descriptor(field, &handle)?;
        let dir = PinnedDir::from_handle(handle, current);
        if fs::symlink_metadata(dir.entry(&name)).is_ok_and(|meta| meta.is_dir()) {
            return Err(DataError::refused(field, "names an existing folder"));
        }
        Ok((dir, name))
    }

    fn check_inside(&self, field: &'static str, real: &Path) -> Result<(), DataError> {
        if real.starts_with(&self.real) {
            Ok(())
        } else {
            Err(DataError::refused(
                field,
                "the path leads out of DATA_DIR through a symlink",
            ))
        }
    }

    /// Checks where an opened descriptor really is. Without /proc (an
    /// unusual sandbox) the path checks made before opening stand alone.
    fn check_descriptor(&self, field: &'static str, file: &File) -> Result<(), DataError> {
        match fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            Ok(real) => self.check_inside(field, &real),
            Err(_) => Ok(()),
        }
    }

    fn open_error(&self, field: &'static str, e: io::Error) -> DataError {
        if e.raw_os_error() == Some(libc::ELOOP) {
            DataError::refused(
                field,
                "the path was changed into a symlink while it was opened",
            )
        } else {
            DataError::io(format!("{field}: opening"), e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlink_out_of_data_dir_is_refused_for_reading() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.csv"), "a\n1\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        symlink(
            outside.path().join("secret.csv"),
            dir.path().join("link.csv"),
        )
        .unwrap();
        symlink(outside.path(), dir.path().join("out")).unwrap();
        for path in ["link.csv", "out/secret.csv"] {
            let err = root
                .open_source("source", &FilePath::parse(path).unwrap())
                .unwrap_err();
            assert!(matches!(err, DataError::Refused { .. }), "{path}: {err}");
        }
    }

    #[test]
    fn a_symlink_inside_data_dir_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::fs::write(dir.path().join("real/a.csv"), "a\n1\n").unwrap();
        symlink(dir.path().join("real"), dir.path().join("alias")).unwrap();
        root.open_source("source", &FilePath::parse("alias/a.csv").unwrap())
            .unwrap();
    }

    #[test]
    fn a_target_folder_is_created_but_a_planted_symlink_is_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        let (pinned, name) = root
            .target_dir("target", &FilePath::parse("new/deeper/x.csv").unwrap())
            .unwrap();
        assert_eq!(name, "x.csv");
        assert!(dir.path().join("new/deeper").is_dir());
        std::fs::write(pinned.entry(&name), "via the pinned folder").unwrap();
        assert!(dir.path().join("new/deeper/x.csv").is_file());

        symlink(outside.path(), dir.path().join("planted")).unwrap();
        let err = root
            .target_dir("target", &FilePath::parse("planted/sub/x.csv").unwrap())
            .unwrap_err();
        assert!(matches!(err, DataError::Refused { .. }), "{err}");
        assert!(!outside.path().join("sub").exists());
    }

    #[test]
    fn a_missing_source_is_reported_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        let err = root
            .open_source("source", &FilePath::parse("nope.csv").unwrap())
            .unwrap_err();
        assert_eq!(err.to_string(), "source: file \"nope.csv\" does not exist");
        assert!(err.is_retryable());
    }
}
