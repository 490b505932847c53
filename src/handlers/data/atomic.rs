//! Output files that appear whole or not at all: written under a temporary
//! name in the target's own folder, synced, then renamed over the target.
//!
//! Design choice: the temporary file lives in the same folder as the target
//! (not in /tmp), because only a rename within one file system is atomic;
//! and its removal is tied to `Drop`, so an error, a cancellation or a panic
//! anywhere before the rename leaves no partial file behind.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;

use super::error::DataError;
use super::path::PinnedDir;

/// How much of the target's name the temporary name keeps, so that the
/// temporary name stays within the 255 bytes a file name may have.
const NAME_KEPT: usize = 100;

/// A temporary file waiting to be renamed over its target.
pub struct TempFile {
    dir: PinnedDir,
    name: OsString,
    temp: OsString,
    armed: bool,
}

impl TempFile {
    /// Creates `.NAME.PID-RANDOM.tmp` next to where `name` will be.
    pub fn create(dir: PinnedDir, name: OsString) -> Result<(TempFile, File), DataError> {
        let shown = name.to_string_lossy();
        let mut end = shown.len().min(NAME_KEPT);
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        let temp = OsString::from(format!(
            ".{}.{}-{:016x}.tmp",
            &shown[..end],
            std::process::id(),
            fastrand::u64(..)
        ));
        // create_new (O_EXCL) never follows or reuses an existing entry.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir.entry(&temp))
            .map_err(|e| DataError::io("target: creating the temporary file", e))?;
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
    /// power cut.
    pub fn persist(mut self, file: File) -> Result<(), DataError> {
        file.sync_all()
            .map_err(|e| DataError::io("target: syncing the file", e))?;
        drop(file);
        fs::rename(self.dir.entry(&self.temp), self.dir.entry(&self.name))
            .map_err(|e| DataError::io("target: renaming the file into place", e))?;
        self.armed = false;
        self.dir
            .sync()
            .map_err(|e| DataError::io("target: syncing the folder", e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(self.dir.entry(&self.temp));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::data::path::{DataRoot, FilePath};
    use std::io::Write;

    fn temp_files(dir: &std::path::Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn persist_replaces_the_target_and_drop_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        let path = FilePath::parse("out/x.csv").unwrap();
        fs::create_dir(dir.path().join("out")).unwrap();
        fs::write(dir.path().join("out/x.csv"), "old").unwrap();

        let (pinned, name) = root.target_dir("target", &path).unwrap();
        let (temp, mut file) = TempFile::create(pinned, name).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(temp_files(&dir.path().join("out")).len(), 1);
        temp.persist(file).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("out/x.csv")).unwrap(),
            "new"
        );
        assert!(temp_files(&dir.path().join("out")).is_empty());

        let (pinned, name) = root.target_dir("target", &path).unwrap();
        let (temp, mut file) = TempFile::create(pinned, name).unwrap();
        file.write_all(b"abandoned").unwrap();
        drop(temp);
        assert_eq!(
            fs::read_to_string(dir.path().join("out/x.csv")).unwrap(),
            "new"
        );
        assert!(temp_files(&dir.path().join("out")).is_empty());
    }

    #[test]
    fn a_symlink_at_the_target_name_is_replaced_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim.csv"), "keep me").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim.csv"), dir.path().join("x.csv"))
            .unwrap();
        let (pinned, name) = root
            .target_dir("target", &FilePath::parse("x.csv").unwrap())
            .unwrap();
        let (temp, mut file) = TempFile::create(pinned, name).unwrap();
        file.write_all(b"mine").unwrap();
        temp.persist(file).unwrap();
        assert_eq!(
            fs::read_to_string(outside.path().join("victim.csv")).unwrap(),
            "keep me"
        );
        assert!(
            !fs::symlink_metadata(dir.path().join("x.csv"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
