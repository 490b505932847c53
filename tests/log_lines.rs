//! The daemon's stderr, read line by line as a log shipper or `jq` would:
//! under LOG_FORMAT=json every line is one JSON object with span fields
//! (`job_id`, ...) at its top level and numbers as numbers; under
//! LOG_FORMAT=text every line is one record, however many lines a job's
//! output or error has; neither ever shows Rust's `Some(..)`; a refused
//! admin command is a warning that names its code and the peer's uid.

#[path = "support/daemon.rs"]
mod daemon;

use std::time::Duration;

use daemon::Daemon;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Runs the same scenario on a daemon logging in `format`, stops it, and
/// returns its stderr and the id of the command job that failed.
fn scenario(format: &str) -> (String, String) {
    let mut d = Daemon::start(&[("LOG_FORMAT", format), ("JOB_COMMAND_ALLOW", "/bin/sh")]);
    let failing = d.ok(json!({
        "cmd": "enqueue",
        "name": "three_lines",
        "payload": {
            "type": "command",
            "data": {"argv": ["/bin/sh", "-c", "printf 'line one\\nline two\\nline three\\n'; echo oops >&2; exit 3"]},
            "options": {"retry_count": 0}
        }
    }))["job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    d.until(WAIT, "the command job to die", |d| {
        d.job(&failing).filter(|j| j["status"] == "dead")
    });
    let ok = d.enqueue("noop", json!({}));
    d.until(WAIT, "the noop job to finish", |d| {
        d.job(&ok).is_none().then_some(())
    });
    let refused =
        d.request(json!({"cmd": "enqueue", "name": "x", "payload": {"type": "no_such_type"}}));
    assert_eq!(refused["error"]["code"], "bad_request", "{refused}");
    let unknown = d.request(json!({"cmd": "frobnicate\nforged line"}));
    assert_eq!(unknown["error"]["code"], "unknown_command", "{unknown}");
    assert!(d.stop().success());
    (d.log(), failing)
}

fn uid() -> u64 {
    // SAFETY: getuid has no preconditions.
    u64::from(unsafe { libc::getuid() })
}

#[test]
fn json_lines_are_objects_with_span_fields_on_top() {
    let (log, job_id) = scenario("json");
    let records: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\n{log}"))
        })
        .collect();
    assert!(!log.contains("Some("), "{log}");
    for r in &records {
        assert!(r["timestamp"].is_string() && r["level"].is_string(), "{r}");
        assert!(r["message"].is_string(), "{r}");
    }

    // `jq 'select(.job_id == ID)'`: the job's own lines, with its span's
    // fields beside the event's.
    let job: Vec<&Value> = records
        .iter()
        .filter(|r| r["job_id"] == job_id.as_str())
        .collect();
    let died = job
        .iter()
        .find(|r| r["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error line for job {job_id}:\n{log}"));
    assert_eq!(died["job_type"], "command", "{died}");
    assert_eq!(died["attempt"], 1, "a number: {died}");
    assert!(died["duration_ms"].is_u64(), "{died}");
    let message = died["message"].as_str().unwrap();
    assert!(
        message.contains(&job_id) && message.contains("(command)") && message.contains("dead"),
        "the message says which job and what became of it: {message}"
    );
    assert!(
        died["error"].as_str().unwrap().contains("line two"),
        "the whole error is in its field: {died}"
    );

    // State-changing commands carry the peer as numbers, not `Some(..)`.
    let admin = records
        .iter()
        .find(|r| r["cmd"] == "enqueue" && r["level"] == "INFO")
        .unwrap_or_else(|| panic!("no admin command line:\n{log}"));
    assert_eq!(admin["uid"], uid(), "{admin}");
    assert!(admin["pid"].is_i64(), "{admin}");

    // Refusals are warnings with their code and the peer.
    let refusal = records
        .iter()
        .find(|r| r["code"] == "bad_request")
        .unwrap_or_else(|| panic!("the refused enqueue is not logged:\n{log}"));
    assert_eq!(refusal["level"], "WARN", "{refusal}");
    assert_eq!(refusal["cmd"], "enqueue", "{refusal}");
    assert_eq!(refusal["uid"], uid(), "{refusal}");
    assert!(refusal["pid"].is_i64(), "{refusal}");
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("no_such_type"),
        "{refusal}"
    );
    let unknown = records
        .iter()
        .find(|r| r["code"] == "unknown_command")
        .unwrap_or_else(|| panic!("the unknown command is not logged:\n{log}"));
    assert_eq!(unknown["level"], "WARN", "{unknown}");
}

#[test]
fn text_lines_are_one_record_each() {
    let (log, job_id) = scenario("text");
    assert!(!log.contains("Some("), "{log}");
    for line in log.lines() {
        // Every record starts with its timestamp: 2026-01-01T00:00:00.
        let stamp = line.get(..19).unwrap_or("");
        assert!(
            stamp.len() == 19 && stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[10] == b'T',
            "a line that is not a record of its own: {line:?}\n{log}"
        );
    }
    let died = log
        .lines()
        .find(|l| l.contains(" ERROR ") && l.contains(&job_id))
        .unwrap_or_else(|| panic!("no error line for job {job_id}:\n{log}"));
    assert!(died.contains("line one\\nline two"), "escaped: {died}");
    let refusal = log
        .lines()
        .find(|l| l.contains("code=\"bad_request\""))
        .unwrap_or_else(|| panic!("the refused enqueue is not logged:\n{log}"));
    assert!(refusal.contains(" WARN "), "{refusal}");
    assert!(refusal.contains(&format!("uid={}", uid())), "{refusal}");
    let forged = log
        .lines()
        .find(|l| l.contains("code=\"unknown_command\""))
        .unwrap_or_else(|| panic!("the unknown command is not logged:\n{log}"));
    assert!(forged.contains("frobnicate\\nforged line"), "{forged}");
}
