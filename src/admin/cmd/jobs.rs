//! `jobs`: a filtered listing, newest first, paged by cursor. The queue
//! (pending, scheduled, running, dead) is listed by creation; finished jobs
//! (`status` `succeeded` or `cancelled`) come from the history, the latest
//! to finish first, with `since`/`until` bounding the finish time.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::JobsQuery;
use crate::admin::protocol::{self, AdminError, Request};
use crate::queue::job::JobStatus;
use crate::store::ListFilter;
use crate::store::history::{FinalStatus, HistoryFilter};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

/// What to list, every argument checked.
#[derive(Debug)]
pub(super) enum Listing {
    Queue(ListFilter),
    History(HistoryFilter),
}

pub(super) fn parse(req: &Request) -> Result<Listing, AdminError> {
    let args: JobsQuery = req.args()?;
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AdminError::bad_request(format!(
            "limit: must be from 1 to {MAX_LIMIT}, got {limit}"
        )));
    }
    let since = args
        .since
        .map(|t| protocol::parse_time("since", &t))
        .transpose()?;
    let until = args
        .until
        .map(|t| protocol::parse_time("until", &t))
        .transpose()?;
    let finished = match args.status.as_deref() {
        Some(text @ ("succeeded" | "cancelled")) => FinalStatus::parse(text),
        _ => None,
    };
    if let Some(status) = finished {
        return Ok(Listing::History(HistoryFilter {
            status: Some(status),
            job_type: args.job_type,
            name: args.name,
            cron_id: args.cron_id,
            since,
            until,
            limit,
            after: args.after.map(|c| parse_seq(&c)).transpose()?,
        }));
    }
    let status = match args.status.as_deref() {
        None => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            AdminError::bad_request(format!(
                "status: {text:?} is not one of pending, scheduled, running, dead, succeeded, cancelled"
            ))
        })?),
    };
    Ok(Listing::Queue(ListFilter {
        job_type: args.job_type,
        status,
        name: args.name,
        cron_id: args.cron_id,
        since,
        until,
        limit,
        after: args.after.map(|c| parse_cursor(&c)).transpose()?,
    }))
}

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let store = ctx.queue.store();
    match parse(req)? {
        Listing::Queue(filter) => {
            let now = ctx.queue.clock().now_ms();
            let (jobs, more) = store.list(filter, now).await?;
            let next = match (more, jobs.last()) {
                (true, Some(last)) => Value::String(format!("{}.{}", last.created, last.id)),
                _ => Value::Null,
            };
            Ok(crate::result! {
                "jobs": jobs.iter().map(|j| super::job::with_progress(ctx, j)).collect::<Vec<_>>(),
                "next": next,
            })
        }
        Listing::History(filter) => {
            let (jobs, more) = store.list_finished(filter).await?;
            let next = match (more, jobs.last()) {
                (true, Some(last)) => Value::String(last.seq.to_string()),
                _ => Value::Null,
            };
            Ok(crate::result! {
                "jobs": jobs.iter().map(protocol::finished_job).collect::<Vec<_>>(),
                "next": next,
            })
        }
    }
}

/// A cursor is `CREATED_MS.ID` of the last job of the previous page.
pub(super) fn parse_cursor(text: &str) -> Result<(i64, String), AdminError> {
    let bad = || {
        AdminError::bad_request(format!(
            "after: {text:?} is not a cursor from a previous page's \"next\""
        ))
    };
    let (created, id) = text.split_once('.').ok_or_else(bad)?;
    let created = created.parse().map_err(|_| bad())?;
    if id.is_empty() || id.len() > 64 {
        return Err(bad());
    }
    Ok((created, id.to_string()))
}

/// A finished jobs' cursor is the `seq` of the last record of the page.
fn parse_seq(text: &str) -> Result<i64, AdminError> {
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        AdminError::bad_request(format!(
            "after: {text:?} is not a cursor from a previous page of finished jobs"
        ))
    })
}
