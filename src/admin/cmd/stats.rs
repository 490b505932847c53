//! `stats`: per-type counts and recent durations, the oldest waiting job,
//! the workers.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::Ctx;
use crate::admin::protocol::AdminError;
use crate::queue::Queue;
use crate::queue::job::JobStatus;
use crate::queue::stats::TypeStats;
use crate::store::StoreError;
use crate::store::job::Counts;

/// The figures `stats` and `metrics` share.
pub struct Figures {
    pub counts: Counts,
    pub by_type: BTreeMap<String, TypeStats>,
    /// Every type with a handler, a stored job or a recorded attempt.
    pub types: BTreeSet<String>,
    pub oldest_pending_age_s: Option<f64>,
    pub busy: usize,
    pub max: usize,
}

pub async fn gather(queue: &Queue) -> Result<Figures, StoreError> {
    let now = queue.clock().now_ms();
    let counts = queue.store().counts(now).await?;
    let oldest = queue.store().oldest_ready(now).await?;
    let by_type = queue.stats();
    let types = queue
        .registry()
        .iter()
        .map(|r| r.job_type().to_string())
        .chain(counts.keys().cloned())
        .chain(by_type.keys().cloned())
        .collect();
    Ok(Figures {
        counts,
        by_type,
        types,
        oldest_pending_age_s: oldest.map(|at| (now - at).max(0) as f64 / 1000.0),
        busy: queue.busy(),
        max: queue.max_workers(),
    })
}

impl Figures {
    pub fn count(&self, job_type: &str, status: JobStatus) -> u64 {
        self.counts
            .get(job_type)
            .and_then(|by| by.get(&status))
            .copied()
            .unwrap_or(0)
    }
}

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let f = gather(&ctx.queue).await?;
    let mut types = Map::new();
    for t in &f.types {
        let s = f.by_type.get(t).cloned().unwrap_or_default();
        types.insert(
            t.clone(),
            json!({
                "pending": f.count(t, JobStatus::Pending),
                "scheduled": f.count(t, JobStatus::Scheduled),
                "running": f.count(t, JobStatus::Running),
                "dead": f.count(t, JobStatus::Dead),
                "succeeded": s.succeeded,
                "failed": s.failed,
                "p50_ms": s.quantile_ms(0.5),
                "p95_ms": s.quantile_ms(0.95),
                "max_ms": (s.count > 0).then_some(s.max_ms),
            }),
        );
    }
    Ok(crate::result! {
        "types": types,
        "oldest_pending_age_s": f.oldest_pending_age_s,
        "workers": serde_json::json!({"max": f.max, "busy": f.busy}),
    })
}
