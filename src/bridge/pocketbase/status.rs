//! What the follower is doing, as `status` shows it under `pocketbase`:
//! its state, its last error and what it did with the records it saw.
//! The follower writes it, the admin socket reads it; neither waits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

use crate::admin::protocol::opt_time;
use crate::clock::Millis;

/// Where the follower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// CRONQ_POCKETBASE_FOLLOW=false: the connection serves the data
    /// handler only.
    Off,
    /// Logging in, opening the realtime stream, subscribing.
    Connecting,
    /// Subscribed: records are taken over as they come.
    Following,
    /// PocketBase failed; the next try is at `retry_at`.
    Retrying,
    /// The daemon is shutting down.
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Off => "off",
            State::Connecting => "connecting",
            State::Following => "following",
            State::Retrying => "retrying",
            State::Stopped => "stopped",
        }
    }
}

/// What happened to the records seen, since the daemon started.
#[derive(Debug, Default)]
pub struct Counts {
    /// Records stored as jobs (dead ones included).
    pub stored: AtomicU64,
    /// Of those, stored dead: their attempts were used up in PocketBase.
    pub dead: AtomicU64,
    /// Records found in the ledger: taken over before, deleted now.
    pub already: AtomicU64,
    /// Records refused (left in PocketBase).
    pub refused: AtomicU64,
    /// Records skipped for now: reserved in PocketBase a moment ago.
    pub reserved: AtomicU64,
    /// Records deleted from PocketBase after cronq stored them.
    pub deleted: AtomicU64,
    /// Records that arrived through the realtime stream.
    pub events: AtomicU64,
    /// Records that arrived through a listing.
    pub listed: AtomicU64,
}

impl Counts {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    since: Millis,
    last_error: Option<String>,
    last_error_at: Option<Millis>,
    retry_at: Option<Millis>,
    last_list: Option<Millis>,
}

/// The follower's state, shared with `status`.
#[derive(Debug)]
pub struct FollowStatus {
    url: String,
    collection: String,
    inner: Mutex<Inner>,
    pub counts: Counts,
}

impl FollowStatus {
    pub fn new(url: &str, collection: &str, state: State, now: Millis) -> FollowStatus {
        FollowStatus {
            url: url.to_string(),
            collection: collection.to_string(),
            inner: Mutex::new(Inner {
                state,
                since: now,
                last_error: None,
                last_error_at: None,
                retry_at: None,
                last_list: None,
            }),
            counts: Counts::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Enters `state` at `now`; a failed `state` keeps the last error.
    pub fn set(&self, state: State, now: Millis) {
        let mut inner = self.lock();
        if inner.state != state {
            inner.state = state;
            inner.since = now;
        }
        if state != State::Retrying {
            inner.retry_at = None;
        }
    }

    /// PocketBase failed with `error`; the next try is at `retry_at`.
    pub fn failed(&self, error: &str, now: Millis, retry_at: Millis) {
        let mut inner = self.lock();
        if inner.state != State::Retrying {
            inner.state = State::Retrying;
            inner.since = now;
        }
        inner.last_error = Some(error.to_string());
        inner.last_error_at = Some(now);
        inner.retry_at = Some(retry_at);
    }

    /// A listing of the whole collection ended at `now`.
    pub fn listed(&self, now: Millis) {
        self.lock().last_list = Some(now);
    }

    /// The `pocketbase` object of `status`.
    pub fn view(&self) -> Value {
        let inner = self.lock();
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let c = &self.counts;
        json!({
            "url": self.url,
            "collection": self.collection,
            "state": inner.state.as_str(),
            "since": opt_time(Some(inner.since)),
            "last_error": inner.last_error,
            "last_error_at": opt_time(inner.last_error_at),
            "retry_at": opt_time(inner.retry_at),
            "last_list": opt_time(inner.last_list),
            "records": {
                "stored": n(&c.stored),
                "dead": n(&c.dead),
                "already": n(&c.already),
                "refused": n(&c.refused),
                "reserved": n(&c.reserved),
                "deleted": n(&c.deleted),
                "events": n(&c.events),
                "listed": n(&c.listed),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_kept_until_the_next_one_and_retry_at_only_while_retrying() {
        let status = FollowStatus::new("http://127.0.0.1:8090/", "queues", State::Connecting, 1000);
        status.failed("cannot reach PocketBase", 2000, 3000);
        let v = status.view();
        assert_eq!(v["state"], "retrying");
        assert_eq!(v["last_error"], "cannot reach PocketBase");
        assert_eq!(v["retry_at"], "1970-01-01T00:00:03.000Z");
        status.set(State::Following, 4000);
        Counts::add(&status.counts.stored, 2);
        let v = status.view();
        assert_eq!(v["state"], "following");
        assert_eq!(v["since"], "1970-01-01T00:00:04.000Z");
        assert_eq!(v["last_error"], "cannot reach PocketBase");
        assert_eq!(v["retry_at"], Value::Null);
        assert_eq!(v["records"]["stored"], 2);
    }
}
