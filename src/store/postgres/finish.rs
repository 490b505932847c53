//! Outcomes: completions and failures of many jobs, written by one
//! batching task with one statement per kind (arrays through `unnest`),
//! as SQLite's writer groups them into one transaction.
//!
//! The fenced statements are planned for each batch (`query_typed`: an
//! unnamed statement, sent with its types in one round trip), not once per
//! connection: a cached generic plan guesses ten leases and about one
//! running job (the statistics of a table whose rows churn are always
//! stale), joins them by a nested loop over the partial index of running
//! jobs, dead entries included, and took 18 ms for 156 leases among 800
//! running rows, where the plan made for the real arrays takes 0.5 ms
//! (benches/throughput.rs, docs/PERFORMANCE.md).
//!
//! `finish` queues an outcome and returns at once with a [`Pending`]; the
//! task takes whatever is waiting (up to [`MAX_BATCH`]), writes it in one
//! transaction fenced on each lease, and after the commit runs each
//! outcome's after-commit callback and answers it: true when the lease
//! still held. A job appears at most once per transaction, so a second
//! outcome of one job waits for the next.
//!
//! While the server is unreachable the task keeps the batch and tries
//! again with a growing pause, so outcomes of jobs that ran during an
//! outage are written when the server is back (the queue's outcome permits
//! bound how many wait). A commit whose answer was lost with the
//! connection is tried again, and then answers false for leases it had
//! already settled: fenced, so nothing is written twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use deadpool_postgres::{GenericClient, Pool, Transaction};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_util::sync::CancellationToken;

use super::crons::settle_job_runs;
use super::error::{is_outage, pool_error, store_error};
use super::history::{EndingRow, record_endings};
use super::row::storable_text;
use super::{PgStore, time};
use crate::clock::Millis;
use crate::store::history::FinalStatus;
use crate::store::job::Lease;
use crate::store::job::{AfterFailure, KEPT_ERRORS, Outcome, truncate_error};
use crate::store::{AfterCommit, JobDefaults, Pending, StoreError};

/// Outcomes waiting for the task; senders wait when it is full.
const QUEUE_CAPACITY: usize = 4096;
/// Outcomes per transaction at most, so one commit stays short.
pub const MAX_BATCH: usize = 512;
/// The pause between tries while the server is unreachable grows to this.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

struct Op {
    item: Item,
    reply: oneshot::Sender<Result<bool, StoreError>>,
    then: Option<AfterCommit<bool>>,
}

/// What is written about one outcome.
struct Item {
    lease: Lease,
    outcome: Outcome,
    /// When it ended, in the server's frame.
    at: SystemTime,
}

pub(super) struct Finisher {
    tx: mpsc::Sender<Op>,
    task: Mutex<Option<JoinHandle<()>>>,
    busy: Arc<Busy>,
    closing: CancellationToken,
}

/// When the task began its current batch (ms after `base`, plus one; 0
/// while idle), so a stuck server is noticed without a round trip.
struct Busy {
    base: Instant,
    since: AtomicU64,
}

impl PgStore {
    /// Deletes a job that succeeded (and ends the cron run that enqueued
    /// it). False when the lease no longer holds.
    pub async fn complete(
        &self,
        lease: Lease,
        from_cron: bool,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let finished = self.finish(lease, Outcome::succeeded(from_cron), now, None);
        finished.await?.committed().await
    }

    /// Records a failed attempt and schedules a retry or buries the job.
    /// False when the lease no longer holds (nothing is written then).
    pub async fn fail(
        &self,
        lease: Lease,
        error: String,
        after: AfterFailure,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let finished = self.finish(lease, Outcome::failed(error, after), now, None);
        finished.await?.committed().await
    }

    /// Queues the record of an attempt's outcome, fenced on its lease: the
    /// answer, once committed, is false when the lease no longer held.
    /// `then` sees the answer on the batching task right after the commit;
    /// it must be quick.
    pub async fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        now: Millis,
        then: Option<AfterCommit<bool>>,
    ) -> Result<Pending<bool>, StoreError> {
        let f = self.frame();
        let outcome = match outcome {
            Outcome::Failed {
                error,
                after,
                ending,
            } => Outcome::Failed {
                error: storable_text(&truncate_error(error)),
                // The retry time is an instant of the caller's clock too.
                after: match after {
                    AfterFailure::RetryAt(at) => AfterFailure::RetryAt(time::millis_of(f.db(at))),
                    AfterFailure::Dead => AfterFailure::Dead,
                },
                ending,
            },
            done => done,
        };
        let (reply, answer) = oneshot::channel();
        let op = Op {
            item: Item {
                lease,
                outcome,
                at: f.db(now),
            },
            reply,
            then,
        };
        self.inner.finisher.send(op).await?;
        Ok(Pending::new(answer))
    }
}

impl Finisher {
    pub fn start(pool: Pool, server: String, defaults: JobDefaults) -> Finisher {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let busy = Arc::new(Busy {
            base: Instant::now(),
            since: AtomicU64::new(0),
        });
        let closing = CancellationToken::new();
        let task = tokio::spawn(run(
            pool,
            server,
            defaults,
            rx,
            busy.clone(),
            closing.clone(),
        ));
        Finisher {
            tx,
            task: Mutex::new(Some(task)),
            busy,
            closing,
        }
    }

    async fn send(&self, op: Op) -> Result<(), StoreError> {
        self.tx.send(op).await.map_err(|_| StoreError::Closed)
    }

    pub fn stalled_for(&self) -> Duration {
        match self.busy.since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .busy
                .base
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }

    /// Whether the batching task runs (it ends only at `close`, or by a
    /// panic).
    pub fn is_running(&self) -> bool {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Writes what is queued (without waiting out an outage) and stops.
    pub async fn close(&self) {
        self.closing.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// How one outcome is answered.
struct Answer {
    reply: oneshot::Sender<Result<bool, StoreError>>,
    then: Option<AfterCommit<bool>>,
}

async fn run(
    pool: Pool,
    server: String,
    defaults: JobDefaults,
    mut rx: mpsc::Receiver<Op>,
    busy: Arc<Busy>,
    closing: CancellationToken,
) {
    let mut carry: Vec<Op> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut carry);
        if batch.is_empty() {
            tokio::select! {
                biased;
                op = rx.recv() => match op {
                    Some(op) => batch.push(op),
                    None => break,
                },
                () = closing.cancelled() => {
                    // Later sends fail with Closed; what is queued is written.
                    rx.close();
                    continue;
                }
            }
        }
        // One yield lets outcomes submitted in the same instant join.
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut seen = HashSet::new();
        let (now, later): (Vec<Op>, Vec<Op>) = batch
            .into_iter()
            .partition(|op| seen.insert(op.item.lease.job_id.clone()));
        carry = later;
        let (items, answers): (Vec<Item>, Vec<Answer>) = now
            .into_iter()
            .map(|op| {
                (
                    op.item,
                    Answer {
                        reply: op.reply,
                        then: op.then,
                    },
                )
            })
            .unzip();
        let ms = busy.base.elapsed().as_millis() as u64;
        busy.since.store(ms + 1, Ordering::Relaxed);
        let answer = write_until_done(&pool, &server, &defaults, &items, &closing).await;
        busy.since.store(0, Ordering::Relaxed);
        for (item, op) in items.iter().zip(answers) {
            let result = match &answer {
                Ok(matched) => Ok(matched.contains(&item.lease)),
                Err(e) => Err(e.clone()),
            };
            if let Some(then) = op.then {
                then(&result);
            }
            let _ = op.reply.send(result);
        }
    }
}

/// Writes `ops`, trying again while the server is unreachable (until the
/// store closes). The leases that held.
async fn write_until_done(
    pool: &Pool,
    server: &str,
    defaults: &JobDefaults,
    ops: &[Item],
    closing: &CancellationToken,
) -> Result<HashSet<Lease>, StoreError> {
    let mut pause = Duration::from_millis(100);
    let mut logged = false;
    loop {
        let (error, outage) = match write_batch(pool, defaults, ops).await {
            Ok(matched) => {
                if logged {
                    tracing::info!(server, "job outcomes are being written again");
                }
                return Ok(matched);
            }
            Err(Failure::Pool(e)) => {
                let outage = !matches!(e, deadpool_postgres::PoolError::Closed);
                (pool_error(e, server), outage)
            }
            Err(Failure::Sql(e)) => (store_error(&e, server), is_outage(&e)),
        };
        if !outage || closing.is_cancelled() {
            return Err(error);
        }
        if !logged {
            tracing::warn!(
                server,
                error = %error,
                outcomes = ops.len(),
                "cannot write job outcomes; keeping them and trying again"
            );
            logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = closing.cancelled() => {}
        }
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
}

enum Failure {
    Pool(deadpool_postgres::PoolError),
    Sql(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Sql(e)
    }
}

async fn write_batch(
    pool: &Pool,
    defaults: &JobDefaults,
    ops: &[Item],
) -> Result<HashSet<Lease>, Failure> {
    let mut client = pool.get().await.map_err(Failure::Pool)?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    let mut matched = HashSet::new();
    let done: Vec<&Item> = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Succeeded { .. }))
        .collect();
    if !done.is_empty() {
        matched.extend(complete_all(&tx, defaults, &done).await?);
    }
    let failed: Vec<&Item> = ops
        .iter()
        .filter(|op| matches!(op.outcome, Outcome::Failed { .. }))
        .collect();
    if !failed.is_empty() {
        matched.extend(fail_all(&tx, defaults, &failed).await?);
    }
    tx.commit().await?;
    Ok(matched)
}

fn lease_arrays(ops: &[&Item]) -> (Vec<String>, Vec<i32>, Vec<String>) {
    (
        ops.iter().map(|op| op.lease.job_id.clone()).collect(),
        ops.iter()
            .map(|op| op.lease.attempt.min(i32::MAX as u32) as i32)
            .collect(),
        ops.iter().map(|op| op.lease.instance.clone()).collect(),
    )
}

fn lease_of(row: &tokio_postgres::Row) -> Result<Lease, tokio_postgres::Error> {
    Ok(Lease {
        job_id: row.try_get(0)?,
        attempt: row.try_get::<_, i32>(1)?.max(0) as u32,
        instance: row.try_get(2)?,
    })
}

async fn complete_all(
    tx: &Transaction<'_>,
    defaults: &JobDefaults,
    ops: &[&Item],
) -> Result<Vec<Lease>, tokio_postgres::Error> {
    let (ids, attempts, holders) = lease_arrays(ops);
    let endings = ops
        .iter()
        .zip(&attempts)
        .map(|(op, attempt)| EndingRow {
            id: op.lease.job_id.clone(),
            fence: Some((*attempt, op.lease.instance.clone())),
            at: op.at,
            ending: match &op.outcome {
                Outcome::Succeeded { ending, .. } | Outcome::Failed { ending, .. } => {
                    ending.clone()
                }
            },
        })
        .collect();
    record_endings(tx, defaults, FinalStatus::Succeeded, endings).await?;
    let held = tx
        .query_typed(
            "DELETE FROM queues q
              USING unnest($1::text[], $2::int4[], $3::text[]) AS l(id, attempts, holder)
              WHERE q.id = l.id AND q.attempts = l.attempts AND q.reserved_by = l.holder
                AND q.status = 'running'
          RETURNING l.id, l.attempts, l.holder",
            &[
                (&ids, Type::TEXT_ARRAY),
                (&attempts, Type::INT4_ARRAY),
                (&holders, Type::TEXT_ARRAY),
            ],
        )
        .await?
        .iter()
        .map(lease_of)
        .collect::<Result<Vec<Lease>, _>>()?;
    let held_set: HashSet<&Lease> = held.iter().collect();
    let (runs, ats): (Vec<String>, Vec<SystemTime>) = ops
        .iter()
        .filter(|op| {
            matches!(
                op.outcome,
                Outcome::Succeeded {
                    from_cron: true,
                    ..
                }
            )
        })
        .filter(|op| held_set.contains(&op.lease))
        .map(|op| (op.lease.job_id.clone(), op.at))
        .unzip();
    if !runs.is_empty() {
        let errors: Vec<Option<String>> = vec![None; runs.len()];
        settle_job_runs(tx, "ok", &runs, &errors, &ats).await?;
    }
    Ok(held)
}

async fn fail_all(
    tx: &Transaction<'_>,
    defaults: &JobDefaults,
    ops: &[&Item],
) -> Result<Vec<Lease>, tokio_postgres::Error> {
    let (ids, attempts, holders) = lease_arrays(ops);
    let mut statuses = Vec::with_capacity(ops.len());
    let mut run_ats: Vec<Option<SystemTime>> = Vec::with_capacity(ops.len());
    let mut errors = Vec::with_capacity(ops.len());
    for op in ops {
        if let Outcome::Failed { error, after, .. } = &op.outcome {
            match after {
                AfterFailure::RetryAt(at) => {
                    statuses.push("pending");
                    run_ats.push(Some(time::time_of(*at)));
                }
                AfterFailure::Dead => {
                    statuses.push("dead");
                    run_ats.push(None);
                }
            }
            errors.push(error.clone());
        }
    }
    let ats: Vec<SystemTime> = ops.iter().map(|op| op.at).collect();
    let held = tx
        .query_typed(
            "UPDATE queues q
                SET status = l.status, run_at = COALESCE(l.run_at, q.run_at), reserved_at = NULL,
                    reserved_by = NULL, last_error = l.error, updated = l.at
               FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::timestamptz[],
                           $6::text[], $7::timestamptz[])
                 AS l(id, attempts, holder, status, run_at, error, at)
              WHERE q.id = l.id AND q.attempts = l.attempts AND q.reserved_by = l.holder
                AND q.status = 'running'
          RETURNING l.id, l.attempts, l.holder",
            &[
                (&ids, Type::TEXT_ARRAY),
                (&attempts, Type::INT4_ARRAY),
                (&holders, Type::TEXT_ARRAY),
                (&statuses, Type::TEXT_ARRAY),
                (&run_ats, Type::TIMESTAMPTZ_ARRAY),
                (&errors, Type::TEXT_ARRAY),
                (&ats, Type::TIMESTAMPTZ_ARRAY),
            ],
        )
        .await?
        .iter()
        .map(lease_of)
        .collect::<Result<Vec<Lease>, _>>()?;
    let held_set: HashSet<&Lease> = held.iter().collect();
    let kept: Vec<usize> = (0..ops.len())
        .filter(|i| held_set.contains(&ops[*i].lease))
        .collect();
    let pick = |i: &usize| ids[*i].clone();
    let err_ids: Vec<String> = kept.iter().map(pick).collect();
    let err_attempts: Vec<i32> = kept.iter().map(|i| attempts[*i]).collect();
    let err_ats: Vec<SystemTime> = kept.iter().map(|i| ats[*i]).collect();
    let err_texts: Vec<String> = kept.iter().map(|i| errors[*i].clone()).collect();
    record_errors(tx, &err_ids, &err_attempts, &err_ats, &err_texts).await?;
    let dead: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|i| statuses[*i] == "dead")
        .collect();
    if !dead.is_empty() {
        let endings = dead
            .iter()
            .map(|i| EndingRow {
                id: ids[*i].clone(),
                fence: None,
                at: ats[*i],
                ending: match &ops[*i].outcome {
                    Outcome::Succeeded { ending, .. } | Outcome::Failed { ending, .. } => {
                        ending.clone()
                    }
                },
            })
            .collect();
        record_endings(tx, defaults, FinalStatus::Dead, endings).await?;
        let runs: Vec<String> = dead.iter().map(pick).collect();
        let texts: Vec<Option<String>> = dead.iter().map(|i| Some(errors[*i].clone())).collect();
        let at: Vec<SystemTime> = dead.iter().map(|i| ats[*i]).collect();
        settle_job_runs(tx, "failed", &runs, &texts, &at).await?;
    }
    Ok(held)
}

/// Keeps the failures of attempts for `job`, the last [`KEPT_ERRORS`] of
/// each job.
pub(super) async fn record_errors(
    tx: &Transaction<'_>,
    ids: &[String],
    attempts: &[i32],
    ats: &[SystemTime],
    errors: &[String],
) -> Result<(), tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO job_errors (job_id, attempt, at, error)
             SELECT * FROM unnest($1::text[], $2::int4[], $3::timestamptz[], $4::text[])
             ON CONFLICT (job_id, attempt) DO UPDATE SET at = excluded.at, error = excluded.error",
        )
        .await?;
    tx.execute(&insert, &[&ids, &attempts, &ats, &errors])
        .await?;
    let prune = tx
        .prepare_cached(
            "DELETE FROM job_errors e
              USING unnest($1::text[], $2::int4[]) AS l(job_id, attempt)
              WHERE e.job_id = l.job_id AND e.attempt <= l.attempt - $3",
        )
        .await?;
    let kept = KEPT_ERRORS as i32;
    tx.execute(&prune, &[&ids, &attempts, &kept]).await?;
    Ok(())
}
