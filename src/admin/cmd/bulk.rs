//! The bulk form of `retry`, `cancel` and `purge`: a `filter` instead of an
//! `id`, at most [`BULK_LIMIT`] jobs per call, oldest first, and a `next`
//! cursor (passed back as `after`) to go on.
//!
//! Bounded so one request cannot hold the database for long: a call over
//! 10,000 jobs is one transaction of a few tens of milliseconds.

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::{BulkArgs, JobFilter};
use crate::admin::protocol::{self, AdminError, Request};
use crate::clock::Millis;
use crate::queue::job::JobStatus;
use crate::store::history::{Bulk, BulkFilter};

/// Jobs one bulk call looks at, at most.
pub const BULK_LIMIT: usize = 10_000;

/// Which verb a filter is for: what its `status` may say.
#[derive(Clone, Copy)]
pub(super) enum Verb {
    Retry,
    Cancel,
}

/// Whether the request is the bulk form.
pub(super) fn is_bulk(req: &Request) -> bool {
    req.args.contains_key("filter")
}

/// The bulk form's filter, every field checked.
pub(super) fn parse(req: &Request, verb: Verb) -> Result<BulkFilter, AdminError> {
    let args: BulkArgs = req.args()?;
    let mut filter = parse_filter(&args.filter, verb)?;
    filter.after = args
        .after
        .map(|c| super::jobs::parse_cursor(&c))
        .transpose()?;
    Ok(filter)
}

fn parse_filter(f: &JobFilter, verb: Verb) -> Result<BulkFilter, AdminError> {
    let given = [
        &f.status,
        &f.job_type,
        &f.name,
        &f.cron_id,
        &f.since,
        &f.until,
    ]
    .iter()
    .any(|v| v.is_some());
    if !given {
        return Err(AdminError::bad_request(
            "filter: give at least one of status, type, name, cron_id, since, until",
        ));
    }
    let status = match f.status.as_deref() {
        None => None,
        Some(text) => Some(status(text, verb)?),
    };
    Ok(BulkFilter {
        status,
        job_type: f.job_type.clone(),
        name: f.name.clone(),
        cron_id: f.cron_id.clone(),
        since: time("filter.since", &f.since)?,
        until: time("filter.until", &f.until)?,
        after: None,
        limit: BULK_LIMIT,
    })
}

fn status(text: &str, verb: Verb) -> Result<JobStatus, AdminError> {
    let (allowed, running): (&[JobStatus], &str) = match verb {
        Verb::Retry => (
            &[JobStatus::Dead, JobStatus::Scheduled],
            "only dead and scheduled jobs can be retried",
        ),
        Verb::Cancel => (
            &[JobStatus::Pending, JobStatus::Scheduled, JobStatus::Dead],
            "a bulk cancel never touches running jobs (`cancel` with `force` stops one by id)",
        ),
    };
    match JobStatus::parse(text) {
        Some(s) if allowed.contains(&s) => Ok(s),
        Some(_) => Err(AdminError::bad_request(format!(
            "filter.status: {text:?}: {running}"
        ))),
        None => Err(AdminError::bad_request(format!(
            "filter.status: {text:?} is not one of {}",
            allowed
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub(super) fn time(field: &str, text: &Option<String>) -> Result<Option<Millis>, AdminError> {
    text.as_deref()
        .map(|t| protocol::parse_time(field, t))
        .transpose()
}

/// The `next` of an answer: the cursor of the last job looked at.
pub(super) fn next(bulk: &Bulk) -> Value {
    bulk.next.as_ref().map_or(Value::Null, |(created, id)| {
        Value::String(format!("{created}.{id}"))
    })
}

/// `retry` with a filter.
pub(super) async fn retry(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let filter = parse(req, Verb::Retry)?;
    let now = ctx.queue.clock().now_ms();
    let bulk = ctx.queue.store().retry_matching(filter, now).await?;
    if bulk.count > 0 {
        ctx.queue.wake();
    }
    Ok(crate::result! { "count": bulk.count, "skipped": bulk.skipped, "next": next(&bulk) })
}

/// `cancel` with a filter.
pub(super) async fn cancel(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let filter = parse(req, Verb::Cancel)?;
    let bulk = ctx.queue.cancel_matching(filter).await?;
    Ok(crate::result! { "count": bulk.count, "next": next(&bulk) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::Code;

    fn parsed(line: &str, verb: Verb) -> Result<BulkFilter, AdminError> {
        let req = Request::parse(line.as_bytes()).map_err(|(_, e)| e)?;
        parse(&req, verb)
    }

    #[test]
    fn a_filter_names_at_least_one_field_and_a_status_its_verb_takes() {
        let f = parsed(
            r#"{"cmd":"retry","filter":{"status":"dead","type":"email"},"after":"5.abc"}"#,
            Verb::Retry,
        )
        .unwrap();
        assert_eq!(f.status, Some(JobStatus::Dead));
        assert_eq!(f.job_type.as_deref(), Some("email"));
        assert_eq!(f.after, Some((5, "abc".to_string())));
        assert_eq!(f.limit, BULK_LIMIT);
        for (line, verb, says) in [
            (
                r#"{"cmd":"retry","filter":{}}"#,
                Verb::Retry,
                "at least one",
            ),
            (
                r#"{"cmd":"retry","filter":{"status":"pending"}}"#,
                Verb::Retry,
                "only dead and scheduled",
            ),
            (
                r#"{"cmd":"cancel","filter":{"status":"running"}}"#,
                Verb::Cancel,
                "never touches running",
            ),
            (
                r#"{"cmd":"cancel","filter":{"status":"done"}}"#,
                Verb::Cancel,
                "is not one of pending, scheduled, dead",
            ),
            (
                r#"{"cmd":"cancel","filter":{"typ":"x"}}"#,
                Verb::Cancel,
                "unknown field",
            ),
            (
                r#"{"cmd":"cancel","filter":{"since":"yesterday"}}"#,
                Verb::Cancel,
                "filter.since",
            ),
        ] {
            let e = parsed(line, verb).unwrap_err();
            assert_eq!(e.code, Code::BadRequest, "{line}");
            assert!(e.message.contains(says), "{line}: {}", e.message);
        }
    }
}
