//! The crons' verbs: a scheduled run is recorded once, runs finish with
//! their status and duration, history is pruned, switches persist.

use super::Fixture;
use crate::clock::Millis;
use crate::store::job::NewJob;
use crate::store::run::{KEPT_RUNS, NewRun, RunStatus, RunTrigger};

const NOW: Millis = 1_800_000_000_000;

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

pub async fn a_scheduled_run_is_claimed_once(store: &Fixture) {
    assert!(
        store
            .begin_run(run(NOW, RunTrigger::Schedule))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .begin_run(run(NOW, RunTrigger::Schedule))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .begin_run(run(NOW, RunTrigger::CatchUp))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .begin_run(run(NOW, RunTrigger::Manual))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .begin_run(run(NOW, RunTrigger::Manual))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.last_scheduled("nightly".into()).await.unwrap(),
        Some(NOW)
    );
}

pub async fn finish_records_status_and_duration(store: &Fixture) {
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
    let last = store.last_runs().await.unwrap();
    assert_eq!(last["nightly"].0.id, r.id);
    assert_eq!(last["nightly"].1, None);
}

pub async fn history_keeps_the_last_hundred(store: &Fixture) {
    for i in 0..(KEPT_RUNS + 20) {
        store
            .begin_run(run(NOW + i, RunTrigger::Schedule))
            .await
            .unwrap();
    }
    let runs = store.runs("nightly".into(), 1000).await.unwrap();
    assert_eq!(runs.len() as i64, KEPT_RUNS);
    assert_eq!(runs[0].scheduled_for, NOW + KEPT_RUNS + 19);
}

pub async fn switches_persist(store: &Fixture) {
    store
        .set_cron_enabled("a".into(), false, NOW)
        .await
        .unwrap();
    store.set_cron_enabled("a".into(), true, NOW).await.unwrap();
    store
        .set_cron_enabled("b".into(), false, NOW)
        .await
        .unwrap();
    let switches = store.cron_switches().await.unwrap();
    assert_eq!(switches.get("a"), Some(&true));
    assert_eq!(switches.get("b"), Some(&false));
}

pub async fn two_stores_record_a_scheduled_run_once(store: &Fixture) {
    let other = store.another().await;
    for minute in 0..20 {
        let at = NOW + minute * 60_000;
        let (a, b) = tokio::join!(
            store.begin_run(run(at, RunTrigger::Schedule)),
            other.begin_run(run(at, RunTrigger::Schedule))
        );
        let fired = usize::from(a.unwrap().is_some()) + usize::from(b.unwrap().is_some());
        assert_eq!(fired, 1, "minute {minute} fired by exactly one store");
    }
}

pub async fn a_cron_job_settles_its_run(store: &Fixture) {
    let r = store
        .begin_run(run(NOW, RunTrigger::Schedule))
        .await
        .unwrap()
        .unwrap();
    let mut j = NewJob::new("cron", "noop", serde_json::Map::new());
    j.cron_id = Some("nightly".into());
    j.cron_run = Some(r.id);
    let stored = store.enqueue(vec![j], NOW, 100).await.unwrap().remove(0);
    assert_eq!(
        store.active_cron_job("nightly".into()).await.unwrap(),
        Some(stored.job.id.clone())
    );
    let c = store
        .claim("me", &["noop".to_string()], 1, NOW)
        .await
        .unwrap()
        .remove(0);
    assert!(store.complete(c.lease, true, NOW + 40).await.unwrap());
    let runs = store.runs("nightly".into(), 10).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Ok);
    assert_eq!(runs[0].job_id.as_deref(), Some(stored.job.id.as_str()));
    assert_eq!(runs[0].duration_ms, Some(40));
    assert_eq!(store.active_cron_job("nightly".into()).await.unwrap(), None);
    let last = store.last_runs().await.unwrap();
    assert_eq!(last["nightly"].1, Some(NOW + 40));
}
