//! Instances, the system_queue tick, and outcomes answered after commit.

use std::sync::{Arc, Mutex};

use super::{NOW, job, types};
use crate::clock::Millis;
use crate::store::job::JobStatus;
use crate::store::StoreError;
use crate::store::run::{NewRun, RunStatus, RunTrigger};
use crate::store::instance::InstanceRow;
use crate::store::job::{AfterFailure, Outcome};
use crate::store::postgres::PgStore;
use crate::store::tick::Tick;

use super::crons::run;

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
    store
        .register_instance(instance("b", NOW + 1))
        .await
        .unwrap();
    assert!(
        store
            .heartbeat_instance(instance("a", NOW), NOW + 60_000)
            .await
            .unwrap()
    );
    let rows = store.instances().await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(rows[0].heartbeat_at, NOW + 60_000);
    assert_eq!(rows[1], instance("b", NOW + 1));
    store.remove_instances(vec!["a".into()]).await.unwrap();
    // A removed instance that heartbeats registers again.
    assert!(
        !store
            .heartbeat_instance(instance("a", NOW), NOW + 120_000)
            .await
            .unwrap()
    );
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
    store
        .register_instance(instance("dead", NOW - 600_000))
        .await
        .unwrap();
    store
        .enqueue(vec![job("a"), job("b")], NOW, 100)
        .await
        .unwrap();
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
    let ids: Vec<String> = store
        .instances()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
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
