//! [`SqliteStore`] as a [`Backend`]: each verb is the inherent method of the
//! same name in this folder's files (jobs, crons, tick, manage, instances),
//! grouped by what they touch.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use super::SqliteStore;
use crate::clock::Millis;
use crate::store::backend::{Backend, BackendInfo};
use crate::store::copy::{CopiedJob, CopiedRun, CopiedSwitch, JobCopy, SwitchCopy};
use crate::store::definition::{ClusterCrons, CronDefinition, DefinitionRow};
use crate::store::history::{Bulk, BulkFilter, Ending, FinishedJob, HistoryFilter, Prune, Pruned};
use crate::store::import::{ImportJob, Imported};
use crate::store::instance::InstanceRow;
use crate::store::job::{
    AttemptError, Claimed, Counts, Enqueued, Job, JobDefaults, Lease, ListFilter, NewJob, Outcome,
    Recovered, Refusal,
};
use crate::store::run::{NewRun, RunRow, RunStatus};
use crate::store::tick::{Tick, Ticked};
use crate::store::{AfterCommit, Pending, StoreError};

#[async_trait]
impl Backend for SqliteStore {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            name: "sqlite",
            location: self.path().display().to_string(),
        }
    }

    fn defaults(&self) -> &JobDefaults {
        &self.inner.defaults
    }

    fn responsive(&self, limit: Duration) -> bool {
        self.inner.writer.stalled_for() < limit
    }

    async fn close(&self) {
        self.inner.writer.close().await;
    }

    async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Enqueued>, StoreError> {
        SqliteStore::enqueue(self, jobs, now, max_pending).await
    }

    async fn claim(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        SqliteStore::claim(self, instance, types, limit, now).await
    }

    async fn claim_batches(
        &self,
        instance: &str,
        types: &[String],
        limit: usize,
        batch: usize,
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        SqliteStore::claim_batches(self, instance, types, limit, batch, now).await
    }

    async fn finish(
        &self,
        lease: Lease,
        outcome: Outcome,
        now: Millis,
        then: Option<AfterCommit<bool>>,
    ) -> Result<Pending<bool>, StoreError> {
        SqliteStore::finish(self, lease, outcome, now, then).await
    }

    async fn release(&self, leases: Vec<Lease>, now: Millis) -> Result<usize, StoreError> {
        SqliteStore::release(self, leases, now).await
    }

    async fn extend(&self, leases: Vec<Lease>, now: Millis) -> Result<Vec<Lease>, StoreError> {
        SqliteStore::extend(self, leases, now).await
    }

    async fn recover(
        &self,
        stale_before: Millis,
        dead_instances: Vec<String>,
        now: Millis,
    ) -> Result<Vec<Recovered>, StoreError> {
        SqliteStore::recover(self, stale_before, dead_instances, now).await
    }

    async fn tick(&self, tick: Tick) -> Result<Ticked, StoreError> {
        SqliteStore::tick(self, tick).await
    }

    async fn next_due(&self, types: &[String], now: Millis) -> Result<Option<Millis>, StoreError> {
        SqliteStore::next_due(self, types, now).await
    }

    async fn get(
        &self,
        id: String,
        now: Millis,
    ) -> Result<Option<(Job, Vec<AttemptError>)>, StoreError> {
        SqliteStore::get(self, id, now).await
    }

    async fn list(&self, filter: ListFilter, now: Millis) -> Result<(Vec<Job>, bool), StoreError> {
        SqliteStore::list(self, filter, now).await
    }

    async fn counts(&self, now: Millis) -> Result<Counts, StoreError> {
        SqliteStore::counts(self, now).await
    }

    async fn oldest_ready(&self, now: Millis) -> Result<Option<Millis>, StoreError> {
        SqliteStore::oldest_ready(self, now).await
    }

    async fn retry(&self, id: String, now: Millis) -> Result<Result<Job, Refusal>, StoreError> {
        SqliteStore::retry(self, id, now).await
    }

    async fn cancel(&self, id: String, now: Millis) -> Result<Result<(), Refusal>, StoreError> {
        SqliteStore::cancel(self, id, now).await
    }

    async fn cancel_running(
        &self,
        lease: Lease,
        ending: Ending,
        now: Millis,
    ) -> Result<bool, StoreError> {
        SqliteStore::cancel_running(self, lease, ending, now).await
    }

    async fn purge_dead(&self, before: Option<Millis>) -> Result<u64, StoreError> {
        SqliteStore::purge_dead(self, before).await
    }

    async fn begin_run(&self, run: NewRun) -> Result<Option<RunRow>, StoreError> {
        SqliteStore::begin_run(self, run).await
    }

    async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        error: Option<String>,
        now: Millis,
    ) -> Result<Option<RunRow>, StoreError> {
        SqliteStore::finish_run(self, run_id, status, error, now).await
    }

    async fn runs(&self, cron_id: String, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        SqliteStore::runs(self, cron_id, limit).await
    }

    async fn last_runs(&self) -> Result<HashMap<String, (RunRow, Option<Millis>)>, StoreError> {
        SqliteStore::last_runs(self).await
    }

    async fn last_scheduled(&self, cron_id: String) -> Result<Option<Millis>, StoreError> {
        SqliteStore::last_scheduled(self, cron_id).await
    }

    async fn active_cron_job(&self, cron_id: String) -> Result<Option<String>, StoreError> {
        SqliteStore::active_cron_job(self, cron_id).await
    }

    async fn set_cron_enabled(
        &self,
        cron_id: String,
        enabled: bool,
        now: Millis,
    ) -> Result<(), StoreError> {
        SqliteStore::set_cron_enabled(self, cron_id, enabled, now).await
    }

    async fn cron_switches(&self) -> Result<HashMap<String, bool>, StoreError> {
        SqliteStore::cron_switches(self).await
    }

    async fn set_cron_definitions(
        &self,
        instance: String,
        definitions: Vec<CronDefinition>,
        now: Millis,
    ) -> Result<(), StoreError> {
        SqliteStore::set_cron_definitions(self, instance, definitions, now).await
    }

    async fn cron_definitions(&self) -> Result<Vec<DefinitionRow>, StoreError> {
        SqliteStore::cron_definitions(self).await
    }

    async fn cron_cluster(&self) -> Result<ClusterCrons, StoreError> {
        SqliteStore::cron_cluster(self).await
    }

    async fn export_jobs(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<CopiedJob>, Option<String>), StoreError> {
        SqliteStore::export_jobs(self, after, limit).await
    }

    async fn import_jobs(
        &self,
        jobs: Vec<CopiedJob>,
        dry_run: bool,
    ) -> Result<Vec<JobCopy>, StoreError> {
        SqliteStore::import_jobs(self, jobs, dry_run).await
    }

    async fn export_switches(&self) -> Result<Vec<CopiedSwitch>, StoreError> {
        SqliteStore::export_switches(self).await
    }

    async fn import_switches(
        &self,
        switches: Vec<CopiedSwitch>,
        dry_run: bool,
    ) -> Result<Vec<SwitchCopy>, StoreError> {
        SqliteStore::import_switches(self, switches, dry_run).await
    }

    async fn export_runs(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<CopiedRun>, StoreError> {
        SqliteStore::export_runs(self, after, limit).await
    }

    async fn import_runs(
        &self,
        runs: Vec<CopiedRun>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError> {
        SqliteStore::import_runs(self, runs, dry_run).await
    }

    async fn export_history(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> Result<Vec<FinishedJob>, StoreError> {
        SqliteStore::export_history(self, after, limit).await
    }

    async fn import_history(
        &self,
        records: Vec<FinishedJob>,
        dry_run: bool,
    ) -> Result<Vec<bool>, StoreError> {
        SqliteStore::import_history(self, records, dry_run).await
    }

    async fn register_instance(&self, row: InstanceRow) -> Result<(), StoreError> {
        SqliteStore::register_instance(self, row).await
    }

    async fn heartbeat_instance(&self, row: InstanceRow, now: Millis) -> Result<bool, StoreError> {
        SqliteStore::heartbeat_instance(self, row, now).await
    }

    async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        SqliteStore::instances(self).await
    }

    async fn remove_instances(&self, ids: Vec<String>) -> Result<(), StoreError> {
        SqliteStore::remove_instances(self, ids).await
    }

    // Issue 14: history, pauses, per-type claims, bulk verbs, pruning.

    async fn finished_job(&self, id: String) -> Result<Option<FinishedJob>, StoreError> {
        SqliteStore::finished_job(self, id).await
    }

    async fn list_finished(
        &self,
        filter: HistoryFilter,
    ) -> Result<(Vec<FinishedJob>, bool), StoreError> {
        SqliteStore::list_finished(self, filter).await
    }

    async fn prune(&self, prune: Prune) -> Result<Pruned, StoreError> {
        SqliteStore::prune(self, prune).await
    }

    async fn pause(
        &self,
        job_type: Option<String>,
        now: Millis,
    ) -> Result<Vec<String>, StoreError> {
        SqliteStore::pause(self, job_type, now).await
    }

    async fn resume(&self, job_type: Option<String>) -> Result<Vec<String>, StoreError> {
        SqliteStore::resume(self, job_type).await
    }

    async fn paused(&self) -> Result<Vec<String>, StoreError> {
        SqliteStore::paused(self).await
    }

    async fn claim_quotas(
        &self,
        instance: &str,
        quotas: &[(String, usize)],
        now: Millis,
    ) -> Result<Vec<Claimed>, StoreError> {
        SqliteStore::claim_quotas(self, instance, quotas, now).await
    }

    async fn retry_matching(&self, filter: BulkFilter, now: Millis) -> Result<Bulk, StoreError> {
        SqliteStore::retry_matching(self, filter, now).await
    }

    async fn cancel_matching(&self, filter: BulkFilter, now: Millis) -> Result<Bulk, StoreError> {
        SqliteStore::cancel_matching(self, filter, now).await
    }

    async fn purge_matching(
        &self,
        filter: BulkFilter,
        before: Option<Millis>,
    ) -> Result<Bulk, StoreError> {
        SqliteStore::purge_matching(self, filter, before).await
    }

    async fn import(
        &self,
        records: Vec<ImportJob>,
        now: Millis,
        max_pending: u64,
    ) -> Result<Vec<Imported>, StoreError> {
        SqliteStore::import(self, records, now, max_pending).await
    }

    async fn imported(
        &self,
        source: String,
        record_ids: Vec<String>,
    ) -> Result<HashMap<String, String>, StoreError> {
        SqliteStore::imported(self, source, record_ids).await
    }
}
