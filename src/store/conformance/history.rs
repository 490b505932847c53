//! Issue 14's verbs: the record every ending leaves (success, death,
//! recovery, cancel), the history's listing and pruning, pauses, per-type
//! claims, bulk retry / cancel / purge, and a cron run's job status.

use serde_json::{Map, json};

use super::Fixture;
use crate::clock::Millis;
use crate::store::Store;
use crate::store::history::{
    BulkFilter, CancelledJob, Ending, FinalStatus, HistoryFilter, PRUNE_BATCH, Prune,
};
use crate::store::job::{AfterFailure, JobStatus, ListFilter, NewJob, Outcome, RunAt};
use crate::store::run::{NewRun, RunStatus, RunTrigger};

const NOW: Millis = 1_800_000_000_000;

fn job(name: &str) -> NewJob {
    NewJob::new(name, "noop", Map::new())
}

fn noop() -> Vec<String> {
    vec!["noop".to_string()]
}

fn ending(ran_ms: i64, result: serde_json::Value) -> Ending {
    Ending {
        ran_ms: Some(ran_ms),
        result: Some(result),
    }
}

async fn enqueue(store: &Store, jobs: Vec<NewJob>) -> Vec<String> {
    store
        .enqueue(jobs, NOW, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.job.id)
        .collect()
}

/// Runs every ready noop job to its end, claimed at `at`: succeeded, or
/// dead when `die`; `n` of them at most.
async fn run_all(store: &Store, n: usize, at: Millis, die: bool) -> Vec<String> {
    let claimed = store.claim("me", &noop(), n, at).await.unwrap();
    let mut ids = Vec::new();
    for c in claimed {
        let outcome = if die {
            Outcome::failed("boom".into(), AfterFailure::Dead)
        } else {
            Outcome::succeeded(false)
        };
        let done = store.finish(c.lease, outcome, at + 5, None).await.unwrap();
        assert!(done.committed().await.unwrap());
        ids.push(c.job.id);
    }
    ids
}

pub async fn a_success_leaves_a_record_in_the_outcomes_transaction(store: &Fixture) {
    let mut new = job("welcome");
    new.description = "say hello".into();
    new.unique_key = Some("k1".into());
    new.priority = 3;
    let id = enqueue(store, vec![new]).await.remove(0);
    let claimed = store.claim("me", &noop(), 1, NOW + 10).await.unwrap();
    let result = json!({"message_id": "<a@b>", "recipients": ["x@example.com"]});
    let outcome = Outcome::Succeeded {
        from_cron: false,
        ending: ending(42, result.clone()),
    };
    let done = store
        .finish(claimed[0].lease.clone(), outcome, NOW + 60, None)
        .await
        .unwrap();
    assert!(done.committed().await.unwrap());
    // `queues` keeps its meaning: the job that succeeded is gone from it.
    assert!(store.get(id.clone(), NOW + 60).await.unwrap().is_none());
    let record = store
        .finished_job(id.clone())
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(record.status, FinalStatus::Succeeded);
    assert_eq!(
        (record.name.as_str(), record.description.as_str()),
        ("welcome", "say hello")
    );
    assert_eq!(record.job_type, "noop");
    assert_eq!((record.attempts, record.max_attempts), (1, 4));
    assert_eq!(record.priority, 3);
    assert_eq!(record.unique_key.as_deref(), Some("k1"));
    assert_eq!(record.created, NOW);
    assert_eq!(record.started, Some(NOW + 10));
    assert_eq!(record.finished, NOW + 60);
    assert_eq!(record.duration_ms, Some(42));
    assert_eq!(record.result, Some(result));
    // The key is free again: a new job with it is stored.
    let mut again = job("again");
    again.unique_key = Some("k1".into());
    let stored = store.enqueue(vec![again], NOW, 100).await.unwrap();
    assert!(!stored[0].duplicate);
}

pub async fn a_stale_lease_leaves_no_record(store: &Fixture) {
    let id = enqueue(store, vec![job("a")]).await.remove(0);
    let first = store.claim("old", &noop(), 1, NOW).await.unwrap().remove(0);
    store.recover(NOW + 1, vec![], NOW + 10).await.unwrap();
    let second = store
        .claim("new", &noop(), 1, NOW + 10)
        .await
        .unwrap()
        .remove(0);
    assert!(!store.complete(first.lease, false, NOW + 20).await.unwrap());
    assert!(store.finished_job(id.clone()).await.unwrap().is_none());
    assert!(store.complete(second.lease, false, NOW + 30).await.unwrap());
    let record = store.finished_job(id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 2);
    // The first attempt's claim is when the job first started.
    assert_eq!(record.started, Some(NOW));
}

pub async fn a_dead_job_is_recorded_when_it_dies_and_a_later_end_replaces_it(store: &Fixture) {
    let id = enqueue(store, vec![job("a")]).await.remove(0);
    let c = store.claim("me", &noop(), 1, NOW).await.unwrap().remove(0);
    let outcome = Outcome::Failed {
        error: "smtp: 550 no such user".into(),
        after: AfterFailure::Dead,
        ending: ending(7, json!({"tried": 1})),
    };
    let done = store.finish(c.lease, outcome, NOW + 9, None).await.unwrap();
    assert!(done.committed().await.unwrap());
    let (live, _) = store.get(id.clone(), NOW + 9).await.unwrap().unwrap();
    assert_eq!(live.status, JobStatus::Dead);
    let record = store.finished_job(id.clone()).await.unwrap().unwrap();
    assert_eq!(record.status, FinalStatus::Dead);
    assert_eq!(record.last_error.as_deref(), Some("smtp: 550 no such user"));
    assert_eq!(record.result, Some(json!({"tried": 1})));
    assert_eq!(record.duration_ms, Some(7));
    let first_seq = record.seq;
    // A failure with retries left is no ending.
    let other = enqueue(store, vec![job("b")]).await.remove(0);
    let c = store.claim("me", &noop(), 1, NOW).await.unwrap().remove(0);
    assert!(
        store
            .fail(
                c.lease,
                "later".into(),
                AfterFailure::RetryAt(NOW + 1_000_000),
                NOW
            )
            .await
            .unwrap()
    );
    assert!(store.finished_job(other).await.unwrap().is_none());
    // Retried and succeeding, the dead job's record is replaced, and is the
    // latest again.
    store.retry(id.clone(), NOW + 100).await.unwrap().unwrap();
    let ids = run_all(store, 1, NOW + 100, false).await;
    assert_eq!(ids, std::slice::from_ref(&id));
    let record = store.finished_job(id.clone()).await.unwrap().unwrap();
    assert_eq!(record.status, FinalStatus::Succeeded);
    assert!(record.seq > first_seq, "{} > {first_seq}", record.seq);
    assert_eq!(record.started, Some(NOW), "first started is kept");
    let listed = store
        .list_finished(HistoryFilter {
            limit: 10,
            ..HistoryFilter::default()
        })
        .await
        .unwrap()
        .0;
    assert_eq!(listed.len(), 1, "one record per job");
}

pub async fn a_purged_dead_job_keeps_its_record(store: &Fixture) {
    enqueue(store, vec![job("a")]).await;
    let id = run_all(store, 1, NOW, true).await.remove(0);
    assert_eq!(store.purge_dead(None).await.unwrap(), 1);
    assert!(store.get(id.clone(), NOW).await.unwrap().is_none());
    let record = store.finished_job(id).await.unwrap().unwrap();
    assert_eq!(record.status, FinalStatus::Dead);
}

pub async fn recovery_and_cancel_record_their_ends(store: &Fixture) {
    let mut last = job("last");
    last.retry_count = Some(0);
    let ids = enqueue(store, vec![last]).await;
    store.claim("gone", &noop(), 1, NOW).await.unwrap();
    let recovered = store.recover(NOW + 1, vec![], NOW + 5).await.unwrap();
    assert!(recovered[0].dead);
    let record = store.finished_job(ids[0].clone()).await.unwrap().unwrap();
    assert_eq!(record.status, FinalStatus::Dead);
    assert_eq!(record.duration_ms, None);
    assert!(record.last_error.unwrap().contains("abandoned"));

    let mut later = job("later");
    later.when = RunAt::At(NOW + 60_000);
    let id = enqueue(store, vec![later]).await.remove(0);
    store.cancel(id.clone(), NOW + 7).await.unwrap().unwrap();
    let record = store.finished_job(id).await.unwrap().unwrap();
    assert_eq!(record.status, FinalStatus::Cancelled);
    assert_eq!((record.attempts, record.started), (0, None));
    assert_eq!(record.finished, NOW + 7);
    assert_eq!(record.run_at, NOW + 60_000);
}

pub async fn finished_jobs_list_latest_first_with_filters_and_pages(store: &Fixture) {
    let mut jobs = Vec::new();
    for i in 0..6 {
        let mut j = job(if i % 2 == 0 { "even" } else { "odd" });
        if i < 2 {
            j.cron_id = Some("nightly".into());
        }
        jobs.push(j);
    }
    enqueue(store, jobs).await;
    let done = run_all(store, 6, NOW, false).await;
    let mut other = job("x");
    other.job_type = "email".into();
    let cancelled = enqueue(store, vec![other]).await.remove(0);
    store
        .cancel(cancelled.clone(), NOW + 50)
        .await
        .unwrap()
        .unwrap();
    let list = |filter: HistoryFilter| async move {
        let (jobs, more) = store.list_finished(filter).await.unwrap();
        (jobs.into_iter().map(|j| j.id).collect::<Vec<_>>(), more)
    };
    let all = HistoryFilter {
        limit: 100,
        ..HistoryFilter::default()
    };
    let (ids, more) = list(all.clone()).await;
    assert!(!more);
    let mut expected: Vec<String> = done.iter().rev().cloned().collect();
    expected.insert(0, cancelled.clone());
    assert_eq!(ids, expected, "the latest to end first");
    let succeeded = HistoryFilter {
        status: Some(FinalStatus::Succeeded),
        ..all.clone()
    };
    assert_eq!(list(succeeded.clone()).await.0.len(), 6);
    let cancelled_only = HistoryFilter {
        status: Some(FinalStatus::Cancelled),
        ..all.clone()
    };
    assert_eq!(
        list(cancelled_only).await.0,
        std::slice::from_ref(&cancelled)
    );
    let email = HistoryFilter {
        job_type: Some("email".into()),
        ..all.clone()
    };
    assert_eq!(list(email).await.0, [cancelled]);
    let odd = HistoryFilter {
        name: Some("odd".into()),
        ..succeeded.clone()
    };
    assert_eq!(list(odd).await.0.len(), 3);
    let nightly = HistoryFilter {
        cron_id: Some("nightly".into()),
        ..all.clone()
    };
    assert_eq!(list(nightly).await.0.len(), 2);
    let later = HistoryFilter {
        since: Some(NOW + 10),
        ..all.clone()
    };
    assert_eq!(
        list(later).await.0.len(),
        1,
        "only the cancel finished then"
    );
    // Pages of 4, then the rest after the last one's seq.
    let (page, more) = store
        .list_finished(HistoryFilter {
            limit: 4,
            ..all.clone()
        })
        .await
        .unwrap();
    assert!(more);
    let (rest, more) = store
        .list_finished(HistoryFilter {
            limit: 4,
            after: Some(page[3].seq),
            ..all.clone()
        })
        .await
        .unwrap();
    assert!(!more);
    let paged: Vec<String> = page.iter().chain(&rest).map(|j| j.id.clone()).collect();
    assert_eq!(paged, expected);
}

pub async fn queue_listings_filter_by_name_and_cron(store: &Fixture) {
    let mut a = job("report");
    a.cron_id = Some("nightly".into());
    enqueue(store, vec![a, job("report"), job("other")]).await;
    let list = |filter: ListFilter| async move { store.list(filter, NOW).await.unwrap().0.len() };
    let base = ListFilter {
        limit: 10,
        ..ListFilter::default()
    };
    let by_name = ListFilter {
        name: Some("report".into()),
        ..base.clone()
    };
    assert_eq!(list(by_name).await, 2);
    let by_cron = ListFilter {
        cron_id: Some("nightly".into()),
        ..base
    };
    assert_eq!(list(by_cron).await, 1);
}

pub async fn pruning_keeps_the_newest_under_the_cap_and_drops_the_expired(store: &Fixture) {
    enqueue(store, (0..30).map(|i| job(&format!("j{i}"))).collect()).await;
    // Ten end at each of three instants.
    let mut ended = Vec::new();
    for at in [NOW, NOW + 1000, NOW + 2000] {
        ended.extend(run_all(store, 10, at, false).await);
    }
    let listed = || async {
        let filter = HistoryFilter {
            limit: 100,
            ..HistoryFilter::default()
        };
        let jobs = store.list_finished(filter).await.unwrap().0;
        jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
    };
    // The cap, in rounds of at most 7.
    let cap = Prune {
        history_max: Some(12),
        batch: 7,
        ..Prune::default()
    };
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let round = store.prune(cap).await.unwrap();
        rounds.push((round.history, round.more));
    }
    assert_eq!(rounds, [(7, true), (7, true), (4, false)]);
    let kept = listed().await;
    assert_eq!(kept.len(), 12);
    let newest: Vec<String> = ended.iter().rev().take(12).cloned().collect();
    assert_eq!(kept, newest);
    // Retention: those that ended before NOW + 2000 (plus the 5 ms the
    // helper adds) go; the last ten stay.
    let expired = Prune {
        history_before: Some(NOW + 2000),
        batch: PRUNE_BATCH,
        ..Prune::default()
    };
    let round = store.prune(expired).await.unwrap();
    assert_eq!((round.history, round.more), (2, false));
    assert_eq!(
        listed().await,
        ended.iter().rev().take(10).cloned().collect::<Vec<_>>()
    );
    // Nothing more to do costs nothing and deletes nothing.
    assert_eq!(store.prune(expired).await.unwrap().history, 0);
}

pub async fn pruning_drops_dead_jobs_past_their_retention(store: &Fixture) {
    enqueue(store, vec![job("old"), job("new")]).await;
    let c = store.claim("me", &noop(), 2, NOW).await.unwrap();
    let (old, new) = (c[0].lease.clone(), c[1].lease.clone());
    assert!(
        store
            .fail(old.clone(), "x".into(), AfterFailure::Dead, NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .fail(new.clone(), "x".into(), AfterFailure::Dead, NOW + 500)
            .await
            .unwrap()
    );
    let prune = Prune {
        dead_before: Some(NOW + 100),
        batch: PRUNE_BATCH,
        ..Prune::default()
    };
    let round = store.prune(prune).await.unwrap();
    assert_eq!((round.dead, round.more), (1, false));
    assert!(store.get(old.job_id.clone(), NOW).await.unwrap().is_none());
    assert!(store.get(new.job_id.clone(), NOW).await.unwrap().is_some());
    // The history still says how it ended.
    let record = store.finished_job(old.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, FinalStatus::Dead);
    let counts = store.counts(NOW).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Dead], 1);
}

pub async fn a_pause_stops_every_claim_of_its_type_until_resumed(store: &Fixture) {
    let mut mail = job("mail");
    mail.job_type = "email".into();
    enqueue(store, vec![job("a"), job("b"), mail]).await;
    let both = vec!["noop".to_string(), "email".to_string()];
    assert_eq!(
        store.pause(Some("noop".into()), NOW).await.unwrap(),
        ["noop"]
    );
    // Every way of claiming, by this store and by another daemon's.
    let another = store.another().await;
    assert!(
        another
            .claim("b", &noop(), 10, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_batches("me", &noop(), 10, 5, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_quotas("me", &[("noop".to_string(), 5)], NOW)
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store.claim("me", &both, 10, NOW).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.job_type, "email");
    assert_eq!(another.paused().await.unwrap(), ["noop"]);
    // Everything paused, then one type resumed: the pause of all holds.
    assert_eq!(store.pause(None, NOW).await.unwrap(), ["*", "noop"]);
    assert_eq!(store.pause(None, NOW).await.unwrap(), ["*", "noop"]);
    assert_eq!(store.resume(Some("noop".into())).await.unwrap(), ["*"]);
    assert!(store.claim("me", &both, 10, NOW).await.unwrap().is_empty());
    assert_eq!(store.resume(None).await.unwrap(), Vec::<String>::new());
    assert_eq!(another.claim("b", &noop(), 10, NOW).await.unwrap().len(), 2);
    another.close().await;
}

pub async fn pauses_of_single_types_stop_at_their_cap(store: &Fixture) {
    use crate::store::history::MAX_PAUSES;
    for i in 0..MAX_PAUSES {
        store.pause(Some(format!("t{i:04}")), NOW).await.unwrap();
    }
    let full = store.pause(Some("one_more".into()), NOW).await.unwrap();
    assert_eq!(full.len(), MAX_PAUSES);
    assert!(
        !full.iter().any(|t| t == "one_more"),
        "not paused past the cap"
    );
    // A type paused already stays so; the pause of every type is taken.
    let again = store.pause(Some("t0001".into()), NOW).await.unwrap();
    assert_eq!(again.len(), MAX_PAUSES);
    let all = store.pause(None, NOW).await.unwrap();
    assert_eq!((all.len(), all[0].as_str()), (MAX_PAUSES + 1, "*"));
    store.resume(Some("t0000".into())).await.unwrap();
    let room = store.pause(Some("one_more".into()), NOW).await.unwrap();
    assert!(
        room.iter().any(|t| t == "one_more"),
        "room again once one is resumed"
    );
}

pub async fn claim_quotas_takes_each_type_up_to_its_number(store: &Fixture) {
    let mut jobs: Vec<NewJob> = (0..5).map(|i| job(&format!("n{i}"))).collect();
    for i in 0..5 {
        let mut j = job(&format!("e{i}"));
        j.job_type = "email".into();
        jobs.push(j);
    }
    enqueue(store, jobs).await;
    let quotas = [
        ("noop".to_string(), 2),
        ("email".to_string(), 3),
        ("x".to_string(), 4),
    ];
    let claimed = store.claim_quotas("me", &quotas, NOW).await.unwrap();
    let count = |t: &str| claimed.iter().filter(|c| c.job.job_type == t).count();
    assert_eq!((count("noop"), count("email")), (2, 3));
    assert!(
        claimed
            .iter()
            .all(|c| c.job.attempts == 1 && c.lease.instance == "me")
    );
    let rest = store
        .claim_quotas(
            "me",
            &[("noop".to_string(), 10), ("email".to_string(), 0)],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 3);
}

pub async fn a_tick_claims_quotas_and_prunes(store: &Fixture) {
    let mut jobs: Vec<NewJob> = (0..4).map(|i| job(&format!("n{i}"))).collect();
    jobs[0].when = RunAt::At(NOW - 20_000);
    let mut mail = job("mail");
    mail.job_type = "email".into();
    jobs.push(mail);
    enqueue(store, jobs).await;
    // Two records, one past retention.
    run_all(store, 1, NOW - 10_000, false).await;
    run_all(store, 1, NOW, false).await;
    let tick = crate::store::tick::Tick {
        now: NOW,
        instance: crate::store::instance::InstanceRow {
            id: "me".into(),
            host: "h".into(),
            boot_id: "b".into(),
            pid: 1,
            start_ticks: 1,
            version: "t".into(),
            started: NOW,
            heartbeat_at: NOW,
            workers_max: 1,
            workers_busy: 0,
            clock_offset_ms: 0,
        },
        leases: Vec::new(),
        run: Some(NewRun {
            cron_id: "system_queue".into(),
            scheduled_for: NOW,
            trigger: RunTrigger::Schedule,
            status: RunStatus::Running,
            now: NOW,
            instance: "me".into(),
            error: None,
        }),
        stale_before: NOW - 300_000,
        judge: Box::new(|_| false),
        types: noop(),
        limit: 2,
        quotas: vec![("email".to_string(), 1)],
        prune: Some(Prune {
            history_before: Some(NOW - 1000),
            history_max: Some(100),
            dead_before: None,
            batch: PRUNE_BATCH,
        }),
    };
    let ticked = store.tick(tick).await.unwrap();
    let types: Vec<&str> = ticked
        .claimed
        .iter()
        .map(|c| c.job.job_type.as_str())
        .collect();
    assert_eq!(types.len(), 2, "{types:?}");
    assert!(
        types.contains(&"email"),
        "the quota's type is claimed first: {types:?}"
    );
    assert_eq!(ticked.pruned.history, 1);
}

pub async fn bulk_retry_revives_matching_jobs_in_pages_and_skips_held_keys(store: &Fixture) {
    let mut jobs: Vec<NewJob> = (0..5).map(|i| job(&format!("n{i}"))).collect();
    let mut keyed = job("keyed");
    keyed.unique_key = Some("k".into());
    jobs.push(keyed);
    let mut mail = job("mail");
    mail.job_type = "email".into();
    jobs.push(mail);
    enqueue(store, jobs).await;
    let both = vec!["noop".to_string(), "email".to_string()];
    for c in store.claim("me", &both, 10, NOW).await.unwrap() {
        assert!(
            store
                .fail(c.lease, "x".into(), AfterFailure::Dead, NOW)
                .await
                .unwrap()
        );
    }
    // Another waiting job holds the dead one's key.
    let mut holder = job("holder");
    holder.unique_key = Some("k".into());
    holder.when = RunAt::At(NOW + 100_000);
    enqueue(store, vec![holder]).await;
    let filter = BulkFilter {
        status: Some(JobStatus::Dead),
        job_type: Some("noop".into()),
        limit: 4,
        ..BulkFilter::default()
    };
    let first = store.retry_matching(filter.clone(), NOW + 1).await.unwrap();
    assert_eq!(first.count + first.skipped, 4);
    let next = first.next.clone().expect("more match");
    let second = store
        .retry_matching(
            BulkFilter {
                after: Some(next),
                ..filter.clone()
            },
            NOW + 1,
        )
        .await
        .unwrap();
    assert_eq!(second.next, None);
    assert_eq!(first.count + second.count, 5);
    assert_eq!(first.skipped + second.skipped, 1, "the held key");
    let counts = store.counts(NOW + 1).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 5);
    assert_eq!(counts["noop"][&JobStatus::Dead], 1);
    assert_eq!(counts["email"][&JobStatus::Dead], 1, "another type");
    let revived = store.claim("me", &noop(), 10, NOW + 1).await.unwrap();
    assert!(
        revived.iter().all(|c| c.job.attempts == 1),
        "attempts reset"
    );
    // Scheduled jobs are retried too (now), when the filter says so.
    let scheduled = BulkFilter {
        status: Some(JobStatus::Scheduled),
        limit: 100,
        ..BulkFilter::default()
    };
    assert_eq!(
        store
            .retry_matching(scheduled, NOW + 1)
            .await
            .unwrap()
            .count,
        1
    );
}

pub async fn bulk_cancel_never_touches_running_jobs(store: &Fixture) {
    let mut jobs: Vec<NewJob> = (0..4).map(|i| job(&format!("n{i}"))).collect();
    let mut later = job("later");
    later.when = RunAt::At(NOW + 60_000);
    later.cron_id = Some("nightly".into());
    jobs.push(later);
    let ids = enqueue(store, jobs).await;
    let running = store.claim("me", &noop(), 1, NOW).await.unwrap().remove(0);
    let all = BulkFilter {
        job_type: Some("noop".into()),
        limit: 100,
        ..BulkFilter::default()
    };
    let scheduled_only = BulkFilter {
        status: Some(JobStatus::Scheduled),
        ..all.clone()
    };
    let first = store.cancel_matching(scheduled_only, NOW).await.unwrap();
    assert_eq!(first.count, 1);
    // Each cancelled job as its `cancelled` event names it.
    assert_eq!(
        first.cancelled,
        vec![CancelledJob {
            id: ids[4].clone(),
            name: "later".into(),
            job_type: "noop".into(),
            attempts: 0,
            cron_id: Some("nightly".into()),
        }]
    );
    let done = store.cancel_matching(all.clone(), NOW).await.unwrap();
    assert_eq!((done.count, done.next.clone()), (3, None));
    let mut named: Vec<String> = done.cancelled.iter().map(|c| c.id.clone()).collect();
    named.sort();
    let mut waiting: Vec<String> = ids[..4]
        .iter()
        .filter(|id| **id != running.job.id)
        .cloned()
        .collect();
    waiting.sort();
    assert_eq!(named, waiting, "the cancelled jobs, not the running one");
    let (job, _) = store
        .get(running.job.id.clone(), NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.status, JobStatus::Running);
    for id in ids.iter().filter(|id| **id != running.job.id) {
        let record = store.finished_job(id.clone()).await.unwrap().unwrap();
        assert_eq!(record.status, FinalStatus::Cancelled, "{id}");
    }
    assert_eq!(store.cancel_matching(all, NOW).await.unwrap().count, 0);
}

pub async fn bulk_purge_deletes_matching_dead_jobs_only(store: &Fixture) {
    let mut mail = job("mail");
    mail.job_type = "email".into();
    enqueue(store, vec![job("a"), job("b"), mail, job("alive")]).await;
    let mut claimed = store.claim("me", &noop(), 2, NOW).await.unwrap();
    claimed.extend(store.claim("me", &["email".into()], 1, NOW).await.unwrap());
    for c in claimed {
        assert!(
            store
                .fail(c.lease, "x".into(), AfterFailure::Dead, NOW)
                .await
                .unwrap()
        );
    }
    let noop_dead = BulkFilter {
        job_type: Some("noop".into()),
        limit: 1,
        ..BulkFilter::default()
    };
    let first = store.purge_matching(noop_dead.clone(), None).await.unwrap();
    assert_eq!(first.count, 1);
    let rest = store
        .purge_matching(
            BulkFilter {
                after: first.next.clone(),
                ..noop_dead.clone()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!((rest.count, rest.next), (1, None));
    let counts = store.counts(NOW).await.unwrap();
    assert_eq!(
        counts["noop"].get(&JobStatus::Dead).copied().unwrap_or(0),
        0
    );
    assert_eq!(
        counts["noop"][&JobStatus::Pending],
        1,
        "not dead, not purged"
    );
    assert_eq!(counts["email"][&JobStatus::Dead], 1);
    // Only those dead long enough, when asked.
    let email = BulkFilter {
        job_type: Some("email".into()),
        limit: 10,
        ..BulkFilter::default()
    };
    assert_eq!(
        store
            .purge_matching(email.clone(), Some(NOW - 1))
            .await
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        store
            .purge_matching(email, Some(NOW + 1))
            .await
            .unwrap()
            .count,
        1
    );
}

pub async fn a_cron_runs_job_status_follows_its_job(store: &Fixture) {
    let run = store
        .begin_run(NewRun {
            cron_id: "nightly".into(),
            scheduled_for: NOW,
            trigger: RunTrigger::Manual,
            status: RunStatus::Running,
            now: NOW,
            instance: "me".into(),
            error: None,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.job_status, None);
    let mut j = job("report");
    j.cron_id = Some("nightly".into());
    j.cron_run = Some(run.id);
    let id = enqueue(store, vec![j]).await.remove(0);
    let status = || async {
        let runs = store.runs("nightly".into(), 5).await.unwrap();
        assert_eq!(runs[0].job_id.as_deref(), Some(id.as_str()));
        runs[0].job_status.clone()
    };
    assert_eq!(status().await.as_deref(), Some("pending"));
    let c = store.claim("me", &noop(), 1, NOW).await.unwrap().remove(0);
    assert_eq!(status().await.as_deref(), Some("running"));
    assert!(store.complete(c.lease, true, NOW + 5).await.unwrap());
    assert_eq!(status().await.as_deref(), Some("succeeded"));
    let runs = store.runs("nightly".into(), 5).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Ok);
}
