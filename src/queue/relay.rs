//! The relay: events and forced cancels between daemons that share a
//! database, over the store's channel ([`Backend::publish_events`],
//! [`Backend::remote_events`]; on PostgreSQL, NOTIFY on a channel of its
//! own). A store without a channel (SQLite) starts no relay.
//!
//! What crosses, and when:
//! - `progress` events, always (at most one a second per running job), so
//!   every daemon's `job` and `jobs` show the progress of every job;
//! - every other event, while another daemon has watchers or waiters: a
//!   daemon with some says so at once and every [`INTEREST_EVERY`] while
//!   they last (`"watching": true`), and the others relay for
//!   [`super::events::REMOTE_INTEREST_MS`] after each such word. An idle
//!   cluster, or one nobody watches, sends nothing;
//! - a forced cancel of a job another daemon holds.
//!
//! Messages carry the sender's instance id: each daemon receives its own
//! too, and drops them. Events are grouped, as many as fit in one message
//! under [`MAX_RELAY_MESSAGE`] bytes, and all messages of one send go in
//! one statement (one transaction). Delivery is best-effort, like the bus
//! itself: a full queue here, or a LISTEN connection down there, loses
//! events, never the queue's speed.
//!
//! [`Backend::publish_events`]: crate::store::Backend::publish_events
//! [`Backend::remote_events`]: crate::store::Backend::remote_events

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;

use super::Queue;
use super::events::{Event, EventKind};
use crate::store::backend::MAX_RELAY_MESSAGE;

/// How often a daemon with watchers renews its interest.
pub const INTEREST_EVERY: Duration = Duration::from_secs(10);
/// Events waiting for the relay at most; more are dropped.
const QUEUED_EVENTS: usize = 4096;
/// Events taken per send at most.
const SEND_BATCH: usize = 1024;

/// A forced cancel for the daemon holding the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CancelOrder {
    job: String,
    instance: String,
}

/// One relay message, as sent; `events` are event objects as `watch`
/// writes them.
#[derive(Debug, Deserialize)]
struct Message {
    from: String,
    #[serde(default)]
    watching: bool,
    #[serde(default)]
    cancel: Option<CancelOrder>,
    #[serde(default)]
    events: Vec<serde_json::Value>,
}

impl Queue {
    /// Starts the relay if the store has a channel between daemons.
    pub fn spawn_relay(&self) {
        let inner = &self.inner;
        let Some(incoming) = inner.store.remote_events() else {
            return;
        };
        let (events_tx, events_rx) = mpsc::channel(QUEUED_EVENTS);
        let (cancel_tx, cancel_rx) = mpsc::channel(64);
        let interest = Arc::new(Notify::new());
        inner.events.attach_relay(events_tx, interest.clone());
        if inner.relay.set(cancel_tx).is_err() {
            return;
        }
        inner
            .tasks
            .spawn(send(self.clone(), events_rx, cancel_rx, interest));
        inner.tasks.spawn(receive(self.clone(), incoming));
    }

    /// Asks the daemon `holder` to stop job `id`; false when there is no
    /// relay to carry it.
    pub(super) fn relay_cancel(&self, id: &str, holder: &str) -> bool {
        match self.inner.relay.get() {
            Some(tx) => tx
                .try_send(CancelOrder {
                    job: id.to_string(),
                    instance: holder.to_string(),
                })
                .is_ok(),
            None => false,
        }
    }
}

/// Takes local events and cancel orders, packs them into messages and
/// sends them; announces local interest.
async fn send(
    queue: Queue,
    mut events: mpsc::Receiver<Arc<Event>>,
    mut cancels: mpsc::Receiver<CancelOrder>,
    interest: Arc<Notify>,
) {
    let inner = &queue.inner;
    let shutdown = inner.shutdown.clone();
    let bus = inner.events.clone();
    let me = inner.instance.id.clone();
    let mut announced: Option<Instant> = None;
    let mut failing = false;
    loop {
        let renew_at = announced.map_or_else(Instant::now, |at| at + INTEREST_EVERY);
        let mut batch = Vec::new();
        let mut orders = Vec::new();
        let mut announce = false;
        tokio::select! {
            e = events.recv() => match e {
                Some(e) => batch.push(e),
                None => break,
            },
            o = cancels.recv() => match o {
                Some(o) => orders.push(o),
                None => break,
            },
            () = interest.notified() => announce = true,
            () = tokio::time::sleep_until(renew_at), if bus.local_interest() => announce = true,
            () = shutdown.cancelled() => break,
        }
        while batch.len() < SEND_BATCH {
            match events.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        while let Ok(o) = cancels.try_recv() {
            orders.push(o);
        }
        // Interest rides on whatever is sent once it is due.
        if bus.local_interest() && announced.is_none_or(|at| at.elapsed() >= INTEREST_EVERY) {
            announce = true;
        }
        if !bus.local_interest() {
            announced = None;
            announce = false;
        }
        let messages = pack(&me, announce, &orders, &batch);
        if messages.is_empty() {
            continue;
        }
        // Tried, whatever the outcome: a failing database is not asked
        // again at once, and the others hear of this interest at the next.
        if announce {
            announced = Some(Instant::now());
        }
        match inner.store.publish_events(messages).await {
            Ok(()) => {
                if failing {
                    tracing::info!("relaying events to the other daemons works again");
                    failing = false;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "could not relay events to the other daemons: {e}; their watchers miss this daemon's events meanwhile");
                    failing = true;
                }
            }
        }
    }
}

/// The messages for one send, each under [`MAX_RELAY_MESSAGE`] bytes. An
/// event that cannot fit even alone (a huge `paused` list) is dropped.
fn pack(me: &str, announce: bool, orders: &[CancelOrder], events: &[Arc<Event>]) -> Vec<String> {
    let head = |watching: bool| {
        let mut m = serde_json::json!({"from": me});
        if watching {
            m["watching"] = true.into();
        }
        m.to_string()
    };
    let mut out = Vec::new();
    for order in orders {
        let mut m = serde_json::json!({"from": me, "cancel": order});
        if announce && out.is_empty() {
            m["watching"] = true.into();
        }
        out.push(m.to_string());
    }
    let mut watching = announce && out.is_empty();
    let mut current: Option<String> = None;
    for event in events {
        let line = event.line();
        if let Some(m) = &current
            && m.len() + line.len() + 3 > MAX_RELAY_MESSAGE
        {
            out.extend(current.take().map(close));
        }
        let m = current.get_or_insert_with(|| {
            let mut m = head(std::mem::take(&mut watching));
            m.pop();
            m.push_str(",\"events\":[");
            m
        });
        if m.len() + line.len() + 3 > MAX_RELAY_MESSAGE {
            tracing::debug!(
                event = event.kind.as_str(),
                bytes = line.len(),
                "an event too large to relay was dropped"
            );
            continue;
        }
        if !m.ends_with('[') {
            m.push(',');
        }
        m.push_str(line);
    }
    out.extend(current.map(close));
    if watching {
        out.push(head(true));
    }
    out
}

fn close(mut m: String) -> String {
    m.push_str("]}");
    m
}

/// Takes other daemons' messages: events to the local bus, cancel orders
/// for jobs running here to their tokens, interest noted.
async fn receive(queue: Queue, mut incoming: broadcast::Receiver<Arc<str>>) {
    let shutdown = queue.inner.shutdown.clone();
    loop {
        let text = tokio::select! {
            r = incoming.recv() => match r {
                Ok(text) => text,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(dropped = n, "the relay fell behind other daemons' events; {n} were dropped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            () = shutdown.cancelled() => break,
        };
        take(&queue, &text);
    }
}

/// Acts on one message (anything on the channel is read as untrusted).
fn take(queue: &Queue, text: &str) {
    let inner = &queue.inner;
    let Ok(message) = serde_json::from_str::<Message>(text) else {
        tracing::debug!("a relay message that does not read was ignored");
        return;
    };
    if message.from == inner.instance.id {
        return;
    }
    if message.watching {
        inner.events.note_remote_interest();
    }
    if let Some(order) = message.cancel
        && order.instance == inner.instance.id
    {
        tracing::info!(job_id = %order.job, from = %message.from, "job {}: asked to stop by another daemon (forced cancel)", order.job);
        inner.live.cancel(&order.job, true);
    }
    for value in message.events {
        let Some(event) = Event::from_value(value) else {
            continue;
        };
        if let Some(job) = &event.job {
            match (&event.kind, &event.progress) {
                (EventKind::Progress, Some(progress)) => {
                    inner.live.remote_progress(job, progress.clone())
                }
                (kind, _) if kind.ends_job() => inner.live.remote_ended(&job.id),
                _ => {}
            }
        }
        inner.events.publish_remote(event);
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod cluster;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::events::JobRef;

    fn event(name: &str, error: &str) -> Arc<Event> {
        let job = JobRef {
            id: "k3j9x0c2m1q8z7a".into(),
            name: name.into(),
            job_type: "email".into(),
            attempt: 1,
            cron_id: None,
        };
        Arc::new(Event::failed(
            1_767_225_600_000,
            job,
            error,
            Some(1_767_225_700_000),
            Some(5),
        ))
    }

    #[test]
    fn messages_stay_under_the_limit_and_read_back() {
        let events: Vec<Arc<Event>> = (0..200)
            .map(|i| event(&format!("job {i}"), &"e".repeat(i * 5)))
            .collect();
        let orders = vec![CancelOrder {
            job: "j".into(),
            instance: "other".into(),
        }];
        let messages = pack("me", true, &orders, &events);
        assert!(messages.len() > 2, "{} messages", messages.len());
        let mut back = 0;
        for (i, m) in messages.iter().enumerate() {
            assert!(m.len() <= MAX_RELAY_MESSAGE, "{} bytes", m.len());
            let read: Message = serde_json::from_str(m).expect(m);
            assert_eq!(read.from, "me");
            assert_eq!(read.watching, i == 0, "interest rides on the first");
            assert_eq!(read.cancel.is_some(), i == 0);
            for v in read.events {
                let e = Event::from_value(v).unwrap();
                assert_eq!(e.job.unwrap().name, format!("job {back}"));
                back += 1;
            }
        }
        assert_eq!(back, 200, "every event, in order");
        assert_eq!(
            pack("me", true, &[], &[]),
            vec![r#"{"from":"me","watching":true}"#]
        );
        assert!(pack("me", false, &[], &[]).is_empty());
    }
}
