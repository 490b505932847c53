//! Events in, figures out: the state's aggregation, its handling of
//! `lagged`, the poll fallback, and its bounds.

use serde_json::json;

use super::*;

const T0: &str = "2026-01-01T00:00:10.000Z";

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn event(line: serde_json::Value) -> Event {
    Event::parse(line.to_string().as_bytes()).expect("an event")
}

fn job_event(kind: &str, id: &str, attempt: u32, at: &str) -> Event {
    event(json!({"event": kind, "at": at,
        "job": {"id": id, "name": format!("job {id}"), "type": "email", "attempt": attempt, "cron_id": null}}))
}

fn live() -> State {
    let mut s = State::new("/run/cronq/admin.sock".into());
    s.watch = Watch::Live;
    s
}

#[test]
fn events_in_counters_out() {
    let mut s = live();
    let now = at(T0);
    for i in 0..5 {
        s.apply_event(job_event("started", &format!("j{i}"), 1, T0), now);
    }
    for i in 0..3 {
        s.apply_event(job_event("succeeded", &format!("j{i}"), 1, T0), now);
    }
    s.apply_event(
        job_event("failed", "j3", 1, "2026-01-01T00:00:11.200Z"),
        now,
    );
    s.apply_event(job_event("dead", "j4", 1, "2026-01-01T00:00:11.900Z"), now);
    let second = at(T0).as_second();
    let b = s.throughput.at(second);
    assert_eq!((b.started, b.succeeded, b.failed), (5, 3, 0));
    assert_eq!(s.throughput.at(second + 1).failed, 2);
    assert!(s.running.is_empty(), "every started job ended");
    let failures: Vec<(&str, bool)> = s.failures.iter().map(|f| (f.id.as_str(), f.dead)).collect();
    assert_eq!(failures, [("j4", true), ("j3", false)], "newest first");
    // The series the sparkline draws: the 60 complete seconds before now.
    let series = s.throughput.series(second + 2);
    assert_eq!(series[58].started, 5);
    assert_eq!(series[59].failed, 2);
}

#[test]
fn running_jobs_follow_started_progress_and_the_end() {
    let mut s = live();
    let now = at(T0);
    s.apply_event(job_event("started", "a", 2, T0), now);
    s.apply_event(
        event(json!({"event": "progress", "at": T0, "job": {"id": "a", "name": "x", "type": "email", "attempt": 2},
            "progress": {"done": 40, "total": 100, "message": "rows", "at": T0}})),
        now,
    );
    let r = &s.running["a"];
    assert_eq!((r.attempt, r.started), (2, Some(at(T0))));
    assert_eq!(
        r.progress.as_ref().map(|p| (p.done, p.total)),
        Some((40, Some(100)))
    );
    s.apply_event(job_event("cancelled", "a", 2, T0), now);
    assert!(s.running.is_empty());
}

#[test]
fn a_failure_leaves_the_pane_once_its_job_succeeds_or_is_cancelled() {
    let mut s = live();
    let now = at(T0);
    s.apply_event(job_event("dead", "a", 1, T0), now);
    s.apply_event(job_event("failed", "b", 1, T0), now);
    s.apply_event(job_event("dead", "c", 1, T0), now);
    // `a` retried by hand, then succeeded; `b` cancelled while it waited.
    s.apply_event(job_event("started", "a", 1, T0), now);
    s.apply_event(job_event("succeeded", "a", 1, T0), now);
    s.apply_event(job_event("cancelled", "b", 1, T0), now);
    let left: Vec<&str> = s.failures.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(left, ["c"]);
}

#[test]
fn failed_then_dead_of_one_attempt_is_one_failure() {
    let mut s = live();
    let now = at(T0);
    s.apply_event(job_event("failed", "a", 3, T0), now);
    s.apply_event(job_event("dead", "a", 3, T0), now);
    assert_eq!(s.failures.len(), 1);
    assert!(s.failures[0].dead);
    assert_eq!(s.throughput.at(now.as_second()).failed, 1);
}

#[test]
fn lagged_counts_what_was_missed_and_asks_for_a_resync() {
    let mut s = live();
    s.needs_sync = false;
    assert!(!s.poll_jobs(), "live and in sync: events feed the jobs");
    s.apply_event(job_event("started", "stale", 1, T0), at(T0));
    s.apply_event(event(json!({"event": "lagged", "dropped": 1500})), at(T0));
    s.apply_event(event(json!({"event": "lagged", "dropped": 500})), at(T0));
    assert_eq!(s.lagged, 2000);
    assert!(s.needs_sync && s.poll_jobs());
    // The resync replaces the running table with the daemon's list: the
    // job whose end was among the dropped events is gone.
    let poll = Poll {
        running: Some(
            json!({"jobs": [{"id": "b", "name": "n", "type": "noop", "attempts": 1,
            "reserved_at": T0}]}),
        ),
        dead: Some(json!({"jobs": []})),
        scheduled: Some(json!({"jobs": []})),
        ..Poll::default()
    };
    s.apply_poll(poll, at(T0));
    assert_eq!(s.running.keys().collect::<Vec<_>>(), ["b"]);
    assert!(!s.needs_sync && !s.poll_jobs());
}

#[test]
fn memory_stays_bounded_under_a_flood() {
    let mut s = live();
    let now = at(T0);
    // A daemon that starts jobs and never says they ended, and fails many.
    for i in 0..20_000 {
        s.apply_event(job_event("started", &format!("r{i}"), 1, T0), now);
        s.apply_event(job_event("failed", &format!("f{i}"), 1, T0), now);
    }
    assert_eq!(s.running.len(), MAX_RUNNING);
    assert_eq!(s.failures.len(), MAX_FAILURES);
    assert!(s.needs_sync, "a full table asks the daemon for its list");
    assert_eq!(s.throughput.at(now.as_second()).started, 20_000);
    assert_eq!(s.failures[0].id, "f19999", "the ring keeps the newest");
}

#[test]
fn without_events_the_poll_counts_and_lists_failures() {
    let mut s = State::new("s".into());
    s.watch = Watch::Unsupported;
    let stats = |ok: u64, failed: u64, running: u64| {
        json!({"types": {"email": {"pending": 0, "scheduled": 0, "running": running, "dead": 1,
            "succeeded": ok, "failed": failed}}, "oldest_pending_age_s": null})
    };
    let dead = json!({"jobs": [{"id": "d1", "name": "old", "type": "email", "attempts": 4,
        "updated": "2026-01-01T00:00:01.000Z", "last_error": "550 no such user\ndetails"}]});
    let scheduled = json!({"jobs": [
        {"id": "s1", "name": "later", "type": "email", "attempts": 1, "updated": "2026-01-01T00:00:05.000Z", "last_error": "451 try again"},
        {"id": "s2", "name": "delayed", "type": "email", "attempts": 0, "last_error": null}]});
    let poll = |stats_v| Poll {
        stats: Some(stats_v),
        running: Some(json!({"jobs": []})),
        dead: Some(dead.clone()),
        scheduled: Some(scheduled.clone()),
        status: Some(json!({"version": "0.1.0", "uptime_s": 10})),
        ..Poll::default()
    };
    let figures = |s: &State, t: Timestamp| {
        let b = s.throughput.at(t.as_second() - 1);
        (b.started, b.succeeded, b.failed)
    };
    let t1 = at("2026-01-01T00:00:10.000Z");
    s.apply_poll(poll(stats(100, 5, 2)), t1);
    assert_eq!(figures(&s, t1), (0, 0, 0), "the first poll is the baseline");
    let t2 = at("2026-01-01T00:00:11.000Z");
    s.apply_poll(poll(stats(130, 7, 3)), t2);
    // 30 succeeded, 2 failed, and one more running than before: 33 started.
    assert_eq!(figures(&s, t2), (33, 30, 2));
    // A restarted daemon's totals start again from zero: no negative rate.
    let t3 = at("2026-01-01T00:00:12.000Z");
    s.apply_poll(poll(stats(3, 0, 0)), t3);
    assert_eq!(figures(&s, t3), (0, 0, 0));

    let failures: Vec<(&str, bool, Option<&str>)> = s
        .failures
        .iter()
        .map(|f| (f.id.as_str(), f.dead, f.error.as_deref()))
        .collect();
    assert_eq!(
        failures,
        [
            ("s1", false, Some("451 try again")),
            ("d1", true, Some("550 no such user"))
        ],
        "backing-off and dead jobs, newest first; a scheduled job without an error is no failure"
    );
}

#[test]
fn the_uptime_and_pauses_come_from_status() {
    let mut s = live();
    s.apply_poll(
        Poll {
            status: Some(json!({"version": "0.2.0", "uptime_s": 100, "paused": ["email"]})),
            ..Poll::default()
        },
        at(T0),
    );
    assert!(s.is_paused("email") && !s.is_paused("noop"));
    s.apply_event(event(json!({"event": "paused", "paused": ["*"]})), at(T0));
    assert!(s.is_paused("noop"), "* pauses every type");
    assert_eq!(s.link, Link::Up);
    s.unreachable("refused".into(), at(T0));
    assert!(matches!(s.link, Link::Down { .. }));
    assert_eq!(
        s.status.as_ref().map(|s| s.uptime_s),
        Some(100),
        "last known kept"
    );
}
