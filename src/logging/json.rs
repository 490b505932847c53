//! `LOG_FORMAT=json`: one JSON object per line, with the fields of every
//! span the event is in (`job_id`, `job_type`, `cron_id`, `attempt`, ...)
//! at the top level beside the event's own, so that
//! `jq 'select(.job_id == "k3j9x0c2m1q8z7a")'` finds a job's lines.
//!
//! tracing-subscriber's own JSON format nests span fields (`"span": {...}`,
//! `"spans": [...]`); `flatten_event` only lifts the event's fields. So the
//! event is written here, while span fields are still recorded by the fmt
//! layer's [`JsonFields`]: each span keeps its fields as a JSON object, which
//! is merged in from the outermost span inwards, then the event's fields on
//! top (an inner value wins over an outer one of the same name). Values keep
//! their JSON type: `"pid":18458`, `"attempt":2`, `"dead":true`.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format of `LOG_FORMAT=json`.
#[derive(Debug, Default, Clone, Copy)]
pub struct FlatJson;

impl<S> FormatEvent<S, JsonFields> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut record = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    record.extend(fields);
                }
            }
        }
        let mut visitor = EventFields {
            fields: &mut record,
            log_target: None,
        };
        event.record(&mut visitor);
        let target = visitor
            .log_target
            .take()
            .unwrap_or_else(|| meta.target().to_string());
        record.insert(
            "timestamp".into(),
            Value::String(crate::clock::format_ms(
                jiff::Timestamp::now().as_millisecond(),
            )),
        );
        record.insert("level".into(), Value::String(meta.level().to_string()));
        record.insert("target".into(), Value::String(target));
        writeln!(writer, "{}", Value::Object(record))
    }
}

/// Writes an event's fields into the record with their JSON types.
struct EventFields<'a> {
    fields: &'a mut Map<String, Value>,
    /// `log.target` of a record forwarded from the `log` crate.
    log_target: Option<String>,
}

impl EventFields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        // Records from the `log` crate carry their origin as `log.*` fields.
        if let Some(what) = name.strip_prefix("log.") {
            if what == "target"
                && let Value::String(target) = value
            {
                self.log_target = Some(target);
            }
            return;
        }
        self.fields.insert(name.to_string(), value);
    }
}

impl Visit for EventFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields and the message come here as Display text.
        self.put(field, Value::from(format!("{value:?}")));
    }
}
