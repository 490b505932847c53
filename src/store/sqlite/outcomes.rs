//! Outcomes of attempts (a job succeeded, or failed), written together:
//! whatever outcomes workers queue while the writer is busy become one
//! writer operation, and the successes among them one statement per table.
//!
//! Written one by one, a success cost the writer a savepoint, a channel
//! message, and for each statement (the history record, the delete) a VDBE
//! run and a statement journal of its own, more than the rest of its job's
//! life; with the history on that made jobs/s fall by a sixth
//! (benches/throughput.rs, docs/PERFORMANCE.md). Together they share all
//! of that, as PostgreSQL's finisher's batches do.
//!
//! The successes are fenced on their leases as one set (`json_each` of
//! `[id, attempt, holder, ...]`), and each answers whether its lease still
//! held. If the set's statements fail, they are rolled back and every
//! outcome is written alone in a savepoint of its own, so a bad one fails
//! alone, as any writer operation does. A job appears at most once in the
//! set; a second outcome of one job is written alone after it.
//!
//! An outcome may so be written by an operation queued before it, ahead of
//! writes submitted in between (a heartbeat's `extend` that still listed
//! its lease): every write about a running job is fenced on its lease, so
//! the data do not depend on that order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::crons::settle_job_run;
use super::history::{record_ending, record_successes};
use super::jobs::record_error;
use super::writer::{Finish, Mode, Work};
use super::{AfterCommit, Pending, SqliteStore, StoreError};
use crate::clock::Millis;
use crate::store::history::{Ending, FinalStatus};
use crate::store::job::{AfterFailure, JobDefaults, Lease, Outcome, truncate_error};
use crate::store::run::RunStatus;

/// The leases of a set of successes (`:endings`, see [`endings_json`],
/// whose array layout the indices here follow) joined to their jobs' rows
/// `q`, where they still hold.
pub(super) const HELD: &str = "json_each(:endings) e
       JOIN queues q ON q.id = e.value ->> 0 AND q.attempts = e.value ->> 1
                    AND q.reserved_by = e.value ->> 2 AND q.status = 'running'";
/// An ending's instant, duration and result in that set.
pub(super) const AT: &str = "e.value ->> 3";
pub(super) const RAN_MS: &str = "e.value ->> 4";
pub(super) const RESULT: &str = "e.value ->> 5";

/// Outcomes waiting for the writer operation that will take them.
#[derive(Default)]
pub(super) struct Waiting(Mutex<Vec<Queued>>);

struct Queued {
    lease: Lease,
    outcome: Outcome,
    now: Millis,
    then: Option<AfterCommit<bool>>,
    reply: oneshot::Sender<Result<bool, StoreError>>,
}

impl Waiting {
    /// Adds an outcome; true when it is the first since the last take, and
    /// so must queue the operation that takes them.
    fn push(&self, queued: Queued) -> bool {
        let mut waiting = self.0.lock().unwrap_or_else(|e| e.into_inner());
        waiting.push(queued);
        waiting.len() == 1
    }

    fn take(&self) -> Vec<Queued> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Owns the operation's claim on the waiting outcomes: an operation
/// dropped unrun takes them, so their senders learn `Closed` instead of
/// waiting for an operation that will never come. That is when the writer
/// has closed, or (the queue full, so `finish` had to wait to submit) when
/// the `finish` that submits is itself dropped.
struct Taker {
    waiting: Arc<Waiting>,
    ran: bool,
}

impl Taker {
    fn take(&mut self) -> Vec<Queued> {
        self.ran = true;
        self.waiting.take()
    }
}

impl Drop for Taker {
    fn drop(&mut self) {
        if !self.ran {
            drop(self.waiting.take());
        }
    }
}

impl SqliteStore {
    /// Queues the record of an attempt's outcome, fenced on its lease: the
    /// answer, once committed, is false when the lease no longer held.
    /// Outcomes are grouped into few transactions: the caller runs its
    /// next job meanwhile, and `then` sees the answer after the commit.
    pub async fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        now: Millis,
        then: Option<AfterCommit<bool>>,
    ) -> Result<Pending<bool>, StoreError> {
        let outcome = match outcome {
            Outcome::Failed {
                error,
                after,
                ending,
            } => Outcome::Failed {
                error: truncate_error(error),
                after,
                ending,
            },
            done => done,
        };
        let (reply, answer) = oneshot::channel();
        let waiting = &self.inner.outcomes;
        let first = waiting.push(Queued {
            lease,
            outcome,
            now,
            then,
            reply,
        });
        if first {
            let taker = Taker {
                waiting: waiting.clone(),
                ran: false,
            };
            let defaults = self.inner.defaults.clone();
            let work: Work = Box::new(move |conn| write_waiting(conn, &defaults, taker));
            // Without waiting unless the writer's queue is full, so a caller
            // dropped meanwhile (see `Taker`) takes no one's outcome along.
            match self.inner.writer.try_submit(Mode::Grouped, work) {
                Ok(()) => {}
                Err(Some(work)) => self.inner.writer.submit(Mode::Grouped, work).await?,
                Err(None) => return Err(StoreError::Closed),
            }
        }
        Ok(Pending::new(answer))
    }
}

/// The writer operation: takes every waiting outcome and writes it; each
/// is answered after the commit.
fn write_waiting(
    conn: Option<&Connection>,
    defaults: &JobDefaults,
    mut taker: Taker,
) -> (bool, Finish) {
    let queued = taker.take();
    let answers: Vec<Result<bool, StoreError>> = match conn {
        Some(conn) => write_outcomes(conn, defaults, &queued),
        // The transaction did not begin; the commit's answer, an error,
        // says why.
        None => queued.iter().map(|_| Err(StoreError::Closed)).collect(),
    };
    let finish: Finish = Box::new(move |commit| {
        for (queued, answer) in queued.into_iter().zip(answers) {
            let answer = commit.clone().and(answer);
            if let Some(then) = queued.then {
                then(&answer);
            }
            let _ = queued.reply.send(answer);
        }
    });
    (true, finish)
}

fn write_outcomes(
    conn: &Connection,
    defaults: &JobDefaults,
    queued: &[Queued],
) -> Vec<Result<bool, StoreError>> {
    let mut answers: Vec<Option<Result<bool, StoreError>>> = queued.iter().map(|_| None).collect();
    let mut jobs = HashSet::new();
    let successes: Vec<usize> = (0..queued.len())
        .filter(|&i| {
            matches!(queued[i].outcome, Outcome::Succeeded { .. })
                && jobs.insert(queued[i].lease.job_id.as_str())
        })
        .collect();
    if !successes.is_empty() {
        match in_savepoint(conn, || complete_all(conn, defaults, queued, &successes)) {
            Ok(held) => {
                for (i, held) in successes.into_iter().zip(held) {
                    answers[i] = Some(Ok(held));
                }
            }
            Err(e) => tracing::debug!(
                error = %e,
                "writing {} successes together failed; writing each alone",
                successes.len()
            ),
        }
    }
    answers
        .into_iter()
        .zip(queued)
        .map(|(answer, q)| {
            answer.unwrap_or_else(|| {
                // SQLite rolled the whole transaction back (disk full, I/O):
                // a savepoint now would begin and commit one of its own.
                if conn.is_autocommit() {
                    return Err(StoreError::Database(
                        "the transaction was rolled back".into(),
                    ));
                }
                in_savepoint(conn, || write_one(conn, defaults, q))
            })
        })
        .collect()
}

/// Runs `f` in a savepoint of its own, rolled back if it fails.
fn in_savepoint<R>(
    conn: &Connection,
    f: impl FnOnce() -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    let run = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(|_| ());
    run("SAVEPOINT outcome")?;
    let out = f();
    let ended = match out {
        Ok(_) => run("RELEASE outcome"),
        Err(_) => run("ROLLBACK TO outcome").and_then(|()| run("RELEASE outcome")),
    };
    let out = out?;
    ended?;
    Ok(out)
}

/// The set of successes `queued[at]`, as [`HELD`] reads it.
fn endings_json(queued: &[Queued], at: &[usize]) -> String {
    let endings: Vec<Value> = at
        .iter()
        .map(|&i| {
            let q = &queued[i];
            let ending = match &q.outcome {
                Outcome::Succeeded { ending, .. } | Outcome::Failed { ending, .. } => ending,
            };
            json!([
                q.lease.job_id,
                q.lease.attempt,
                q.lease.instance,
                q.now,
                ending.ran_ms,
                ending.result.as_ref().map(|r| r.to_string()),
            ])
        })
        .collect();
    Value::Array(endings).to_string()
}

/// Writes the successes `queued[at]` (each job once): their records, the
/// delete of their rows, the end of their cron runs. Answers, in order,
/// whether each lease still held.
fn complete_all(
    conn: &Connection,
    defaults: &JobDefaults,
    queued: &[Queued],
    at: &[usize],
) -> Result<Vec<bool>, StoreError> {
    let endings = endings_json(queued, at);
    record_successes(conn, defaults, &endings)?;
    let deleted: HashSet<String> = conn
        .prepare_cached(&format!(
            "DELETE FROM queues WHERE rowid IN (SELECT q.rowid FROM {HELD}) RETURNING id"
        ))?
        .query_map(&[(":endings", &endings)], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut held = Vec::with_capacity(at.len());
    for &i in at {
        let q = &queued[i];
        let gone = deleted.contains(&q.lease.job_id);
        if gone
            && matches!(
                q.outcome,
                Outcome::Succeeded {
                    from_cron: true,
                    ..
                }
            )
        {
            settle_job_run(conn, &q.lease.job_id, RunStatus::Ok, None, q.now)?;
        }
        held.push(gone);
    }
    Ok(held)
}

fn write_one(conn: &Connection, defaults: &JobDefaults, q: &Queued) -> Result<bool, StoreError> {
    match &q.outcome {
        Outcome::Succeeded { from_cron, ending } => {
            complete_on(conn, defaults, &q.lease, *from_cron, ending, q.now)
        }
        Outcome::Failed {
            error,
            after,
            ending,
        } => fail_on(conn, defaults, &q.lease, error, *after, ending, q.now),
    }
}

fn complete_on(
    conn: &Connection,
    defaults: &JobDefaults,
    lease: &Lease,
    from_cron: bool,
    ending: &Ending,
    now: Millis,
) -> Result<bool, StoreError> {
    let (id, status) = (&lease.job_id, FinalStatus::Succeeded);
    record_ending(conn, defaults, id, Some(lease), status, ending, now)?;
    let n = conn
        .prepare_cached(
            "DELETE FROM queues
              WHERE id = ?1 AND attempts = ?2 AND reserved_by = ?3 AND status = 'running'",
        )?
        .execute(params![lease.job_id, lease.attempt, lease.instance])?;
    if n == 1 && from_cron {
        settle_job_run(conn, &lease.job_id, RunStatus::Ok, None, now)?;
    }
    Ok(n == 1)
}

fn fail_on(
    conn: &Connection,
    defaults: &JobDefaults,
    lease: &Lease,
    error: &str,
    after: AfterFailure,
    ending: &Ending,
    now: Millis,
) -> Result<bool, StoreError> {
    let (status, run_at) = match after {
        AfterFailure::RetryAt(at) => ("pending", Some(at)),
        AfterFailure::Dead => ("dead", None),
    };
    let n = conn
        .prepare_cached(
            "UPDATE queues
                SET status = ?4, run_at = COALESCE(?5, run_at), reserved_at = NULL,
                    reserved_by = NULL, last_error = ?6, updated = ?7
              WHERE id = ?1 AND attempts = ?2 AND reserved_by = ?3 AND status = 'running'",
        )?
        .execute(params![
            lease.job_id,
            lease.attempt,
            lease.instance,
            status,
            run_at,
            error,
            now
        ])?;
    if n == 1 {
        record_error(conn, &lease.job_id, lease.attempt, now, error)?;
        if after == AfterFailure::Dead {
            let dead = FinalStatus::Dead;
            record_ending(conn, defaults, &lease.job_id, None, dead, ending, now)?;
            settle_job_run(conn, &lease.job_id, RunStatus::Failed, Some(error), now)?;
        }
    }
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::job::{Claimed, NewJob};
    use crate::store::sqlite::test_support::open_temp;

    const NOW: Millis = 1_800_000_000_000;

    /// Jobs named `names`, claimed; the store is closed after, so the test
    /// writes their outcomes on a connection of its own.
    fn claimed(names: &[&str]) -> (tempfile::TempDir, Connection, Vec<Claimed>) {
        let (dir, store) = open_temp();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let claimed = runtime.block_on(async {
            let jobs = names
                .iter()
                .map(|n| NewJob::new(*n, "noop", Default::default()))
                .collect();
            store.enqueue(jobs, NOW, u64::MAX).await.unwrap();
            let types = ["noop".to_string()];
            let claimed = store.claim("me", &types, 10, NOW).await.unwrap();
            store.close().await;
            claimed
        });
        let conn = Connection::open(dir.path().join("cronq.db")).unwrap();
        (dir, conn, claimed)
    }

    fn queued(lease: &Lease, outcome: Outcome) -> Queued {
        Queued {
            lease: lease.clone(),
            outcome,
            now: NOW + 5,
            then: None,
            reply: oneshot::channel().0,
        }
    }

    fn lease_of<'a>(claimed: &'a [Claimed], name: &str) -> &'a Lease {
        &claimed.iter().find(|c| c.job.name == name).unwrap().lease
    }

    fn written(conn: &Connection, queued: &[Queued]) -> Vec<Result<bool, StoreError>> {
        conn.execute_batch("BEGIN").unwrap();
        let answers = write_outcomes(conn, &JobDefaults::default(), queued);
        conn.execute_batch("COMMIT").unwrap();
        answers
    }

    fn status(conn: &Connection, table: &str, name: &str) -> Option<String> {
        conn.query_row(
            &format!("SELECT status FROM {table} WHERE name = ?1"),
            [name],
            |row| row.get(0),
        )
        .ok()
    }

    #[test]
    fn outcomes_written_together_answer_for_each_lease() {
        let (_dir, conn, claimed) = claimed(&["a", "b", "c"]);
        let stale = Lease {
            attempt: 7,
            ..lease_of(&claimed, "b").clone()
        };
        let a = lease_of(&claimed, "a");
        let retry = Outcome::failed("boom".into(), AfterFailure::RetryAt(NOW + 60_000));
        let queued = [
            queued(a, Outcome::succeeded(false)),
            queued(&stale, Outcome::succeeded(false)),
            queued(lease_of(&claimed, "c"), retry),
            // A second outcome of `a` is written alone, after the set: its
            // lease no longer holds then.
            queued(a, Outcome::succeeded(false)),
        ];
        let answers: Vec<bool> = written(&conn, &queued)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(answers, [true, false, true, false]);
        assert_eq!(status(&conn, "queues", "a"), None);
        assert_eq!(
            status(&conn, "job_history", "a").as_deref(),
            Some("succeeded")
        );
        assert_eq!(status(&conn, "queues", "b").as_deref(), Some("running"));
        assert_eq!(status(&conn, "job_history", "b"), None);
        assert_eq!(status(&conn, "queues", "c").as_deref(), Some("pending"));
        let (finished, ran): (i64, Option<i64>) = conn
            .query_row(
                "SELECT finished, duration_ms FROM job_history WHERE name = 'a'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((finished, ran), (NOW + 5, None));
    }

    #[test]
    fn a_success_whose_record_fails_fails_alone() {
        let (_dir, conn, claimed) = claimed(&["good", "bad"]);
        conn.execute_batch(
            "CREATE TRIGGER no_bad BEFORE INSERT ON job_history WHEN NEW.name = 'bad'
             BEGIN SELECT RAISE(ABORT, 'no record for bad'); END",
        )
        .unwrap();
        let ending = Ending {
            ran_ms: Some(12),
            result: Some(json!({"rows": 3})),
        };
        let success = Outcome::Succeeded {
            from_cron: false,
            ending,
        };
        let queued = [
            queued(lease_of(&claimed, "bad"), success.clone()),
            queued(lease_of(&claimed, "good"), success),
        ];
        let answers = written(&conn, &queued);
        let error = answers[0].as_ref().unwrap_err().to_string();
        assert!(error.contains("no record for bad"), "{error}");
        assert!(matches!(answers[1], Ok(true)), "{:?}", answers[1]);
        // Nothing of the failed one is half written: its job still runs.
        assert_eq!(status(&conn, "queues", "bad").as_deref(), Some("running"));
        assert_eq!(status(&conn, "queues", "good"), None);
        let (ran, result): (i64, String) = conn
            .query_row(
                "SELECT duration_ms, result FROM job_history WHERE name = 'good'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((ran, result.as_str()), (12, r#"{"rows":3}"#));
    }
}
