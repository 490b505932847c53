//! `jobs`, `job`, `explain`, `retry`, `cancel`, `purge`, `pause`,
//! `resume`: looking at jobs (queued or finished) and acting on one, on
//! every job a filter matches, or on a type.

use jiff::Timestamp;
use serde_json::Value;

use super::enqueue::timestamp_arg;
use super::{items, num, opt_str, text, when};
use crate::client::ClientError;
use crate::client::args::{FilterArgs, JobStatus, JobsArgs};
use crate::client::request::{BulkArgs, Cmd, JobFilter, JobsQuery, PurgeArgs};
use crate::client::table::{Fields, Table};
use crate::client::timefmt;

pub fn list_request(args: &JobsArgs) -> Result<Cmd, ClientError> {
    Ok(Cmd::Jobs(JobsQuery {
        job_type: args.job_type.clone(),
        status: args.status.map(|s| s.as_str().to_string()),
        since: args
            .since
            .as_deref()
            .map(|t| timestamp_arg(t, "--since"))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| timestamp_arg(t, "--until"))
            .transpose()?,
        limit: args.limit.map(|n| n as usize),
        after: args.after.clone(),
        name: args.name.clone(),
        cron_id: args.cron_id.clone(),
    }))
}

/// The `filter` of `retry` / `cancel` from their flags.
pub fn bulk_request(args: &FilterArgs) -> Result<BulkArgs, ClientError> {
    if !args.any() {
        return Err(ClientError::Usage(
            "give a job id, or at least one of --status, --type, --name, --cron-id, --since, --until"
                .to_string(),
        ));
    }
    Ok(BulkArgs {
        filter: JobFilter {
            status: args.status.map(|s| s.as_str().to_string()),
            job_type: args.job_type.clone(),
            name: args.name.clone(),
            cron_id: args.cron_id.clone(),
            since: time_flag(&args.since, "--since")?,
            until: time_flag(&args.until, "--until")?,
        },
        after: args.after.clone(),
    })
}

/// `purge` from its flags: dead jobs only.
pub fn purge_request(older_than: Option<u64>, args: &FilterArgs) -> Result<PurgeArgs, ClientError> {
    if args.status.is_some_and(|s| s != JobStatus::Dead) {
        return Err(ClientError::Usage(
            "purge deletes dead jobs only: --status can only be dead".to_string(),
        ));
    }
    Ok(PurgeArgs {
        status: "dead".to_string(),
        older_than,
        job_type: args.job_type.clone(),
        name: args.name.clone(),
        cron_id: args.cron_id.clone(),
        since: time_flag(&args.since, "--since")?,
        until: time_flag(&args.until, "--until")?,
        after: args.after.clone(),
    })
}

fn time_flag(value: &Option<String>, flag: &str) -> Result<Option<String>, ClientError> {
    value.as_deref().map(|t| timestamp_arg(t, flag)).transpose()
}

/// `attempts/max_attempts`.
fn tries(job: &Value) -> String {
    format!("{}/{}", num(job, "attempts"), num(job, "max_attempts"))
}

pub fn render_list(a: &Value, now: Timestamp) -> String {
    let jobs = items(a, "jobs");
    if jobs.is_empty() {
        return "no jobs".to_string();
    }
    if jobs.iter().all(|j| j.get("finished").is_some()) {
        return with_more(render_finished(jobs, now), a);
    }
    let mut t = Table::new(&[
        "ID",
        "TYPE",
        "NAME",
        "STATUS",
        "TRIES",
        "PRI",
        "RUNS",
        "CREATED",
        "LAST ERROR",
    ])
    .right(&["TRIES", "PRI"]);
    for job in jobs {
        t.row(vec![
            text(job, "id"),
            text(job, "type"),
            text(job, "name"),
            text(job, "status"),
            tries(job),
            num(job, "priority"),
            timefmt::relative_text(opt_str(job, "run_at"), now),
            timefmt::relative_text(opt_str(job, "created"), now),
            opt_str(job, "last_error").unwrap_or("").to_string(),
        ]);
    }
    with_more(t.to_string(), a)
}

/// Finished jobs (`--status succeeded`/`cancelled`): when they ended and
/// what came of it.
fn render_finished(jobs: &[Value], now: Timestamp) -> String {
    let mut t = Table::new(&[
        "ID", "TYPE", "NAME", "STATUS", "TRIES", "FINISHED", "TOOK", "RESULT",
    ])
    .right(&["TRIES", "TOOK"]);
    for job in jobs {
        let outcome = match (job.get("result"), opt_str(job, "last_error")) {
            (Some(r), _) if !r.is_null() => r.to_string(),
            (_, Some(e)) => e.to_string(),
            _ => String::new(),
        };
        t.row(vec![
            text(job, "id"),
            text(job, "type"),
            text(job, "name"),
            text(job, "status"),
            tries(job),
            timefmt::relative_text(opt_str(job, "finished"), now),
            took(job),
            outcome,
        ]);
    }
    t.to_string()
}

/// `duration_ms` as "12ms", "3.4s", or "-".
fn took(job: &Value) -> String {
    match job.get("duration_ms").and_then(Value::as_i64) {
        None => "-".to_string(),
        Some(ms) if ms < 1000 => format!("{ms}ms"),
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
    }
}

/// `out` and, when more follow, the command for the next page.
fn with_more(mut out: String, a: &Value) -> String {
    match a.get("next") {
        None | Some(Value::Null) => {}
        Some(Value::String(next)) => out.push_str(&format!("more: cronq jobs --after {next}\n")),
        Some(next) => out.push_str(&format!("more: cronq jobs --after '{next}'\n")),
    }
    out
}

pub fn render_job(a: &Value, now: Timestamp) -> String {
    let job = a.get("job").unwrap_or(&Value::Null);
    let mut f = Fields::new();
    f.add("id", text(job, "id"));
    f.add("name", text(job, "name"));
    if let Some(d) = opt_str(job, "description").filter(|d| !d.is_empty()) {
        f.add("description", d);
    }
    f.add("type", text(job, "type"));
    f.add("status", text(job, "status"));
    f.add("attempts", tries(job));
    f.add("priority", num(job, "priority"));
    f.add("run at", when(job, "run_at", now));
    f.add("reserved at", when(job, "reserved_at", now));
    f.add("unique key", text(job, "unique_key"));
    f.add("cron", text(job, "cron_id"));
    f.add("created", when(job, "created", now));
    f.add("updated", when(job, "updated", now));
    if job.get("finished").is_some() {
        f.add("started", when(job, "started", now));
        f.add("finished", when(job, "finished", now));
        f.add("took", took(job));
    }
    f.add("last error", text(job, "last_error"));
    if let Some(p) = job.get("progress").filter(|p| p.is_object()) {
        f.add("progress", progress(p, now));
    }
    let mut out = f.to_string();
    match job.get("payload") {
        Some(Value::Null) => out.push_str("\npayload: - (finished jobs do not keep it)\n"),
        payload => {
            let payload = payload
                .and_then(|p| serde_json::to_string_pretty(p).ok())
                .unwrap_or_else(|| "-".to_string());
            out.push_str(&format!("\npayload:\n{payload}\n"));
        }
    }
    if let Some(result) = job.get("result").filter(|r| !r.is_null()) {
        out.push_str(&render_result(result));
    }
    let errors = items(a, "errors");
    if !errors.is_empty() {
        let mut t = Table::new(&["ATTEMPT", "AT", "ERROR"]).right(&["ATTEMPT"]);
        for e in errors {
            t.row(vec![
                num(e, "attempt"),
                timefmt::short(&text(e, "at")),
                text(e, "error"),
            ]);
        }
        out.push_str(&format!("\nlast failures:\n{t}"));
    }
    out
}

/// "4096 of 10000 (rows read), 2s ago".
fn progress(p: &Value, now: Timestamp) -> String {
    let mut out = num(p, "done");
    if let Some(total) = p.get("total").filter(|t| t.is_number()) {
        out.push_str(&format!(" of {total}"));
    }
    if let Some(message) = opt_str(p, "message") {
        out.push_str(&format!(" ({message})"));
    }
    out.push_str(&format!(
        ", {}",
        timefmt::relative_text(opt_str(p, "at"), now)
    ));
    out
}

pub fn render_explain(a: &Value, _now: Timestamp) -> String {
    let runnable = a.get("runnable").and_then(Value::as_bool);
    let mut out = match runnable {
        Some(true) => "runnable: yes\n".to_string(),
        Some(false) => "runnable: no\n".to_string(),
        None => "runnable: -\n".to_string(),
    };
    for reason in items(a, "reasons") {
        let reason = reason
            .as_str()
            .map_or_else(|| reason.to_string(), str::to_string);
        out.push_str(&format!("- {reason}\n"));
    }
    out
}

pub fn render_retry(a: &Value, now: Timestamp) -> String {
    let job = a.get("job").unwrap_or(a);
    format!(
        "job {} is {} again (attempts {}), runs {}",
        text(job, "id"),
        text(job, "status"),
        tries(job),
        timefmt::relative_text(opt_str(job, "run_at"), now)
    )
}

/// A job's result: a command's output as it was written, anything else as
/// JSON.
fn render_result(result: &Value) -> String {
    let stream = |name: &str| result.get(name).and_then(Value::as_str);
    if let (Some(stdout), Some(stderr)) = (stream("stdout"), stream("stderr")) {
        let mut out = String::from("\nresult:\n");
        let how = match (
            result.get("exit_code").and_then(Value::as_i64),
            result.get("signal").and_then(Value::as_i64),
            result.get("timed_out").and_then(Value::as_bool),
        ) {
            (_, _, Some(true)) => "timed out".to_string(),
            (Some(code), _, _) => format!("exit status {code}"),
            (None, Some(signal), _) => format!("killed by signal {signal}"),
            // A forced cancel ended it: no status of its own.
            _ => "stopped before it exited".to_string(),
        };
        out.push_str(&format!("  {how}\n"));
        for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
            let total = result
                .get(format!("{name}_bytes"))
                .and_then(Value::as_u64)
                .unwrap_or(text.len() as u64);
            if total == 0 {
                out.push_str(&format!("{name}: (empty)\n"));
                continue;
            }
            if total > text.len() as u64 {
                out.push_str(&format!("{name} (last {} of {total} bytes):\n", text.len()));
            } else {
                out.push_str(&format!("{name}:\n"));
            }
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
        return out;
    }
    let pretty = serde_json::to_string_pretty(result).unwrap_or_else(|_| result.to_string());
    format!("\nresult:\n{pretty}\n")
}

pub fn render_cancel(a: &Value, _now: Timestamp) -> String {
    format!("cancelled job {}", text(a, "cancelled"))
}

pub fn render_purge(a: &Value, _now: Timestamp) -> String {
    let mut out = format!("purged {} dead jobs", num(a, "purged"));
    push_next(&mut out, a, "purge");
    out
}

pub fn render_bulk_retry(a: &Value, _now: Timestamp) -> String {
    let mut out = format!("retried {} jobs", num(a, "count"));
    if let Some(n) = a.get("skipped").and_then(Value::as_u64).filter(|n| *n > 0) {
        out.push_str(&format!(
            "; {n} left as they were: another waiting job holds their unique key"
        ));
    }
    push_next(&mut out, a, "retry");
    out
}

pub fn render_bulk_cancel(a: &Value, _now: Timestamp) -> String {
    let mut out = format!("cancelled {} jobs", num(a, "count"));
    push_next(&mut out, a, "cancel");
    out
}

/// When a bulk call stopped at its bound: how to go on.
fn push_next(out: &mut String, a: &Value, verb: &str) {
    if let Some(next) = a.get("next").and_then(Value::as_str) {
        out.push_str(&format!(
            "\nmore match: run the same `cronq {verb}` again with --after {next}"
        ));
    }
}

pub fn render_pause(a: &Value, _now: Timestamp) -> String {
    let paused: Vec<String> = items(a, "paused")
        .iter()
        .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_string))
        .collect();
    if paused.is_empty() {
        "nothing is paused".to_string()
    } else if paused.iter().any(|p| p == "*") {
        "paused: every job type".to_string()
    } else {
        format!("paused: {}", paused.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::args::{Cli, Command};
    use crate::client::request::Request;
    use clap::Parser;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn job() -> Value {
        json!({"id": "k3j9x0c2m1q8z7a", "name": "welcome_email", "description": "",
            "type": "email", "payload": {"type": "email", "data": {"to": "a@b.c"}, "options": {"retry_count": 3, "timeout": 30}},
            "status": "scheduled", "attempts": 1, "max_attempts": 4, "priority": 0,
            "run_at": "2026-01-01T00:00:20.000Z", "reserved_at": null,
            "last_error": "smtp: 421 try later", "unique_key": null, "cron_id": null,
            "created": "2025-12-31T23:57:00.000Z", "updated": "2025-12-31T23:59:00.000Z"})
    }

    #[test]
    fn list_request_flags() {
        let cli = Cli::try_parse_from([
            "cronq",
            "jobs",
            "--type",
            "email",
            "--status",
            "dead",
            "--since",
            "2026-01-01T00:00:00Z",
            "--limit",
            "10",
            "--after",
            "abc",
        ])
        .unwrap();
        let Command::Jobs(args) = cli.command else {
            panic!()
        };
        let got = serde_json::to_value(Request::new(1, list_request(&args).unwrap())).unwrap();
        assert_eq!(
            got,
            json!({"cmd": "jobs", "id": 1, "type": "email", "status": "dead",
                   "since": "2026-01-01T00:00:00.000Z", "limit": 10, "after": "abc"})
        );
        assert!(Cli::try_parse_from(["cronq", "jobs", "--status", "done"]).is_err());
    }

    #[test]
    fn list_table() {
        let out = render_list(&json!({"ok": true, "jobs": [job()], "next": "c2"}), now());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "ID               TYPE   NAME           STATUS     TRIES  PRI  RUNS    CREATED  LAST ERROR"
        );
        assert_eq!(
            lines[1],
            "k3j9x0c2m1q8z7a  email  welcome_email  scheduled    1/4    0  in 20s  3m ago   smtp: 421 try later"
        );
        assert_eq!(lines[2], "more: cronq jobs --after c2");
        assert_eq!(
            render_list(&json!({"ok": true, "jobs": [], "next": null}), now()),
            "no jobs"
        );
    }

    #[test]
    fn one_job_with_its_failures() {
        let a = json!({"ok": true, "job": job(), "errors": [{"attempt": 1, "at": "2025-12-31T23:59:00.000Z", "error": "smtp: 421 try later"}]});
        let out = render_job(&a, now());
        assert!(out.contains("   attempts: 1/4\n"), "{out}");
        assert!(
            out.contains("     run at: 2026-01-01 00:00:20 UTC (in 20s)\n"),
            "{out}"
        );
        assert!(out.contains("\nreserved at: -\n"), "{out}");
        assert!(out.contains("\"to\": \"a@b.c\""), "{out}");
        assert!(out.ends_with("ATTEMPT  AT                   ERROR\n      1  2025-12-31 23:59:00  smtp: 421 try later\n"), "{out}");
    }

    fn finished_job() -> Value {
        let mut j = job();
        j["status"] = json!("succeeded");
        j["payload"] = Value::Null;
        j["started"] = json!("2025-12-31T23:58:00.000Z");
        j["finished"] = json!("2025-12-31T23:59:00.000Z");
        j["duration_ms"] = json!(1500);
        j["result"] = json!({"exit_code": 0, "signal": null, "timed_out": false,
            "stdout": "done\n", "stderr": "", "stdout_bytes": 9000, "stderr_bytes": 0});
        j
    }

    #[test]
    fn finished_jobs_are_a_table_of_when_and_how_they_ended() {
        let out = render_list(
            &json!({"ok": true, "jobs": [finished_job()], "next": "17"}),
            now(),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with(
                "ID               TYPE   NAME           STATUS     TRIES  FINISHED  TOOK  RESULT"
            ),
            "{out}"
        );
        assert!(
            lines[1].contains("succeeded")
                && lines[1].contains("1m ago")
                && lines[1].contains("1.5s"),
            "{out}"
        );
        assert_eq!(lines[2], "more: cronq jobs --after 17");
    }

    #[test]
    fn a_finished_job_shows_its_end_and_a_commands_output() {
        let out = render_job(
            &json!({"ok": true, "job": finished_job(), "errors": []}),
            now(),
        );
        assert!(
            out.contains("   finished: 2025-12-31 23:59:00 UTC (1m ago)\n"),
            "{out}"
        );
        assert!(out.contains("       took: 1.5s\n"), "{out}");
        assert!(
            out.contains("payload: - (finished jobs do not keep it)"),
            "{out}"
        );
        assert!(out.contains("\nresult:\n  exit status 0\nstdout (last 5 of 9000 bytes):\ndone\nstderr: (empty)\n"), "{out}");
        let mut stopped = finished_job();
        stopped["status"] = json!("cancelled");
        stopped["result"] = json!({"exit_code": null, "signal": null, "timed_out": false,
            "stdout": "half", "stderr": "", "stdout_bytes": 4, "stderr_bytes": 0});
        let out = render_job(&json!({"ok": true, "job": stopped, "errors": []}), now());
        assert!(
            out.contains("\nresult:\n  stopped before it exited\n"),
            "{out}"
        );
        let mut other = finished_job();
        other["result"] = json!({"rows_written": 3});
        let out = render_job(&json!({"ok": true, "job": other, "errors": []}), now());
        assert!(
            out.contains("result:\n{\n  \"rows_written\": 3\n}\n"),
            "{out}"
        );
    }

    #[test]
    fn bulk_flags_make_a_filter_and_an_id_or_a_filter_is_needed() {
        let cli =
            Cli::try_parse_from(["cronq", "retry", "--status", "dead", "--type", "email"]).unwrap();
        let Command::Retry { id: None, filter } = cli.command else {
            panic!("not a bulk retry")
        };
        let got = serde_json::to_value(Request::new(
            1,
            Cmd::RetryWhere(bulk_request(&filter).unwrap()),
        ))
        .unwrap();
        assert_eq!(
            got,
            json!({"cmd": "retry", "id": 1, "filter": {"status": "dead", "type": "email"}})
        );
        assert!(Cli::try_parse_from(["cronq", "retry"]).is_err());
        assert!(Cli::try_parse_from(["cronq", "cancel", "--status", "succeeded"]).is_ok());
        let cli = Cli::try_parse_from(["cronq", "cancel", "abc", "--type", "x"]).unwrap();
        assert!(matches!(
            crate::client::commands::plan(cli.command),
            Err(ClientError::Usage(_))
        ));
        let purge = purge_request(
            Some(60),
            &FilterArgs {
                status: Some(JobStatus::Pending),
                ..FilterArgs::default()
            },
        );
        assert!(matches!(purge, Err(ClientError::Usage(_))));
    }

    #[test]
    fn bulk_answers_and_pauses_read_as_sentences() {
        assert_eq!(
            render_bulk_retry(
                &json!({"ok": true, "count": 3, "skipped": 1, "next": "5.abc"}),
                now()
            ),
            "retried 3 jobs; 1 left as they were: another waiting job holds their unique key\n\
             more match: run the same `cronq retry` again with --after 5.abc"
        );
        assert_eq!(
            render_bulk_cancel(&json!({"ok": true, "count": 2, "next": null}), now()),
            "cancelled 2 jobs"
        );
        assert_eq!(
            render_pause(&json!({"ok": true, "paused": ["email"]}), now()),
            "paused: email"
        );
        assert_eq!(
            render_pause(&json!({"ok": true, "paused": ["*", "email"]}), now()),
            "paused: every job type"
        );
        assert_eq!(
            render_pause(&json!({"ok": true, "paused": []}), now()),
            "nothing is paused"
        );
    }

    #[test]
    fn a_running_job_shows_its_progress() {
        let mut j = job();
        j["status"] = "running".into();
        j["progress"] = json!({"done": 4096, "total": 10000, "message": "rows read", "at": "2025-12-31T23:59:58.000Z"});
        let out = render_job(&json!({"ok": true, "job": j, "errors": []}), now());
        assert!(
            out.contains("   progress: 4096 of 10000 (rows read), 2s ago\n"),
            "{out}"
        );
        assert!(!render_job(&json!({"ok": true, "job": job()}), now()).contains("progress"));
    }

    #[test]
    fn explain_lists_reasons() {
        let a = json!({"ok": true, "runnable": false, "reasons": ["its run_at is in the future (backing off after attempt 1)", "all workers are busy"]});
        assert_eq!(
            render_explain(&a, now()),
            "runnable: no\n- its run_at is in the future (backing off after attempt 1)\n- all workers are busy\n"
        );
    }

    #[test]
    fn one_liners() {
        assert_eq!(
            render_cancel(&json!({"ok": true, "cancelled": "abc"}), now()),
            "cancelled job abc"
        );
        assert_eq!(
            render_purge(&json!({"ok": true, "purged": 12}), now()),
            "purged 12 dead jobs"
        );
        let mut j = job();
        j["status"] = json!("pending");
        j["attempts"] = json!(0);
        j["run_at"] = json!("2026-01-01T00:00:00.000Z");
        assert_eq!(
            render_retry(&json!({"ok": true, "job": j}), now()),
            "job k3j9x0c2m1q8z7a is pending again (attempts 0/4), runs now"
        );
    }
}
