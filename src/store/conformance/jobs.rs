//! The queue's verbs: enqueue, unique keys, the cap, claim order, fencing,
//! complete / fail / release / extend / recover, listings and counts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::Map;

use super::Fixture;
use crate::clock::Millis;
use crate::store::job::{
    AfterFailure, AttemptError, JobStatus, ListFilter, NewJob, Outcome, RunAt,
};
use crate::store::{Store, StoreError};

const NOW: Millis = 1_800_000_000_000;

fn job(name: &str) -> NewJob {
    NewJob::new(name, "noop", Map::new())
}

fn types() -> Vec<String> {
    vec!["noop".to_string()]
}

pub async fn claim_batches_claims_in_batches_up_to_the_limit_and_stops_when_dry(store: &Fixture) {
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

pub async fn enqueue_claim_complete_deletes_the_row(store: &Fixture) {
    let stored = store.enqueue(vec![job("a")], NOW, 100).await.unwrap();
    assert_eq!(stored[0].job.status, JobStatus::Pending);
    assert_eq!(stored[0].job.max_attempts, 4);
    let claimed = store.claim("me", &types(), 10, NOW).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.attempts, 1);
    assert_eq!(claimed[0].job.status, JobStatus::Running);
    assert!(
        store
            .claim("me", &types(), 10, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .complete(claimed[0].lease.clone(), false, NOW)
            .await
            .unwrap()
    );
    assert!(
        store
            .get(stored[0].job.id.clone(), NOW)
            .await
            .unwrap()
            .is_none()
    );
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
    store: &Fixture,
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
    assert_eq!(
        store.next_due(&types(), NOW).await.unwrap(),
        Some(NOW + 1000)
    );
    assert_eq!(
        store
            .claim("me", &types(), 10, NOW + 1000)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn claim_merges_types_within_a_priority_and_fills_from_lower_ones(store: &Fixture) {
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

pub async fn counts_split_scheduled_from_either_side_of_now(store: &Fixture) {
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
        counts["email"]
            .get(&JobStatus::Pending)
            .copied()
            .unwrap_or(0),
        0
    );
    assert_eq!(counts["email"][&JobStatus::Scheduled], 1);
    let counts = store.counts(NOW + 1000).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 3);
    assert_eq!(counts["email"][&JobStatus::Pending], 1);
}

pub async fn claim_respects_the_limit(store: &Fixture) {
    store
        .enqueue((0..10).map(|i| job(&i.to_string())).collect(), NOW, 100)
        .await
        .unwrap();
    assert_eq!(store.claim("me", &types(), 3, NOW).await.unwrap().len(), 3);
    assert_eq!(store.claim("me", &types(), 30, NOW).await.unwrap().len(), 7);
}

pub async fn a_stale_lease_cannot_complete_fail_or_extend_a_newer_attempt(store: &Fixture) {
    store.enqueue(vec![job("a")], NOW, 100).await.unwrap();
    let first = store
        .claim("old", &types(), 1, NOW)
        .await
        .unwrap()
        .remove(0);
    let recovered = store.recover(NOW + 1, vec![], NOW + 10).await.unwrap();
    assert_eq!(recovered.len(), 1);
    assert!(!recovered[0].dead);
    let second = store
        .claim("new", &types(), 1, NOW + 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.lease.attempt, 2);
    assert!(
        !store
            .complete(first.lease.clone(), false, NOW)
            .await
            .unwrap()
    );
    assert!(
        !store
            .fail(
                first.lease.clone(),
                "late".into(),
                AfterFailure::Dead,
                NOW + 20
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .extend(vec![first.lease.clone()], NOW + 20)
            .await
            .unwrap(),
        vec![first.lease]
    );
    assert!(
        store
            .extend(vec![second.lease.clone()], NOW + 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.complete(second.lease, false, NOW).await.unwrap());
}

pub async fn failure_schedules_a_retry_then_buries_and_keeps_errors(store: &Fixture) {
    let mut j = job("a");
    j.retry_count = Some(1);
    let id = store.enqueue(vec![j], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert!(
        store
            .fail(
                c.lease,
                "boom 1".into(),
                AfterFailure::RetryAt(NOW + 500),
                NOW
            )
            .await
            .unwrap()
    );
    let (job, errors) = store.get(id.clone(), NOW).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Scheduled);
    assert_eq!(job.last_error.as_deref(), Some("boom 1"));
    assert_eq!(
        errors,
        vec![AttemptError {
            attempt: 1,
            at: NOW,
            error: "boom 1".into()
        }]
    );
    let c = store
        .claim("me", &types(), 1, NOW + 500)
        .await
        .unwrap()
        .remove(0);
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
    assert_eq!(
        store.counts(NOW + 600).await.unwrap()["noop"][&JobStatus::Dead],
        1
    );
}

pub async fn release_gives_the_attempt_back(store: &Fixture) {
    let id = store.enqueue(vec![job("a")], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert_eq!(store.release(vec![c.lease], NOW).await.unwrap(), 1);
    let (job, _) = store.get(id, NOW).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Pending, 0));
}

pub async fn recovery_of_a_last_attempt_buries_the_job(store: &Fixture) {
    let mut j = job("a");
    j.retry_count = Some(0);
    let id = store.enqueue(vec![j], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    store.claim("gone", &types(), 1, NOW).await.unwrap();
    // Fresh, but held by an instance known to be dead.
    let recovered = store
        .recover(NOW - 1, vec!["gone".into()], NOW + 1)
        .await
        .unwrap();
    assert!(recovered[0].dead);
    let (job, errors) = store.get(id, NOW + 1).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    assert!(
        errors[0].error.contains("instance gone"),
        "{}",
        errors[0].error
    );
}

pub async fn unique_key_holds_while_waiting_or_running_only(store: &Fixture) {
    let mut a = job("a");
    a.unique_key = Some("k".into());
    let first = store
        .enqueue(vec![a.clone()], NOW, 100)
        .await
        .unwrap()
        .remove(0);
    let again = store
        .enqueue(vec![a.clone(), a.clone()], NOW, 100)
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .all(|e| e.duplicate && e.job.id == first.job.id)
    );
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert!(store.enqueue(vec![a.clone()], NOW, 100).await.unwrap()[0].duplicate);
    store
        .fail(c.lease, "x".into(), AfterFailure::Dead, NOW)
        .await
        .unwrap();
    assert!(!store.enqueue(vec![a], NOW, 100).await.unwrap()[0].duplicate);
}

pub async fn a_batch_is_all_or_nothing_and_the_cap_holds(store: &Fixture) {
    store
        .enqueue(vec![job("a"), job("b")], NOW, 3)
        .await
        .unwrap();
    let err = store
        .enqueue(vec![job("c"), job("d")], NOW, 3)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::QueueFull {
                pending: 2,
                limit: 3
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.counts(NOW).await.unwrap()["noop"][&JobStatus::Pending],
        2
    );
}

pub async fn list_filters_and_pages_newest_first(store: &Fixture) {
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
    let counts = store.counts(NOW + 10).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 5);
    assert_eq!(counts["noop"][&JobStatus::Scheduled], 1);
    assert_eq!(store.oldest_ready(NOW + 10).await.unwrap(), Some(NOW));
}

pub async fn two_stores_claiming_at_once_never_share_a_job(store: &Fixture) {
    let jobs: Vec<NewJob> = (0..2_000).map(|i| job(&format!("j{i}"))).collect();
    store.enqueue(jobs, NOW, 10_000).await.unwrap();
    let other = store.another().await;
    let claimer = |store: Store, me: &'static str| async move {
        let mut mine = Vec::new();
        loop {
            let got = store.claim(me, &types(), 50, NOW).await.unwrap();
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|c| c.job.id));
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claimer(store.store.clone(), "a")),
        tokio::spawn(claimer(other, "b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<&String> = a.iter().chain(b.iter()).collect();
    assert_eq!(a.len() + b.len(), 2_000, "every job claimed");
    assert_eq!(all.len(), 2_000, "no job claimed by both stores");
}

pub async fn finish_answers_after_the_commit_and_runs_then(store: &Fixture) {
    store
        .enqueue((0..20).map(|i| job(&i.to_string())).collect(), NOW, 100)
        .await
        .unwrap();
    let claimed = store.claim("me", &types(), 20, NOW).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut pending = Vec::new();
    for (i, c) in claimed.into_iter().enumerate() {
        let outcome = if i % 2 == 0 {
            Outcome::succeeded(false)
        } else {
            Outcome::failed("nope\0with a NUL".into(), AfterFailure::Dead)
        };
        let seen = seen.clone();
        let then = Box::new(move |answer: &Result<bool, StoreError>| {
            seen.lock().unwrap().push(matches!(answer, Ok(true)));
        });
        pending.push(
            store
                .finish(c.lease, outcome, NOW, Some(then))
                .await
                .unwrap(),
        );
    }
    for p in pending {
        assert!(p.committed().await.unwrap());
    }
    assert_eq!(seen.lock().unwrap().len(), 20);
    assert!(seen.lock().unwrap().iter().all(|ok| *ok));
    let counts = store.counts(NOW).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Dead], 10);
    assert_eq!(
        counts["noop"]
            .get(&JobStatus::Running)
            .copied()
            .unwrap_or(0),
        0
    );
}
