//! `metrics`: the `stats` figures and the crons' last runs in Prometheus
//! text exposition format.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::Ctx;
use super::stats::gather;
use crate::admin::protocol::AdminError;
use crate::cron::scheduler::Scheduler;
use crate::queue::Queue;
use crate::queue::job::JobStatus;
use crate::queue::stats::BUCKETS_S;
use crate::store::StoreError;

pub async fn run(ctx: &Ctx) -> Result<Map<String, Value>, AdminError> {
    let text = render(&ctx.queue, &ctx.scheduler).await?;
    Ok(crate::result! { "text": text })
}

/// The exposition text; also written to CRONQ_METRICS_TEXTFILE.
pub async fn render(queue: &Queue, scheduler: &Scheduler) -> Result<String, StoreError> {
    let f = gather(queue).await?;
    let last_runs = queue.store().last_runs().await?;
    let mut out = String::new();

    header(
        &mut out,
        "cronq_jobs",
        "gauge",
        "Stored jobs by type and status.",
    );
    for t in &f.types {
        for status in JobStatus::ALL {
            let _ = writeln!(
                out,
                "cronq_jobs{{type=\"{}\",status=\"{}\"}} {}",
                escape(t),
                status.as_str(),
                f.count(t, status)
            );
        }
    }
    header(
        &mut out,
        "cronq_jobs_succeeded_total",
        "counter",
        "Attempts that succeeded since the daemon started.",
    );
    for t in &f.types {
        let n = f.by_type.get(t).map_or(0, |s| s.succeeded);
        let _ = writeln!(
            out,
            "cronq_jobs_succeeded_total{{type=\"{}\"}} {n}",
            escape(t)
        );
    }
    header(
        &mut out,
        "cronq_jobs_failed_total",
        "counter",
        "Attempts that failed since the daemon started.",
    );
    for t in &f.types {
        let n = f.by_type.get(t).map_or(0, |s| s.failed);
        let _ = writeln!(out, "cronq_jobs_failed_total{{type=\"{}\"}} {n}", escape(t));
    }
    header(
        &mut out,
        "cronq_job_duration_seconds",
        "histogram",
        "How long attempts took.",
    );
    for (t, s) in &f.by_type {
        let t = escape(t);
        let mut cumulative = 0;
        for (i, le) in BUCKETS_S.iter().enumerate() {
            cumulative += s.buckets[i];
            let _ = writeln!(
                out,
                "cronq_job_duration_seconds_bucket{{type=\"{t}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "cronq_job_duration_seconds_bucket{{type=\"{t}\",le=\"+Inf\"}} {}",
            s.count
        );
        let _ = writeln!(
            out,
            "cronq_job_duration_seconds_sum{{type=\"{t}\"}} {}",
            s.sum_s
        );
        let _ = writeln!(
            out,
            "cronq_job_duration_seconds_count{{type=\"{t}\"}} {}",
            s.count
        );
    }
    header(
        &mut out,
        "cronq_workers_busy",
        "gauge",
        "Workers running a job.",
    );
    let _ = writeln!(out, "cronq_workers_busy {}", f.busy);
    header(&mut out, "cronq_workers_max", "gauge", "JOB_MAX_WORKERS.");
    let _ = writeln!(out, "cronq_workers_max {}", f.max);
    header(
        &mut out,
        "cronq_oldest_pending_age_seconds",
        "gauge",
        "How long the longest-waiting ready job has waited.",
    );
    let _ = writeln!(
        out,
        "cronq_oldest_pending_age_seconds {}",
        f.oldest_pending_age_s.unwrap_or(0.0)
    );
    header(
        &mut out,
        "cronq_cron_enabled",
        "gauge",
        "Whether a cron is enabled.",
    );
    let views = scheduler.views();
    for v in &views {
        let _ = writeln!(
            out,
            "cronq_cron_enabled{{cron_id=\"{}\"}} {}",
            escape(&v.spec.id),
            u8::from(v.enabled)
        );
    }
    header(
        &mut out,
        "cronq_cron_last_run_timestamp_seconds",
        "gauge",
        "When a cron's latest run started.",
    );
    for v in &views {
        if let Some(started) = last_runs.get(&v.spec.id).and_then(|(run, _)| run.started) {
            let _ = writeln!(
                out,
                "cronq_cron_last_run_timestamp_seconds{{cron_id=\"{}\"}} {}",
                escape(&v.spec.id),
                started as f64 / 1000.0
            );
        }
    }
    header(
        &mut out,
        "cronq_cron_last_success_timestamp_seconds",
        "gauge",
        "When a cron's latest successful run finished.",
    );
    for v in &views {
        if let Some(at) = last_runs.get(&v.spec.id).and_then(|(_, ok)| *ok) {
            let _ = writeln!(
                out,
                "cronq_cron_last_success_timestamp_seconds{{cron_id=\"{}\"}} {}",
                escape(&v.spec.id),
                at as f64 / 1000.0
            );
        }
    }
    header(
        &mut out,
        "cronq_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    let _ = writeln!(out, "cronq_uptime_seconds {}", queue.uptime().as_secs_f64());
    Ok(out)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
