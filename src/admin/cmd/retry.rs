//! `retry`: a dead or scheduled job, pending now with fresh attempts; or,
//! with a `filter`, every such job it matches (see `bulk`).

use serde_json::{Map, Value};

use super::{Ctx, IdArg};
use crate::admin::protocol::{self, AdminError, Code, Request};
use crate::store::job::Refusal;

pub async fn run(ctx: &Ctx, req: &Request) -> Result<Map<String, Value>, AdminError> {
    if super::bulk::is_bulk(req) {
        return super::bulk::retry(ctx, req).await;
    }
    let IdArg { id } = req.args_with_id()?;
    let now = ctx.queue.clock().now_ms();
    match ctx.queue.store().retry(id.clone(), now).await? {
        Ok(job) => {
            ctx.queue.wake();
            Ok(crate::result! { "job": protocol::job(&job) })
        }
        Err(refusal) => Err(refused(&id, refusal, "retried")),
    }
}

pub(super) fn refused(id: &str, refusal: Refusal, verb: &str) -> AdminError {
    match refusal {
        Refusal::NotFound => AdminError::not_found(format!("no job has id {id:?}")),
        Refusal::WrongStatus(status) => AdminError::new(
            Code::Conflict,
            format!("job {id} is {} and cannot be {verb}", status.as_str()),
        ),
        Refusal::KeyHeld(holder) => AdminError::new(
            Code::Conflict,
            format!("job {id} cannot be {verb}: job {holder} holds the same unique_key"),
        ),
    }
}
