//! `instances`: the daemons on the database, one row each.

use jiff::Timestamp;
use serde_json::Value;

use super::{items, num, opt_str, text};
use crate::client::table::Table;
use crate::client::timefmt;

pub fn render(a: &Value, now: Timestamp) -> String {
    let instances = items(a, "instances");
    if instances.is_empty() {
        return "no instances".to_string();
    }
    let mut t = Table::new(&[
        "ID",
        "HOST",
        "PID",
        "VERSION",
        "STARTED",
        "HEARTBEAT",
        "WORKERS",
        "CLOCK",
    ])
    .right(&["PID", "WORKERS", "CLOCK"]);
    for i in instances {
        let workers = i.get("workers").unwrap_or(&Value::Null);
        t.row(vec![
            text(i, "id"),
            text(i, "host"),
            num(i, "pid"),
            text(i, "version"),
            timefmt::relative_text(opt_str(i, "started"), now),
            timefmt::relative_text(opt_str(i, "heartbeat"), now),
            format!("{}/{}", num(workers, "busy"), num(workers, "max")),
            clock(i),
        ]);
    }
    t.to_string()
}

/// The clock offset from the server: "+1.2s" ahead, "-40ms" behind.
fn clock(i: &Value) -> String {
    match i.get("clock_offset_ms").and_then(Value::as_i64) {
        None => "-".to_string(),
        Some(ms) => {
            let sign = if ms < 0 { "-" } else { "+" };
            format!("{sign}{}", timefmt::millis(ms.unsigned_abs()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn instances_read_as_a_table() {
        let now: Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let a = json!({"ok": true, "instances": [
            {"id": "k3j9x0c2m1q8z7a", "host": "node-1", "pid": 4242, "version": "0.1.0",
             "started": "2026-01-01T00:00:00.000Z", "heartbeat": "2026-01-01T00:09:30.000Z",
             "workers": {"max": 5, "busy": 2}, "clock_offset_ms": 1200},
            {"id": "q8z7a1m2c0x9j3k", "host": "node-2", "pid": 77, "version": "0.1.0",
             "started": "2026-01-01T00:05:00.000Z", "heartbeat": "2026-01-01T00:09:59.500Z",
             "workers": {"max": 10, "busy": 0}, "clock_offset_ms": -40}]});
        let out = render(&a, now);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "ID               HOST     PID  VERSION  STARTED  HEARTBEAT  WORKERS  CLOCK"
        );
        assert_eq!(
            lines[1],
            "k3j9x0c2m1q8z7a  node-1  4242  0.1.0    10m ago  30s ago        2/5  +1.2s"
        );
        assert_eq!(
            lines[2],
            "q8z7a1m2c0x9j3k  node-2    77  0.1.0    5m ago   now           0/10  -40ms"
        );
        assert_eq!(
            render(&json!({"ok": true, "instances": []}), now),
            "no instances"
        );
    }
}
