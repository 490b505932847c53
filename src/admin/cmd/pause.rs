//! `pause` and `resume`: stop and restart the claims of one job type, or
//! of every type when `type` is absent. Running jobs finish; the pause is
//! stored in the database, so it outlives restarts and holds for every
//! daemon on it (each claim reads it). Each one is a `paused` or
//! `resumed` event for `watch`, with the pauses in force after it. At most
//! [`MAX_PAUSES`] single types are paused at once (`too_large` beyond).

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::PauseArgs;
use crate::admin::protocol::{AdminError, Code, Request};
use crate::queue::events::Event;
use crate::store::history::MAX_PAUSES;

/// The type named, checked.
pub(super) fn parse(req: &Request) -> Result<Option<String>, AdminError> {
    let PauseArgs { job_type } = req.args()?;
    if let Some(t) = &job_type {
        let n = t.chars().count();
        if n == 0 || n > 200 || t.contains('\0') || t == crate::store::history::ALL_TYPES {
            return Err(AdminError::bad_request(format!(
                "type: {t:?} is not a job type; leave type out to pause every type"
            )));
        }
    }
    Ok(job_type)
}

pub async fn run(ctx: &Ctx, req: &Request, pause: bool) -> Result<Map<String, Value>, AdminError> {
    let job_type = parse(req)?;
    let queue = &ctx.queue;
    let store = queue.store();
    let now = queue.clock().now_ms();
    let paused = if pause {
        let paused = store.pause(job_type.clone(), now).await?;
        if let Some(t) = &job_type
            && !paused.contains(t)
        {
            return Err(AdminError::new(
                Code::TooLarge,
                format!(
                    "type: {t:?} is not paused: {MAX_PAUSES} job types are paused already; \
                     resume some, or pause every type (no type)"
                ),
            ));
        }
        paused
    } else {
        let paused = store.resume(job_type.clone()).await?;
        // Jobs held back may be ready now.
        queue.wake();
        paused
    };
    tracing::info!(
        job_type = job_type.as_deref().unwrap_or("*"),
        paused = %paused.join(","),
        "{} {}",
        if pause { "paused" } else { "resumed" },
        job_type.as_deref().map_or("every job type".to_string(), |t| format!("job type {t}"))
    );
    queue
        .events()
        .publish(|| Event::pause(!pause, now, job_type.as_deref(), paused.clone()));
    Ok(crate::result! { "paused": paused })
}
