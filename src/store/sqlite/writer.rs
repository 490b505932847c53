//! The writer thread: one connection, one transaction per batch of waiting
//! operations, a savepoint per operation, answers only after `COMMIT`.
//!
//! Grouping is what makes SQLite fast here: a thousand completions cost one
//! commit instead of a thousand. A failing operation rolls back to its own
//! savepoint and fails alone; a failing `COMMIT` (disk full) fails every
//! operation in the batch, and none of them was reported done before.
//!
//! A large operation (a batch enqueue) runs *alone*, in a transaction of its
//! own with no savepoint: inside a savepoint SQLite copies every page each
//! of its statements touches to the sub-journal again, and for a thousand
//! inserts that copying cost more than the inserts. Alone, a failure rolls
//! back the whole transaction, which holds nothing else.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpointer;
use crate::store::{AfterCommit, Pending, StoreError};

/// Operations waiting for the writer; senders wait when it is full.
const QUEUE_CAPACITY: usize = 4096;
/// Operations per transaction at most, so one commit stays short.
const MAX_BATCH: usize = 512;

/// Answers an operation's senders once its transaction has committed (or
/// failed).
pub(super) type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// Runs an operation (given no connection when the transaction could not
/// begin) and returns whether it succeeded (else its savepoint is rolled
/// back) and how to answer its senders.
pub(super) type Work = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;

/// How an operation is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Grouped with others; `synchronous=NORMAL`.
    Grouped,
    /// Grouped with others; the transaction is fsynced (FULL).
    Durable,
    /// In a transaction of its own, fsynced.
    Alone,
}

struct Op {
    mode: Mode,
    work: Work,
}

enum Message {
    Op(Op),
    Close(oneshot::Sender<()>),
}

pub(super) struct Writer {
    tx: mpsc::Sender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
    busy: Arc<Busy>,
}

/// When the writer began its current transaction, so a stuck database is
/// noticed without a round trip to it (the watchdog asks often).
struct Busy {
    base: Instant,
    /// Milliseconds after `base` plus one; 0 while idle.
    since: AtomicU64,
}

impl Busy {
    fn start(&self) {
        let ms = self.base.elapsed().as_millis() as u64;
        self.since.store(ms + 1, Ordering::Relaxed);
    }

    fn end(&self) {
        self.since.store(0, Ordering::Relaxed);
    }
}

impl Writer {
    /// Starts the writer on `conn`, and the checkpointer on `checkpoints`.
    pub(super) fn start(conn: Connection, checkpoints: Connection) -> std::io::Result<Writer> {
        let checkpointer = Checkpointer::start(checkpoints)?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let busy = Arc::new(Busy {
            base: Instant::now(),
            since: AtomicU64::new(0),
        });
        let in_thread = busy.clone();
        let thread = std::thread::Builder::new()
            .name("cronq-writer".into())
            .spawn(move || run(conn, rx, &in_thread, checkpointer))?;
        Ok(Writer {
            tx,
            thread: Mutex::new(Some(thread)),
            busy,
        })
    }

    /// How long the current transaction has been running; zero when idle.
    pub(super) fn stalled_for(&self) -> Duration {
        match self.busy.since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .busy
                .base
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }

    /// Queues `f` for the next transaction; the returned [`Pending`]
    /// resolves once that transaction has committed (or failed), right
    /// after `then`, if given, saw the answer on the writer thread. Waits
    /// only while the writer's queue is full.
    pub(super) async fn send<R, F>(
        &self,
        mode: Mode,
        f: F,
        then: Option<AfterCommit<R>>,
    ) -> Result<Pending<R>, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let work: Work = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(StoreError::Closed),
            };
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |commit| {
                let answer = commit.and(result);
                if let Some(then) = then {
                    then(&answer);
                }
                let _ = reply.send(answer);
            });
            (ok, finish)
        });
        self.submit(mode, work).await?;
        Ok(Pending::new(answer))
    }

    /// Queues an operation that answers its senders itself, as `send`'s
    /// do. Waits only while the writer's queue is full.
    pub(super) async fn submit(&self, mode: Mode, work: Work) -> Result<(), StoreError> {
        self.tx
            .send(Message::Op(Op { mode, work }))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Like `submit`, without waiting: the operation comes back when the
    /// queue is full, and is dropped when the writer has closed.
    pub(super) fn try_submit(&self, mode: Mode, work: Work) -> Result<(), Option<Work>> {
        match self.tx.try_send(Message::Op(Op { mode, work })) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(Message::Op(op))) => Err(Some(op.work)),
            Err(_) => Err(None),
        }
    }

    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.tx.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Message>, busy: &Busy, checkpointer: Checkpointer) {
    Checkpointer::watch(&conn);
    let mut synchronous_full = false;
    let mut batch: Vec<Op> = Vec::with_capacity(MAX_BATCH);
    let mut closing: Option<oneshot::Sender<()>> = None;
    while closing.is_none() {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        match first {
            Message::Op(op) => batch.push(op),
            Message::Close(done) => closing = Some(done),
        }
        // One yield before committing lets operations submitted in the same
        // instant (workers finishing together) join this transaction.
        let mut yielded = false;
        while batch.len() < MAX_BATCH && closing.is_none() {
            match rx.try_recv() {
                Ok(Message::Op(op)) => batch.push(op),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) if !yielded => {
                    yielded = true;
                    std::thread::yield_now();
                }
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        busy.start();
        // In arrival order: the grouped operations before an alone one are
        // committed first, so nobody's write is reordered.
        let mut ops = batch.drain(..).peekable();
        while ops.peek().is_some() {
            let mut group = Vec::new();
            while let Some(op) = ops.next_if(|op| op.mode != Mode::Alone) {
                group.push(op);
            }
            if !group.is_empty() {
                let durable = group.iter().any(|op| op.mode == Mode::Durable);
                set_synchronous(&conn, &mut synchronous_full, durable);
                commit_group(&conn, group);
            }
            if let Some(op) = ops.next() {
                set_synchronous(&conn, &mut synchronous_full, true);
                commit_alone(&conn, op.work);
            }
        }
        busy.end();
        checkpointer.after_commit(&conn);
    }
    // Whatever arrived with or after the close request is refused, not lost
    // silently: each sender gets `Closed`.
    rx.close();
    while let Ok(message) = rx.try_recv() {
        if let Message::Op(op) = message {
            drop(op);
        }
    }
    checkpointer.stop();
    let _ = conn.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);");
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Sets the connection's `synchronous` level to FULL or NORMAL, issuing
/// the pragma only when `full` (the level in force) differs.
fn set_synchronous(conn: &Connection, full: &mut bool, durable: bool) {
    if *full == durable {
        return;
    }
    let level = if durable { "FULL" } else { "NORMAL" };
    if conn.pragma_update(None, "synchronous", level).is_ok() {
        *full = durable;
    }
}

fn commit_group(conn: &Connection, group: Vec<Op>) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        let e = StoreError::from(e);
        for op in group {
            fail_unrun(op.work, e.clone());
        }
        return;
    }
    let mut finishes: Vec<Finish> = Vec::with_capacity(group.len());
    for Op { work, .. } in group {
        if let Err(e) = run_cached(conn, "SAVEPOINT op") {
            fail_unrun(work, StoreError::from(e));
            continue;
        }
        let Some((ok, finish)) = run_work(conn, work) else {
            let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
            continue;
        };
        let ended = if ok {
            run_cached(conn, "RELEASE op")
        } else {
            run_cached(conn, "ROLLBACK TO op").and_then(|()| run_cached(conn, "RELEASE op"))
        };
        if let Err(e) = ended {
            tracing::error!(error = %e, "cannot end a savepoint");
        }
        finishes.push(finish);
    }
    let committed = run_cached(conn, "COMMIT").map_err(StoreError::from);
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for finish in finishes {
        finish(committed.clone());
    }
}

fn commit_alone(conn: &Connection, work: Work) {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        fail_unrun(work, StoreError::from(e));
        return;
    }
    let Some((ok, finish)) = run_work(conn, work) else {
        let _ = conn.execute_batch("ROLLBACK");
        return;
    };
    let committed = if ok {
        run_cached(conn, "COMMIT").map_err(StoreError::from)
    } else {
        Ok(())
    };
    if !ok || committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    finish(committed);
}

/// Runs an operation; none if it panicked (logged; the caller rolls it
/// back, and its sender learns of it as `Closed`).
fn run_work(conn: &Connection, work: Work) -> Option<(bool, Finish)> {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(Some(conn))));
    if outcome.is_err() {
        tracing::error!("a store operation panicked; it was rolled back");
    }
    outcome.ok()
}

/// Answers an operation that could not start, with the reason.
fn fail_unrun(work: Work, error: StoreError) {
    let (_, finish) = work(None);
    finish(Err(error));
}

/// Runs a statement from the connection's cache: the transaction and
/// savepoint statements run for every operation, and parsing them each time
/// showed in profiles.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}
