//! A record of the replaced system's `queues` collection, as PocketBase's
//! API answers it (or as `store::pocketbase` reads it from `data.db`, in
//! the same shape), turned into the `import` request's record: taken,
//! skipped for now, or refused with the reason.
//!
//! What PocketBase's storage does to a record, and what is done about it:
//! - `payload` is a JSON field: an object as the replaced system wrote it;
//!   a JSON string holding that object (code that saved the marshalled
//!   text) is read once more; a number, `null` or anything else is refused
//!   with what it is (a payload `'123'` comes back as the number 123).
//! - `options` keys other than `retry_count` and `timeout` (the replaced
//!   system's `filename_prefix`, `store_result`, ...) are dropped: cronq's
//!   handlers take their options in `data`.
//! - `attempts` is a number field: any whole number from 0 is taken;
//!   a fraction or a negative number is refused.
//! - dates are `2006-01-02 15:04:05.000Z`, or `""` for none. A record
//!   reserved less than the reservation timeout ago may be running in
//!   PocketBase and is skipped; `created` becomes the job's `run_at`.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::admin::protocol::request::{ImportRecord, JobOptions, Payload};
use crate::clock::{Millis, format_ms, parse_rfc3339};
use crate::queue::import::plain_id;

/// What to do with one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Take(ImportRecord),
    /// Not now: it may still be running in PocketBase.
    Skip {
        id: String,
        reason: String,
    },
    Refuse {
        id: String,
        reason: String,
    },
}

/// Decides about `record` at `now`: a record reserved less than
/// `reservation` ago is skipped unless `include_reserved`.
pub fn decide(
    record: &Value,
    now: Millis,
    reservation: Duration,
    include_reserved: bool,
) -> Decision {
    let id = match record.get("id") {
        Some(Value::String(id)) if plain_id(id) => id.clone(),
        Some(Value::String(id)) => {
            return Decision::Refuse {
                id: id.clone(),
                reason: "id: must be 1 to 100 letters, digits, _ or -".into(),
            };
        }
        _ => {
            return Decision::Refuse {
                id: String::new(),
                reason: "id: missing".into(),
            };
        }
    };
    let refuse = |reason: String| Decision::Refuse {
        id: id.clone(),
        reason,
    };
    if !include_reserved
        && let Some(at) = date(record.get("reserved_at"))
        && now - at < reservation.as_millis() as Millis
    {
        return Decision::Skip {
            id: id.clone(),
            reason: format!(
                "reserved in PocketBase at {}, less than JOB_RESERVATION_TIMEOUT ({} min) ago: \
                 it may still be running there",
                format_ms(at),
                reservation.as_secs() / 60
            ),
        };
    }
    let name = match record.get("name") {
        Some(Value::String(name)) => name.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => return refuse(format!("name: expected text, got {}", kind(other))),
    };
    let description = match record.get("description") {
        Some(Value::String(d)) if !d.is_empty() => Some(d.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => None,
        Some(other) => return refuse(format!("description: expected text, got {}", kind(other))),
    };
    let payload = match payload(record.get("payload").unwrap_or(&Value::Null)) {
        Ok(payload) => payload,
        Err(reason) => return refuse(reason),
    };
    let attempts = match attempts(record.get("attempts")) {
        Ok(n) => n,
        Err(reason) => return refuse(reason),
    };
    Decision::Take(ImportRecord {
        id: id.clone(),
        name,
        description,
        payload,
        attempts: Some(attempts),
        created: date(record.get("created")).map(format_ms),
    })
}

/// A record's id and `updated`, which together say whether it changed
/// since it was last refused.
pub fn version(record: &Value) -> (String, String) {
    let text = |key| {
        record
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (text("id"), text("updated"))
}

fn payload(value: &Value) -> Result<Payload, String> {
    let object = match value {
        Value::Object(map) => map.clone(),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(format!(
                    "payload: expected an object {{\"type\", \"data\", \"options\"}}, got the text {}",
                    shown(text)
                ));
            }
        },
        Value::Null => {
            return Err(
                "payload: missing; expected an object {\"type\", \"data\", \"options\"}".into(),
            );
        }
        Value::Number(n) => {
            return Err(format!(
                "payload: expected an object {{\"type\", \"data\", \"options\"}}, got the number {n} \
                 (PocketBase stores a JSON field that holds only digits as a number)"
            ));
        }
        other => {
            return Err(format!(
                "payload: expected an object {{\"type\", \"data\", \"options\"}}, got {}",
                kind(other)
            ));
        }
    };
    if let Some(key) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "type" | "data" | "options"))
    {
        return Err(format!(
            "payload.{key}: unknown field; expected type, data, options"
        ));
    }
    let job_type = match object.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        None | Some(Value::Null) => return Err("payload.type: missing".into()),
        Some(other) => return Err(format!("payload.type: expected text, got {}", kind(other))),
    };
    let data = match object.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(format!(
                "payload.data: expected an object, got {}",
                kind(other)
            ));
        }
    };
    let options = match object.get("options") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(other) => {
            return Err(format!(
                "payload.options: expected an object, got {}",
                kind(other)
            ));
        }
    };
    Ok(Payload {
        job_type,
        data,
        options: kept_options(whole(&options, "retry_count")?, whole(&options, "timeout")?),
    })
}

/// The options a record carries over: only these two, whatever else
/// cronq's job options hold (the replaced system had no others).
#[allow(clippy::field_reassign_with_default)]
fn kept_options(retry_count: Option<u32>, timeout: Option<u32>) -> JobOptions {
    let mut options = JobOptions::default();
    options.retry_count = retry_count;
    options.timeout = timeout;
    options
}

/// An option that must be a whole number, if given.
fn whole(options: &Map<String, Value>, key: &str) -> Result<Option<u32>, String> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u32::MAX as f64 => Ok(Some(f as u32)),
            _ => Err(format!(
                "payload.options.{key}: expected a whole number, 0 or more, got {n}"
            )),
        },
        Some(other) => Err(format!(
            "payload.options.{key}: expected a whole number, got {}",
            kind(other)
        )),
    }
}

/// `attempts`: a whole number from 0; kept below 2^31 (a job's attempts
/// column), which is past any limit.
fn attempts(value: Option<&Value>) -> Result<u32, String> {
    match value {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 => Ok(f.min(i32::MAX as f64) as u32),
            _ => Err(format!(
                "attempts: expected a whole number, 0 or more, got {n}"
            )),
        },
        Some(other) => Err(format!(
            "attempts: expected a whole number, got {}",
            kind(other)
        )),
    }
}

/// A PocketBase date (`2006-01-02 15:04:05.000Z`, or RFC 3339 as it
/// accepts on input); none for `""`, null or anything unreadable.
pub fn date(value: Option<&Value>) -> Option<Millis> {
    let text = value?.as_str()?.trim();
    if text.is_empty() {
        return None;
    }
    parse_rfc3339(&text.replacen(' ', "T", 1)).ok()
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the text {}", shown(s)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// The start of a long text, quoted.
fn shown(text: &str) -> String {
    let cut: String = text.chars().take(60).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Millis = 1_796_119_200_000; // 2026-12-01T10:00:00Z
    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn decide_now(record: Value) -> Decision {
        decide(&record, NOW, FIVE_MIN, false)
    }

    fn refusal(record: Value) -> String {
        match decide_now(record) {
            Decision::Refuse { reason, .. } => reason,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn the_seeds_record_is_taken_as_written() {
        let record = json!({
            "id": "kotfgwdff5wx2ss", "name": "welcome_email",
            "description": "Send welcome email to new user",
            "payload": {"type": "email", "data": {"to": "user@example.com", "subject": "Welcome {{name}}!",
                        "template": "welcome_email", "variables": {"name": "John Doe"}},
                        "options": {"retry_count": 3, "timeout": 30}},
            "attempts": 0, "reserved_at": "", "created": "2026-12-01 09:59:30.977Z",
            "updated": "2026-12-01 09:59:30.977Z", "collectionId": "pbc_4175003608", "collectionName": "queues"
        });
        let Decision::Take(taken) = decide_now(record) else {
            panic!("not taken")
        };
        assert_eq!(taken.id, "kotfgwdff5wx2ss");
        assert_eq!(taken.payload.job_type, "email");
        assert_eq!(taken.payload.data["template"], "welcome_email");
        assert_eq!(taken.payload.options.retry_count, Some(3));
        assert_eq!(taken.payload.options.timeout, Some(30));
        assert_eq!(taken.attempts, Some(0));
        assert_eq!(taken.created.as_deref(), Some("2026-12-01T09:59:30.977Z"));
        assert_eq!(
            taken.description.as_deref(),
            Some("Send welcome email to new user")
        );
    }

    #[test]
    fn a_payload_saved_as_marshalled_text_is_read_once_more() {
        // The replaced system's user export: json.Marshal, then Set("payload", string).
        let text = r#"{"type":"data_processing","data":{"operation":"export","source":"users","target":"csv"},"options":{"timeout":900,"filename_prefix":"users"}}"#;
        let Decision::Take(taken) =
            decide_now(json!({"id": "a1", "name": "User Export", "payload": text}))
        else {
            panic!("not taken")
        };
        assert_eq!(taken.payload.job_type, "data_processing");
        assert_eq!(taken.payload.options.timeout, Some(900));
        assert_eq!(taken.payload.options.retry_count, None);
    }

    #[test]
    fn bad_payloads_are_refused_saying_what_they_are() {
        let with = |payload: Value| refusal(json!({"id": "a1", "name": "n", "payload": payload}));
        assert_eq!(
            with(json!(123)),
            "payload: expected an object {\"type\", \"data\", \"options\"}, got the number 123 \
             (PocketBase stores a JSON field that holds only digits as a number)"
        );
        assert!(with(Value::Null).starts_with("payload: missing"));
        assert!(with(json!("not json")).ends_with("got the text \"not json\""));
        assert!(with(json!([1])).ends_with("got a list"));
        assert_eq!(with(json!({"data": {}})), "payload.type: missing");
        assert_eq!(
            with(json!({"type": 5})),
            "payload.type: expected text, got the number 5"
        );
        assert_eq!(
            with(json!({"type": "noop", "priority": 1})),
            "payload.priority: unknown field; expected type, data, options"
        );
        assert_eq!(
            with(json!({"type": "noop", "data": "x"})),
            "payload.data: expected an object, got the text \"x\""
        );
        assert_eq!(
            with(json!({"type": "noop", "options": {"retry_count": 1.5}})),
            "payload.options.retry_count: expected a whole number, 0 or more, got 1.5"
        );
        assert_eq!(
            refusal(json!({"id": "a1", "name": "n", "payload": {"type": "noop"}, "attempts": 2.5})),
            "attempts: expected a whole number, 0 or more, got 2.5"
        );
        assert_eq!(
            refusal(json!({"id": "a b", "name": "n", "payload": {"type": "noop"}})),
            "id: must be 1 to 100 letters, digits, _ or -"
        );
    }

    #[test]
    fn a_recent_reservation_is_skipped_unless_asked() {
        let reserved = |at: &str| json!({"id": "a1", "name": "n", "payload": {"type": "noop"}, "reserved_at": at});
        let recent = reserved("2026-12-01 09:56:00.000Z");
        match decide_now(recent.clone()) {
            Decision::Skip { id, reason } => {
                assert_eq!(id, "a1");
                assert_eq!(
                    reason,
                    "reserved in PocketBase at 2026-12-01T09:56:00.000Z, less than \
                     JOB_RESERVATION_TIMEOUT (5 min) ago: it may still be running there"
                );
            }
            other => panic!("not skipped: {other:?}"),
        }
        assert!(matches!(
            decide(&recent, NOW, FIVE_MIN, true),
            Decision::Take(_)
        ));
        assert!(matches!(
            decide_now(reserved("2026-12-01 09:54:59.999Z")),
            Decision::Take(_)
        ));
        assert!(matches!(decide_now(reserved("")), Decision::Take(_)));
        // The replaced system's own format, and RFC 3339 as PocketBase accepts it.
        assert_eq!(
            date(Some(&json!("2006-01-02 15:04:05.000Z"))),
            Some(1_136_214_245_000)
        );
        assert_eq!(
            date(Some(&json!("2006-01-02T15:04:05Z"))),
            Some(1_136_214_245_000)
        );
        assert_eq!(date(Some(&json!(""))), None);
    }

    #[test]
    fn attempts_carry_over_as_whole_numbers() {
        let with = |attempts: Value| match decide_now(
            json!({"id": "a", "name": "n", "payload": {"type": "noop"}, "attempts": attempts}),
        ) {
            Decision::Take(r) => r.attempts,
            other => panic!("{other:?}"),
        };
        assert_eq!(with(json!(3)), Some(3));
        assert_eq!(with(json!(3.0)), Some(3));
        assert_eq!(with(Value::Null), Some(0));
        assert_eq!(with(json!(1e12)), Some(i32::MAX as u32));
    }
}
