//! `wait`: answers when a job has ended, with its final record, or with
//! the error `timeout` once `timeout` seconds have passed.
//!
//! The waiter is registered on the event bus before the job is read, so an
//! end between the two is not missed. A job already ended is answered at
//! once. The end usually arrives as an event (this daemon's, or relayed
//! from the daemon that ran it); the store is read again every
//! [`RECHECK`] besides, for ends no event reported (another process on the
//! same SQLite file, a relay message lost).
//!
//! The final record is the history's (`store::history`): a job that
//! ended left it in the same transaction that took it out of the queue,
//! so a job the queue no longer holds is found there, and a dead one is
//! answered with what its record adds (`started`, `finished`,
//! `duration_ms`, `result`). Only with the history off (`JOB_HISTORY=off`)
//! or past its retention is the record put together here, from the last
//! one read and the event that ended it (kept for the last `RECENT_ENDS`
//! ends); a job gone without a word is then taken as succeeded (see
//! [`gone_silently`]).

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::Ctx;
use crate::admin::protocol::request::WaitArgs;
use crate::admin::protocol::{self, AdminError, Code, Request};
use crate::clock::Millis;
use crate::queue::events::Event;
use crate::queue::job::{Job, JobStatus};

pub const DEFAULT_TIMEOUT_S: u64 = 60;
pub const MAX_TIMEOUT_S: u64 = 86_400;
/// How often the store is read again while waiting.
pub const RECHECK: Duration = Duration::from_secs(5);

/// The job to wait for and how long, checked.
pub fn parse(req: &Request) -> Result<(String, Duration), AdminError> {
    let WaitArgs { id, timeout } = req.args_with_id()?;
    let secs = timeout.unwrap_or(DEFAULT_TIMEOUT_S);
    if !(1..=MAX_TIMEOUT_S).contains(&secs) {
        return Err(AdminError::bad_request(format!(
            "timeout: must be from 1 to {MAX_TIMEOUT_S} seconds, got {secs}"
        )));
    }
    Ok((id, Duration::from_secs(secs)))
}

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let (id, timeout) = parse(req)?;
    let deadline = tokio::time::Instant::now() + timeout;
    let events = ctx.queue.events();
    let waiter = events.wait_for(&id);
    let mut seen: Option<Job> = None;
    loop {
        let store = ctx.queue.store();
        let now = ctx.queue.clock().now_ms();
        let stored = store.get(id.clone(), now).await?;
        match stored {
            Some((job, _)) if job.status == JobStatus::Dead => {
                let record = store.finished_job(id.clone()).await?;
                let shown = protocol::job(&job);
                return Ok(answer(match record {
                    Some(record) => protocol::with_ending(shown, &record),
                    None => shown,
                }));
            }
            // Ended, and retried since: it did end, as its record (or, with
            // the history off, the event) says.
            Some((job, _)) if waiter.seen().is_some() => {
                let record = store.finished_job(id.clone()).await?;
                return Ok(answer(match (record, waiter.seen()) {
                    (Some(record), _) => protocol::finished_job(&record),
                    (None, Some(event)) => record_from(Some(&job), &event),
                    (None, None) => protocol::job(&job),
                }));
            }
            Some((job, _)) => seen = Some(job),
            // Read after the queue: a job that left it left its record first.
            None => {
                if let Some(record) = store.finished_job(id.clone()).await? {
                    return Ok(answer(protocol::finished_job(&record)));
                }
                if let Some(event) = waiter.seen().or_else(|| events.recent_end(&id)) {
                    return Ok(answer(record_from(seen.as_ref(), &event)));
                }
                return match &seen {
                    Some(job) => Ok(answer(gone_silently(job, now))),
                    None => Err(super::job::not_found(&ctx.queue, &id)),
                };
            }
        }
        tokio::select! {
            _ = waiter.ended() => {}
            () = tokio::time::sleep(RECHECK) => {}
            () = tokio::time::sleep_until(deadline) => {
                let now = ctx.queue.clock().now_ms();
                let status = match ctx.queue.store().get(id.clone(), now).await {
                    Ok(Some((job, _))) => job.status.as_str(),
                    _ => seen.as_ref().map_or("waiting", |j| j.status.as_str()),
                };
                return Err(AdminError::new(
                    Code::Timeout,
                    format!(
                        "job {id} has not ended within {} s; it is {status}",
                        timeout.as_secs()
                    ),
                ));
            }
        }
    }
}

fn answer(job: Value) -> Map<String, Value> {
    crate::result! { "job": job }
}

/// The final record of a job neither the queue nor the history holds, from
/// its last record read (if any) and the event that ended it.
fn record_from(job: Option<&Job>, event: &Event) -> Value {
    let mut record = match (job, &event.job) {
        (Some(job), _) => protocol::job(job),
        (None, Some(j)) => json!({
            "id": j.id, "name": j.name, "type": j.job_type, "attempts": j.attempt,
            "cron_id": j.cron_id,
        }),
        (None, None) => json!({}),
    };
    finish(&mut record, event.kind.as_str(), event.at);
    if let Some(j) = &event.job {
        record["attempts"] = j.attempt.into();
    }
    if let Some(error) = &event.error {
        record["last_error"] = Value::String(error.clone());
    }
    if let Some(ms) = event.duration_ms {
        record["duration_ms"] = ms.into();
    }
    record
}

/// A job that was read while it waited or ran and is gone now, with no
/// record and no event saying how it ended (the history is off, or another
/// process ended it and its record is already pruned): succeeded, since a
/// cancel and a death are announced (a death even leaves the row).
fn gone_silently(job: &Job, now: Millis) -> Value {
    let mut record = protocol::job(job);
    finish(&mut record, "succeeded", now);
    record
}

fn finish(record: &mut Value, status: &str, at: Millis) {
    record["status"] = status.into();
    record["finished"] = protocol::time(at);
    if record.get("reserved_at").is_some() {
        record["reserved_at"] = Value::Null;
        record["reserved_by"] = Value::Null;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<(String, Duration), String> {
        let req = Request::parse(line.as_bytes()).map_err(|(_, e)| e.message)?;
        parse(&req).map_err(|e| e.message)
    }

    #[test]
    fn the_timeout_is_checked() {
        assert_eq!(
            parsed(r#"{"cmd":"wait","id":"a"}"#).unwrap(),
            ("a".into(), Duration::from_secs(60))
        );
        assert_eq!(
            parsed(r#"{"cmd":"wait","id":"a","timeout":86400}"#)
                .unwrap()
                .1,
            Duration::from_secs(86_400)
        );
        for (line, needle) in [
            (
                r#"{"cmd":"wait","id":"a","timeout":0}"#,
                "timeout: must be from 1 to 86400 seconds, got 0",
            ),
            (r#"{"cmd":"wait","id":"a","timeout":86401}"#, "got 86401"),
            (
                r#"{"cmd":"wait","id":"a","timeout":-1}"#,
                "timeout: invalid value",
            ),
            (r#"{"cmd":"wait"}"#, "id: missing"),
            (r#"{"cmd":"wait","id":"a","for":1}"#, "unknown field `for`"),
        ] {
            let err = parsed(line).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
    }
}
