//! Moving a queue between databases (`store::copy`): the export reads
//! waiting and dead jobs as stored, page by page; the import writes them as
//! given, once; switches and runs likewise; a dry run stores nothing.

use serde_json::{Map, json};

use super::Fixture;
use crate::clock::Millis;
use crate::store::copy::{CopiedJob, CopiedRun, CopiedSwitch, JobCopy, SwitchCopy};
use crate::store::job::{AfterFailure, AttemptError, JobStatus, NewJob, RunAt};
use crate::store::run::{NewRun, RunStatus, RunTrigger};

const NOW: Millis = 1_800_000_000_000;

fn types() -> Vec<String> {
    vec!["noop".to_string()]
}

/// Every job `export_jobs` gives, `limit` at a time.
async fn export_all(store: &Fixture, limit: usize) -> (Vec<CopiedJob>, usize) {
    let (mut all, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let (page, next) = store.export_jobs(after.take(), limit).await.unwrap();
        assert!(page.len() <= limit);
        pages += 1;
        all.extend(page);
        match next {
            Some(next) => after = Some(next),
            None => return (all, pages),
        }
    }
}

pub async fn export_reads_waiting_and_dead_jobs_as_stored(store: &Fixture) {
    let mut scheduled = NewJob::new("later", "noop", Map::new());
    scheduled.when = RunAt::At(NOW + 60_000);
    scheduled.unique_key = Some("k1".into());
    scheduled.priority = 7;
    let mut failing = NewJob::new("fails", "noop", Map::new());
    failing.retry_count = Some(0);
    failing.when = RunAt::At(NOW - 2_000);
    let mut runs = NewJob::new("runs", "noop", Map::new());
    runs.when = RunAt::At(NOW - 1_000);
    let stored = store
        .enqueue(
            vec![
                failing,
                runs,
                scheduled,
                NewJob::new("waits", "noop", Map::new()),
            ],
            NOW,
            100,
        )
        .await
        .unwrap();
    let ids: Vec<String> = stored.iter().map(|e| e.job.id.clone()).collect();
    // The oldest first: the failing one dies, the next is left running.
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert_eq!(c.job.id, ids[0]);
    assert!(
        store
            .fail(c.lease, "boom".into(), AfterFailure::Dead, NOW + 5)
            .await
            .unwrap()
    );
    let c = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    assert_eq!(c.job.id, ids[1]);
    let (all, pages) = export_all(store, 1).await;
    assert!(pages >= 3, "paged: {pages}");
    let exported: Vec<&str> = all.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(exported.len(), 3, "{exported:?}");
    assert!(
        !exported.contains(&ids[1].as_str()),
        "a running job is left out"
    );

    let dead = all.iter().find(|j| j.id == ids[0]).expect("the dead job");
    assert!(dead.dead);
    assert_eq!(dead.attempts, 1);
    assert_eq!(dead.last_error.as_deref(), Some("boom"));
    assert_eq!(
        dead.errors,
        vec![AttemptError {
            attempt: 1,
            at: NOW + 5,
            error: "boom".into()
        }]
    );
    let later = all
        .iter()
        .find(|j| j.id == ids[2])
        .expect("the scheduled job");
    assert!(!later.dead);
    assert_eq!(later.status(NOW), JobStatus::Scheduled);
    assert_eq!(later.run_at, NOW + 60_000);
    assert_eq!(later.created, NOW);
    assert_eq!(later.unique_key.as_deref(), Some("k1"));
    assert_eq!(later.priority, 7);
    assert_eq!(later.payload["type"], "noop");
    assert_eq!(later.unreadable, None);
    assert_eq!(later.fault(), None);
}

fn copied(id: &str) -> CopiedJob {
    CopiedJob {
        id: id.into(),
        name: format!("copied {id}"),
        description: "from elsewhere".into(),
        payload: json!({"type": "noop", "data": {"n": 1}, "options": {"retry_count": 2}}),
        dead: false,
        attempts: 1,
        max_attempts: None,
        priority: 3,
        timeout_s: Some(9),
        run_at: NOW - 1_000,
        last_error: Some("the first attempt failed".into()),
        unique_key: None,
        cron_id: Some("nightly".into()),
        created: NOW - 10_000,
        updated: NOW - 1_000,
        errors: vec![AttemptError {
            attempt: 1,
            at: NOW - 1_000,
            error: "the first attempt failed".into(),
        }],
        unreadable: None,
    }
}

pub async fn import_stores_jobs_as_given_once(store: &Fixture) {
    let mut holder = NewJob::new("holder", "noop", Map::new());
    holder.unique_key = Some("held".into());
    store.enqueue(vec![holder], NOW, 100).await.unwrap();
    let keyed = CopiedJob {
        unique_key: Some("held".into()),
        ..copied("keyedjob0000001")
    };
    let dead_keyed = CopiedJob {
        unique_key: Some("held".into()),
        dead: true,
        ..copied("deadkeyed000001")
    };
    let not_a_job = CopiedJob {
        payload: json!("not json"),
        ..copied("notajob00000001")
    };
    let batch = vec![
        copied("copiedjob000001"),
        keyed,
        dead_keyed,
        not_a_job,
        CopiedJob {
            dead: true,
            ..copied("copieddead00001")
        },
    ];
    let dry = store.import_jobs(batch.clone(), true).await.unwrap();
    assert!(
        store
            .get("copiedjob000001".into(), NOW)
            .await
            .unwrap()
            .is_none(),
        "a dry run stored a job"
    );
    let done = store.import_jobs(batch.clone(), false).await.unwrap();
    assert_eq!(dry, done, "a dry run answers what the copy does");
    assert_eq!(done[0], JobCopy::Copied);
    assert_eq!(done[1], JobCopy::KeyHeld);
    assert_eq!(done[2], JobCopy::Copied, "a dead job holds no key");
    assert!(matches!(&done[3], JobCopy::Invalid(why) if why.contains("notajob00000001")));
    assert_eq!(done[4], JobCopy::Copied);

    let (job, errors) = store
        .get("copiedjob000001".into(), NOW)
        .await
        .unwrap()
        .expect("copied");
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.attempts, 1);
    assert_eq!(job.max_attempts, 3, "from the payload's retry_count");
    assert_eq!(job.timeout_s, 9);
    assert_eq!(job.priority, 3);
    assert_eq!(job.run_at, NOW - 1_000);
    assert_eq!(job.created, NOW - 10_000);
    assert_eq!(job.name, "copied copiedjob000001");
    assert_eq!(job.cron_id.as_deref(), Some("nightly"));
    assert_eq!(job.last_error.as_deref(), Some("the first attempt failed"));
    assert_eq!(job.payload["data"]["n"], 1);
    assert_eq!(errors, batch[0].errors);
    let (dead, _) = store
        .get("copieddead00001".into(), NOW)
        .await
        .unwrap()
        .expect("copied");
    assert_eq!(dead.status, JobStatus::Dead);
    // Counted as any stored job is.
    let counts = store.counts(NOW).await.unwrap();
    assert_eq!(counts["noop"][&JobStatus::Pending], 2);
    assert_eq!(counts["noop"][&JobStatus::Dead], 2);

    // Again: everything is there, nothing changes.
    let again = store.import_jobs(batch, false).await.unwrap();
    assert_eq!(again[0], JobCopy::Present);
    assert_eq!(again[2], JobCopy::Present);
    assert_eq!(again[4], JobCopy::Present);
    assert_eq!(store.counts(NOW).await.unwrap(), counts);
    // And what was imported exports as it was given.
    let (all, _) = export_all(store, 100).await;
    let back = all
        .iter()
        .find(|j| j.id == "copiedjob000001")
        .expect("exported");
    assert_eq!(back, &copied("copiedjob000001"));
}

pub async fn switches_and_runs_copy_once(store: &Fixture) {
    store
        .set_cron_enabled("here".into(), false, NOW)
        .await
        .unwrap();
    let switches = vec![
        CopiedSwitch {
            cron_id: "new".into(),
            enabled: false,
            updated: NOW - 5,
        },
        CopiedSwitch {
            cron_id: "here".into(),
            enabled: false,
            updated: NOW - 5,
        },
        CopiedSwitch {
            cron_id: "other".into(),
            enabled: true,
            updated: NOW - 5,
        },
    ];
    store
        .set_cron_enabled("other".into(), false, NOW)
        .await
        .unwrap();
    let dry = store.import_switches(switches.clone(), true).await.unwrap();
    assert_eq!(store.cron_switches().await.unwrap().get("new"), None);
    let done = store
        .import_switches(switches.clone(), false)
        .await
        .unwrap();
    assert_eq!(dry, done);
    assert_eq!(
        done,
        vec![SwitchCopy::Copied, SwitchCopy::Same, SwitchCopy::Kept]
    );
    let now_there = store.cron_switches().await.unwrap();
    assert_eq!(now_there.get("new"), Some(&false));
    assert_eq!(
        now_there.get("other"),
        Some(&false),
        "the target's own kept"
    );
    assert_eq!(
        store.import_switches(switches, false).await.unwrap(),
        vec![SwitchCopy::Same, SwitchCopy::Same, SwitchCopy::Kept]
    );
    let exported = store.export_switches().await.unwrap();
    assert!(exported.contains(&CopiedSwitch {
        cron_id: "new".into(),
        enabled: false,
        updated: NOW - 5,
    }));

    // Runs: one the target has (the same scheduled minute), two it lacks.
    store
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
        .unwrap();
    let run = |id: i64, at: Millis, trigger: &str| CopiedRun {
        id,
        cron_id: "nightly".into(),
        scheduled_for: at,
        trigger: trigger.into(),
        status: "ok".into(),
        started: Some(at + 1),
        finished: Some(at + 41),
        duration_ms: Some(40),
        error: None,
        job_id: Some("somejob00000001".into()),
        instance: Some("elsewhere".into()),
    };
    let runs = vec![
        run(7, NOW - 120_000, "schedule"),
        run(8, NOW - 60_000, "manual"),
        run(9, NOW, "schedule"),
    ];
    assert_eq!(
        store.import_runs(runs.clone(), true).await.unwrap(),
        vec![true, true, false]
    );
    assert_eq!(store.runs("nightly".into(), 10).await.unwrap().len(), 1);
    assert_eq!(
        store.import_runs(runs.clone(), false).await.unwrap(),
        vec![true, true, false]
    );
    assert_eq!(
        store.import_runs(runs, false).await.unwrap(),
        vec![false, false, false]
    );
    let history = store.runs("nightly".into(), 10).await.unwrap();
    assert_eq!(history.len(), 3);
    let manual = history
        .iter()
        .find(|r| r.trigger == "manual")
        .expect("copied");
    assert_eq!(manual.status, RunStatus::Ok);
    assert_eq!(manual.duration_ms, Some(40));
    assert_eq!(manual.started, Some(NOW - 60_000 + 1));
    assert_eq!(manual.job_id.as_deref(), Some("somejob00000001"));
    let exported = store.export_runs(None, 2).await.unwrap();
    assert_eq!(exported.len(), 2);
    let rest = store.export_runs(Some(exported[1].id), 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(exported[0].id < exported[1].id && exported[1].id < rest[0].id);
}

pub async fn finished_job_records_copy_once_oldest_first(store: &Fixture) {
    use crate::store::history::{FinalStatus, FinishedJob, HistoryFilter};
    // One record the store made itself: a job that succeeded here.
    store
        .enqueue(vec![NewJob::new("here", "noop", Map::new())], NOW, 100)
        .await
        .unwrap();
    let claimed = store.claim("me", &types(), 1, NOW).await.unwrap().remove(0);
    let done = store.finish(
        claimed.lease,
        crate::store::job::Outcome::succeeded(false),
        NOW + 5,
        None,
    );
    assert!(done.await.unwrap().committed().await.unwrap());
    let record = |id: &str, status: FinalStatus, finished: Millis| FinishedJob {
        seq: 0,
        id: id.into(),
        name: format!("copied {id}"),
        description: "from elsewhere".into(),
        job_type: "email".into(),
        status,
        attempts: 2,
        max_attempts: 4,
        priority: 3,
        run_at: NOW - 9_000,
        last_error: Some("smtp: 421".into()),
        unique_key: Some(format!("key-{id}")),
        cron_id: Some("nightly".into()),
        created: NOW - 10_000,
        started: Some(NOW - 8_000),
        finished,
        duration_ms: Some(120),
        result: Some(json!({"message_id": "<m@x>", "recipients": ["a@example.com"]})),
    };
    let exported_here = store.export_history(None, 10).await.unwrap();
    assert_eq!(exported_here.len(), 1);
    let here_id = exported_here[0].id.clone();
    let records = vec![
        record("copiedjob000001", FinalStatus::Succeeded, NOW - 2_000),
        record("copiedjob000002", FinalStatus::Cancelled, NOW - 1_000),
        // A record of a job the target has a record of: kept as it is.
        FinishedJob {
            id: here_id.clone(),
            ..record("x", FinalStatus::Dead, NOW)
        },
    ];
    assert_eq!(
        store.import_history(records.clone(), true).await.unwrap(),
        vec![true, true, false]
    );
    assert_eq!(
        store.finished_job("copiedjob000001".into()).await.unwrap(),
        None
    );
    assert_eq!(
        store.import_history(records.clone(), false).await.unwrap(),
        vec![true, true, false]
    );
    assert_eq!(
        store.import_history(records, false).await.unwrap(),
        vec![false, false, false],
        "a second copy copies nothing"
    );
    let copied = store.finished_job("copiedjob000001".into()).await.unwrap();
    let copied = copied.expect("copied");
    assert_eq!(
        FinishedJob {
            seq: 0,
            ..copied.clone()
        },
        record("copiedjob000001", FinalStatus::Succeeded, NOW - 2_000)
    );
    let kept = store.finished_job(here_id.clone()).await.unwrap().unwrap();
    assert_eq!(
        (kept.status, kept.name.as_str()),
        (FinalStatus::Succeeded, "here")
    );
    // Exported oldest first, by seq, a page at a time.
    let first = store.export_history(None, 2).await.unwrap();
    let rest = store.export_history(Some(first[1].seq), 2).await.unwrap();
    let ids: Vec<&str> = first.iter().chain(&rest).map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [here_id.as_str(), "copiedjob000001", "copiedjob000002"]
    );
    // Listed as the target's own records are.
    let (listed, _) = store
        .list_finished(HistoryFilter {
            status: Some(FinalStatus::Cancelled),
            limit: 10,
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "copiedjob000002");
}
