//! The event bus: what happens to jobs and crons, as it happens, for the
//! `watch` command, `wait` and the PostgreSQL relay.
//!
//! Events are in memory and best-effort; the durable truth is the store.
//! The choice a reader would question is tokio's `broadcast` channel: one
//! bounded ring of [`BUFFER`] events that every subscriber reads at its own
//! pace. A send never waits, so a watcher that stops reading can never slow
//! the queue: once it is more than [`BUFFER`] events behind, the oldest are
//! overwritten and its next read says how many it missed (`lagged`).
//!
//! An event is built only when someone may want it: a local watcher, or,
//! on a database shared with other daemons, a daemon whose watchers asked
//! for this one's events ([`Events::note_remote_interest`]). Two kinds are
//! built always, because they are cheap and rare next to the work they
//! describe: the end of a job (`succeeded`, `dead`, `cancelled`), which
//! [`Events::wait_for`] waiters and a short memory of recent ends
//! ([`RECENT_ENDS`]) need even when nobody watches; and `progress`, at most
//! one a second per running job.
//!
//! Each event is written as JSON once, by the first watcher that sends it,
//! and shared by the rest.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc};

use crate::clock::{Millis, format_ms, parse_rfc3339};
use crate::store::job::Job;

/// Events a subscriber may fall behind by before it is told `lagged`.
pub const BUFFER: usize = 8192;
/// Ended jobs remembered, so that a `wait` that comes a moment after its
/// job ended (a `noop` ends within a millisecond of its enqueue) still
/// learns how it ended.
pub const RECENT_ENDS: usize = 4096;
/// How long another daemon's interest in this one's events lasts, unless
/// renewed (it is renewed every third of this while it has watchers).
pub const REMOTE_INTEREST_MS: i64 = 30_000;
/// Longest `error` or `message` an event carries: enough for the first
/// lines of an error, short enough for a NOTIFY payload.
pub const MAX_EVENT_TEXT: usize = 1000;

/// The event names of PROTOCOL.md, `lagged` aside (it is not an event of
/// the queue but of one subscriber's reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Enqueued,
    Started,
    Progress,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
    CronFired,
    CronSkipped,
    Paused,
    Resumed,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Enqueued,
        EventKind::Started,
        EventKind::Progress,
        EventKind::Succeeded,
        EventKind::Failed,
        EventKind::Dead,
        EventKind::Cancelled,
        EventKind::CronFired,
        EventKind::CronSkipped,
        EventKind::Paused,
        EventKind::Resumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Enqueued => "enqueued",
            EventKind::Started => "started",
            EventKind::Progress => "progress",
            EventKind::Succeeded => "succeeded",
            EventKind::Failed => "failed",
            EventKind::Dead => "dead",
            EventKind::Cancelled => "cancelled",
            EventKind::CronFired => "cron_fired",
            EventKind::CronSkipped => "cron_skipped",
            EventKind::Paused => "paused",
            EventKind::Resumed => "resumed",
        }
    }

    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether the job is over: nothing more happens to it unless an
    /// operator retries it.
    pub fn ends_job(self) -> bool {
        matches!(
            self,
            EventKind::Succeeded | EventKind::Dead | EventKind::Cancelled
        )
    }
}

/// The `job` of a job event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRef {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub job_type: String,
    /// The attempt the event is about (0 before the first one).
    pub attempt: u32,
    pub cron_id: Option<String>,
}

impl JobRef {
    pub fn of(job: &Job, attempt: u32) -> JobRef {
        JobRef {
            id: job.id.clone(),
            name: job.name.clone(),
            job_type: job.job_type.clone(),
            attempt,
            cron_id: job.cron_id.clone(),
        }
    }
}

/// A running job's progress, as its handler last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
    pub message: Option<String>,
    #[serde(with = "time")]
    pub at: Millis,
}

/// One event. Fields that do not apply to its kind are `None` and left
/// out of its JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "event")]
    pub kind: EventKind,
    #[serde(with = "time")]
    pub at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobRef>,
    /// Cron events: the cron's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// `failed`: when the next attempt may run.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub retry_at: Option<Millis>,
    /// `failed`, `dead`: the attempt's error (cut to [`MAX_EVENT_TEXT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `succeeded`, `failed`, `dead`: how long the attempt ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Cron events: the fire time the run is for.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_time")]
    pub scheduled_for: Option<Millis>,
    /// `cron_fired`: the job the run enqueued, if it enqueues one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// `cron_skipped`: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `paused`, `resumed`: the type paused or resumed (none: every type).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// `paused`, `resumed`: the paused types now in force (`["*"]`: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Vec<String>>,
    /// Relayed from another daemon: not relayed again.
    #[serde(skip)]
    pub remote: bool,
    #[serde(skip)]
    line: OnceLock<String>,
}

impl Event {
    fn new(kind: EventKind, at: Millis) -> Event {
        Event {
            kind,
            at,
            job: None,
            cron: None,
            retry_at: None,
            error: None,
            duration_ms: None,
            progress: None,
            scheduled_for: None,
            job_id: None,
            reason: None,
            job_type: None,
            paused: None,
            remote: false,
            line: OnceLock::new(),
        }
    }

    /// A job event without details: `enqueued`, `started`, `succeeded`,
    /// `cancelled`.
    pub fn job(kind: EventKind, at: Millis, job: JobRef) -> Event {
        Event {
            job: Some(job),
            ..Event::new(kind, at)
        }
    }

    pub fn succeeded(at: Millis, job: JobRef, duration_ms: u64) -> Event {
        Event {
            duration_ms: Some(duration_ms),
            ..Event::job(EventKind::Succeeded, at, job)
        }
    }

    /// `failed` when `retry_at` is set, else `dead`.
    pub fn failed(
        at: Millis,
        job: JobRef,
        error: &str,
        retry_at: Option<Millis>,
        duration_ms: Option<u64>,
    ) -> Event {
        let kind = if retry_at.is_some() {
            EventKind::Failed
        } else {
            EventKind::Dead
        };
        Event {
            retry_at,
            error: Some(clip(error)),
            duration_ms,
            ..Event::job(kind, at, job)
        }
    }

    pub fn progress(job: JobRef, progress: Progress) -> Event {
        Event {
            progress: Some(progress.clone()),
            ..Event::job(EventKind::Progress, progress.at, job)
        }
    }

    pub fn cron_fired(
        at: Millis,
        cron: &str,
        scheduled_for: Millis,
        job_id: Option<&str>,
    ) -> Event {
        Event {
            cron: Some(cron.to_string()),
            scheduled_for: Some(scheduled_for),
            job_id: job_id.map(str::to_string),
            ..Event::new(EventKind::CronFired, at)
        }
    }

    pub fn cron_skipped(at: Millis, cron: &str, scheduled_for: Millis, reason: &str) -> Event {
        Event {
            cron: Some(cron.to_string()),
            scheduled_for: Some(scheduled_for),
            reason: Some(clip(reason)),
            ..Event::new(EventKind::CronSkipped, at)
        }
    }

    /// `paused` or `resumed` of `job_type` (none: every type), with the
    /// paused types in force afterwards. For the pause commands.
    pub fn pause(
        resumed: bool,
        at: Millis,
        job_type: Option<&str>,
        paused_now: Vec<String>,
    ) -> Event {
        let kind = if resumed {
            EventKind::Resumed
        } else {
            EventKind::Paused
        };
        Event {
            job_type: job_type.map(str::to_string),
            paused: Some(paused_now),
            ..Event::new(kind, at)
        }
    }

    /// The job id, for a job event.
    pub fn job_id(&self) -> Option<&str> {
        self.job.as_ref().map(|j| j.id.as_str())
    }

    /// The event as one JSON line (without its `\n`), written once.
    pub fn line(&self) -> &str {
        self.line.get_or_init(|| {
            // Every key is a string and every value plain: this cannot fail.
            serde_json::to_string(self).unwrap_or_default()
        })
    }

    /// An event read back from its JSON (a relayed one).
    pub fn from_value(value: serde_json::Value) -> Option<Event> {
        let mut event: Event = serde_json::from_value(value).ok()?;
        event.remote = true;
        Some(event)
    }
}

/// `text` cut to [`MAX_EVENT_TEXT`] characters.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_EVENT_TEXT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// A `lagged` line: `{"event":"lagged","dropped":N}`.
pub fn lagged_line(dropped: u64) -> String {
    format!("{{\"event\":\"lagged\",\"dropped\":{dropped}}}")
}

mod time {
    use super::{Millis, format_ms, parse_rfc3339};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_ms(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        let text = String::deserialize(d)?;
        parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_time {
    use super::{Millis, format_ms, parse_rfc3339};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&format_ms(*ms)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Millis>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => parse_rfc3339(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// The bus: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<Arc<Event>>,
    /// Local `watch` subscribers.
    watchers: AtomicUsize,
    /// Jobs with a local `wait` (or forced cancel) on them, and how many.
    waiters: Mutex<HashMap<String, (Arc<WaitSlot>, usize)>>,
    waiting: AtomicUsize,
    recent: Mutex<VecDeque<Arc<Event>>>,
    /// Until when (ms on `epoch`) another daemon wants this one's events.
    remote_interest_until: AtomicI64,
    epoch: Instant,
    /// To the relay, when the store has one (see `queue::relay`).
    relay: OnceLock<Relay>,
}

struct Relay {
    out: mpsc::Sender<Arc<Event>>,
    /// Told when local interest begins, so the relay announces it at once.
    interest: Arc<Notify>,
}

impl Default for Events {
    fn default() -> Events {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        let (tx, _) = broadcast::channel(BUFFER);
        Events {
            inner: Arc::new(Inner {
                tx,
                watchers: AtomicUsize::new(0),
                waiters: Mutex::new(HashMap::new()),
                waiting: AtomicUsize::new(0),
                recent: Mutex::new(VecDeque::with_capacity(RECENT_ENDS)),
                remote_interest_until: AtomicI64::new(i64::MIN),
                epoch: Instant::now(),
                relay: OnceLock::new(),
            }),
        }
    }

    /// Whether an event would reach anyone: worth building.
    pub fn wanted(&self) -> bool {
        self.inner.watchers.load(Ordering::Relaxed) > 0 || self.remote_interest()
    }

    fn remote_interest(&self) -> bool {
        self.inner.remote_interest_until.load(Ordering::Relaxed) > self.mono_ms()
    }

    fn mono_ms(&self) -> i64 {
        self.inner.epoch.elapsed().as_millis() as i64
    }

    /// Whether this daemon has watchers or waiters of its own, which other
    /// daemons' events should reach.
    pub fn local_interest(&self) -> bool {
        self.inner.watchers.load(Ordering::Relaxed) > 0
            || self.inner.waiting.load(Ordering::Relaxed) > 0
    }

    /// Another daemon has watchers: send it this one's events for a while.
    pub fn note_remote_interest(&self) {
        let until = self.mono_ms() + REMOTE_INTEREST_MS;
        self.inner
            .remote_interest_until
            .fetch_max(until, Ordering::Relaxed);
    }

    /// Publishes the event `make` builds, if anyone may want it.
    pub fn publish(&self, make: impl FnOnce() -> Event) {
        if self.wanted() {
            self.send(Arc::new(make()));
        }
    }

    /// Publishes the end of a job: always, since waiters and the memory of
    /// recent ends need it whether or not anyone watches.
    pub fn job_ended(&self, event: Event) {
        debug_assert!(event.kind.ends_job());
        let event = Arc::new(event);
        {
            let mut recent = lock(&self.inner.recent);
            if recent.len() == RECENT_ENDS {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        self.wake_waiters(&event);
        if self.wanted() {
            self.send(event);
        }
    }

    /// Publishes a job's progress: to local watchers, and always to the
    /// relay, so that every daemon's `job` and `jobs` can show it.
    pub fn publish_progress(&self, event: Event) {
        if self.wanted() || self.inner.relay.get().is_some() {
            self.send(Arc::new(event));
        }
    }

    /// Publishes an event relayed from another daemon, to the local
    /// watchers and waiters only.
    pub fn publish_remote(&self, event: Event) {
        if event.kind.ends_job() {
            self.job_ended(event);
        } else if self.inner.watchers.load(Ordering::Relaxed) > 0 {
            self.send(Arc::new(event));
        }
    }

    fn send(&self, event: Arc<Event>) {
        if !event.remote
            && let Some(relay) = self.inner.relay.get()
            && (self.remote_interest() || event.kind == EventKind::Progress)
        {
            // Full: the relay is behind; the event is lost to other
            // daemons' watchers, as a lagging watcher's are.
            let _ = relay.out.try_send(event.clone());
        }
        // An error only means no local subscriber right now.
        let _ = self.inner.tx.send(event);
    }

    fn wake_waiters(&self, event: &Arc<Event>) {
        if self.inner.waiting.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(id) = event.job_id() else { return };
        let slot = lock(&self.inner.waiters).get(id).map(|(s, _)| s.clone());
        if let Some(slot) = slot {
            *lock(&slot.ended) = Some(event.clone());
            slot.notify.notify_waiters();
        }
    }

    /// A `watch` subscriber; counted while it lives.
    pub fn subscribe(&self) -> Subscription {
        let rx = self.inner.tx.subscribe();
        if self.inner.watchers.fetch_add(1, Ordering::Relaxed) == 0 {
            self.interest_began();
        }
        Subscription {
            rx,
            events: self.clone(),
        }
    }

    /// Waits for the end of job `id`: registered before the caller reads
    /// the job's state, so an end between the two is not missed.
    pub fn wait_for(&self, id: &str) -> Waiter {
        let slot = {
            let mut waiters = lock(&self.inner.waiters);
            let (slot, n) = waiters
                .entry(id.to_string())
                .or_insert_with(|| (Arc::new(WaitSlot::default()), 0));
            *n += 1;
            slot.clone()
        };
        if self.inner.waiting.fetch_add(1, Ordering::Relaxed) == 0 {
            self.interest_began();
        }
        Waiter {
            events: self.clone(),
            id: id.to_string(),
            slot,
        }
    }

    /// How job `id` ended, if it ended recently (the last [`RECENT_ENDS`]
    /// ends this daemon saw).
    pub fn recent_end(&self, id: &str) -> Option<Arc<Event>> {
        lock(&self.inner.recent)
            .iter()
            .rev()
            .find(|e| e.job_id() == Some(id))
            .cloned()
    }

    fn interest_began(&self) {
        if let Some(relay) = self.inner.relay.get() {
            relay.interest.notify_one();
        }
    }

    /// Connects the relay (once): local events go to `out`, and `interest`
    /// is told when local watchers or waiters appear.
    pub(super) fn attach_relay(&self, out: mpsc::Sender<Arc<Event>>, interest: Arc<Notify>) {
        let _ = self.inner.relay.set(Relay { out, interest });
    }

    /// Local `watch` subscribers now.
    pub fn watchers(&self) -> usize {
        self.inner.watchers.load(Ordering::Relaxed)
    }
}

/// What a subscriber reads next.
#[derive(Debug)]
pub enum Received {
    Event(Arc<Event>),
    /// This many events were overwritten before this subscriber read them.
    Lagged(u64),
    Closed,
}

/// One `watch` subscriber's place in the bus.
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    events: Events,
}

impl Subscription {
    /// The next event; cancel-safe.
    pub async fn recv(&mut self) -> Received {
        convert(self.rx.recv().await)
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        match self.rx.try_recv() {
            Err(broadcast::error::TryRecvError::Empty) => None,
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Received::Lagged(n)),
            Err(broadcast::error::TryRecvError::Closed) => Some(Received::Closed),
            Ok(event) => Some(Received::Event(event)),
        }
    }
}

fn convert(r: Result<Arc<Event>, broadcast::error::RecvError>) -> Received {
    match r {
        Ok(event) => Received::Event(event),
        Err(broadcast::error::RecvError::Lagged(n)) => Received::Lagged(n),
        Err(broadcast::error::RecvError::Closed) => Received::Closed,
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.events.inner.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct WaitSlot {
    ended: Mutex<Option<Arc<Event>>>,
    notify: Notify,
}

/// A wait for one job's end; unregistered when dropped.
pub struct Waiter {
    events: Events,
    id: String,
    slot: Arc<WaitSlot>,
}

impl Waiter {
    /// The event that ended the job (`succeeded`, `dead`, `cancelled`),
    /// once it comes.
    pub async fn ended(&self) -> Arc<Event> {
        loop {
            let notified = self.slot.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(event) = lock(&self.slot.ended).clone() {
                return event;
            }
            notified.await;
        }
    }

    /// The end already seen, if any.
    pub fn seen(&self) -> Option<Arc<Event>> {
        lock(&self.slot.ended).clone()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let inner = &self.events.inner;
        let mut waiters = lock(&inner.waiters);
        if let Some((_, n)) = waiters.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                waiters.remove(&self.id);
            }
        }
        inner.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(id: &str) -> JobRef {
        JobRef {
            id: id.into(),
            name: "n".into(),
            job_type: "noop".into(),
            attempt: 1,
            cron_id: None,
        }
    }

    const AT: Millis = 1_767_225_600_000;

    #[test]
    fn lines_carry_the_protocol_names() {
        let e = Event::failed(AT, job("a"), "boom", Some(AT + 10_000), Some(3));
        let v: serde_json::Value = serde_json::from_str(e.line()).unwrap();
        assert_eq!(
            v,
            json!({"event": "failed", "at": "2026-01-01T00:00:00.000Z",
                   "job": {"id": "a", "name": "n", "type": "noop", "attempt": 1, "cron_id": null},
                   "retry_at": "2026-01-01T00:00:10.000Z", "error": "boom", "duration_ms": 3})
        );
        let dead = Event::failed(AT, job("a"), "boom", None, None);
        assert_eq!(dead.kind, EventKind::Dead);
        let p = Event::progress(
            job("a"),
            Progress {
                done: 5,
                total: None,
                message: Some("rows".into()),
                at: AT,
            },
        );
        let v: serde_json::Value = serde_json::from_str(p.line()).unwrap();
        assert_eq!(
            v["progress"],
            json!({"done": 5, "total": null, "message": "rows", "at": "2026-01-01T00:00:00.000Z"})
        );
        let c = Event::cron_fired(AT, "nightly", AT, Some("j1"));
        let v: serde_json::Value = serde_json::from_str(c.line()).unwrap();
        assert_eq!(
            v,
            json!({"event": "cron_fired", "at": "2026-01-01T00:00:00.000Z", "cron": "nightly",
                   "scheduled_for": "2026-01-01T00:00:00.000Z", "job_id": "j1"})
        );
        let paused = Event::pause(false, AT, None, vec!["*".into()]);
        let v: serde_json::Value = serde_json::from_str(paused.line()).unwrap();
        assert_eq!(v["paused"], json!(["*"]));
        assert_eq!(lagged_line(7), r#"{"event":"lagged","dropped":7}"#);
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn an_event_survives_the_relay_round_trip() {
        let e = Event::failed(AT, job("a"), &"x".repeat(5000), Some(AT + 1), Some(2));
        assert_eq!(
            e.error.as_ref().unwrap().chars().count(),
            MAX_EVENT_TEXT + 1
        );
        let back = Event::from_value(serde_json::from_str(e.line()).unwrap()).unwrap();
        assert!(back.remote);
        assert_eq!(back.line(), e.line());
    }

    #[tokio::test]
    async fn nothing_is_built_without_a_listener_and_a_slow_one_lags() {
        let events = Events::new();
        let mut built = 0;
        events.publish(|| {
            built += 1;
            Event::job(EventKind::Started, AT, job("a"))
        });
        assert_eq!(built, 0, "no watcher: the event is never built");
        let mut fast = events.subscribe();
        let mut slow = events.subscribe();
        for i in 0..BUFFER + 10 {
            events.publish(|| Event::job(EventKind::Started, AT, job(&i.to_string())));
            // The fast one keeps up; the send never waited for the slow one.
            assert!(matches!(fast.try_recv(), Some(Received::Event(_))));
        }
        assert!(matches!(slow.recv().await, Received::Lagged(10)));
        match slow.recv().await {
            Received::Event(e) => assert_eq!(e.job_id(), Some("10")),
            other => panic!("{other:?}"),
        }
        drop((fast, slow));
        assert!(!events.wanted());
    }

    #[tokio::test]
    async fn a_waiter_registered_first_sees_the_end_and_recent_ends_are_kept() {
        let events = Events::new();
        let waiter = events.wait_for("a");
        events.job_ended(Event::job(EventKind::Cancelled, AT, job("a")));
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), waiter.ended())
            .await
            .unwrap();
        assert_eq!(ended.kind, EventKind::Cancelled);
        drop(waiter);
        assert!(!events.local_interest());
        assert_eq!(events.recent_end("a").unwrap().kind, EventKind::Cancelled);
        for i in 0..RECENT_ENDS {
            events.job_ended(Event::succeeded(AT, job(&format!("x{i}")), 1));
        }
        assert!(
            events.recent_end("a").is_none(),
            "only the last ends are kept"
        );
        assert!(events.recent_end("x0").is_some());
    }
}
