//! `status`: the daemon's identity, health and queue totals, its handlers,
//! and, while it shuts down, what the drain waits for.
//!
//! The queue's totals come from the store, the workers' from this process:
//! `queue.running` counts every reservation in the database, so beside
//! `workers.busy` (handlers running here now) `workers.claimed` counts the
//! jobs this daemon holds without running them at this instant (claimed
//! ahead of a free worker, or finished with the outcome being written).
//! What `running` holds beyond both is another daemon's, or a dead one's
//! awaiting recovery. On a database other hosts share, `instances` counts
//! the daemons alive on it and `clock_offset_ms` is this host's clock
//! against the server's.
//!
//! `pocketbase` is the PocketBase follower's own view (see
//! `bridge::pocketbase::status`), null when no PocketBase is configured.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value, json};

use super::Ctx;
use crate::admin::protocol::{self, AdminError, PROTOCOL_VERSION};
use crate::queue::Queue;
use crate::queue::job::JobStatus;
use crate::store::sqlite_version;

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let queue = &ctx.queue;
    let mut answer = base(ctx).await?;
    // A database other hosts share: how many daemons are alive on it, and
    // how far this one's clock is from the server's.
    if queue.store().shared() {
        answer.insert("instances".into(), json!(queue.live_instances().await?));
        answer.insert(
            "clock_offset_ms".into(),
            json!(queue.store().clock_offset_ms()),
        );
    }
    Ok(answer)
}

/// The fields every backend answers.
async fn base(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let queue = &ctx.queue;
    let counts = queue.store().counts(queue.clock().now_ms()).await?;
    let backend = queue.store().info();
    let paused = queue.store().paused().await?;
    let total = |status: JobStatus| -> u64 {
        counts
            .values()
            .map(|by| by.get(&status).copied().unwrap_or(0))
            .sum()
    };
    Ok(crate::result! {
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": PROTOCOL_VERSION,
        "pid": std::process::id(),
        "uptime_s": queue.uptime().as_secs(),
        "backend": backend.name,
        "db": backend.location,
        "sqlite_version": sqlite_version(),
        "ready": ctx.ready.load(Ordering::Relaxed),
        "workers": json!({
            "max": queue.max_workers(),
            "busy": queue.busy(),
            "claimed": queue.claimed(),
        }),
        "queue": json!({
            "pending": total(JobStatus::Pending),
            "scheduled": total(JobStatus::Scheduled),
            "running": total(JobStatus::Running),
            "dead": total(JobStatus::Dead),
        }),
        "automatic": queue.automatic(),
        "paused": paused,
        "limits": queue.limits().describe(),
        "instance": queue.instance().id,
        "last_tick": protocol::opt_time(ctx.scheduler.last_tick()),
        "handlers": handlers(queue),
        "draining": draining(queue),
        "pocketbase": ctx.pocketbase.as_ref().map(|p| p.view()),
    })
}

/// Every registered handler, on or off, and why it is off.
fn handlers(queue: &Queue) -> Vec<Value> {
    queue
        .registry()
        .iter()
        .map(|r| {
            json!({
                "type": r.job_type(),
                "enabled": r.enabled,
                "reason": if r.enabled { None } else { Some(r.disabled_reason.as_deref().unwrap_or("switched off")) },
            })
        })
        .collect()
}

/// Null while the daemon runs; during a shutdown drain, the jobs it waits
/// for and the latest moment their timeouts allow them.
fn draining(queue: &Queue) -> Value {
    if !queue.shutdown_token().is_cancelled() {
        return Value::Null;
    }
    let until = queue
        .longest_remaining()
        .map(|left| queue.clock().now_ms() + left.as_millis() as i64);
    json!({
        "running": queue.busy(),
        "jobs": queue.running_ids(),
        "until": protocol::opt_time(until),
    })
}
