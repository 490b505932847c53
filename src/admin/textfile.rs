//! CRONQ_METRICS_TEXTFILE: the metrics written to a file every 15 s for
//! node_exporter's textfile collector, atomically (temp file + rename,
//! through [`crate::atomic_file`]) so the collector never reads half a file.
//!
//! Design choice: the temporary file gets a random name created with
//! `O_EXCL|O_NOFOLLOW`, never `NAME.<pid>.tmp`: the pid is public (`status`
//! shows it), and a symlink planted at a name anyone can predict would make
//! the daemon truncate and overwrite the file it points to. The file is
//! 0644 (less the umask): node_exporter runs as a user of its own and must
//! be able to read it.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cmd::render_metrics;
use crate::atomic_file::{PinnedDir, TempFile};
use crate::cron::scheduler::Scheduler;
use crate::queue::Queue;

pub const EVERY: Duration = Duration::from_secs(15);

/// The metrics file's permissions, before the umask.
const MODE: u32 = 0o644;

pub async fn run(path: PathBuf, queue: Queue, scheduler: Scheduler, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => break,
        }
        match render_metrics(&queue, &scheduler).await {
            Ok(text) => {
                let target = path.clone();
                let written =
                    tokio::task::spawn_blocking(move || write_atomically(&target, &text)).await;
                let result = written.unwrap_or_else(|e| Err(io::Error::other(e.to_string())));
                if let Err(e) = result {
                    tracing::warn!(path = %path.display(), error = %e, "could not write the metrics file");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not gather metrics"),
        }
    }
}

/// Writes `text` to `path` through a fresh temporary file beside it.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let (dir, name) = split(path)?;
    let dir = PinnedDir::open(dir)?;
    let (temp, mut file) =
        TempFile::create(dir, name, MODE).map_err(|e| io::Error::new(e.source.kind(), e))?;
    file.write_all(text.as_bytes())?;
    temp.persist(file)
        .map_err(|e| io::Error::new(e.source.kind(), e))
}

/// The folder the file goes in and its name.
fn split(path: &Path) -> io::Result<(&Path, OsString)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "CRONQ_METRICS_TEXTFILE names a folder, not a file",
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name.to_os_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_symlink_planted_at_the_old_temporary_name_is_not_followed() {
        let victim_dir = tempfile::tempdir().unwrap();
        let victim = victim_dir.path().join("precious");
        std::fs::write(&victim, "keep me").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cronq.prom");
        // The name the writer used before: `CRONQ_METRICS_TEXTFILE.<pid>.tmp`.
        let planted = dir
            .path()
            .join(format!("cronq.prom.{}.tmp", std::process::id()));
        symlink(&victim, &planted).unwrap();

        write_atomically(&path, "cronq_up 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "cronq_up 1\n");
        // Nothing but the planted link and the metrics file is left.
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "cronq.prom".to_string(),
                format!("cronq.prom.{}.tmp", std::process::id())
            ]
        );
    }

    #[test]
    fn a_symlink_at_the_metrics_path_is_replaced_not_written_through() {
        let victim_dir = tempfile::tempdir().unwrap();
        let victim = victim_dir.path().join("precious");
        std::fs::write(&victim, "keep me").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cronq.prom");
        symlink(&victim, &path).unwrap();
        write_atomically(&path, "cronq_up 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file());
    }

    #[test]
    fn a_path_without_a_file_name_is_an_error() {
        assert!(write_atomically(Path::new("/"), "x").is_err());
    }
}
