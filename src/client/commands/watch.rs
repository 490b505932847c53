//! `watch`: one line per event until interrupted; with `--json`, the lines
//! as the daemon sends them.
//!
//! Unlike the other commands this is not one exchange: after the daemon's
//! `"watching": true` the socket stays open and each line is printed as it
//! comes, flushed, so `cronq watch | grep dead` sees each event at once.
//! The readable form puts the time first and the event name in a column,
//! so a terminal full of it scans like a log.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use serde_json::Value;

use super::{num, opt_str, text};
use crate::client::args::{GlobalArgs, WatchArgs};
use crate::client::request::{Cmd, Request, WatchArgs as WatchRequest};
use crate::client::{ClientError, socket, timefmt};

/// Longest event line read; a longer one ends the watch.
const MAX_LINE: u64 = 1 << 20;

/// Streams events to stdout until the daemon closes the connection (an
/// error: exit 3) or stdout closes (`| head`: done).
pub fn run(global: &GlobalArgs, args: WatchArgs) -> Result<String, ClientError> {
    let path = socket::resolve(global.socket.as_deref())?;
    let unreachable = |err: std::io::Error| ClientError::Unreachable {
        path: path.clone(),
        err,
    };
    let stream = UnixStream::connect(&path).map_err(|err| match err.kind() {
        std::io::ErrorKind::PermissionDenied => ClientError::Denied {
            access: socket::SocketAccess::of(&path),
            path: path.clone(),
        },
        _ => unreachable(err),
    })?;
    let request = Request::new(u64::from(std::process::id()), Cmd::Watch(filter(args)));
    let mut line = serde_json::to_string(&request)
        .map_err(|e| ClientError::Protocol(format!("cannot encode the watch request: {e}")))?;
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(unreachable)?;
    let mut reader = BufReader::new(&stream);
    let first = read_line(&mut reader)?.ok_or_else(|| {
        ClientError::Protocol("the daemon closed the connection without an answer".into())
    })?;
    let answer: Value = serde_json::from_str(&first).map_err(|e| {
        ClientError::Protocol(format!("the daemon's answer is not JSON ({e}): {first}"))
    })?;
    if answer.get("watching").and_then(Value::as_bool) != Some(true) {
        if global.json {
            println!("{first}");
        }
        let error = answer.get("error");
        let field = |key| {
            error
                .and_then(|e| e.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        return Err(ClientError::Refused {
            code: field("code"),
            message: field("message"),
        });
    }
    let mut out = std::io::stdout().lock();
    loop {
        let Some(line) = read_line(&mut reader)? else {
            return Err(ClientError::Protocol(format!(
                "the daemon on {} closed the event stream (it may be stopping)",
                path.display()
            )));
        };
        let shown = if global.json {
            line
        } else {
            match serde_json::from_str::<Value>(&line) {
                Ok(event) => render_event(&event),
                Err(_) => line,
            }
        };
        // stdout closed (`| head`): the watch is over, not failed.
        if writeln!(out, "{shown}").and_then(|()| out.flush()).is_err() {
            return Ok(String::new());
        }
    }
}

fn filter(args: WatchArgs) -> WatchRequest {
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    WatchRequest {
        types: non_empty(args.types),
        job: args.job,
        cron: args.cron,
        events: non_empty(args.events),
    }
}

fn read_line(reader: &mut BufReader<&UnixStream>) -> Result<Option<String>, ClientError> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .map_err(|e| ClientError::Protocol(format!("reading the event stream: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(ClientError::Protocol(format!(
            "an event line longer than {MAX_LINE} bytes"
        )));
    }
    line.pop();
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// One event as a line:
/// `2026-01-01 00:00:01.500 failed       k3j9x0c2m1q8z7a email welcome #2: retry in 20s: SMTP 451`.
pub fn render_event(e: &Value) -> String {
    let event = text(e, "event");
    if event == "lagged" {
        return format!(
            "-- {} events dropped: this watch fell behind --",
            num(e, "dropped")
        );
    }
    let at = opt_str(e, "at").map_or_else(|| "-".to_string(), when);
    let mut line = format!("{at} {event:<12}");
    if let Some(job) = e.get("job").filter(|j| j.is_object()) {
        line.push_str(&format!(
            " {} {} {} #{}",
            text(job, "id"),
            text(job, "type"),
            text(job, "name"),
            num(job, "attempt")
        ));
    }
    if let Some(cron) = opt_str(e, "cron") {
        line.push_str(&format!(" cron {cron}"));
    }
    let detail = match event.as_str() {
        "succeeded" => e
            .get("duration_ms")
            .and_then(Value::as_u64)
            .map(|ms| format!("in {}", timefmt::millis(ms))),
        "failed" => Some(format!(
            "retry at {}: {}",
            opt_str(e, "retry_at").map_or_else(|| "-".to_string(), timefmt::short),
            first_line(e)
        )),
        "dead" => Some(first_line(e)),
        "progress" => e.get("progress").map(|p| {
            let total = match p.get("total").and_then(Value::as_u64) {
                Some(t) => format!("/{t}"),
                None => String::new(),
            };
            let message = opt_str(p, "message").map_or(String::new(), |m| format!(" {m}"));
            format!("{}{total}{message}", num(p, "done"))
        }),
        "cron_fired" => opt_str(e, "job_id").map(|j| format!("enqueued job {j}")),
        "cron_skipped" => opt_str(e, "reason").map(str::to_string),
        "paused" | "resumed" => Some(format!(
            "{}; paused now: {}",
            opt_str(e, "type").unwrap_or("every type"),
            e.get("paused")
                .and_then(Value::as_array)
                .map(|p| {
                    let names: Vec<String> = p
                        .iter()
                        .map(|t| t.as_str().unwrap_or("?").to_string())
                        .collect();
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                })
                .unwrap_or_else(|| "-".to_string())
        )),
        _ => None,
    };
    if let Some(detail) = detail {
        line.truncate(line.trim_end().len());
        line.push_str(": ");
        line.push_str(&detail);
    }
    line
}

/// `2026-01-01 00:00:01.500` (UTC).
fn when(at: &str) -> String {
    match timefmt::parse(at) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        None => at.to_string(),
    }
}

fn first_line(e: &Value) -> String {
    opt_str(e, "error")
        .and_then(|m| m.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_read_as_log_lines() {
        let job = json!({"id": "k3j9x0c2m1q8z7a", "name": "welcome", "type": "email", "attempt": 2, "cron_id": null});
        let failed = json!({"event": "failed", "at": "2026-01-01T00:00:01.500Z", "job": job,
                            "retry_at": "2026-01-01T00:00:21.500Z", "error": "SMTP 451\nmore"});
        assert_eq!(
            render_event(&failed),
            "2026-01-01 00:00:01.500 failed       k3j9x0c2m1q8z7a email welcome #2: retry at 2026-01-01 00:00:21: SMTP 451"
        );
        let progress = json!({"event": "progress", "at": "2026-01-01T00:00:02.000Z", "job": job,
                              "progress": {"done": 4096, "total": null, "message": "rows read", "at": "2026-01-01T00:00:02.000Z"}});
        assert!(render_event(&progress).ends_with("#2: 4096 rows read"));
        let fired = json!({"event": "cron_fired", "at": "2026-01-01T00:00:00.000Z", "cron": "nightly",
                           "scheduled_for": "2026-01-01T00:00:00.000Z", "job_id": "j1"});
        assert_eq!(
            render_event(&fired),
            "2026-01-01 00:00:00.000 cron_fired   cron nightly: enqueued job j1"
        );
        let paused = json!({"event": "paused", "at": "2026-01-01T00:00:00.000Z", "paused": ["*"]});
        assert_eq!(
            render_event(&paused),
            "2026-01-01 00:00:00.000 paused: every type; paused now: *"
        );
        assert_eq!(
            render_event(&json!({"event": "lagged", "dropped": 12})),
            "-- 12 events dropped: this watch fell behind --"
        );
    }

    #[test]
    fn empty_filters_are_left_out() {
        let args = WatchArgs {
            types: vec![],
            job: None,
            cron: Some("c".into()),
            events: vec!["dead".into()],
        };
        assert_eq!(
            filter(args),
            WatchRequest {
                types: None,
                job: None,
                cron: Some("c".into()),
                events: Some(vec!["dead".into()])
            }
        );
    }
}
