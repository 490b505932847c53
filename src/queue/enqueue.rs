//! Checks a new job before it is stored, the same way for the admin socket
//! and for library callers: limits, the handler for its type, and the
//! handler's own check of `data`.

use super::QueueError;
use super::handler::Registry;
use super::job::{NewJob, RunAt};

/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `unique_key` and `description`, in characters.
pub const MAX_KEY_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;
/// `payload.options.retry_count` and `timeout` ranges, as PROTOCOL.md says.
pub const MAX_RETRY_COUNT: u32 = 100;
pub const MAX_TIMEOUT_S: u32 = 86_400;
/// Priorities beyond a 32-bit range are surely a mistake.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i64> = -(1 << 31)..=(1 << 31) - 1;

/// Checks `job`; `at` prefixes field names in messages (e.g. `jobs[3].`).
pub fn validate(
    job: &NewJob,
    registry: &Registry,
    max_payload_bytes: usize,
    at: &str,
) -> Result<(), QueueError> {
    let invalid =
        |field: &str, message: String| QueueError::Invalid(format!("{at}{field}: {message}"));
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
    if let RunAt::At(ms) = job.when
        && !(0..=253_402_300_799_999).contains(&ms)
    {
        return Err(invalid("run_at", "must be between 1970 and 9999".into()));
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
        validate(&job, &registry(), 1024, "jobs[2].")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn accepts_a_good_job() {
        validate(&job(json!({"to": "x"})), &registry(), 1024, "").unwrap();
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
    fn payload_size_is_capped() {
        let j = job(json!({"to": "x".repeat(2000)}));
        let err = validate(&j, &registry(), 1024, "").unwrap_err();
        assert!(matches!(err, QueueError::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("CRONQ_MAX_PAYLOAD_BYTES"));
        let _ = Map::<String, Value>::new();
    }
}
