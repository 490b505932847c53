//! Per command: the request it sends (`plan`) and how its answer reads.
//!
//! - `status`: ping, status, stats, metrics;
//! - `instances`: the daemons on the database;
//! - `enqueue`: one job from flags, or a JSON-lines batch;
//! - `import_pocketbase`: a PocketBase data.db, in many `import` requests;
//! - `jobs`: jobs, job, explain, retry, cancel, purge, pause, resume;
//! - `crons`: crons, cron, trigger, enable, disable, reload;
//! - `log_level`: log-level;
//! - `next`: fire times of an expression, computed here without a daemon;
//! - `wait`: wait, and enqueue and trigger with `--wait`;
//! - `watch`: the event stream.
//!
//! Renderers read answers as `serde_json::Value` through the accessors
//! below rather than strict types: a newer daemon may add fields, and an
//! operator's view should degrade to "-" for a missing one, not fail.

pub mod check;
pub mod copy_store;
pub mod crons;
pub mod enqueue;
pub mod import_pocketbase;
pub mod instances;
pub mod jobs;
pub mod log_level;
pub mod next;
pub mod status;
pub mod wait;
pub mod watch;

use serde_json::Value;

use super::args::Command;
use super::request::{CancelArgs, Cmd, CronQuery, LogLevelArgs, PauseArgs};
use super::{ClientError, Render};

/// The request a daemon command sends and the renderer of its answer.
pub fn plan(command: Command) -> Result<(Cmd, Render), ClientError> {
    Ok(match command {
        Command::Ping => (Cmd::Ping, status::render_ping),
        Command::Status => (Cmd::Status, status::render_status),
        Command::Stats => (Cmd::Stats, status::render_stats),
        Command::Metrics => (Cmd::Metrics, status::render_metrics),
        Command::Instances => (Cmd::Instances, instances::render),
        Command::Enqueue(args) => (
            enqueue::request(&args, &mut std::io::stdin().lock())?,
            if args.verbose {
                enqueue::render_verbose
            } else {
                enqueue::render
            },
        ),
        Command::Jobs(args) => (jobs::list_request(&args)?, jobs::render_list),
        Command::Job { id } => (Cmd::Job { id }, jobs::render_job),
        Command::Explain { id } => (Cmd::Explain { id }, jobs::render_explain),
        Command::Retry { id, filter } | Command::Cancel { id, filter, .. }
            if id.is_some() && (filter.any() || filter.after.is_some()) =>
        {
            return Err(ClientError::Usage(
                "give a job id or filter flags (--status, --type, ...), not both".to_string(),
            ));
        }
        Command::Cancel {
            id: None,
            force: true,
            ..
        } => {
            return Err(ClientError::Usage(
                "--force stops one running job: give its id (a bulk cancel never touches \
                 running jobs)"
                    .to_string(),
            ));
        }
        Command::Retry { id, filter } => match id {
            Some(id) => (Cmd::Retry { id }, jobs::render_retry),
            None => (
                Cmd::RetryWhere(jobs::bulk_request(&filter)?),
                jobs::render_bulk_retry,
            ),
        },
        Command::Cancel { id, force, filter } => match id {
            Some(id) if force => (
                Cmd::CancelForce(CancelArgs {
                    id,
                    force: Some(true),
                }),
                jobs::render_cancel,
            ),
            Some(id) => (Cmd::Cancel { id }, jobs::render_cancel),
            None => (
                Cmd::CancelWhere(jobs::bulk_request(&filter)?),
                jobs::render_bulk_cancel,
            ),
        },
        Command::Purge { older_than, filter } => (
            Cmd::Purge(jobs::purge_request(older_than, &filter)?),
            jobs::render_purge,
        ),
        Command::Pause { job_type } => (Cmd::Pause(PauseArgs { job_type }), jobs::render_pause),
        Command::Resume { job_type } => (Cmd::Resume(PauseArgs { job_type }), jobs::render_pause),
        Command::Crons => (Cmd::Crons, crons::render_list),
        Command::Cron { id, limit } => (
            Cmd::Cron(CronQuery {
                id,
                limit: limit.map(|n| n as usize),
            }),
            crons::render_cron,
        ),
        Command::Trigger { id, .. } => (Cmd::Trigger { id }, crons::render_trigger),
        Command::Enable { id } => (Cmd::Enable { id }, crons::render_switch),
        Command::Disable { id } => (Cmd::Disable { id }, crons::render_switch),
        Command::Reload => (Cmd::Reload, crons::render_reload),
        Command::LogLevel { level } => (
            Cmd::LogLevel(LogLevelArgs {
                level: level.as_str().to_string(),
            }),
            log_level::render,
        ),
        Command::Daemon
        | Command::Check { .. }
        | Command::ImportPocketbase(_)
        | Command::CopyStore(_)
        | Command::Next(_)
        | Command::Top
        | Command::Wait { .. }
        | Command::Watch(_)
        | Command::Completions { .. } => {
            return Err(ClientError::Usage(
                "this command does not talk to the daemon".to_string(),
            ));
        }
    })
}

/// A string field, or "-" when absent or null.
fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A string field, if it is one.
fn opt_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A number field as text, or "-".
fn num(value: &Value, key: &str) -> String {
    value
        .get(key)
        .filter(|v| v.is_number())
        .map_or_else(|| "-".to_string(), Value::to_string)
}

/// An array field's items, none when absent.
fn items<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// "yes"/"no" for a bool field, "-" otherwise.
fn yes_no(value: &Value, key: &str) -> String {
    match value.get(key).and_then(Value::as_bool) {
        Some(true) => "yes".to_string(),
        Some(false) => "no".to_string(),
        None => "-".to_string(),
    }
}

/// A timestamp field as "2026-01-01 02:00:00 UTC (3m ago)", or "-".
fn when(value: &Value, key: &str, now: jiff::Timestamp) -> String {
    match opt_str(value, key) {
        None => "-".to_string(),
        Some(t) => format!(
            "{} UTC ({})",
            super::timefmt::short(t),
            super::timefmt::relative_text(Some(t), now)
        ),
    }
}
