//! `jobs`, `job`, `explain`, `retry`, `cancel`, `purge`: looking at jobs and
//! acting on one.

use jiff::Timestamp;
use serde_json::Value;

use super::enqueue::timestamp_arg;
use super::{items, num, opt_str, text, when};
use crate::client::ClientError;
use crate::client::args::JobsArgs;
use crate::client::request::{Cmd, JobsQuery};
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
    }))
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
    let mut out = t.to_string();
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
    f.add("last error", text(job, "last_error"));
    if let Some(p) = job.get("progress").filter(|p| p.is_object()) {
        f.add("progress", progress(p, now));
    }
    let payload = job
        .get("payload")
        .and_then(|p| serde_json::to_string_pretty(p).ok())
        .unwrap_or_else(|| "-".to_string());
    let mut out = format!("{f}\npayload:\n{payload}\n");
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

pub fn render_cancel(a: &Value, _now: Timestamp) -> String {
    format!("cancelled job {}", text(a, "cancelled"))
}

pub fn render_purge(a: &Value, _now: Timestamp) -> String {
    format!("purged {} dead jobs", num(a, "purged"))
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
