//! Instances and the `system_queue` tick: registration, heartbeats, the
//! release of a dead daemon's jobs, and a run another daemon already fired.

use serde_json::Map;

use super::Fixture;
use crate::clock::Millis;
use crate::store::instance::InstanceRow;
use crate::store::job::{JobStatus, NewJob};
use crate::store::run::{NewRun, RunStatus, RunTrigger};
use crate::store::tick::Tick;

const NOW: Millis = 1_800_000_000_000;

fn row(id: &str, at: Millis) -> InstanceRow {
    InstanceRow {
        id: id.into(),
        host: "host".into(),
        boot_id: "boot".into(),
        pid: 42,
        start_ticks: 7,
        version: "test".into(),
        started: at,
        heartbeat_at: at,
        workers_max: 5,
        workers_busy: 0,
        clock_offset_ms: 0,
    }
}

fn tick(me: &str, now: Millis, run: Option<NewRun>, dead: &'static str) -> Tick {
    Tick {
        now,
        instance: row(me, now),
        leases: Vec::new(),
        run,
        stale_before: now - 300_000,
        judge: Box::new(move |r: &InstanceRow| r.id == dead),
        types: vec!["noop".into()],
        limit: 10,
        quotas: Vec::new(),
        prune: None,
    }
}

pub async fn instances_register_heartbeat_and_go(store: &Fixture) {
    store.register_instance(row("a", NOW)).await.unwrap();
    store.register_instance(row("b", NOW + 1)).await.unwrap();
    let busy = InstanceRow {
        workers_busy: 3,
        // Not the store's to take from the caller.
        clock_offset_ms: 12_345,
        ..row("a", NOW)
    };
    assert!(store.heartbeat_instance(busy, NOW + 5).await.unwrap());
    let rows = store.instances().await.unwrap();
    let a = rows.iter().find(|r| r.id == "a").expect("a registered");
    assert_eq!(a.heartbeat_at, NOW + 5);
    assert_eq!((a.workers_max, a.workers_busy), (5, 3), "{a:?}");
    assert_eq!(a.clock_offset_ms, 0, "measured by the store, 0 here: {a:?}");
    assert_eq!(rows.len(), 2);
    store.remove_instances(vec!["a".into()]).await.unwrap();
    assert_eq!(store.instances().await.unwrap().len(), 1);
    // A heartbeat of a removed instance registers it again.
    assert!(
        !store
            .heartbeat_instance(row("a", NOW), NOW + 9)
            .await
            .unwrap()
    );
    assert_eq!(store.instances().await.unwrap().len(), 2);
}

pub async fn a_tick_recovers_a_dead_instance_and_claims(store: &Fixture) {
    store.register_instance(row("dead", NOW)).await.unwrap();
    store.register_instance(row("me", NOW)).await.unwrap();
    let job = NewJob::new("j", "noop", Map::new());
    let id = store.enqueue(vec![job], NOW, 100).await.unwrap()[0]
        .job
        .id
        .clone();
    assert_eq!(
        store
            .claim("dead", &["noop".into()], 1, NOW)
            .await
            .unwrap()
            .len(),
        1
    );
    let ticked = store
        .tick(tick("me", NOW + 10, None, "dead"))
        .await
        .unwrap();
    assert_eq!(ticked.recovered.len(), 1);
    assert_eq!(ticked.recovered[0].job_id, id);
    assert_eq!(ticked.removed_instances, 1);
    assert_eq!(ticked.claimed.len(), 1, "the released job is claimed again");
    assert_eq!(ticked.claimed[0].job.attempts, 2);
    assert_eq!(ticked.claimed[0].lease.instance, "me");
    let (job, errors) = store.get(id, NOW + 10).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(errors.len(), 1, "the abandoned attempt is recorded");
    let ids: Vec<String> = store
        .instances()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["me"]);
}

pub async fn a_tick_of_a_run_another_store_fired_only_heartbeats(store: &Fixture) {
    let other = store.another().await;
    let run = |me: &str| NewRun {
        cron_id: "system_queue".into(),
        scheduled_for: NOW,
        trigger: RunTrigger::Schedule,
        status: RunStatus::Running,
        now: NOW,
        instance: me.into(),
        error: None,
    };
    store
        .enqueue(vec![NewJob::new("j", "noop", Map::new())], NOW, 100)
        .await
        .unwrap();
    let first = store
        .tick(tick("a", NOW, Some(run("a")), ""))
        .await
        .unwrap();
    assert!(first.fired);
    assert_eq!(first.claimed.len(), 1);
    let second = other
        .tick(tick("b", NOW, Some(run("b")), ""))
        .await
        .unwrap();
    assert!(!second.fired, "the minute was fired by the first store");
    assert!(second.claimed.is_empty());
    assert!(second.run.is_none());
    let ids: Vec<String> = store
        .instances()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        ids.contains(&"b".to_string()),
        "the second store still heartbeated"
    );
}

pub async fn tick_heartbeats_recovers_and_claims_once_per_run(store: &Fixture) {
    store
        .register_instance(row("dead", NOW - 600_000))
        .await
        .unwrap();
    store
        .enqueue(
            vec![
                NewJob::new("a", "noop", Map::new()),
                NewJob::new("b", "noop", Map::new()),
            ],
            NOW,
            100,
        )
        .await
        .unwrap();
    store
        .claim("dead", &["noop".to_string()], 1, NOW)
        .await
        .unwrap();
    let tick = |run: Option<NewRun>| Tick {
        now: NOW + 60_000,
        instance: row("me", NOW),
        leases: vec![],
        run,
        stale_before: NOW - 300_000,
        judge: Box::new(|row: &InstanceRow| row.id == "dead"),
        types: vec!["noop".into()],
        limit: 10,
        quotas: Vec::new(),
        prune: None,
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
