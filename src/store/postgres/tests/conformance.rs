//! The SQLite store's unit tests (src/store/jobs.rs, crons.rs, manage.rs,
//! and the tick and instance verbs the scheduler and queue use), as
//! functions taking a store handle: the shared conformance suite once the
//! store interface exists, run here against PostgreSQL.

use std::sync::{Arc, Mutex};

use serde_json::Map;

use crate::clock::Millis;
use crate::queue::job::{JobStatus, NewJob, RunAt};
use crate::store::StoreError;
use crate::store::crons::{KEPT_RUNS, NewRun, RunStatus, RunTrigger};
use crate::store::instances::InstanceRow;
use crate::store::jobs::{AfterFailure, AttemptError, ListFilter, Outcome};
use crate::store::manage::Refusal;
use crate::store::postgres::PgStore;
use crate::store::tick::Tick;

pub const NOW: Millis = 1_800_000_000_000;

pub fn job(name: &str) -> NewJob {
    NewJob::new(name, "noop", Map::new())
}

pub fn types() -> Vec<String> {
    vec!["noop".to_string()]
}

pub async fn claim_batches_claims_in_batches_up_to_the_limit_and_stops_when_dry(store: &PgStore) {
    let jobs: Vec<NewJob> = (0..130).map(|i| job(&format!("j{i}"))).collect();
    store.enqueue(jobs, NOW, 1000).await.unwrap();
    let first = store
        .claim_batches("me", &types(), 120, 50, NOW)
        .await
        .unwrap();
    assert_eq!(first.len(), 120);
    let ids: std::collections::HashSet<_> = first.iter().map(|c| &c.job.id).collect();
    assert_eq!(ids.len(), 120, "no job claimed twice");
    let rest = store
        .claim_batches("me", &types(), 120, 50, NOW)
        .await
        .unwrap();
    assert_eq!(rest.len(), 10);
    assert!(
        store
            .claim_batches("me", &types(), 120, 50, NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn enqueue_claim_complete_deletes_the_row(store: &PgStore) {
    let stored = store.enqueue(vec![job("a")], NOW, 100).await.unwrap();
    assert_eq!(stored[0].job.status, JobStatus::Pending);
    assert_eq!(stored[0].job.max_attempts, 4);
    let claimed = store.claim("me", &types(), 10, NOW).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.attempts, 1);
    assert_eq!(claimed[0].job.status, JobStatus::Running);
    assert_eq!(claimed[0].job.reserved_at, Some(NOW));
    assert!(store.claim("me", &types(), 10, NOW).await.unwrap().is_empty());
    assert!(store.complete(claimed[0].lease.clone(), false, NOW).await.unwrap());
    assert!(store.get(stored[0].job.id.clone(), NOW).await.unwrap().is_none());
    assert!(
        store
            .counts(NOW)
            .await
            .unwrap()
            .values()
            .all(|s| s.values().all(|n| *n == 0))
    );
}

pub async fn claim_orders_by_priority_then_run_at_and_skips_future_and_other_types(
    store: &PgStore,
) {
    let mut low = job("low");
    low.when = RunAt::At(NOW - 10);
    let mut high = job("high");
    high.priority = 5;
    let mut later = job("later");
    later.when = RunAt::At(NOW + 1000);
    let mut other = job("other");
    other.job_type = "email".into();
    let mut oldest = job("oldest");
    oldest.when = RunAt::At(NOW - 20);
    store
        .enqueue(vec![low, high, later, other, oldest], NOW, 100)
        .await
        .unwrap();
    let claimed = store.claim("me", &types(), 10, NOW).await.unwrap();
    let names: Vec<_> = claimed.iter().map(|c| c.job.name.as_str()).collect();
    assert_eq!(names, ["high", "oldest", "low"]);
    assert_eq!(store.next_due(&types(), NOW).await.unwrap(), Some(NOW + 1000));
    assert_eq!(store.claim("me", &types(), 10, NOW + 1000).await.unwrap().len(), 1);
}

pub async fn claim_merges_types_within_a_priority_and_fills_from_lower_ones(store: &PgStore) {
    let at = |name: &str, job_type: &str, priority: i64, run_at: Millis| {
        let mut j = job(name);
        j.job_type = job_type.into();
        j.priority = priority;
        j.when = RunAt::At(run_at);
        j
    };
    store
        .enqueue(
            vec![
                at("e9", "email", 9, NOW + 5_000),
                at("n3-old", "noop", 3, NOW - 30),
                at("e3", "email", 3, NOW - 20),
                at("n3", "noop", 3, NOW - 10),
                at("n1", "noop", 1, NOW - 99),
                at("c1", "command", 1, NOW - 100),
            ],
            NOW,
            100,
        )
        .await
        .unwrap();
    let both = vec!["noop".to_string(), "email".to_string()];
    let claimed = store.claim("me", &both, 4, NOW).await.unwrap();
    let names: Vec<_> = claimed.iter().map(|c| c.job.name.as_str()).collect();
    assert_eq!(names, ["n3-old", "e3", "n3", "n1"]);
    assert!(store.claim("me", &both, 4, NOW).await.unwrap().is_empty());
}

pub async fn counts_split_scheduled_from_either_side_of_now(store: &PgStore) {
    let mut later = job("later");
    later.when = RunAt::At(NOW + 1000);
    let mut other = job("other");
    other.job_type = "email".into();
    other.when = RunAt::At(NOW + 1000);
    store
        .enqueue(vec![job("a"), job("b"), later, other], NOW, 100)
        .await
        .unwrap();
    let counts = store.counts(NOW).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 2);
    assert_eq!(counts["noop"][&JobStatus::Scheduled], 1);
    assert_eq!(
        counts["email"].get(&JobStatus::Pending).copied().unwrap_or(0),
        0
    );
    assert_eq!(counts["email"][&JobStatus::Scheduled], 1);
    let counts = store.counts(NOW + 1000).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 3);
    assert_eq!(counts["email"][&JobStatus::Pending], 1);
}

pub async fn claim_respects_the_limit(store: &PgStore) {
    store
        .enqueue((0..10).map(|i| job(&i.to_string())).collect(), NOW, 100)
        .await
        .unwrap();
    assert_eq!(store.claim("me", &types(), 3, NOW).await.unwrap().len(), 3);
    assert_eq!(store.claim("me", &types(), 30, NOW).await.unwrap().len(), 7);
}

pub async fn a_stale_lease_cannot_complete_fail_or_extend_a_newer_attempt(store: &PgStore) {
    store.enqueue(vec![job("a")], NOW, 100).await.unwrap();
    let first = store.claim("old", &types(), 1, NOW).await.unwrap().remove(0);
    let recovered = store.recover(NOW + 1, vec![], NOW + 10).await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(!recovered[0].dead);
    let second = store.claim("new", &types(), 1, NOW + 10).await.unwrap().remove(0);
    assert_eq!(second.lease.attempt, 2);
    assert!(!store.complete(first.lease.clone(), false, NOW).await.unwrap());
    assert!(
        !store
            .fail(first.lease.clone(), "late".into(), AfterFailure::Dead, NOW + 20)
            .await
            .unwrap()
    );
    assert_eq!(
        store.extend(vec![first.lease.clone()], NOW + 20).await.unwrap(),
        vec![first.lease.clone()]
    );
    assert_eq!(store.release(vec![first.lease], NOW + 20).await.unwrap(), 0);
    assert!(
        store
            .extend(vec![second.lease.clone()], NOW + 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.complete(second.lease, false, NOW).await.unwrap());
}

pub async fn failure_schedules_a_retry_then_buries_and_keeps_errors(store: &PgStore) {
    let mut j = job("a");
    j.retry_count = Some(1);
    let id = store.enqueue(vec![j], NOW, 100).await.unwrap()[0].job.id.clone();
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert!(
        store
            .fail(c.lease, "boom 1".into(), AfterFailure::RetryAt(NOW + 500), NOW)
            .await
            .unwrap()
    );
    let (job, errors) = store.get(id.clone(), NOW).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Scheduled);
    assert_eq!(job.run_at, NOW + 500);
    assert_eq!(job.last_error.as_deref(), Some("boom 1"));
    assert_eq!(
        errors,
        vec![AttemptError {
            attempt: 1,
            at: NOW,
            error: "boom 1".into()
        }]
    );
    assert!(store.claim("me", &types(), 1, NOW + 499).await.unwrap().is_empty());
    let c = store.claim("me", &types(), 1, NOW + 500).await.unwrap().remove(0);
    assert_eq!(c.job.attempts, 2);
    assert!(
        store
            .fail(c.lease, "boom 2".into(), AfterFailure::Dead, NOW + 600)
            .await
            .unwrap()
    );
    let (job, errors) = store.get(id, NOW + 600).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].attempt, 2);
    assert_eq!(store.counts(NOW + 600).await.unwrap()["noop"][&JobStatus::Dead], 1);
}

pub async fn release_gives_the_attempt_back(store: &PgStore) {
    let id = store.enqueue(vec![job("a")], NOW, 100).await.unwrap()[0].job.id.clone();
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert_eq!(store.release(vec![c.lease], NOW).await.unwrap(), 1);
    let (job, _) = store.get(id, NOW).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Pending, 0));
}

pub async fn recovery_of_a_last_attempt_buries_the_job(store: &PgStore) {
    let mut j = job("a");
    j.retry_count = Some(0);
    let id = store.enqueue(vec![j], NOW, 100).await.unwrap()[0].job.id.clone();
    store.claim("gone", &types(), 1, NOW).await.unwrap();
    // Fresh, but held by an instance known to be dead.
    let recovered = store.recover(NOW - 1, vec!["gone".into()], NOW + 1).await.unwrap();
    assert!(recovered[0].dead);
    let (job, errors) = store.get(id, NOW + 1).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert!(errors[0].error.contains("instance gone"), "{}", errors[0].error);
}

pub async fn unique_key_holds_while_waiting_or_running_only(store: &PgStore) {
    let mut a = job("a");
    a.unique_key = Some("k".into());
    let first = store.enqueue(vec![a.clone()], NOW, 100).await.unwrap().remove(0);
    let again = store.enqueue(vec![a.clone(), a.clone()], NOW, 100).await.unwrap();
    assert!(again.iter().all(|e| e.duplicate && e.job.id == first.job.id));
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert!(store.enqueue(vec![a.clone()], NOW, 100).await.unwrap()[0].duplicate);
    store
        .fail(c.lease, "x".into(), AfterFailure::Dead, NOW)
        .await
        .unwrap();
    assert!(!store.enqueue(vec![a.clone()], NOW, 100).await.unwrap()[0].duplicate);
    // Two of one key in one new batch: the first is stored, the second
    // answers it.
    let mut b = job("b");
    b.unique_key = Some("k2".into());
    let both = store.enqueue(vec![b.clone(), b], NOW, 100).await.unwrap();
    assert!(!both[0].duplicate && both[1].duplicate);
    assert_eq!(both[0].job.id, both[1].job.id);
}

pub async fn a_batch_is_all_or_nothing_and_the_cap_holds(store: &PgStore) {
    store.enqueue(vec![job("a"), job("b")], NOW, 3).await.unwrap();
    let err = store
        .enqueue(vec![job("c"), job("d")], NOW, 3)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::QueueFull { pending: 2, limit: 3 }),
        "{err}"
    );
    assert_eq!(store.counts(NOW).await.unwrap()["noop"][&JobStatus::Pending], 2);
}

pub async fn list_filters_and_pages_newest_first(store: &PgStore) {
    for i in 0..5 {
        store
            .enqueue(vec![job(&format!("j{i}"))], NOW + i, 100)
            .await
            .unwrap();
    }
    let mut delayed = job("later");
    delayed.when = RunAt::At(NOW + 10_000);
    store.enqueue(vec![delayed], NOW + 5, 100).await.unwrap();
    let page = |after| ListFilter {
        limit: 2,
        after,
        ..Default::default()
    };
    let (first, more) = store.list(page(None), NOW + 10).await.unwrap();
    assert!(more);
    assert_eq!(
        first.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["later", "j4"]
    );
    let last = first.last().unwrap();
    let (second, _) = store
        .list(page(Some((last.created, last.id.clone()))), NOW + 10)
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["j3", "j2"]
    );
    let scheduled = ListFilter {
        status: Some(JobStatus::Scheduled),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list(scheduled, NOW + 10).await.unwrap().0.len(), 1);
    let window = ListFilter {
        since: Some(NOW + 1),
        until: Some(NOW + 3),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(store.list(window, NOW + 10).await.unwrap().0.len(), 2);
    let typed = ListFilter {
        job_type: Some("email".into()),
        limit: 10,
        ..Default::default()
    };
    assert!(store.list(typed, NOW + 10).await.unwrap().0.is_empty());
    let counts = store.counts(NOW + 10).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 5);
    assert_eq!(counts["noop"][&JobStatus::Scheduled], 1);
    assert_eq!(store.oldest_ready(NOW + 10).await.unwrap(), Some(NOW));
}

fn run(scheduled_for: Millis, trigger: RunTrigger) -> NewRun {
    NewRun {
        cron_id: "nightly".into(),
        scheduled_for,
        trigger,
        status: RunStatus::Running,
        now: NOW,
        instance: "me".into(),
        error: None,
    }
}

pub async fn a_scheduled_run_is_claimed_once(store: &PgStore) {
    assert!(store.begin_run(run(NOW, RunTrigger::Schedule)).await.unwrap().is_some());
    assert!(store.begin_run(run(NOW, RunTrigger::Schedule)).await.unwrap().is_none());
    assert!(store.begin_run(run(NOW, RunTrigger::CatchUp)).await.unwrap().is_none());
    assert!(store.begin_run(run(NOW, RunTrigger::Manual)).await.unwrap().is_some());
    assert!(store.begin_run(run(NOW, RunTrigger::Manual)).await.unwrap().is_some());
    assert_eq!(store.last_scheduled("nightly".into()).await.unwrap(), Some(NOW));
}

pub async fn finish_records_status_and_duration(store: &PgStore) {
    let r = store
        .begin_run(run(NOW, RunTrigger::Schedule))
        .await
        .unwrap()
        .unwrap();
    let done = store
        .finish_run(r.id, RunStatus::Failed, Some("boom".into()), NOW + 250)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.duration_ms, Some(250));
    assert_eq!(done.error.as_deref(), Some("boom"));
    assert_eq!(done.finished, Some(NOW + 250));
    // Finishing again changes nothing and still answers the run.
    let again = store
        .finish_run(r.id, RunStatus::Ok, None, NOW + 900)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, done);
    let last = store.last_runs().await.unwrap();
    assert_eq!(last["nightly"].0.id, r.id);
    assert_eq!(last["nightly"].1, None);
}

pub async fn history_keeps_the_last_hundred(store: &PgStore) {
    for i in 0..(KEPT_RUNS + 20) {
        store.begin_run(run(NOW + i, RunTrigger::Schedule)).await.unwrap();
    }
    let runs = store.runs("nightly".into(), 1000).await.unwrap();
    assert_eq!(runs.len() as i64, KEPT_RUNS);
    assert_eq!(runs[0].scheduled_for, NOW + KEPT_RUNS + 19);
}

pub async fn switches_persist(store: &PgStore) {
    store.set_cron_enabled("a".into(), false, NOW).await.unwrap();
    store.set_cron_enabled("a".into(), true, NOW).await.unwrap();
    store.set_cron_enabled("b".into(), false, NOW).await.unwrap();
    let switches = store.cron_switches().await.unwrap();
    assert_eq!(switches.get("a"), Some(&true));
    assert_eq!(switches.get("b"), Some(&false));
}

async fn dead_job(store: &PgStore, key: Option<&str>) -> String {
    let mut j = job("n");
    j.unique_key = key.map(String::from);
    let id = store.enqueue(vec![j], NOW, 100).await.unwrap()[0].job.id.clone();
    let claimed = store.claim("me", &types(), 1, NOW).await.unwrap();
    let lease = claimed[0].lease.clone();
    assert!(
        store
            .fail(lease, "boom".into(), AfterFailure::Dead, NOW)
            .await
            .unwrap()
    );
    id
}

pub async fn retry_revives_a_dead_job_with_fresh_attempts(store: &PgStore) {
    let id = dead_job(store, None).await;
    let job = store.retry(id.clone(), NOW + 5).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.attempts, job.run_at),
        (JobStatus::Pending, 0, NOW + 5)
    );
    assert_eq!(
        store.retry(id, NOW + 6).await.unwrap(),
        Err(Refusal::WrongStatus(JobStatus::Pending))
    );
    assert_eq!(store.retry("nope".into(), NOW).await.unwrap(), Err(Refusal::NotFound));
}

pub async fn retry_respects_a_held_unique_key(store: &PgStore) {
    let dead = dead_job(store, Some("k")).await;
    let mut j = job("n");
    j.unique_key = Some("k".into());
    let holder = store.enqueue(vec![j], NOW, 100).await.unwrap()[0].job.id.clone();
    assert_eq!(store.retry(dead, NOW).await.unwrap(), Err(Refusal::KeyHeld(holder)));
}

pub async fn cancel_refuses_running_jobs_and_purge_counts(store: &PgStore) {
    let dead = dead_job(store, None).await;
    let running = store.enqueue(vec![job("n")], NOW, 100).await.unwrap()[0].job.id.clone();
    store.claim("me", &types(), 1, NOW).await.unwrap();
    assert_eq!(
        store.cancel(running, NOW).await.unwrap(),
        Err(Refusal::WrongStatus(JobStatus::Running))
    );
    assert_eq!(store.purge_dead(Some(NOW - 1)).await.unwrap(), 0);
    assert_eq!(store.purge_dead(None).await.unwrap(), 1);
    assert_eq!(store.cancel(dead, NOW).await.unwrap(), Err(Refusal::NotFound));
    let waiting = store.enqueue(vec![job("w")], NOW, 100).await.unwrap()[0].job.id.clone();
    assert_eq!(store.cancel(waiting.clone(), NOW).await.unwrap(), Ok(()));
    assert!(store.get(waiting, NOW).await.unwrap().is_none());
}

pub fn instance(id: &str, at: Millis) -> InstanceRow {
    InstanceRow {
        id: id.into(),
        host: "host".into(),
        boot_id: "boot:ns".into(),
        pid: 42,
        start_ticks: 7,
        version: "0.1.0".into(),
        started: at,
        heartbeat_at: at,
    }
}

pub async fn instances_register_heartbeat_and_go(store: &PgStore) {
    store.register_instance(instance("a", NOW)).await.unwrap();
    store.register_instance(instance("b", NOW + 1)).await.unwrap();
    assert!(store.heartbeat_instance(instance("a", NOW), NOW + 60_000).await.unwrap());
    let rows = store.instances().await.unwrap();
    assert_eq!(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(rows[0].heartbeat_at, NOW + 60_000);
    assert_eq!(rows[1], instance("b", NOW + 1));
    store.remove_instances(vec!["a".into()]).await.unwrap();
    // A removed instance that heartbeats registers again.
    assert!(!store.heartbeat_instance(instance("a", NOW), NOW + 120_000).await.unwrap());
    assert_eq!(store.instances().await.unwrap().len(), 2);
}

pub async fn a_cron_job_settles_its_run(store: &PgStore) {
    let r = store
        .begin_run(run(NOW, RunTrigger::Schedule))
        .await
        .unwrap()
        .unwrap();
    let mut j = job("cron");
    j.cron_id = Some("nightly".into());
    j.cron_run = Some(r.id);
    let stored = store.enqueue(vec![j], NOW, 100).await.unwrap().remove(0);
    assert_eq!(
        store.active_cron_job("nightly".into()).await.unwrap(),
        Some(stored.job.id.clone())
    );
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert!(store.complete(c.lease, true, NOW + 40).await.unwrap());
    let runs = store.runs("nightly".into(), 10).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Ok);
    assert_eq!(runs[0].job_id.as_deref(), Some(stored.job.id.as_str()));
    assert_eq!(runs[0].duration_ms, Some(40));
    assert_eq!(store.active_cron_job("nightly".into()).await.unwrap(), None);
    let last = store.last_runs().await.unwrap();
    assert_eq!(last["nightly"].1, Some(NOW + 40));
}

pub async fn tick_heartbeats_recovers_and_claims_once_per_run(store: &PgStore) {
    store.register_instance(instance("dead", NOW - 600_000)).await.unwrap();
    store.enqueue(vec![job("a"), job("b")], NOW, 100).await.unwrap();
    store.claim("dead", &types(), 1, NOW).await.unwrap();
    let tick = |run: Option<NewRun>| Tick {
        now: NOW + 60_000,
        instance: instance("me", NOW),
        leases: vec![],
        run,
        stale_before: NOW - 300_000,
        judge: Box::new(|row: &InstanceRow| row.id == "dead"),
        types: types(),
        limit: 10,
    };
    let minute = NewRun {
        cron_id: "system_queue".into(),
        scheduled_for: NOW + 60_000,
        trigger: RunTrigger::Schedule,
        status: RunStatus::Running,
        now: NOW + 60_000,
        instance: "me".into(),
        error: None,
    };
    let ticked = store.tick(tick(Some(minute.clone()))).await.unwrap();
    assert!(ticked.fired);
    assert_eq!(ticked.recovered.len(), 1);
    assert_eq!(ticked.removed_instances, 1);
    assert_eq!(ticked.claimed.len(), 2, "the recovered job and the other");
    assert_eq!(ticked.run.as_ref().unwrap().status, RunStatus::Running);
    let again = store.tick(tick(Some(minute))).await.unwrap();
    assert!(!again.fired);
    assert!(again.claimed.is_empty());
    let ids: Vec<String> = store.instances().await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["me"]);
}

pub async fn finish_answers_after_the_commit_and_runs_then(store: &PgStore) {
    store
        .enqueue((0..20).map(|i| job(&i.to_string())).collect(), NOW, 100)
        .await
        .unwrap();
    let claimed = store.claim("me", &types(), 20, NOW).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut pending = Vec::new();
    for (i, c) in claimed.into_iter().enumerate() {
        let outcome = if i % 2 == 0 {
            Outcome::Succeeded { from_cron: false }
        } else {
            Outcome::Failed {
                error: "nope\0with a NUL".into(),
                after: AfterFailure::Dead,
            }
        };
        let seen = seen.clone();
        let then = Box::new(move |answer: &Result<bool, StoreError>| {
            seen.lock().unwrap().push(matches!(answer, Ok(true)));
        });
        pending.push(store.finish(c.lease, outcome, NOW, Some(then)).await.unwrap());
    }
    for p in pending {
        assert!(p.committed().await.unwrap());
    }
    assert_eq!(seen.lock().unwrap().len(), 20);
    assert!(seen.lock().unwrap().iter().all(|ok| *ok));
    let counts = store.counts(NOW).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Dead], 10);
    assert_eq!(counts["noop"].get(&JobStatus::Running).copied().unwrap_or(0), 0);
}
