//! Checks a new job before it is stored, the same way for the admin socket
//! and for library callers: limits, the handler for its type, and the
//! handler's own check of `data`.

use super::QueueError;
use super::handler::Registry;
use super::job::{NewJob, RunAt};
use crate::clock::{MAX_MS, Millis, format_ms};

/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `unique_key` and `description`, in characters.
pub const MAX_KEY_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
pub use crate::store::job::{MAX_RETRY_COUNT, MAX_TIMEOUT_S};
/// Priorities beyond a 32-bit range are surely a mistake.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -(1 << 31)..=(1 << 31) - 1;

/// Checks `job`, to be stored at `now`; `at` prefixes field names in
/// messages (e.g. `jobs[3].`).
pub fn validate(
    job: &NewJob,
    registry: &Registry,
    max_payload_bytes: usize,
    at: &str,
    now: Millis,
) -> Result<(), QueueError> {
    let invalid =
        |field: &str, message: String| QueueError::Invalid(format!("{at}{field}: {message}"));
    // A NUL ends the text early for every C reader of the database (the
    // sqlite3 shell, a PocketBase reading the same file): refused.
    for (field, text) in [
        ("name", Some(&job.name)),
        ("description", Some(&job.description)),
        ("unique_key", job.unique_key.as_ref()),
    ] {
        if text.is_some_and(|t| t.contains('\0')) {
            return Err(invalid(field, "must not contain a NUL character".into()));
        }
    }
    let name_chars = job.name.chars().count();
    if name_chars == 0 || name_chars > MAX_NAME_CHARS {
        return Err(invalid(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, got {name_chars}"),
        ));
    }
    if job.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(invalid(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if let Some(key) = &job.unique_key {
        let n = key.chars().count();
        if n == 0 || n > MAX_KEY_CHARS {
            return Err(invalid(
                "unique_key",
                format!("must be 1 to {MAX_KEY_CHARS} characters, got {n}"),
            ));
        }
    }
    if let Some(n) = job.retry_count.filter(|n| *n > MAX_RETRY_COUNT) {
        return Err(invalid(
            "payload.options.retry_count",
            format!("must be from 0 to {MAX_RETRY_COUNT}, got {n}"),
        ));
    }
    if let Some(n) = job.timeout_s.filter(|n| *n == 0 || *n > MAX_TIMEOUT_S) {
        return Err(invalid(
            "payload.options.timeout",
            format!("must be from 1 to {MAX_TIMEOUT_S} seconds, got {n}"),
        ));
    }
    if !PRIORITY_RANGE.contains(&job.priority) {
        return Err(invalid(
            "priority",
            format!(
                "must be from {} to {}, got {}",
                PRIORITY_RANGE.start(),
                PRIORITY_RANGE.end(),
                job.priority
            ),
        ));
    }
    match job.when {
        RunAt::At(ms) if !(0..=MAX_MS).contains(&ms) => {
            return Err(invalid("run_at", "must be between 1970 and 9999".into()));
        }
        RunAt::After(delay) if job.run_at_ms(now) > MAX_MS => {
            let most = (MAX_MS - now).max(0) / 1000;
            return Err(invalid(
                "delay",
                format!(
                    "must be at most {most} seconds (until {}), got {}",
                    format_ms(MAX_MS),
                    delay.as_secs()
                ),
            ));
        }
        _ => {}
    }
    let handler = registry
        .enabled(&job.job_type)
        .map_err(|e| invalid("payload.type", e.to_string()))?;
    let data = serde_json::Value::Object(job.data.clone());
    let size = data.to_string().len();
    if size > max_payload_bytes {
        return Err(QueueError::TooLarge(format!(
            "{at}payload.data is {size} bytes, more than the limit of {max_payload_bytes} (CRONQ_MAX_PAYLOAD_BYTES)"
        )));
    }
    handler
        .validate(&data)
        .map_err(|message| invalid("payload.data", message))?;
    // "memory_max: ..." becomes "payload.options.memory_max: ...".
    job.limits
        .check_ranges()
        .and_then(|()| handler.check_limits(&job.limits))
        .map_err(|message| QueueError::Invalid(format!("{at}payload.options.{message}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::handler::{Handler, JobContext, JobError, Registration};
    use serde_json::{Map, Value, json};

    const NOW: Millis = 1_800_000_000_000;

    struct Picky;

    #[async_trait::async_trait]
    impl Handler for Picky {
        fn job_type(&self) -> &str {
            "picky"
        }
        fn validate(&self, data: &Value) -> Result<(), String> {
            match data.get("to") {
                Some(Value::String(_)) => Ok(()),
                _ => Err("to: required".into()),
            }
        }
        async fn run(&self, _job: JobContext) -> Result<(), JobError> {
            Ok(())
        }
    }

    fn registry() -> Registry {
        let mut r = Registry::new();
        r.register(Registration::new(Picky));
        r
    }

    fn job(data: Value) -> NewJob {
        let Value::Object(map) = data else { panic!() };
        NewJob::new("n", "picky", map)
    }

    fn message(job: NewJob) -> String {
        validate(&job, &registry(), 1024, "jobs[2].", NOW)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn accepts_a_good_job() {
        validate(&job(json!({"to": "x"})), &registry(), 1024, "", NOW).unwrap();
    }

    #[test]
    fn each_fault_names_its_field() {
        assert_eq!(
            message(job(json!({}))),
            "jobs[2].payload.data: to: required"
        );
        let mut j = job(json!({"to": "x"}));
        j.name = String::new();
        assert!(message(j).starts_with("jobs[2].name: must be 1 to 200"));
        let mut j = job(json!({"to": "x"}));
        j.name = "x".repeat(201);
        assert!(message(j).contains("got 201"));
        let mut j = job(json!({"to": "x"}));
        j.job_type = "nope".into();
        assert!(message(j).starts_with("jobs[2].payload.type: no handler"));
        let mut j = job(json!({"to": "x"}));
        j.retry_count = Some(101);
        assert!(message(j).starts_with("jobs[2].payload.options.retry_count"));
        let mut j = job(json!({"to": "x"}));
        j.timeout_s = Some(0);
        assert!(message(j).starts_with("jobs[2].payload.options.timeout"));
        let mut j = job(json!({"to": "x"}));
        j.priority = i64::MAX;
        assert!(message(j).starts_with("jobs[2].priority"));
    }

    #[test]
    fn a_nul_is_refused_in_every_text_field_naming_it() {
        let mut j = job(json!({"to": "x"}));
        j.name = "a\0b".into();
        assert_eq!(message(j), "jobs[2].name: must not contain a NUL character");
        let mut j = job(json!({"to": "x"}));
        j.description = "\0".into();
        assert!(message(j).starts_with("jobs[2].description: must not contain a NUL"));
        let mut j = job(json!({"to": "x"}));
        j.unique_key = Some("k\0".into());
        assert!(message(j).starts_with("jobs[2].unique_key: must not contain a NUL"));
    }

    #[test]
    fn run_at_and_delay_end_with_year_9999() {
        let mut j = job(json!({"to": "x"}));
        j.when = RunAt::At(MAX_MS);
        validate(&j, &registry(), 1024, "", NOW).unwrap();
        j.when = RunAt::At(MAX_MS + 1);
        assert!(message(j).starts_with("jobs[2].run_at: must be between 1970 and 9999"));
        let mut j = job(json!({"to": "x"}));
        let most = (MAX_MS - NOW) / 1000;
        j.when = RunAt::After(std::time::Duration::from_secs(most as u64));
        validate(&j, &registry(), 1024, "", NOW).unwrap();
        j.when = RunAt::After(std::time::Duration::from_secs(i64::MAX as u64));
        assert_eq!(
            message(j),
            format!(
                "jobs[2].delay: must be at most {most} seconds (until 9999-12-31T23:59:59.999Z), got {}",
                i64::MAX
            )
        );
    }

    #[test]
    fn payload_size_is_capped() {
        let j = job(json!({"to": "x".repeat(2000)}));
        let err = validate(&j, &registry(), 1024, "", NOW).unwrap_err();
        assert!(matches!(err, QueueError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("CRONQ_MAX_PAYLOAD_BYTES"));
        let _ = Map::<String, Value>::new();
    }
}
