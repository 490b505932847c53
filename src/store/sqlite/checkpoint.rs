//! The checkpointer: copies the WAL back into the database file on a thread
//! and connection of its own, so the writer never stops for it.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL
//! past 1,000 pages, on the committing connection. Under load that was a
//! seventh of the writer's time, plus an fsync of the WAL and one of the
//! database file while every waiting operation waited. Here the writer's
//! WAL hook notes the WAL's length after each commit and, past the same
//! 1,000 pages, nudges this thread, which runs a PASSIVE checkpoint: it
//! never blocks the writer or a reader. An idle daemon's WAL stays short,
//! so this thread sleeps without a timer.
//!
//! Under steady writes that alone never lets the WAL start over: SQLite
//! rewinds it only when a checkpoint has copied every frame before the next
//! write, and the writer keeps appending while the checkpointer copies. So
//! past twice the threshold the writer checkpoints itself between two
//! transactions; the frames are mostly copied already, so that is short,
//! and the WAL file stays near 8 MB (11 MB peak in the throughput bench)
//! instead of growing for as long as the writes go on.

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rusqlite::Connection;

/// WAL pages after which a checkpoint is due: SQLite's own default.
const CHECKPOINT_PAGES: i32 = 1000;
/// WAL pages after which the writer finishes the checkpoint itself, so the
/// WAL can start over (see above).
const WRITER_CHECKPOINT_PAGES: i32 = 2 * CHECKPOINT_PAGES;

thread_local! {
    /// The writer thread's WAL length in pages after its last commit, as
    /// SQLite's WAL hook reported it (the hook takes a plain `fn`).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

fn note_wal_pages(_wal: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(pages));
    Ok(())
}

pub(super) struct Checkpointer {
    nudge: SyncSender<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Checkpointer {
    /// Starts the thread on its own connection.
    pub(super) fn start(conn: Connection) -> std::io::Result<Checkpointer> {
        let (nudge, nudged) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("cronq-checkpoint".into())
            .spawn(move || run(conn, nudged))?;
        Ok(Checkpointer {
            nudge,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Replaces SQLite's automatic checkpoint on the writer's connection
    /// with the WAL hook. Call on the writer thread.
    pub(super) fn watch(conn: &Connection) {
        conn.wal_hook(Some(note_wal_pages));
    }

    /// After a commit on the writer thread: nudges the checkpointer when
    /// the WAL is long, and at twice that finishes the checkpoint here, so
    /// the next transaction rewinds the WAL.
    pub(super) fn after_commit(&self, conn: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages >= WRITER_CHECKPOINT_PAGES {
            if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
                tracing::warn!(error = %e, pages, "cannot checkpoint the WAL");
            }
        } else if pages >= CHECKPOINT_PAGES {
            // Full: a nudge is already waiting, which is enough. Gone: the
            // store is closing, and the writer checkpoints last.
            let _ = self.nudge.try_send(());
        }
    }

    /// Stops the thread; the writer checkpoints last, on close.
    pub(super) fn stop(self) {
        drop(self.nudge);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, nudged: Receiver<()>) {
    while nudged.recv().is_ok() {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %e, "cannot checkpoint the WAL");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use crate::store::job::NewJob;
    use crate::store::sqlite::test_support::open_temp;

    #[tokio::test]
    async fn the_wal_stays_short_under_steady_writes() {
        let (dir, store) = open_temp();
        let wal = dir.path().join("cronq.db-wal");
        let mut longest = 0;
        for batch in 0..40 {
            let jobs: Vec<NewJob> = (0..1000)
                .map(|i| {
                    let mut data = Map::new();
                    data.insert("i".into(), json!(i));
                    NewJob::new(format!("b{batch}-{i}"), "noop", data)
                })
                .collect();
            store.enqueue(jobs, 1_000, u64::MAX).await.expect("enqueue");
            longest = longest.max(std::fs::metadata(&wal).expect("the WAL").len());
        }
        // 40,000 jobs write about 78 MB of WAL frames; checkpoints keep
        // rewinding it to near 2,000 pages (8 MB) plus one transaction.
        assert!(longest < 20 << 20, "the WAL grew to {} MB", longest >> 20);
        store.close().await;
    }
}
