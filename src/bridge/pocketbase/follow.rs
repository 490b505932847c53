//! The follower: takes a live PocketBase collection over. It subscribes to
//! the collection's realtime events, lists the whole collection after each
//! (re)connection, on every `system_queue` tick and at least once a minute,
//! stores each record as a job and then deletes the record.
//!
//! Exactly once: a record is stored with its ledger entry in one
//! transaction (`queue::import`), and deleted from PocketBase only after
//! that committed. A crash or an outage between the two leaves the record
//! in PocketBase; the next listing finds it in the ledger and deletes it
//! without storing it again. Records are listed newest first, as the
//! replaced system drained them, by `(created, id)` cursor so that the
//! deletions do not shift the pages.
//!
//! It never blocks the daemon: it is one task, whose only way into the
//! daemon is the queue's import (the same as an enqueue from the socket);
//! PocketBase being down makes it retry with backoff, shown in `status`.
//! On shutdown it stops taking records, deletes those already stored
//! (within its request timeout) and ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::client::{Client, PbError};
use super::record::{self, Decision};
use super::sse::Realtime;
use super::status::{Counts, FollowStatus, State};
use crate::config::PocketBaseConfig;
use crate::queue::import::{Taken, plain_id};
use crate::queue::{Queue, QueueError};

/// Records per import, from events or a page of a listing.
const BATCH: usize = 500;
/// The listing's page size.
const PAGE: usize = 500;
/// A listing at least this often, ticks or not.
const LIST_EVERY: Duration = Duration::from_secs(60);
/// Deletions in flight at once.
const DELETES_AT_ONCE: usize = 16;
/// The first wait after a failure, doubled up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A realtime stream that lived this long and ended was closed for being
/// idle (PocketBase does after five quiet minutes): no failure.
const IDLE_CLOSE_AFTER: Duration = Duration::from_secs(60);
/// Records remembered as refused or reserved, so each is logged once.
const REMEMBERED: usize = 10_000;

/// Where a batch of records came from.
#[derive(Debug, Clone, Copy)]
enum Via {
    Realtime,
    Listing,
}

/// Whether to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The daemon is shutting down.
    Stop,
}

pub struct Follower {
    client: Arc<Client>,
    queue: Queue,
    collection: String,
    /// `pocketbase:COLLECTION`, the ledger's source.
    source: String,
    status: Arc<FollowStatus>,
    /// Bumped by every `system_queue` run.
    ticks: watch::Receiver<u64>,
    /// Records reported refused, by id: the `updated` they had then.
    refused: HashMap<String, String>,
    /// Records reported reserved, by id: their `reserved_at` then.
    reserved: HashMap<String, String>,
}

impl Follower {
    pub fn new(
        client: Arc<Client>,
        queue: Queue,
        config: &PocketBaseConfig,
        status: Arc<FollowStatus>,
        ticks: watch::Receiver<u64>,
    ) -> Follower {
        Follower {
            client,
            queue,
            collection: config.collection.clone(),
            source: format!("pocketbase:{}", config.collection),
            status,
            ticks,
            refused: HashMap::new(),
            reserved: HashMap::new(),
        }
    }

    fn now(&self) -> crate::clock::Millis {
        self.queue.clock().now_ms()
    }

    /// Follows until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = BACKOFF_FIRST;
        let mut failing = false;
        while !shutdown.is_cancelled() {
            self.status.set(State::Connecting, self.now());
            // Nothing is half done while connecting: a shutdown may cut it.
            let connected = tokio::select! {
                connected = self.connect() => connected,
                () = shutdown.cancelled() => break,
            };
            let outcome = match connected {
                Ok(stream) => {
                    if failing {
                        tracing::info!(collection = %self.collection, "PocketBase at {} answers again", self.client.url());
                        failing = false;
                    }
                    backoff = BACKOFF_FIRST;
                    self.follow(stream, &shutdown).await
                }
                Err(e) => Err(e),
            };
            let error = match outcome {
                Ok(Flow::Stop) => break,
                Ok(Flow::Continue) => continue,
                Err(e) => e,
            };
            let wait = jittered(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
            failing = true;
            let now = self.now();
            self.status
                .failed(&error.to_string(), now, now + wait.as_millis() as i64);
            tracing::warn!(
                collection = %self.collection,
                error = %error,
                retry_in_s = wait.as_secs_f64(),
                "cannot follow PocketBase: {error}; trying again in {:.1} s",
                wait.as_secs_f64()
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => break,
            }
        }
        self.status.set(State::Stopped, self.now());
        tracing::info!(collection = %self.collection, "stopped following PocketBase");
    }

    /// Logs in, opens the realtime stream and subscribes to the collection.
    async fn connect(&self) -> Result<Realtime, PbError> {
        self.client.authenticate().await?;
        let stream = self.client.realtime().await?;
        self.client
            .subscribe(stream.client_id(), &[&self.collection])
            .await?;
        Ok(stream)
    }

    /// Lists what is there, then takes records as events come and lists
    /// again on every tick; returns when the stream ends or fails.
    async fn follow(
        &mut self,
        mut stream: Realtime,
        shutdown: &CancellationToken,
    ) -> Result<Flow, PbError> {
        let connected = Instant::now();
        self.status.set(State::Following, self.now());
        tracing::info!(
            collection = %self.collection,
            "following PocketBase collection {} at {}",
            self.collection,
            self.client.url()
        );
        if self.list_all(shutdown).await? == Flow::Stop {
            return Ok(Flow::Stop);
        }
        let mut next_list = tokio::time::Instant::now() + LIST_EVERY;
        loop {
            let flow = tokio::select! {
                biased;
                () = shutdown.cancelled() => Flow::Stop,
                event = stream.next() => match event? {
                    Some(event) => {
                        let mut records: Vec<Value> = self.record_of(&event).into_iter().collect();
                        // Whatever else has arrived already, in the same batch.
                        while records.len() < BATCH {
                            match tokio::time::timeout(Duration::ZERO, stream.next()).await {
                                Ok(Ok(Some(more))) => records.extend(self.record_of(&more)),
                                Ok(Ok(None)) | Err(_) => break,
                                Ok(Err(e)) => return Err(e),
                            }
                        }
                        self.take(records, Via::Realtime).await?
                    }
                    None if connected.elapsed() >= IDLE_CLOSE_AFTER => {
                        tracing::debug!(collection = %self.collection, "PocketBase closed the idle realtime stream; reconnecting");
                        return Ok(Flow::Continue);
                    }
                    None => {
                        return Err(PbError::Unreachable {
                            url: self.client.url().to_string(),
                            reason: "the realtime stream ended".into(),
                        });
                    }
                },
                changed = self.ticks.changed() => {
                    if changed.is_err() {
                        // The scheduler is gone: the daemon is stopping.
                        return Ok(Flow::Stop);
                    }
                    next_list = tokio::time::Instant::now() + LIST_EVERY;
                    self.list_all(shutdown).await?
                }
                () = tokio::time::sleep_until(next_list) => {
                    next_list = tokio::time::Instant::now() + LIST_EVERY;
                    self.list_all(shutdown).await?
                }
            };
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
    }

    /// The record a realtime event carries, if it is a create or update of
    /// the collection.
    fn record_of(&self, event: &super::sse::Event) -> Option<Value> {
        if event.name != self.collection {
            return None;
        }
        let mut data: Value = serde_json::from_str(&event.data).ok()?;
        match data.get("action").and_then(Value::as_str) {
            Some("create" | "update") => {}
            _ => return None,
        }
        Counts::add(&self.status.counts.events, 1);
        data.get_mut("record").map(Value::take)
    }

    /// Every record of the collection, newest first, a page at a time.
    async fn list_all(&mut self, shutdown: &CancellationToken) -> Result<Flow, PbError> {
        let mut cursor: Option<(String, String)> = None;
        loop {
            let filter = cursor.as_ref().map(|(created, id)| {
                format!("(created < '{created}' || (created = '{created}' && id < '{id}'))")
            });
            let page = self
                .client
                .list(&self.collection, filter.as_deref(), "-created,-id", PAGE)
                .await?;
            let full = page.len() == PAGE;
            cursor = page.last().and_then(cursor_of);
            Counts::add(&self.status.counts.listed, page.len() as u64);
            if self.take(page, Via::Listing).await? == Flow::Stop {
                return Ok(Flow::Stop);
            }
            if !full || cursor.is_none() {
                break;
            }
            if shutdown.is_cancelled() {
                return Ok(Flow::Stop);
            }
        }
        self.status.listed(self.now());
        Ok(Flow::Continue)
    }

    /// Stores what can be taken, then deletes from PocketBase what is
    /// stored (now or before).
    async fn take(&mut self, records: Vec<Value>, via: Via) -> Result<Flow, PbError> {
        if records.is_empty() {
            return Ok(Flow::Continue);
        }
        let now = self.now();
        let reservation = self.queue.config().reservation_timeout;
        let mut offers = Vec::with_capacity(records.len());
        let mut versions = HashMap::new();
        for value in &records {
            let (id, updated) = record::version(value);
            if self.refused.get(&id) == Some(&updated) {
                continue;
            }
            match record::decide(value, now, reservation, false) {
                Decision::Take(taken) => {
                    if versions.insert(taken.id.clone(), updated.clone()).is_some() {
                        continue;
                    }
                    match taken.offer() {
                        Ok(offer) => offers.push(offer),
                        Err(reason) => self.refuse(&id, &updated, &reason),
                    }
                }
                Decision::Skip { id, reason } => self.skip(value, &id, &reason),
                Decision::Refuse { id, reason } => self.refuse(&id, &updated, &reason),
            }
        }
        if offers.is_empty() {
            return Ok(Flow::Continue);
        }
        let ids: Vec<String> = offers.iter().map(|o| o.record_id.clone()).collect();
        let taken = match self.queue.import(&self.source, offers, false).await {
            Ok(taken) => taken,
            Err(QueueError::ShuttingDown) => return Ok(Flow::Stop),
            Err(e) => {
                // The queue is full or the database busy: the records stay
                // in PocketBase for the next listing.
                tracing::warn!(collection = %self.collection, error = %e, "could not store {} PocketBase records: {e}; they stay in PocketBase and are tried again at the next listing", ids.len());
                return Ok(Flow::Continue);
            }
        };
        let mut done = Vec::with_capacity(ids.len());
        let (mut stored, mut already) = (0u64, 0u64);
        for (id, outcome) in ids.into_iter().zip(taken) {
            match outcome {
                Taken::Stored(job) => {
                    stored += 1;
                    if let Some(job) = job {
                        self.stored(&id, &job);
                    }
                    done.push(id);
                }
                Taken::Already { job_id } => {
                    already += 1;
                    tracing::debug!(record_id = %id, job_id = %job_id, "PocketBase record {id} was taken over before, as job {job_id}; deleting it");
                    done.push(id);
                }
                Taken::Refused(reason) => {
                    let updated = versions.get(&id).cloned().unwrap_or_default();
                    self.refuse(&id, &updated, &reason);
                }
            }
        }
        let c = &self.status.counts;
        Counts::add(&c.stored, stored);
        Counts::add(&c.already, already);
        if stored > 0 {
            tracing::info!(
                collection = %self.collection,
                records = stored,
                via = match via { Via::Realtime => "realtime", Via::Listing => "listing" },
                "took {stored} PocketBase record(s) over as jobs"
            );
        }
        self.delete(done).await?;
        Ok(Flow::Continue)
    }

    fn stored(&self, id: &str, job: &crate::queue::job::Job) {
        if job.status == crate::queue::job::JobStatus::Dead {
            Counts::add(&self.status.counts.dead, 1);
            tracing::warn!(
                record_id = %id,
                job_id = %job.id,
                job_type = %job.job_type,
                "PocketBase record {id} stored as dead job {}: {}",
                job.id,
                job.last_error.as_deref().unwrap_or("its attempts were used up")
            );
        } else {
            tracing::debug!(record_id = %id, job_id = %job.id, job_type = %job.job_type, "PocketBase record {id} is job {}", job.id);
        }
    }

    /// Reports a refused record once per version; it stays in PocketBase,
    /// and is looked at again when it changes (an edit fixes it).
    fn refuse(&mut self, id: &str, updated: &str, reason: &str) {
        if self.refused.get(id).is_some_and(|u| u == updated) {
            return;
        }
        if self.refused.len() >= REMEMBERED {
            self.refused.clear();
        }
        self.refused.insert(id.to_string(), updated.to_string());
        Counts::add(&self.status.counts.refused, 1);
        tracing::warn!(
            record_id = %id,
            collection = %self.collection,
            "PocketBase record {id} refused: {reason}; it stays in PocketBase until it is fixed or deleted there"
        );
    }

    /// Reports a record reserved in PocketBase once per reservation.
    fn skip(&mut self, record: &Value, id: &str, reason: &str) {
        let at = record
            .get("reserved_at")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if self.reserved.get(id) == Some(&at) {
            return;
        }
        if self.reserved.len() >= REMEMBERED {
            self.reserved.clear();
        }
        self.reserved.insert(id.to_string(), at);
        Counts::add(&self.status.counts.reserved, 1);
        tracing::info!(record_id = %id, collection = %self.collection, "PocketBase record {id} left for now: {reason}");
    }

    /// Deletes stored records from PocketBase, a few at a time; the first
    /// failure stops it (what is left is deleted after the next listing).
    async fn delete(&self, ids: Vec<String>) -> Result<(), PbError> {
        let mut running = JoinSet::new();
        let mut ids = ids.into_iter();
        let mut failure = None;
        loop {
            while failure.is_none() && running.len() < DELETES_AT_ONCE {
                let Some(id) = ids.next() else { break };
                let (client, collection) = (self.client.clone(), self.collection.clone());
                running.spawn(async move { client.delete(&collection, &id).await });
            }
            match running.join_next().await {
                None => break,
                Some(Ok(Ok(true))) => Counts::add(&self.status.counts.deleted, 1),
                Some(Ok(Ok(false))) => {}
                Some(Ok(Err(e))) => {
                    failure.get_or_insert(e);
                }
                Some(Err(e)) => {
                    failure.get_or_insert(PbError::Unreachable {
                        url: self.client.url().to_string(),
                        reason: format!("a deletion panicked: {e}"),
                    });
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// A listing's cursor after `record`: its `created` and id, when both are
/// safe to put in a filter.
fn cursor_of(record: &Value) -> Option<(String, String)> {
    let id = record.get("id")?.as_str()?;
    let created = record.get("created")?.as_str()?;
    let safe = created
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | ':' | ' ' | '.' | 'Z' | 'T'));
    (plain_id(id) && safe).then(|| (created.to_string(), id.to_string()))
}

/// `wait` give or take a fifth, so that many daemons do not retry in step.
fn jittered(wait: Duration) -> Duration {
    wait.mul_f64(0.8 + fastrand::f64() * 0.4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_cursor_takes_only_what_is_safe_in_a_filter() {
        assert_eq!(
            cursor_of(&json!({"id": "abc", "created": "2026-12-01 10:51:30.977Z"})),
            Some(("2026-12-01 10:51:30.977Z".into(), "abc".into()))
        );
        assert_eq!(
            cursor_of(&json!({"id": "abc", "created": ""})),
            Some(("".into(), "abc".into()))
        );
        assert_eq!(cursor_of(&json!({"id": "a'b", "created": ""})), None);
        assert_eq!(cursor_of(&json!({"id": "ab", "created": "x' || 1"})), None);
    }

    #[test]
    fn backoff_jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let w = jittered(Duration::from_secs(10));
            assert!(
                w >= Duration::from_secs(8) && w <= Duration::from_secs(12),
                "{w:?}"
            );
        }
    }
}
