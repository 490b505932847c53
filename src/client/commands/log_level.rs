//! `log-level LEVEL`: the daemon's `log_level` command.

use jiff::Timestamp;
use serde_json::Value;

use super::text;

pub fn render(a: &Value, _now: Timestamp) -> String {
    format!("log level is now {}", text(a, "level"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_the_level_in_force() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let a = serde_json::json!({"ok": true, "level": "debug"});
        assert_eq!(render(&a, now), "log level is now debug");
    }
}
