//! Cron runs: the once-only claim, history, switches.

use super::NOW;
use crate::clock::Millis;
use crate::store::run::{KEPT_RUNS, NewRun, RunStatus, RunTrigger};
use crate::store::postgres::PgStore;

pub fn run(scheduled_for: Millis, trigger: RunTrigger) -> NewRun {
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
        store
            .begin_run(run(NOW + i, RunTrigger::Schedule))
            .await
            .unwrap();
    }
    let runs = store.runs("nightly".into(), 1000).await.unwrap();
    assert_eq!(runs.len() as i64, KEPT_RUNS);
    assert_eq!(runs[0].scheduled_for, NOW + KEPT_RUNS + 19);
}

pub async fn switches_persist(store: &PgStore) {
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
