//! The one error type of schedules and their time zones. Messages are written
//! for the person at the terminal: they quote the text as it was written and
//! name the field, so `cronq next` and the crons file loader can show them as
//! they are. The variants carry `&'static str` field names rather than an enum
//! so that callers (the admin `bad_request` answer, the file loader) can put
//! the name straight into their own messages.

/// What was wrong with a cron expression or a time zone name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not 5 fields and not a macro.
    #[error(
        "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, got {got}"
    )]
    FieldCount { got: usize },

    /// A character between or inside fields that is not a space or tab but
    /// may look like one (a no-break space, a line break).
    #[error(
        "the schedule contains {name} (U+{code:04X}); separate fields with spaces or tabs only"
    )]
    Separator { name: &'static str, code: u32 },

    /// Starts with `@` but is not one of the macros.
    #[error(
        "unknown macro \"{text}\"; expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
    )]
    UnknownMacro { text: String },

    /// A field that does not follow the cron grammar.
    #[error("{field} field \"{text}\" is not valid{}", hint_suffix(.hint))]
    InvalidField {
        field: &'static str,
        text: String,
        hint: Option<&'static str>,
    },

    /// A well-formed field with a number outside what the field allows.
    #[error("{field} field \"{text}\" {}", bound.describe(range))]
    OutOfRange {
        field: &'static str,
        text: String,
        bound: Bound,
        range: &'static str,
    },

    /// Valid fields that no date satisfies (`0 0 31 2 *`).
    #[error("the schedule \"{expr}\" never fires")]
    NeverFires { expr: String },

    /// A time zone name the system time zone database does not have.
    #[error("unknown time zone \"{name}\": {reason}")]
    UnknownTimeZone { name: String, reason: &'static str },
}

/// Which number of a field was out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A value, a range end or a step's start.
    Value,
    /// The number after `/`.
    Step,
    /// The `n` of `L-n`.
    Offset,
    /// The `n` of `DAY#n`.
    Occurrence,
}

impl Bound {
    fn describe(self, range: &str) -> String {
        match self {
            Bound::Value => format!("is out of range {range}"),
            Bound::Step => format!("has a step out of range {range}"),
            Bound::Offset => format!("has an offset out of range {range}"),
            Bound::Occurrence => format!("has an occurrence out of range {range}"),
        }
    }
}

fn hint_suffix(hint: &Option<&'static str>) -> String {
    match hint {
        Some(hint) => format!(": {hint}"),
        None => String::new(),
    }
}

impl ScheduleError {
    /// The faulty field ("minute", "hour", "day-of-month", "month",
    /// "day-of-week") when the error is about one field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ScheduleError::InvalidField { field, .. } | ScheduleError::OutOfRange { field, .. } => {
                Some(field)
            }
            _ => None,
        }
    }
}
