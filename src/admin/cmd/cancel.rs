//! `cancel`: deletes a job that is not running (its history record says
//! `cancelled`); with `force`, stops a running one (see `queue::stop`);
//! with a `filter`, cancels every waiting job it matches (see `bulk`).

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::request::CancelArgs;
use crate::admin::protocol::{AdminError, Code, Request};
use crate::queue::job::{JobStatus, Refusal};
use crate::queue::stop::{Cancel, FORCE_WAIT};

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    if super::bulk::is_bulk(req) {
        return super::bulk::cancel(ctx, req).await;
    }
    let CancelArgs { id, force } = req.args_with_id()?;
    match ctx.queue.cancel(id.clone(), force == Some(true)).await? {
        Cancel::Cancelled => Ok(crate::result! { "cancelled": id }),
        Cancel::Refused(Refusal::WrongStatus(JobStatus::Running)) => Err(AdminError::new(
            Code::Conflict,
            format!("job {id} is running and cannot be cancelled; \"force\": true stops it"),
        )),
        Cancel::Refused(refusal) => Err(super::retry::refused(&id, refusal, "cancelled")),
        Cancel::EndedFirst(kind) => Err(AdminError::new(
            Code::Conflict,
            format!(
                "job {id} ended ({}) before it could be stopped",
                kind.as_str()
            ),
        )),
        Cancel::RunningElsewhere { instance } => Err(AdminError::new(
            Code::Conflict,
            format!(
                "job {id} is running in another cronq (instance {instance}) that this daemon \
                 cannot reach; cancel it there"
            ),
        )),
        Cancel::NotConfirmed { instance } => Err(AdminError::new(
            Code::Unavailable,
            format!(
                "job {id} was asked to stop (instance {instance}) but has not ended within {} s; \
                 `job {id}` shows where it is",
                FORCE_WAIT.as_secs()
            ),
        )),
    }
}
