//! `status`: the daemon's identity, health and queue totals.

use std::sync::atomic::Ordering;

use serde_json::{Map, Value};

use super::Ctx;
use crate::admin::protocol::{self, AdminError, PROTOCOL_VERSION};
use crate::queue::job::JobStatus;
use crate::store::sqlite_version;

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let queue = &ctx.queue;
    let counts = queue.store().counts(queue.clock().now_ms()).await?;
    let backend = queue.store().info();
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
        "workers": serde_json::json!({"max": queue.max_workers(), "busy": queue.busy()}),
        "queue": serde_json::json!({
            "pending": total(JobStatus::Pending),
            "scheduled": total(JobStatus::Scheduled),
            "running": total(JobStatus::Running),
            "dead": total(JobStatus::Dead),
        }),
        "automatic": queue.automatic(),
        "instance": queue.instance().id,
        "last_tick": protocol::opt_time(ctx.scheduler.last_tick()),
    })
}
