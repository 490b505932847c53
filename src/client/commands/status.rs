//! `ping`, `status`, `stats` and `metrics`: how the daemon is doing.

use jiff::Timestamp;
use serde_json::Value;

use super::{items, num, opt_str, text, when, yes_no};
use crate::client::table::{Fields, Table};
use crate::client::timefmt;

pub fn render_ping(_answer: &Value, _now: Timestamp) -> String {
    "pong".to_string()
}

pub fn render_status(a: &Value, now: Timestamp) -> String {
    let workers = a.get("workers").unwrap_or(&Value::Null);
    let queue = a.get("queue").unwrap_or(&Value::Null);
    let mut f = Fields::new();
    f.add("version", text(a, "version"));
    f.add("protocol", num(a, "protocol"));
    f.add("pid", num(a, "pid"));
    f.add(
        "uptime",
        a.get("uptime_s")
            .and_then(Value::as_u64)
            .map_or_else(|| "-".to_string(), timefmt::duration),
    );
    f.add("ready", yes_no(a, "ready"));
    f.add("database", text(a, "db"));
    f.add("sqlite", text(a, "sqlite_version"));
    // A database other hosts share: the cluster and this host's clock.
    if a.get("instances").is_some() {
        f.add("instances", format!("{} alive", num(a, "instances")));
    }
    if let Some(ms) = a.get("clock_offset_ms").and_then(Value::as_i64) {
        f.add("clock", clock_line(ms));
    }
    f.add("workers", workers_line(workers));
    f.add("queue", queue_line(queue, workers));
    f.add("handlers", handlers_line(a));
    if let Some(paused) = a
        .get("paused")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
    {
        let names: Vec<&str> = paused.iter().filter_map(Value::as_str).collect();
        f.add(
            "paused",
            if names.contains(&"*") {
                "every job type".to_string()
            } else {
                names.join(", ")
            },
        );
    }
    if a.get("automatic") == Some(&Value::Bool(false)) {
        f.add(
            "automatic",
            "off: jobs run only on `cronq trigger system_queue`",
        );
    }
    f.add("last tick", when(a, "last_tick", now));
    if let Some(draining) = a.get("draining").filter(|d| d.is_object()) {
        f.add("draining", draining_line(draining, now));
    }
    f.to_string()
}

/// "1.2s ahead of the database server's", "in step with ...".
fn clock_line(ms: i64) -> String {
    let by = timefmt::millis(ms.unsigned_abs());
    match ms {
        0 => "in step with the database server's".to_string(),
        1.. => format!("{by} ahead of the database server's"),
        _ => format!("{by} behind the database server's"),
    }
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// "2/5 busy", and the jobs held without a worker, which the queue's
/// `running` count includes.
fn workers_line(workers: &Value) -> String {
    let mut line = format!("{}/{} busy", num(workers, "busy"), num(workers, "max"));
    let claimed = count(workers, "claimed");
    if claimed > 0 {
        line.push_str(&format!(
            ", {claimed} more held (claimed for a free worker, or finished and being recorded)"
        ));
    }
    line
}

/// The store's totals; `running` counts every reservation in the database,
/// so what this daemon does not account for is said to be someone else's.
fn queue_line(queue: &Value, workers: &Value) -> String {
    let mut line = format!(
        "{} pending, {} scheduled, {} running, {} dead",
        num(queue, "pending"),
        num(queue, "scheduled"),
        num(queue, "running"),
        num(queue, "dead")
    );
    let here = count(workers, "busy") + count(workers, "claimed");
    let running = count(queue, "running");
    if workers.get("busy").is_some() && running > here {
        line.push_str(&format!(
            " ({} of the running held by another daemon on this database, or by a stopped one until recovery)",
            running - here
        ));
    }
    line
}

/// "command, noop; off: email (SMTP_HOST is not set)".
fn handlers_line(a: &Value) -> String {
    let handlers = items(a, "handlers");
    if handlers.is_empty() {
        return "-".to_string();
    }
    let on: Vec<String> = handlers
        .iter()
        .filter(|h| h.get("enabled") == Some(&Value::Bool(true)))
        .map(|h| text(h, "type"))
        .collect();
    let off: Vec<String> = handlers
        .iter()
        .filter(|h| h.get("enabled") != Some(&Value::Bool(true)))
        .map(|h| match opt_str(h, "reason") {
            Some(reason) => format!("{} ({reason})", text(h, "type")),
            None => text(h, "type"),
        })
        .collect();
    let mut line = if on.is_empty() {
        "none on".to_string()
    } else {
        on.join(", ")
    };
    if !off.is_empty() {
        line.push_str(&format!("; off: {}", off.join(", ")));
    }
    line
}

/// What a shutdown waits for: "2 running jobs (a, b), until ... (in 25s)".
fn draining_line(d: &Value, now: Timestamp) -> String {
    let ids: Vec<String> = items(d, "jobs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut line = format!(
        "shutting down; waiting for {} running job(s)",
        num(d, "running")
    );
    if !ids.is_empty() {
        line.push_str(&format!(" ({})", ids.join(", ")));
    }
    if opt_str(d, "until").is_some() {
        line.push_str(&format!(", at most until {}", when(d, "until", now)));
    }
    line.push_str("; a second SIGTERM stops at once");
    line
}

pub fn render_stats(a: &Value, _now: Timestamp) -> String {
    let mut t = Table::new(&[
        "TYPE",
        "PENDING",
        "SCHEDULED",
        "RUNNING",
        "DEAD",
        "SUCCEEDED",
        "FAILED",
        "P50",
        "P95",
        "MAX",
    ])
    .right(&[
        "PENDING",
        "SCHEDULED",
        "RUNNING",
        "DEAD",
        "SUCCEEDED",
        "FAILED",
        "P50",
        "P95",
        "MAX",
    ]);
    let ms = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_f64)
            .map_or_else(|| "-".to_string(), |ms| timefmt::millis(ms.max(0.0) as u64))
    };
    if let Some(types) = a.get("types").and_then(Value::as_object) {
        // serde_json's map is sorted by key, so types come out alphabetically.
        for (name, v) in types {
            t.row(vec![
                name.clone(),
                num(v, "pending"),
                num(v, "scheduled"),
                num(v, "running"),
                num(v, "dead"),
                num(v, "succeeded"),
                num(v, "failed"),
                ms(v, "p50_ms"),
                ms(v, "p95_ms"),
                ms(v, "max_ms"),
            ]);
        }
    }
    let workers = a.get("workers").unwrap_or(&Value::Null);
    let oldest = a
        .get("oldest_pending_age_s")
        .and_then(Value::as_f64)
        .map_or_else(|| "-".to_string(), |s| timefmt::duration(s.max(0.0) as u64));
    format!(
        "{t}\nworkers: {}/{} busy; oldest pending job: {oldest}",
        num(workers, "busy"),
        num(workers, "max")
    )
}

pub fn render_metrics(a: &Value, _now: Timestamp) -> String {
    text(a, "text")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn status_reads_as_a_block() {
        let a = json!({"ok": true, "version": "0.1.0", "protocol": 1, "pid": 42, "uptime_s": 7200,
            "db": "cronq-data/cronq.db", "sqlite_version": "3.50.0", "ready": true,
            "workers": {"max": 5, "busy": 2},
            "queue": {"pending": 1, "scheduled": 2, "running": 2, "dead": 0},
            "last_tick": "2025-12-31T23:59:30.000Z"});
        let out = render_status(&a, now());
        assert!(out.contains("   uptime: 2h\n"), "{out}");
        assert!(out.contains("  workers: 2/5 busy\n"), "{out}");
        assert!(
            out.contains("last tick: 2025-12-31 23:59:30 UTC (30s ago)"),
            "{out}"
        );
        assert!(
            out.contains("    queue: 1 pending, 2 scheduled, 2 running, 0 dead"),
            "{out}"
        );
    }

    #[test]
    fn status_explains_running_jobs_handlers_and_a_drain() {
        let a = json!({"ok": true, "workers": {"max": 5, "busy": 0, "claimed": 1},
            "queue": {"pending": 0, "scheduled": 0, "running": 3, "dead": 0},
            "handlers": [{"type": "command", "enabled": true, "reason": null},
                         {"type": "email", "enabled": false, "reason": "SMTP_HOST is not set"},
                         {"type": "noop", "enabled": true, "reason": null}],
            "draining": {"running": 1, "jobs": ["k3j9x0c2m1q8z7a"], "until": "2026-01-01T00:00:30.000Z"}});
        let out = render_status(&a, now());
        assert!(
            out.contains("  workers: 0/5 busy, 1 more held (claimed for a free worker, or finished and being recorded)\n"),
            "{out}"
        );
        assert!(
            out.contains("0 dead (2 of the running held by another daemon"),
            "{out}"
        );
        assert!(
            out.contains(" handlers: command, noop; off: email (SMTP_HOST is not set)\n"),
            "{out}"
        );
        assert!(
            out.contains(" draining: shutting down; waiting for 1 running job(s) (k3j9x0c2m1q8z7a), at most until 2026-01-01 00:00:30 UTC (in 30s)"),
            "{out}"
        );
        // Consistent figures say nothing more.
        let a = json!({"ok": true, "workers": {"max": 5, "busy": 1, "claimed": 0},
            "queue": {"pending": 0, "scheduled": 0, "running": 1, "dead": 0}, "draining": null});
        let out = render_status(&a, now());
        assert!(out.contains("  workers: 1/5 busy\n"), "{out}");
        assert!(
            out.contains("    queue: 0 pending, 0 scheduled, 1 running, 0 dead\n"),
            "{out}"
        );
        assert!(!out.contains("draining"), "{out}");
    }

    #[test]
    fn status_on_a_shared_database_shows_the_cluster_and_the_clock() {
        let a = json!({"ok": true, "backend": "postgres",
            "db": "postgres://cronq@db:5432/cronq?sslmode=require",
            "instances": 3, "clock_offset_ms": -1500});
        let out = render_status(&a, now());
        assert!(out.contains("instances: 3 alive\n"), "{out}");
        assert!(
            out.contains("    clock: 1.5s behind the database server's"),
            "{out}"
        );
        let out = render_status(&json!({"ok": true}), now());
        assert!(
            !out.contains("instances") && !out.contains("clock"),
            "{out}"
        );
    }

    #[test]
    fn stats_table() {
        let a = json!({"ok": true, "types": {
            "noop": {"pending": 0, "scheduled": 0, "running": 0, "dead": 0, "succeeded": 1200, "failed": 0, "p50_ms": 0, "p95_ms": 1, "max_ms": 3},
            "email": {"pending": 3, "scheduled": 1, "running": 1, "dead": 2, "succeeded": 10, "failed": 4, "p50_ms": 250, "p95_ms": 1800, "max_ms": 30000}},
            "oldest_pending_age_s": 95, "workers": {"max": 5, "busy": 1}});
        let out = render_stats(&a, now());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "TYPE   PENDING  SCHEDULED  RUNNING  DEAD  SUCCEEDED  FAILED    P50   P95    MAX"
        );
        assert_eq!(
            lines[1],
            "email        3          1        1     2         10       4  250ms  1.8s  30.0s"
        );
        assert!(lines[2].starts_with("noop "));
        assert_eq!(lines[4], "workers: 1/5 busy; oldest pending job: 1m");
    }

    #[test]
    fn metrics_are_the_text_alone() {
        let a = json!({"ok": true, "text": "# TYPE x counter\nx 1\n"});
        assert_eq!(render_metrics(&a, now()), "# TYPE x counter\nx 1\n");
    }
}
