//! The operator's verbs: retry, cancel, purge.

use super::Fixture;
use crate::clock::Millis;
use crate::store::Store;
use crate::store::job::{AfterFailure, JobStatus, NewJob, Refusal};

const NOW: Millis = 1_800_000_000_000;

async fn dead_job(store: &Store, key: Option<&str>) -> String {
    let mut job = NewJob::new("n", "noop", serde_json::Map::new());
    job.unique_key = key.map(String::from);
    let id = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    let claimed = store.claim("me", &["noop".into()], 1, NOW).await.unwrap();
    let lease = claimed[0].lease.clone();
    assert!(
        store
            .fail(lease, "boom".into(), AfterFailure::Dead, NOW)
            .await
            .unwrap()
    );
    id
}

pub async fn retry_revives_a_dead_job_with_fresh_attempts(store: &Fixture) {
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
    assert_eq!(
        store.retry("nope".into(), NOW).await.unwrap(),
        Err(Refusal::NotFound)
    );
}

pub async fn retry_respects_a_held_unique_key(store: &Fixture) {
    let dead = dead_job(store, Some("k")).await;
    let mut job = NewJob::new("n", "noop", serde_json::Map::new());
    job.unique_key = Some("k".into());
    let holder = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    assert_eq!(
        store.retry(dead, NOW).await.unwrap(),
        Err(Refusal::KeyHeld(holder))
    );
}

pub async fn cancel_refuses_running_jobs_and_purge_counts(store: &Fixture) {
    let dead = dead_job(store, None).await;
    let job = NewJob::new("n", "noop", serde_json::Map::new());
    let running = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    store.claim("me", &["noop".into()], 1, NOW).await.unwrap();
    assert_eq!(
        store.cancel(running, NOW).await.unwrap(),
        Err(Refusal::WrongStatus(JobStatus::Running))
    );
    assert_eq!(store.purge_dead(Some(NOW - 1)).await.unwrap(), 0);
    assert_eq!(store.purge_dead(None).await.unwrap(), 1);
    assert_eq!(
        store.cancel(dead, NOW).await.unwrap(),
        Err(Refusal::NotFound)
    );
}

pub async fn cancel_running_is_fenced_records_its_end_and_fails_the_cron_run(store: &Fixture) {
    use crate::store::history::{Ending, FinalStatus};
    use crate::store::job::{CANCELLED_WHILE_RUNNING, Lease};
    use crate::store::run::{NewRun, RunStatus, RunTrigger};
    let run = store
        .begin_run(NewRun {
            cron_id: "nightly".into(),
            scheduled_for: NOW,
            trigger: RunTrigger::Schedule,
            status: RunStatus::Running,
            now: NOW,
            instance: "me".into(),
            error: None,
        })
        .await
        .unwrap()
        .unwrap();
    let mut job = NewJob::new("n", "noop", serde_json::Map::new());
    job.cron_id = Some("nightly".into());
    job.cron_run = Some(run.id);
    let id = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    let lease = store.claim("me", &["noop".into()], 1, NOW).await.unwrap()[0]
        .lease
        .clone();
    // A lease that does not hold (another attempt, another holder) deletes
    // nothing.
    for stale in [
        Lease {
            attempt: lease.attempt + 1,
            ..lease.clone()
        },
        Lease {
            instance: "other".into(),
            ..lease.clone()
        },
    ] {
        let nothing = Ending::default();
        assert!(!store.cancel_running(stale, nothing, NOW + 1).await.unwrap());
    }
    assert!(store.get(id.clone(), NOW + 1).await.unwrap().is_some());
    assert_eq!(store.finished_job(id.clone()).await.unwrap(), None);
    let ending = Ending {
        ran_ms: Some(19),
        result: Some(serde_json::json!({"exit_code": null, "stdout": "half"})),
    };
    let cancelled = store.cancel_running(lease.clone(), ending.clone(), NOW + 20);
    assert!(cancelled.await.unwrap());
    assert!(store.get(id.clone(), NOW + 21).await.unwrap().is_none());
    // The history says how it ended, with what the attempt ran and returned.
    let record = store
        .finished_job(id.clone())
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(record.status, FinalStatus::Cancelled);
    assert_eq!(record.attempts, 1);
    assert_eq!(record.finished, NOW + 20);
    assert_eq!(record.started, Some(NOW));
    assert_eq!(record.duration_ms, Some(19));
    assert_eq!(record.result, ending.result);
    assert_eq!(record.cron_id.as_deref(), Some("nightly"));
    assert!(!store.cancel_running(lease, ending, NOW + 22).await.unwrap());
    assert_eq!(
        store.finished_job(id).await.unwrap().map(|r| r.finished),
        Some(NOW + 20),
        "a stale second cancel leaves the record alone"
    );
    let runs = store.runs("nightly".into(), 1).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert_eq!(runs[0].error.as_deref(), Some(CANCELLED_WHILE_RUNNING));
    assert_eq!(runs[0].duration_ms, Some(20));
}
