//! What a database backend must do: the queue's verbs, the crons' and the
//! instances', over the row types of `store::job`, `store::run` and
//! `store::instance`.
//!
//! This is the seam between cronq and its databases (as River's driver
//! interface is for River): everything above the store holds a [`Store`]
//! and calls these verbs, never knowing which backend answers. The
//! conformance suite (`store::conformance`) is the definition of what each
//! verb means; a backend passes it before anything else runs on it.
//!
//! Every write about a running job (complete, fail, release, extend) is
//! fenced on its [`Lease`] `(id, attempts, reserved_by)` and reports whether
//! it still held, so a worker whose reservation was recovered can never
//! touch the newer attempt.
//!
//! [`Store`]: super::Store

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use super::copy::{CopiedJob, CopiedRun, CopiedSwitch, JobCopy, SwitchCopy};
use super::definition::{ClusterCrons, CronDefinition, DefinitionRow};
use super::history::{Bulk, BulkFilter, Ending, FinishedJob, HistoryFilter, Prune, Pruned};
use super::import::{ImportJob, Imported};
use super::instance::InstanceRow;
use super::job::{
    AfterFailure, AttemptError, Claimed, Counts, Enqueued, Job, JobDefaults, Lease, ListFilter,
    NewJob, Outcome, Recovered, Refusal,
};
use super::run::{NewRun, RunRow, RunStatus};
use super::tick::{Tick, Ticked};
use super::{AfterCommit, Pending, StoreError};
use crate::clock::Millis;

/// Which database answers, for `status` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// Where the database is: a file path, or a server URL without its
    /// password.
    pub location: String,
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    fn info(&self) -> BackendInfo;

    /// The settings a stored row that does not say otherwise runs with.
    fn defaults(&self) -> &JobDefaults;

    /// Whether the store works as far as this process can make it work:
    /// what the systemd watchdog is fed on, with the scheduler's turns.
    /// Costs no I/O, so the watchdog can ask every few seconds without
    /// waking the database.
    ///
    /// On a file (SQLite), no write has been stuck for `limit`: a write that
    /// hangs there is this host's trouble (a wedged disk, a stuck lock) and a
    /// restart is the cure. On a database other hosts share (PostgreSQL), the
    /// store's own tasks are alive; an unreachable or slow server does not
    /// count, since restarting every node would not bring it back and would
    /// cut their running jobs off. The daemon reports such an outage in its
    /// log and its STATUS= line instead, and reconnects by itself.
    fn responsive(&self, limit: Duration) -> bool;

    /// Waits for queued writes and closes the database; later calls fail
    /// with `Closed`.
    async fn close(&self);

    // The queue.

    /// Stores `jobs` all or nothing, durably. A job whose unique key is held
    /// by a waiting or running job is not stored; that job is returned,
    /// marked duplicate. `max_pending` caps pending plus scheduled jobs.
    async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Enqueued>, StoreError>;

    /// Reserves up to `limit` ready jobs of `types` for `instance`, highest
    /// priority first, then oldest `run_at`, counting the attempt.
    async fn claim(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Like [`Backend::claim`] for up to `limit` jobs, as claims of at most
    /// `batch` each (JOB_BATCH_SIZE), with one commit: the dispatcher's way
    /// to claim several batches ahead.
    async fn claim_batches(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        batch: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Queues the record of an attempt's outcome, fenced on its lease: the
    /// answer, once committed, is false when the lease no longer held.
    /// Outcomes are grouped into few transactions: the caller runs its next
    /// job meanwhile, and `then` sees the answer right after the commit.
    async fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        now: Millis,
        then: Option<AfterCommit<bool>>,
    ) -> Result<Pending<bool>, StoreError>;

    /// Deletes a job that succeeded (and ends the cron run that enqueued
    /// it). False when the lease no longer holds.
    async fn complete(
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
    async fn fail(
        &self,
        lease: Lease,
        error: String,
        after: AfterFailure,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let finished = self.finish(lease, Outcome::failed(error, after), now, None);
        finished.await?.committed().await
    }

    /// Gives back reservations that never started (shutdown), without using
    /// up their attempt: an interrupted job is not a failed one.
    async fn release(&self, leases: Vec<Lease>, now: Millis) -> Result<usize, StoreError>;

    /// Extends the reservations of jobs this process still holds. Returns
    /// the leases that no longer hold (recovered and claimed elsewhere).
    async fn extend(&self, leases: Vec<Lease>, now: Millis) -> Result<Vec<Lease>, StoreError>;

    /// Releases reservations whose holder stopped heartbeating: those older
    /// than `stale_before`, and every one held by `dead_instances`. A job
    /// that was on its last attempt is buried; the rest run again at once.
    async fn recover(
        &self,
        stale_before: Millis,
        dead_instances: Vec<String>,
        now: Millis,
    ) -> Result<Vec<Recovered>, StoreError>;

    /// The `system_queue` minute in one transaction (see `store::tick`).
    async fn tick(&self, tick: Tick) -> Result<Ticked, StoreError>;

    // Reading the queue.

    /// The earliest `run_at` after `now` among pending jobs of `types`.
    async fn next_due(&self, types: &[String], now: Millis) -> Result<Option<Millis>, StoreError>;

    /// One job and its last failures.
    async fn get(
        &self,
        id: String,
        now: Millis,
    ) -> Result<Option<(Job, Vec<AttemptError>)>, StoreError>;

    /// Jobs newest first, and whether more follow the last one.
    async fn list(&self, filter: ListFilter, now: Millis) -> Result<(Vec<Job>, bool), StoreError>;

    /// Jobs by type and status.
    async fn counts(&self, now: Millis) -> Result<Counts, StoreError>;

    /// The `run_at` of the longest-waiting ready job.
    async fn oldest_ready(&self, now: Millis) -> Result<Option<Millis>, StoreError>;

    // The operator's hand on stored jobs.

    /// Makes a `dead` or `scheduled` job pending now, with its attempts
    /// reset to 0.
    async fn retry(&self, id: String, now: Millis) -> Result<Result<Job, Refusal>, StoreError>;

    /// Deletes a job that is not running. A cron run waiting on it ends
    /// `failed`.
    async fn cancel(&self, id: String, now: Millis) -> Result<Result<(), Refusal>, StoreError>;

    /// Deletes a running job whose attempt was stopped by a forced
    /// `cancel`, fenced on its lease, leaving its history record as
    /// `cancelled` with `ending`; a cron run waiting on it ends `failed`.
    /// False when the lease no longer holds (nothing is written).
    async fn cancel_running(
        &self,
        lease: Lease,
        ending: Ending,
        now: Millis,
    ) -> Result<bool, StoreError>;

    /// Deletes dead jobs last updated before `before` (all when `None`).
    async fn purge_dead(&self, before: Option<Millis>) -> Result<u64, StoreError>;

    // Crons.

    /// Records a run. For a scheduled or catch-up run, `None` means another
    /// process (or this one before a restart) already has this run: the
    /// unique `(cron_id, scheduled_for)` is what makes a cron fire once.
    async fn begin_run(&self, run: NewRun) -> Result<Option<RunRow>, StoreError>;

    /// Ends a run that is still running.
    async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<String>,
        now: Millis,
    ) -> Result<Option<RunRow>, StoreError>;

    /// The last `limit` runs of a cron, newest first.
    async fn runs(&self, cron_id: String, limit: usize) -> Result<Vec<RunRow>, StoreError>;

    /// Each cron's latest run, and the time of its latest `ok` run.
    async fn last_runs(&self) -> Result<HashMap<String, (RunRow, Option<Millis>)>, StoreError>;

    /// The latest `scheduled_for` of a cron's scheduled or catch-up runs:
    /// where catch-up after downtime starts looking.
    async fn last_scheduled(&self, cron_id: String) -> Result<Option<Millis>, StoreError>;

    /// The job of this cron still waiting or running, if any: the overlap
    /// check.
    async fn active_cron_job(&self, cron_id: String) -> Result<Option<String>, StoreError>;

    /// Persists an `enable`/`disable`.
    async fn set_cron_enabled(
        &self,
        cron_id: String,
        enabled: bool,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// Every persisted `enable`/`disable`, by cron id.
    async fn cron_switches(&self) -> Result<HashMap<String, bool>, StoreError>;

    /// Replaces the file crons' definitions `instance` has published with
    /// `definitions` (all of them: one left out is no longer defined
    /// there), so the other daemons can tell where a cron id is defined
    /// differently.
    async fn set_cron_definitions(
        &self,
        instance: String,
        definitions: Vec<CronDefinition>,
        now: Millis,
    ) -> Result<(), StoreError>;

    /// The definitions of every registered instance, by instance then cron
    /// id. An instance's definitions go with its row (`remove_instances`,
    /// and a dead one's removal by a tick).
    async fn cron_definitions(&self) -> Result<Vec<DefinitionRow>, StoreError>;

    /// [`Backend::cron_switches`] and [`Backend::cron_definitions`]
    /// together, as the scheduler reads them before each fire: one round
    /// trip where the database is across the network (an idle daemon's
    /// minute is counted in wake-ups).
    async fn cron_cluster(&self) -> Result<ClusterCrons, StoreError> {
        Ok(ClusterCrons {
            switches: self.cron_switches().await?,
            definitions: self.cron_definitions().await?,
        })
    }

    // Instances.

    async fn register_instance(&self, row: InstanceRow) -> Result<(), StoreError>;

    /// Marks `row` alive at `now`; re-registers it if another daemon removed
    /// it as dead while this one was stalled, so it is not treated as dead
    /// twice. False when it had to be re-registered.
    async fn heartbeat_instance(&self, row: InstanceRow, now: Millis) -> Result<bool, StoreError>;

    async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError>;

    async fn remove_instances(&self, ids: Vec<String>) -> Result<(), StoreError>;

    // Issue 14, the durable half: the history of finished jobs, pauses,
    // per-type claims, the operator's bulk verbs and pruning (row types in
    // `store::history`). Every outcome verb above also writes the history
    // record of a job it ends, in the same transaction.

    /// A finished job's record, while the history keeps it.
    async fn finished_job(&self, id: String) -> Result<Option<FinishedJob>, StoreError>;

    /// Finished jobs, the latest record first, and whether more follow.
    async fn list_finished(
        &self,
        filter: HistoryFilter,
    ) -> Result<(Vec<FinishedJob>, bool), StoreError>;

    /// One bounded round of deleting what the history's retention and row
    /// cap, and the dead jobs' retention, no longer keep.
    async fn prune(&self, prune: Prune) -> Result<Pruned, StoreError>;

    /// Stops claims of `job_type` (of every type when `None`) by every
    /// daemon on this database until resumed; the pauses now in force,
    /// sorted (`*` for every type). A type is not paused (and so is absent
    /// from the answer) while [`MAX_PAUSES`](super::history::MAX_PAUSES)
    /// pauses are in force.
    async fn pause(&self, job_type: Option<String>, now: Millis)
    -> Result<Vec<String>, StoreError>;

    /// Lifts the pause of `job_type` (every pause when `None`); the pauses
    /// still in force.
    async fn resume(&self, job_type: Option<String>) -> Result<Vec<String>, StoreError>;

    /// The pauses in force, sorted.
    async fn paused(&self) -> Result<Vec<String>, StoreError>;

    /// Claims up to each quota's number of ready jobs of its type for
    /// `instance`, in one transaction, each type as [`Backend::claim`]
    /// would: the claim of types with a per-type limit.
    async fn claim_quotas(
        &self,
        instance: &str,
        quotas: &[(String, usize)],
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Makes pending now, with attempts reset, up to `filter.limit` dead or
    /// scheduled jobs that match, oldest first; a job whose unique key
    /// another waiting job holds is skipped.
    async fn retry_matching(&self, filter: BulkFilter, now: Millis) -> Result<Bulk, StoreError>;

    /// Cancels up to `filter.limit` matching jobs that are not running,
    /// oldest first, as [`Backend::cancel`] does each.
    async fn cancel_matching(&self, filter: BulkFilter, now: Millis) -> Result<Bulk, StoreError>;

    /// Deletes up to `filter.limit` matching dead jobs last updated before
    /// `before` (any when `None`), oldest first. Their history records stay.
    async fn purge_matching(
        &self,
        filter: BulkFilter,
        before: Option<Millis>,
    ) -> Result<Bulk, StoreError>;
    // Records taken over from another system (see `store::import`).

    /// Stores each record's job and its ledger entry in one transaction,
    /// all or nothing, durably. A record already in the ledger, or whose
    /// unique key a waiting or running job holds, is answered `Already`
    /// and nothing is stored for it. A record whose attempts reach its
    /// job's limit is stored `dead`. `max_pending` caps pending plus
    /// scheduled jobs.
    async fn import(
        &self,
        records: Vec<ImportJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Imported>, StoreError>;

    /// The ledger's entries for `record_ids` of `source`: record id to the
    /// id of the job it became.
    async fn imported(
        &self,
        source: String,
        record_ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError>;

    // Moving a queue to another database (`cronq copy-store`; the row
    // types and the paging are `store::copy`'s). Instants go out and come
    // in as stored, not moved by a clock offset.

    /// Up to `limit` pending (scheduled ones included) and dead jobs after
    /// the cursor `after` (`None`: from the start), each with its last
    /// failures, and the cursor of the next page (`None` at the end). The
    /// cursor is the backend's own.
    async fn export_jobs(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<CopiedJob>, Option<String>), StoreError>;

    /// Stores each job with its id, attempts, error and failures, in one
    /// transaction, and answers for each in order: copied, or not because
    /// a job of its id is there, a waiting or running job holds its unique
    /// key, or it is not a job. With `dry_run` the transaction is rolled
    /// back: the answers say what a copy would do.
    async fn import_jobs(
        &self,
        jobs: Vec<CopiedJob>,
        dry_run: bool,
    ) -> Result<Vec<JobCopy>, StoreError>;

    /// Every persisted `enable`/`disable`, with when it was set.
    async fn export_switches(&self) -> Result<Vec<CopiedSwitch>, StoreError>;

    /// Stores each switch of a cron that has none; one that has a switch
    /// keeps it. Answers for each in order; `dry_run` as for jobs.
    async fn import_switches(
        &self,
        switches: Vec<CopiedSwitch>,
        dry_run: bool,
    ) -> Result<Vec<SwitchCopy>, StoreError>;

    /// Up to `limit` cron runs with ids after `after`, oldest first.
    async fn export_runs(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<CopiedRun>, StoreError>;

    /// Stores each run (under a new id, in the order given) unless a run of
    /// the same cron, trigger, scheduled time and start is there; answers
    /// whether each was stored. `dry_run` as for jobs.
    async fn import_runs(
        &self,
        runs: Vec<CopiedRun>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError>;

    /// Up to `limit` history records with a `seq` after `after`, oldest
    /// first.
    async fn export_history(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FinishedJob>, StoreError>;

    /// Stores each record (under a new `seq`, in the order given) unless a
    /// record of its job is there; answers whether each was stored.
    /// `dry_run` as for jobs. Whatever JOB_HISTORY says: a copy copies.
    async fn import_history(
        &self,
        records: Vec<FinishedJob>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError>;

    // Many hosts on one database. The defaults are a file's, which only
    // processes on this host can share.

    /// Whether daemons on other hosts may share this database: their
    /// instances are then judged by heartbeat alone, a slow poll backs up
    /// the wake-ups, and `status` counts the instances and shows the clock
    /// offset.
    fn shared(&self) -> bool {
        false
    }

    /// Signals that jobs may have become ready through another process
    /// (another node's enqueue, an application's INSERT), and that such
    /// signals may have been missed (a reconnect): either way a claim pass
    /// is due. `None` when the backend has no such channel.
    fn wakeups(&self) -> Option<watch::Receiver<Wakeups>> {
        None
    }

    /// This daemon's clock minus the database server's, in milliseconds, as
    /// last measured; `None` when the database keeps no clock of its own.
    fn clock_offset_ms(&self) -> Option<i64> {
        None
    }

    // Live events across daemons sharing the database: the relay of
    // `queue::relay` (watch events, progress, forced cancels). A backend
    // whose daemons share no channel (SQLite: one machine, and a second
    // process on the same file is rare) keeps these defaults, and each
    // daemon then sees only its own events.

    /// Sends `messages` (each under [`MAX_RELAY_MESSAGE`] bytes) to every
    /// daemon on this database, this one included, in order, at once.
    async fn publish_events(&self, messages: Vec<String>) -> Result<(), StoreError> {
        let _ = messages;
        Ok(())
    }

    /// The messages [`Backend::publish_events`] sends, from every daemon
    /// (this one's too: the receiver tells them apart); `None` when this
    /// backend relays nothing.
    fn remote_events(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<str>>> {
        None
    }
}

/// What a backend's wake-up channel has seen; a change of any field is a
/// reason for a claim pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wakeups {
    /// Notifications received: a job may be ready.
    pub notifications: u64,
    /// Connections made (the first included): notifications may have been
    /// missed, so a claim pass is due.
    pub reconnects: u64,
    /// Whether the channel is connected now.
    pub connected: bool,
}

/// The longest relay message: PostgreSQL's NOTIFY payload limit is 8000
/// bytes.
pub const MAX_RELAY_MESSAGE: usize = 7900;
