//! packaging/cronq.env documents every setting with its default: each
//! commented `#NAME=value` line, uncommented, must be accepted by the real
//! configuration parser and change nothing, and no variable the parser
//! reads may be missing from the file.

use std::collections::HashMap;

const ENV_FILE: &str = include_str!("../packaging/cronq.env");
const CONFIG_SRC: &str = include_str!("../src/config.rs");

fn documented() -> HashMap<String, String> {
    ENV_FILE
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn uncommented_defaults_are_accepted_and_are_the_defaults() {
    let vars: HashMap<String, String> = documented()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let with = cronq::Config::from_vars(&vars)
        .unwrap_or_else(|e| panic!("packaging/cronq.env default refused: {e}"));
    let without = cronq::Config::from_vars(&HashMap::new()).expect("defaults");
    assert_eq!(with.system_queue_cron, without.system_queue_cron);
    assert_eq!(with.max_workers, without.max_workers);
    assert_eq!(with.batch_size, without.batch_size);
    assert_eq!(with.max_retries, without.max_retries);
    assert_eq!(with.job_timeout, without.job_timeout);
    assert_eq!(with.reservation_timeout, without.reservation_timeout);
    assert_eq!(with.backoff_base, without.backoff_base);
    assert_eq!(with.backoff_max, without.backoff_max);
    assert_eq!(with.max_pending, without.max_pending);
    assert_eq!(with.log_level, without.log_level);
    assert_eq!(with.log_format, without.log_format);
    assert_eq!(with.smtp.tls, without.smtp.tls);
    assert_eq!(with.max_request_bytes, without.max_request_bytes);
    assert_eq!(with.max_payload_bytes, without.max_payload_bytes);
    assert_eq!(with.max_connections, without.max_connections);
    assert_eq!(with.idle_timeout, without.idle_timeout);
    assert_eq!(with.clear_exports_cron, without.clear_exports_cron);
    assert_eq!(with.export_retention_days, without.export_retention_days);
    assert_eq!(with.data_max_bytes, without.data_max_bytes);
    assert_eq!(with.data_max_groups, without.data_max_groups);
}

#[test]
fn every_variable_the_parser_reads_is_documented() {
    let documented = documented();
    // Set by systemd, not by the operator; and the replaced system's alias
    // names, which the file mentions in prose.
    let not_operator_settings = [
        "STATE_DIRECTORY",
        "RUNTIME_DIRECTORY",
        "CONFIGURATION_DIRECTORY",
        "CREDENTIALS_DIRECTORY",
        "ENABLE_CLEAR_EXPORT_FILES_CRON",
        "EXPORT_FILE_EXPIRATION_DAYS",
    ];
    // The parser, without its unit tests' example names.
    let parser = CONFIG_SRC
        .split("#[cfg(test)]")
        .next()
        .unwrap_or(CONFIG_SRC);
    let mut missing = Vec::new();
    for quoted in parser.split('"').skip(1).step_by(2) {
        let is_var = quoted.len() > 3
            && quoted.contains('_')
            && quoted
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            && !quoted.ends_with('_');
        if is_var
            && !documented.contains_key(quoted)
            && !not_operator_settings.contains(&quoted)
            && !missing.contains(&quoted)
        {
            missing.push(quoted);
        }
    }
    assert!(
        missing.is_empty(),
        "read by src/config.rs but not in packaging/cronq.env: {missing:?}"
    );
}
