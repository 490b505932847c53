//! The import verbs: a record becomes one job however often it is seen,
//! even after its job finished; attempts carry over under the job's own
//! limit; the cap holds; two stores importing at once take a record once.

use std::collections::HashSet;

use serde_json::Map;

use super::Fixture;
use crate::clock::Millis;
use crate::store::StoreError;
use crate::store::import::{ImportJob, Imported, unique_key};
use crate::store::job::{JobStatus, NewJob};

const NOW: Millis = 1_800_000_000_000;
const SOURCE: &str = "pocketbase:queues";

fn record(id: &str, attempts: u32) -> ImportJob {
    let mut job = NewJob::new(format!("job of {id}"), "noop", Map::new());
    job.unique_key = Some(unique_key(SOURCE, id));
    ImportJob {
        source: SOURCE.to_string(),
        record_id: id.to_string(),
        job,
        attempts,
    }
}

fn stored(imported: &Imported) -> &crate::store::job::Job {
    match imported {
        Imported::Stored(job) => job,
        other => panic!("expected a stored job, got {other:?}"),
    }
}

fn types() -> Vec<String> {
    vec!["noop".to_string()]
}

pub async fn a_record_becomes_one_job_even_after_it_finished(store: &Fixture) {
    let first = store
        .import(vec![record("r1", 0), record("r2", 0)], NOW, 100)
        .await
        .unwrap();
    let job = stored(&first[0]).clone();
    assert_eq!(job.unique_key.as_deref(), Some("pocketbase:queues:r1"));
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.attempts, 0);
    let again = store.import(vec![record("r1", 0)], NOW, 100).await.unwrap();
    assert_eq!(
        again,
        vec![Imported::Already {
            job_id: job.id.clone()
        }]
    );
    // The job runs and is deleted: its unique key is free, the ledger
    // still knows the record.
    let claimed = store.claim("me", &types(), 10, NOW).await.unwrap();
    assert_eq!(claimed.len(), 2);
    for c in claimed {
        assert!(store.complete(c.lease, false, NOW).await.unwrap());
    }
    let late = store
        .import(vec![record("r1", 0), record("r3", 0)], NOW, 100)
        .await
        .unwrap();
    assert_eq!(
        late[0],
        Imported::Already {
            job_id: job.id.clone()
        }
    );
    let r3 = stored(&late[1]).id.clone();
    let ledger = store
        .imported(SOURCE.into(), vec!["r1".into(), "r3".into(), "r9".into()])
        .await
        .unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger["r1"], job.id);
    assert_eq!(ledger["r3"], r3);
    assert!(
        store
            .imported("pocketbase:other".into(), vec!["r1".into()])
            .await
            .unwrap()
            .is_empty(),
        "the ledger is per source"
    );
}

pub async fn a_record_named_twice_in_one_batch_is_one_job(store: &Fixture) {
    let out = store
        .import(vec![record("r1", 0), record("r1", 0)], NOW, 100)
        .await
        .unwrap();
    let job = stored(&out[0]);
    assert_eq!(
        out[1],
        Imported::Already {
            job_id: job.id.clone()
        }
    );
    assert_eq!(
        store.counts(NOW).await.unwrap()["noop"][&JobStatus::Pending],
        1
    );
}

pub async fn attempts_carry_over_and_a_used_up_record_is_stored_dead(store: &Fixture) {
    let mut capped = record("capped", 1);
    capped.job.retry_count = Some(0);
    let out = store
        .import(
            vec![record("fresh", 2), record("spent", 4), capped],
            NOW,
            100,
        )
        .await
        .unwrap();
    let fresh = stored(&out[0]);
    assert_eq!((fresh.attempts, fresh.max_attempts), (2, 4));
    assert_eq!(fresh.status, JobStatus::Pending);
    assert_eq!(fresh.last_error, None);
    for (i, attempts, max) in [(1, 4, 4), (2, 1, 1)] {
        let dead = stored(&out[i]);
        assert_eq!(dead.status, JobStatus::Dead, "{dead:?}");
        assert_eq!((dead.attempts, dead.max_attempts), (attempts, max));
        let error = dead.last_error.clone().unwrap_or_default();
        assert!(
            error.starts_with(&format!(
                "used {attempts} attempts in pocketbase:queues before cronq took it over, and cronq allows {max}"
            )),
            "{error}"
        );
        let (read, _) = store.get(dead.id.clone(), NOW).await.unwrap().unwrap();
        assert_eq!(read.status, JobStatus::Dead);
        assert_eq!(read.last_error, dead.last_error);
        // Its history record, as a job that dies here leaves, so `job`
        // still answers `dead` after a purge.
        let record = store.finished_job(dead.id.clone()).await.unwrap();
        let record = record.expect("a dead record has its history record");
        assert_eq!(record.status, crate::store::history::FinalStatus::Dead);
        assert_eq!((record.attempts, record.finished), (attempts, NOW));
        assert_eq!(record.last_error, dead.last_error);
    }
    assert_eq!(store.finished_job(fresh.id.clone()).await.unwrap(), None);
    let counts = store.counts(NOW).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 1);
    assert_eq!(counts["noop"][&JobStatus::Dead], 2);
    // The next claim is the third attempt of four.
    let claimed = store.claim("me", &types(), 10, NOW).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].job.attempts, 3);
    // A retried dead one starts again from zero.
    let revived = store
        .retry(stored(&out[1]).id.clone(), NOW)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((revived.attempts, revived.status), (0, JobStatus::Pending));
}

pub async fn an_import_over_the_cap_stores_nothing(store: &Fixture) {
    let err = store
        .import(vec![record("a", 0), record("b", 0), record("c", 0)], NOW, 2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::QueueFull { .. }), "{err}");
    assert!(
        store
            .imported(SOURCE.into(), vec!["a".into()])
            .await
            .unwrap()
            .is_empty(),
        "nothing of a refused import reaches the ledger"
    );
    // Dead records do not count toward the cap.
    let out = store
        .import(vec![record("a", 0), record("b", 9), record("c", 0)], NOW, 2)
        .await
        .unwrap();
    assert_eq!(stored(&out[1]).status, JobStatus::Dead);
}

pub async fn two_stores_importing_at_once_take_each_record_once(store: &Fixture) {
    let other = store.another().await;
    let ids: Vec<String> = (0..300).map(|i| format!("rec{i:03}")).collect();
    let run = |store: crate::store::Store, ids: Vec<String>| async move {
        let mut stored = Vec::new();
        for chunk in ids.chunks(50) {
            let batch = chunk.iter().map(|id| record(id, 0)).collect();
            for out in store.import(batch, NOW, 10_000).await.unwrap() {
                if let Imported::Stored(job) = out {
                    stored.push(job.id);
                }
            }
        }
        stored
    };
    let mut reversed = ids.clone();
    reversed.reverse();
    let (a, b) = tokio::join!(
        tokio::spawn(run(store.store.clone(), ids.clone())),
        tokio::spawn(run(other, reversed))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<&String> = a.iter().chain(b.iter()).collect();
    assert_eq!(
        a.len() + b.len(),
        300,
        "every record stored once: {a:?} {b:?}"
    );
    assert_eq!(all.len(), 300);
    let ledger = store.imported(SOURCE.into(), ids).await.unwrap();
    let jobs: HashSet<&String> = ledger.values().collect();
    assert_eq!(jobs, all);
    assert_eq!(
        store.counts(NOW).await.unwrap()["noop"][&JobStatus::Pending],
        300
    );
}
