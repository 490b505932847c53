//! `watch`: the connection becomes a stream of event lines, filtered as
//! asked, until the client goes away.
//!
//! The server answers `{"ok":true,"watching":true}` and hands the
//! connection to [`stream`]. From then on the idle timeout no longer
//! applies (a quiet queue sends nothing for hours, and that is fine), but
//! the write-stall rule does: a client that reads none of its lines for
//! CRONQ_IDLE_TIMEOUT_SECONDS is closed. It never slows the queue either
//! way: the bus does not wait for anyone, and a watcher that fell behind
//! gets `{"event":"lagged","dropped":N}` (N counts every event it missed,
//! before its filter). Lines the client sends while watching are read and
//! ignored. A watcher asleep on an idle queue costs no wake-up: it waits on
//! the bus and on its socket, with no timer.

use std::collections::HashSet;
use std::io;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::Ctx;
use crate::admin::protocol::request::WatchArgs;
use crate::admin::protocol::{AdminError, Request};
use crate::queue::events::{Event, EventKind, Received, Subscription, lagged_line};

/// Most entries of `types` and `events`.
pub const MAX_FILTER_ITEMS: usize = 100;
/// Longest `types` entry, `job` and `cron`, in characters.
const MAX_FILTER_CHARS: usize = 200;
/// Events taken before a write at most, when many wait.
const FLUSH_EVERY: usize = 256;

/// Which events a watcher wants; every filter given must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    types: Option<HashSet<String>>,
    job: Option<String>,
    cron: Option<String>,
    events: Option<HashSet<EventKind>>,
}

impl Filter {
    /// Whether `event` passes. A filter on a field an event does not have
    /// excludes it: `types` passes job events of those types and pauses of
    /// them (or of every type); `cron` passes that cron's events and its
    /// jobs'; `job` passes that job's events only.
    pub fn matches(&self, event: &Event) -> bool {
        if let Some(kinds) = &self.events
            && !kinds.contains(&event.kind)
        {
            return false;
        }
        if let Some(id) = &self.job
            && event.job_id() != Some(id.as_str())
        {
            return false;
        }
        if let Some(types) = &self.types {
            let passes = match (&event.job, event.kind) {
                (Some(job), _) => types.contains(&job.job_type),
                (None, EventKind::Paused | EventKind::Resumed) => {
                    event.job_type.as_ref().is_none_or(|t| types.contains(t))
                }
                (None, _) => false,
            };
            if !passes {
                return false;
            }
        }
        if let Some(cron) = &self.cron {
            let of_cron = match &event.job {
                Some(job) => job.cron_id.as_deref() == Some(cron.as_str()),
                None => event.cron.as_deref() == Some(cron.as_str()),
            };
            if !of_cron {
                return false;
            }
        }
        true
    }
}

/// The filter of a `watch` request, every argument checked.
pub fn parse(req: &Request) -> Result<Filter, AdminError> {
    let args: WatchArgs = req.args()?;
    let text = |field: &str, value: Option<String>| -> Result<Option<String>, AdminError> {
        match value {
            Some(v) if v.is_empty() || v.chars().count() > MAX_FILTER_CHARS => {
                Err(AdminError::bad_request(format!(
                    "{field}: must be 1 to {MAX_FILTER_CHARS} characters"
                )))
            }
            v => Ok(v),
        }
    };
    let list = |field: &str, items: &Option<Vec<String>>| -> Result<(), AdminError> {
        match items {
            Some(items) if items.len() > MAX_FILTER_ITEMS => Err(AdminError::bad_request(format!(
                "{field}: at most {MAX_FILTER_ITEMS} entries, got {}",
                items.len()
            ))),
            _ => Ok(()),
        }
    };
    list("types", &args.types)?;
    list("events", &args.events)?;
    let types = match args.types {
        None => None,
        Some(types) => {
            for (i, t) in types.iter().enumerate() {
                text(&format!("types[{i}]"), Some(t.clone()))?;
            }
            Some(types.into_iter().collect())
        }
    };
    let events = match args.events {
        None => None,
        Some(names) => Some(
            names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    EventKind::parse(name).ok_or_else(|| {
                        AdminError::bad_request(format!(
                            "events[{i}]: {name:?} is not an event name; the names are {}",
                            EventKind::ALL.map(EventKind::as_str).join(", ")
                        ))
                    })
                })
                .collect::<Result<HashSet<_>, _>>()?,
        ),
    };
    Ok(Filter {
        types,
        job: text("job", args.job)?,
        cron: text("cron", args.cron)?,
        events,
    })
}

/// Checks the request and subscribes; the subscription counts from here,
/// so no event after the `watching` answer is missed.
pub fn start(ctx: &Ctx, req: &Request) -> Result<(Subscription, Filter), AdminError> {
    let filter = parse(req)?;
    Ok((ctx.queue.events().subscribe(), filter))
}

/// Writes the events `filter` passes until `gone` resolves (the client hung
/// up), the socket closes, a write fails (or stalls past the limit of the
/// writer), or `shutdown`.
pub async fn stream<W: AsyncWrite + Unpin>(
    mut sub: Subscription,
    filter: Filter,
    gone: impl std::future::Future<Output = ()>,
    writer: &mut W,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    tokio::pin!(gone);
    let mut lines = Vec::with_capacity(16 * 1024);
    loop {
        let mut next = tokio::select! {
            r = sub.recv() => Some(r),
            () = &mut gone => return Ok(()),
            () = shutdown.cancelled() => return Ok(()),
        };
        let mut taken = 0;
        let mut closed = false;
        lines.clear();
        while let Some(received) = next {
            match received {
                Received::Event(event) => {
                    if filter.matches(&event) {
                        lines.extend_from_slice(event.line().as_bytes());
                        lines.push(b'\n');
                    }
                }
                Received::Lagged(dropped) => {
                    lines.extend_from_slice(lagged_line(dropped).as_bytes());
                    lines.push(b'\n');
                }
                Received::Closed => {
                    closed = true;
                    break;
                }
            }
            taken += 1;
            next = if taken < FLUSH_EVERY {
                sub.try_recv()
            } else {
                None
            };
        }
        // A write that waits for a slow reader still gives way to a
        // shutdown, which must not wait out the stall limit.
        let written = async {
            writer.write_all(&lines).await?;
            writer.flush().await
        };
        tokio::select! {
            r = written => r?,
            () = shutdown.cancelled() => return Ok(()),
        }
        if closed {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::events::JobRef;
    use serde_json::json;

    fn filter(args: serde_json::Value) -> Result<Filter, String> {
        let mut line = json!({"cmd": "watch"});
        line.as_object_mut()
            .unwrap()
            .extend(args.as_object().unwrap().clone());
        let req = Request::parse(line.to_string().as_bytes()).map_err(|(_, e)| e.message)?;
        parse(&req).map_err(|e| e.message)
    }

    fn job_event(kind: EventKind, id: &str, job_type: &str, cron: Option<&str>) -> Event {
        Event::job(
            kind,
            0,
            JobRef {
                id: id.into(),
                name: "n".into(),
                job_type: job_type.into(),
                attempt: 1,
                cron_id: cron.map(str::to_string),
            },
        )
    }

    #[test]
    fn filters_combine_and_exclude_events_without_the_field() {
        let all = filter(json!({})).unwrap();
        let started = job_event(EventKind::Started, "a", "email", Some("nightly"));
        let fired = Event::cron_fired(0, "nightly", 0, Some("a"));
        let paused_all = Event::pause(false, 0, None, vec!["*".into()]);
        let paused_noop = Event::pause(false, 0, Some("noop"), vec!["noop".into()]);
        for e in [&started, &fired, &paused_all] {
            assert!(all.matches(e));
        }
        let email = filter(json!({"types": ["email"]})).unwrap();
        assert!(email.matches(&started));
        assert!(!email.matches(&job_event(EventKind::Started, "b", "noop", None)));
        assert!(!email.matches(&fired));
        assert!(email.matches(&paused_all));
        assert!(!email.matches(&paused_noop));
        let job = filter(json!({"job": "a"})).unwrap();
        assert!(job.matches(&started));
        assert!(!job.matches(&fired));
        let cron = filter(json!({"cron": "nightly"})).unwrap();
        assert!(cron.matches(&started));
        assert!(cron.matches(&fired));
        assert!(!cron.matches(&job_event(EventKind::Started, "b", "email", None)));
        let ends = filter(json!({"events": ["succeeded", "dead"], "types": ["email"]})).unwrap();
        assert!(!ends.matches(&started));
        assert!(ends.matches(&job_event(EventKind::Dead, "a", "email", None)));
        assert!(!ends.matches(&job_event(EventKind::Dead, "a", "noop", None)));
    }

    #[test]
    fn bad_filters_name_the_field() {
        for (args, needle) in [
            (
                json!({"events": ["started", "exploded"]}),
                "events[1]: \"exploded\" is not an event name",
            ),
            (json!({"types": [""]}), "types[0]: must be 1 to 200"),
            (json!({"job": "x".repeat(201)}), "job: must be 1 to 200"),
            (
                json!({"types": vec!["t"; 101]}),
                "types: at most 100 entries, got 101",
            ),
            (json!({"types": "email"}), "types: invalid type"),
            (json!({"follow": true}), "unknown field `follow`"),
        ] {
            let err = filter(args.clone()).unwrap_err();
            assert!(err.contains(needle), "{args}: {err}");
        }
    }
}
