//! `purge`: deletes dead jobs, optionally only old ones; with any of the
//! filter fields (`type`, `name`, `cron_id`, `since`, `until`), only those
//! it matches, at most 10,000 per call with a `next` cursor. Their history
//! records stay: `job ID` still answers `dead`.

use serde_json::{Map, Value};

use super::Ctx;
use super::bulk::{BULK_LIMIT, time};
use crate::admin::protocol::request::PurgeArgs;
use crate::admin::protocol::{AdminError, Request};
use crate::store::history::BulkFilter;

/// A purge, its arguments checked.
pub(super) struct Purge {
    pub older_than: Option<u64>,
    /// Set when a filter field was given: the bounded form.
    pub filter: Option<BulkFilter>,
}

pub(super) fn parse(req: &Request) -> Result<Purge, AdminError> {
    let args: PurgeArgs = req.args()?;
    if args.status != "dead" {
        return Err(AdminError::bad_request(format!(
            "status: only \"dead\" jobs can be purged, not {:?}",
            args.status
        )));
    }
    let filtered = [
        &args.job_type,
        &args.name,
        &args.cron_id,
        &args.since,
        &args.until,
        &args.after,
    ]
    .iter()
    .any(|v| v.is_some());
    let filter = if filtered {
        Some(BulkFilter {
            status: None,
            job_type: args.job_type,
            name: args.name,
            cron_id: args.cron_id,
            since: time("since", &args.since)?,
            until: time("until", &args.until)?,
            after: args
                .after
                .map(|c| super::jobs::parse_cursor(&c))
                .transpose()?,
            limit: BULK_LIMIT,
        })
    } else {
        None
    };
    Ok(Purge {
        older_than: args.older_than,
        filter,
    })
}

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    let purge = parse(req)?;
    let before = match purge.older_than {
        None => None,
        Some(secs) => {
            let ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
            Some(ctx.queue.clock().now_ms().saturating_sub(ms))
        }
    };
    let store = ctx.queue.store();
    let (purged, next) = match purge.filter {
        None => (store.purge_dead(before).await?, Value::Null),
        Some(filter) => {
            let bulk = store.purge_matching(filter, before).await?;
            (bulk.count, super::bulk::next(&bulk))
        }
    };
    Ok(crate::result! { "purged": purged, "next": next })
}
