//! `LOG_FORMAT=text`: tracing-subscriber's line format, with every field
//! and message escaped so that one record is one line.
//!
//! The default field format writes `%value` fields and the message as they
//! are, so a command's multi-line output or a multi-line error would start
//! lines of their own that a reader (or `grep`, or a log shipper) takes for
//! other records. Here line breaks become `\n` / `\r` and other control
//! characters (a terminal escape in job output) `\u{1b}`; tabs stay.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The field format of `LOG_FORMAT=text`: `message key=value key="text"`.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        let name = field.name();
        // Records forwarded from the `log` crate carry their origin as
        // `log.*` fields, which the line's target already shows.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let text = value.to_string();
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{separator}{}", Escaped(&text))
        } else {
            write!(self.writer, "{separator}{name}={}", Escaped(&text))
        };
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            // Quoted, as the default format does: `job_type="email"`.
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields and the message come here as Display text.
        self.write(field, format_args!("{value:?}"));
    }
}

/// `text` with line breaks and control characters written as escapes.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_char('\t')?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_and_controls_are_escaped() {
        assert_eq!(
            Escaped("a\nb\r\nc\td\u{1b}[31m").to_string(),
            "a\\nb\\r\\nc\td\\u{1b}[31m"
        );
        assert_eq!(Escaped("plain ✓").to_string(), "plain ✓");
    }
}
