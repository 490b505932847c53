//! CRONQ_METRICS_TEXTFILE: the metrics written to a file every 15 s for
//! node_exporter's textfile collector, atomically (temp file + rename) so
//! the collector never reads half a file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cmd::render_metrics;
use crate::cron::scheduler::Scheduler;
use crate::queue::Queue;

pub const EVERY: Duration = Duration::from_secs(15);

pub async fn run(path: PathBuf, queue: Queue, scheduler: Scheduler, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => break,
        }
        match render_metrics(&queue, &scheduler).await {
            Ok(text) => {
                if let Err(e) = write_atomically(&path, &text).await {
                    tracing::warn!(path = %path.display(), error = %e, "could not write the metrics file");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not gather metrics"),
        }
    }
}

async fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, text).await?;
    tokio::fs::rename(&tmp, path).await
}
