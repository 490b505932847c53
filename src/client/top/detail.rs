//! A job's details as the overlay shows them: the CLI's `cronq job`
//! rendering, followed by what a finished or running job of the second
//! wave also carries (`finished`, `duration_ms`, `progress`, and the
//! handler's `result`, where a command's output is), each only when the
//! daemon sends it.

use jiff::Timestamp;
use serde_json::Value;

use crate::client::commands::jobs::render_job;

/// Fields the CLI's job rendering does not show yet.
const EXTRA: [&str; 3] = ["finished", "duration_ms", "progress"];

pub fn render(a: &Value, now: Timestamp) -> String {
    let mut out = render_job(a, now);
    let job = a.get("job").unwrap_or(&Value::Null);
    for key in EXTRA {
        if let Some(v) = job.get(key).filter(|v| !v.is_null()) {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            out.push_str(&format!("\n{key}: {text}"));
        }
    }
    match job.get("result") {
        None | Some(Value::Null) => {}
        Some(Value::Object(fields)) => {
            out.push_str("\n\nresult:");
            for (key, value) in fields {
                match value.as_str() {
                    // A command's stdout and stderr read as they were printed.
                    Some(text) if text.contains('\n') => {
                        out.push_str(&format!("\n  {key}:"));
                        for line in text.lines() {
                            out.push_str(&format!("\n    {line}"));
                        }
                    }
                    Some(text) => out.push_str(&format!("\n  {key}: {text}")),
                    None => out.push_str(&format!("\n  {key}: {value}")),
                }
            }
        }
        Some(other) => out.push_str(&format!("\n\nresult: {other}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_finished_command_shows_its_result_and_output() {
        let a = json!({"ok": true, "errors": [], "job": {"id": "a", "name": "n", "type": "command",
            "status": "succeeded", "finished": "2026-01-01T00:00:01.000Z", "duration_ms": 1200,
            "result": {"exit_status": 0, "stdout": "line one\nline two\n", "stderr": ""}}});
        let text = render(&a, "2026-01-01T00:00:02Z".parse().unwrap());
        assert!(text.starts_with(&render_job(&a, "2026-01-01T00:00:02Z".parse().unwrap())));
        assert!(
            text.contains("\nfinished: 2026-01-01T00:00:01.000Z"),
            "{text}"
        );
        assert!(text.contains("\nduration_ms: 1200"), "{text}");
        assert!(text.contains("\n  exit_status: 0"), "{text}");
        assert!(
            text.contains("\n  stdout:\n    line one\n    line two"),
            "{text}"
        );
    }

    #[test]
    fn todays_job_record_reads_as_the_cli_shows_it() {
        let a = json!({"ok": true, "errors": [], "job": {"id": "a", "status": "dead"}});
        let now = "2026-01-01T00:00:02Z".parse().unwrap();
        assert_eq!(render(&a, now), render_job(&a, now));
    }
}
