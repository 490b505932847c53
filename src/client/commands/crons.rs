//! `crons`, `cron`, `trigger`, `enable`, `disable`, `reload`: the scheduled
//! tasks and the runs they made.

use jiff::Timestamp;
use serde_json::Value;

use super::{items, num, opt_str, text, when, yes_no};
use crate::client::table::{Fields, Table};
use crate::client::timefmt;

/// A cron's `last_run`: PROTOCOL.md shows only `null`, so both a timestamp
/// and a run object are read; the answer is (when, status).
fn last_run(cron: &Value, now: Timestamp) -> (String, String) {
    match cron.get("last_run") {
        Some(Value::String(at)) => (
            timefmt::relative_text(Some(at), now),
            text(cron, "last_status"),
        ),
        Some(run @ Value::Object(_)) => (
            timefmt::relative_text(
                opt_str(run, "started").or(opt_str(run, "scheduled_for")),
                now,
            ),
            text(run, "status"),
        ),
        _ => ("-".to_string(), "-".to_string()),
    }
}

/// The ENABLED column: "yes", or "no" and what switched it off.
fn enabled(cron: &Value) -> String {
    match cron.get("enabled").and_then(Value::as_bool) {
        Some(true) => "yes".to_string(),
        Some(false) => match opt_str(cron, "disabled_by") {
            Some(by) => format!("no ({by})"),
            None => "no".to_string(),
        },
        None => "-".to_string(),
    }
}

/// Why a cron is off, in words, for `cronq cron ID`.
fn disabled_because(cron: &Value) -> Option<&'static str> {
    Some(match opt_str(cron, "disabled_by")? {
        "file" => "enabled = false in the crons file",
        "environment" => "its ENABLE_ variable is false in the daemon's environment",
        "override" => "`cronq disable`, which persists until `cronq enable`",
        "default" => "off by default; its ENABLE_ variable turns it on",
        _ => return None,
    })
}

pub fn render_list(a: &Value, now: Timestamp) -> String {
    let crons = items(a, "crons");
    if crons.is_empty() {
        return "no crons".to_string();
    }
    let mut t = Table::new(&[
        "ID", "SCHEDULE", "ZONE", "ENABLED", "NEXT", "LAST", "STATUS", "SOURCE",
    ]);
    for cron in crons {
        let (last, status) = last_run(cron, now);
        let next = if cron.get("enabled").and_then(Value::as_bool) == Some(false) {
            "-".to_string()
        } else {
            timefmt::relative_text(opt_str(cron, "next_run"), now)
        };
        t.row(vec![
            text(cron, "id"),
            text(cron, "schedule"),
            text(cron, "timezone"),
            enabled(cron),
            next,
            last,
            status,
            text(cron, "source"),
        ]);
    }
    let mut out = t.to_string();
    for cron in crons {
        if let Some(conflict) = conflict(cron) {
            out.push_str(&format!("warning: {}: {conflict}\n", text(cron, "id")));
        }
    }
    out
}

/// A cron's `conflict`, in words: which other daemons define it otherwise.
fn conflict(cron: &Value) -> Option<String> {
    let conflict = cron.get("conflict").filter(|c| c.is_object())?;
    let nodes: Vec<String> = items(conflict, "instances")
        .iter()
        .map(|p| {
            format!(
                "{} ({}, digest {})",
                text(p, "host"),
                text(p, "id"),
                text(p, "digest")
            )
        })
        .collect();
    Some(format!(
        "defined differently by {} than here (digest {})",
        nodes.join(", "),
        text(conflict, "digest")
    ))
}

/// Duration of a run, "-" while it runs.
fn run_duration(run: &Value) -> String {
    run.get("duration_ms")
        .and_then(Value::as_u64)
        .map_or_else(|| "-".to_string(), timefmt::millis)
}

pub fn render_cron(a: &Value, now: Timestamp) -> String {
    let cron = a.get("cron").unwrap_or(&Value::Null);
    let mut f = Fields::new();
    f.add("id", text(cron, "id"));
    f.add("schedule", text(cron, "schedule"));
    f.add("zone", text(cron, "timezone"));
    f.add("description", text(cron, "description"));
    match disabled_because(cron) {
        Some(why) if cron.get("enabled") == Some(&Value::Bool(false)) => {
            f.add("enabled", format!("no: {why}"))
        }
        _ => f.add("enabled", yes_no(cron, "enabled")),
    }
    f.add("source", text(cron, "source"));
    if let Some(conflict) = conflict(cron) {
        f.add("conflict", conflict);
    }
    f.add("next run", when(cron, "next_run", now));
    let (last, status) = last_run(cron, now);
    f.add("last run", format!("{last} ({status})"));
    match cron.get("job") {
        Some(job @ Value::Object(_)) => f.add("job", job.to_string()),
        _ => f.add("job", "-"),
    }
    let runs = items(a, "runs");
    if runs.is_empty() {
        return format!("{f}\nno runs yet\n");
    }
    // The job a run enqueued, and where it is now, when any run has one.
    let with_jobs = runs.iter().any(|r| opt_str(r, "job_id").is_some());
    let mut headers = vec!["SCHEDULED FOR", "TRIGGER", "STATUS", "STARTED", "TOOK"];
    if with_jobs {
        headers.push("JOB");
    }
    headers.push("ERROR");
    let mut t = Table::new(&headers).right(&["TOOK"]);
    for run in runs {
        let mut row = vec![
            timefmt::short(&text(run, "scheduled_for")),
            text(run, "trigger"),
            text(run, "status"),
            timefmt::relative_text(opt_str(run, "started"), now),
            run_duration(run),
        ];
        if with_jobs {
            row.push(match (opt_str(run, "job_id"), opt_str(run, "job_status")) {
                (Some(id), Some(status)) => format!("{id} ({status})"),
                (Some(id), None) => id.to_string(),
                _ => "-".to_string(),
            });
        }
        row.push(opt_str(run, "error").unwrap_or("").to_string());
        t.row(row);
    }
    format!("{f}\nruns, newest first:\n{t}")
}

pub fn render_trigger(a: &Value, _now: Timestamp) -> String {
    let run = a.get("run").unwrap_or(&Value::Null);
    let mut out = format!("run {}", text(run, "status"));
    // A file cron's run follows the job it enqueued: still "running" when
    // the answer comes, so the job's id is what the reader needs next.
    if let Some(job) = opt_str(run, "job_id") {
        out.push_str(&format!(": enqueued job {job} (see `cronq job {job}`)"));
        return out;
    }
    if let Some(ms) = run.get("duration_ms").and_then(Value::as_u64) {
        out.push_str(&format!(" in {}", timefmt::millis(ms)));
    }
    if run.get("processed").is_some() || run.get("failed").is_some() {
        out.push_str(&format!(
            ": {} jobs processed, {} failed",
            num(run, "processed"),
            num(run, "failed")
        ));
    }
    if let Some(error) = opt_str(run, "error") {
        out.push_str(&format!("\nerror: {error}"));
    }
    out
}

/// `enable` and `disable` answer with the cron.
pub fn render_switch(a: &Value, now: Timestamp) -> String {
    let cron = a.get("cron").unwrap_or(a);
    let state = match cron.get("enabled").and_then(Value::as_bool) {
        Some(true) => "enabled",
        Some(false) => "disabled",
        None => "-",
    };
    let mut out = format!("cron {} is {state}", text(cron, "id"));
    if state == "enabled"
        && let Some(next) = opt_str(cron, "next_run")
    {
        out.push_str(&format!(
            "; next run {}",
            timefmt::relative_text(Some(next), now)
        ));
    }
    out
}

pub fn render_reload(a: &Value, _now: Timestamp) -> String {
    let list = |key| {
        let ids: Vec<String> = items(a, key)
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        if ids.is_empty() {
            "none".to_string()
        } else {
            ids.join(", ")
        }
    };
    format!(
        "reloaded the crons: added {}; removed {}; changed {}",
        list("added"),
        list("removed"),
        list("changed")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn builtin() -> Value {
        json!({"id": "system_queue", "schedule": "* * * * *", "timezone": "UTC",
               "description": "Processes jobs from the database queue", "enabled": true,
               "source": "builtin", "job": null, "next_run": "2026-01-01T00:01:00.000Z", "last_run": null})
    }

    #[test]
    fn a_conflict_is_a_warning_under_the_table() {
        let mut report = builtin();
        report["id"] = json!("nightly");
        report["source"] = json!("file");
        report["conflict"] = json!({"digest": "aaaa", "instances": [
            {"id": "k3j9x0c2m1q8z7a", "host": "node-b", "digest": "bbbb"}]});
        let out = render_list(&json!({"ok": true, "crons": [builtin(), report]}), now());
        assert!(
            out.ends_with(
                "warning: nightly: defined differently by node-b (k3j9x0c2m1q8z7a, digest bbbb) \
                 than here (digest aaaa)\n"
            ),
            "{out}"
        );
        assert_eq!(out.matches("warning").count(), 1, "{out}");
    }

    #[test]
    fn list_table() {
        let mut report = builtin();
        report["id"] = json!("nightly_report");
        report["schedule"] = json!("0 2 * * *");
        report["timezone"] = json!("Europe/Berlin");
        report["source"] = json!("file");
        report["enabled"] = json!(false);
        report["disabled_by"] = json!("environment");
        report["last_run"] = json!({"scheduled_for": "2025-12-31T01:00:00.000Z", "started": "2025-12-31T01:00:00.004Z", "status": "ok"});
        let out = render_list(&json!({"ok": true, "crons": [builtin(), report]}), now());
        assert_eq!(
            out,
            "ID              SCHEDULE   ZONE           ENABLED           NEXT   LAST     STATUS  SOURCE\n\
             system_queue    * * * * *  UTC            yes               in 1m  -        -       builtin\n\
             nightly_report  0 2 * * *  Europe/Berlin  no (environment)  -      22h ago  ok      file\n"
        );
    }

    #[test]
    fn one_cron_with_runs() {
        let a = json!({"ok": true, "cron": builtin(), "runs": [
            {"scheduled_for": "2025-12-31T23:59:00.000Z", "started": "2025-12-31T23:59:00.003Z", "finished": "2025-12-31T23:59:00.015Z",
             "status": "ok", "duration_ms": 12, "error": null, "trigger": "schedule"}]});
        let out = render_cron(&a, now());
        assert!(
            out.contains("next run: 2026-01-01 00:01:00 UTC (in 1m)\n"),
            "{out}"
        );
        assert!(
            out.ends_with(
                "SCHEDULED FOR        TRIGGER   STATUS  STARTED  TOOK  ERROR\n\
             2025-12-31 23:59:00  schedule  ok      59s ago  12ms\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn one_cron_says_why_it_is_off() {
        let mut cron = builtin();
        cron["enabled"] = json!(false);
        cron["disabled_by"] = json!("override");
        let out = render_cron(&json!({"ok": true, "cron": cron, "runs": []}), now());
        assert!(
            out.contains("enabled: no: `cronq disable`, which persists until `cronq enable`\n"),
            "{out}"
        );
    }

    #[test]
    fn trigger_of_system_queue_counts() {
        let a = json!({"ok": true, "run": {"status": "ok", "duration_ms": 1500, "processed": 50, "failed": 2, "trigger": "manual"}});
        assert_eq!(
            render_trigger(&a, now()),
            "run ok in 1.5s: 50 jobs processed, 2 failed"
        );
        let a = json!({"ok": true, "run": {"status": "failed", "duration_ms": 3, "error": "boom"}});
        assert_eq!(render_trigger(&a, now()), "run failed in 3ms\nerror: boom");
        let a = json!({"ok": true, "run": {"status": "running", "duration_ms": null, "job_id": "k3j9x0c2m1q8z7a"}});
        assert_eq!(
            render_trigger(&a, now()),
            "run running: enqueued job k3j9x0c2m1q8z7a (see `cronq job k3j9x0c2m1q8z7a`)"
        );
    }

    #[test]
    fn switch_and_reload() {
        assert_eq!(
            render_switch(&json!({"ok": true, "cron": builtin()}), now()),
            "cron system_queue is enabled; next run in 1m"
        );
        assert_eq!(
            render_reload(
                &json!({"ok": true, "added": ["a", "b"], "removed": [], "changed": ["c"]}),
                now()
            ),
            "reloaded the crons: added a, b; removed none; changed c"
        );
    }
}
