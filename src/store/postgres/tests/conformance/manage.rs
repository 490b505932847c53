//! The operator's retry, cancel and purge.

use super::{NOW, job, types};
use crate::store::job::JobStatus;
use crate::store::job::AfterFailure;
use crate::store::job::Refusal;
use crate::store::postgres::PgStore;

async fn dead_job(store: &PgStore, key: Option<&str>) -> String {
    let mut j = job("n");
    j.unique_key = key.map(String::from);
    let id = store.enqueue(vec![j], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
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
    assert_eq!(
        store.retry("nope".into(), NOW).await.unwrap(),
        Err(Refusal::NotFound)
    );
}

pub async fn retry_respects_a_held_unique_key(store: &PgStore) {
    let dead = dead_job(store, Some("k")).await;
    let mut j = job("n");
    j.unique_key = Some("k".into());
    let holder = store.enqueue(vec![j], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    assert_eq!(
        store.retry(dead, NOW).await.unwrap(),
        Err(Refusal::KeyHeld(holder))
    );
}

pub async fn cancel_refuses_running_jobs_and_purge_counts(store: &PgStore) {
    let dead = dead_job(store, None).await;
    let running = store.enqueue(vec![job("n")], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    store.claim("me", &types(), 1, NOW).await.unwrap();
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
    let waiting = store.enqueue(vec![job("w")], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    assert_eq!(store.cancel(waiting.clone(), NOW).await.unwrap(), Ok(()));
    assert!(store.get(waiting, NOW).await.unwrap().is_none());
}
