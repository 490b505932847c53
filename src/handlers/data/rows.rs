//! The row model every source, step and target shares: a fixed list of
//! column names announced once, then rows of JSON values in that order,
//! pushed one at a time into a [`RowSink`].
//!
//! Design choice: rows are *pushed* by the source rather than pulled as an
//! iterator, because the one reader that can stream a JSON array without
//! buffering it (a serde visitor over the sequence) can only call out, not
//! be called. Every other source follows the same shape, and a sink's
//! [`Flow::Stop`] lets `limit` end the reading early.
//!
//! CSV carries no types, so the few places that compare or add values
//! (filter, aggregate) read numeric strings as numbers and an empty string
//! as null, the way an exported CSV wrote them.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::DataError;

/// One record, one value per column, in column order.
pub type Row = Vec<Value>;

/// Whether the source should go on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Where rows go: a step (filter, aggregate) or a target (file, table).
pub trait RowSink {
    /// Called exactly once, before any row. An empty list means the input
    /// had no columns at all (an empty file).
    fn begin(&mut self, columns: Vec<String>) -> Result<(), DataError>;

    /// One row, as long as the column list.
    fn row(&mut self, row: Row) -> Result<Flow, DataError>;

    /// No more rows. A step flushes what it held; a target completes its
    /// output (but does not yet publish it: see the ops module).
    fn finish(&mut self) -> Result<(), DataError>;
}

/// Checks the column names a source announces: each present, none twice,
/// since a table or a JSON object cannot hold two of one name.
pub fn check_columns(location: &str, columns: &[String]) -> Result<(), DataError> {
    for (i, name) in columns.iter().enumerate() {
        if name.is_empty() {
            return Err(DataError::bad_input(
                location,
                format!("column {} has an empty name", i + 1),
            ));
        }
        if columns[..i].contains(name) {
            return Err(DataError::bad_input(
                location,
                format!("the column {name:?} appears twice"),
            ));
        }
    }
    Ok(())
}

/// Null, or the empty string a CSV writes for null.
pub fn is_missing(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A number read from a JSON number or a numeric string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// The value as a number, if it is one or a string that spells one (CSV
/// fields are strings). Non-finite spellings (`inf`, `NaN`) are not numbers.
pub fn as_number(value: &Value) -> Option<Num> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(Num::Int(i)),
            None => n.as_f64().map(Num::Float),
        },
        Value::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                Some(Num::Int(i))
            } else {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Num::Float)
            }
        }
        _ => None,
    }
}

/// Whether a cell equals a filter's value, reading across representations:
/// `"30"` equals `30`, `""` equals `null`, `"true"` equals `true`.
pub fn loosely_equal(cell: &Value, wanted: &Value) -> bool {
    if cell == wanted {
        return true;
    }
    match (cell, wanted) {
        (c, Value::Null) => is_missing(c),
        (Value::Null, w) => is_missing(w),
        (Value::Bool(b), Value::String(s)) | (Value::String(s), Value::Bool(b)) => {
            s.trim() == if *b { "true" } else { "false" }
        }
        (Value::Number(_), Value::String(_))
        | (Value::String(_), Value::Number(_))
        | (Value::Number(_), Value::Number(_)) => match (as_number(cell), as_number(wanted)) {
            (Some(a), Some(b)) => a.as_f64() == b.as_f64(),
            _ => false,
        },
        _ => false,
    }
}

/// SQLite's order for min/max: numbers (and numeric strings) before other
/// text, numbers by value, text by bytes. Nulls never reach here.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => x.as_f64().total_cmp(&y.as_f64()),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => text_of(a).cmp(&text_of(b)),
    }
}

fn text_of(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Collects what a reader pushes, for tests.
#[cfg(test)]
#[derive(Default)]
pub struct Collect {
    pub columns: Option<Vec<String>>,
    pub rows: Vec<Vec<Value>>,
    pub stop_after: Option<usize>,
}

#[cfg(test)]
impl RowSink for Collect {
    fn begin(&mut self, columns: Vec<String>) -> Result<(), DataError> {
        assert!(self.columns.is_none(), "begin called twice");
        self.columns = Some(columns);
        Ok(())
    }
    fn row(&mut self, row: Vec<Value>) -> Result<Flow, DataError> {
        self.rows.push(row);
        Ok(match self.stop_after {
            Some(n) if self.rows.len() >= n => Flow::Stop,
            _ => Flow::Continue,
        })
    }
    fn finish(&mut self) -> Result<(), DataError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loose_equality_reads_csv_strings() {
        assert!(loosely_equal(&json!("30"), &json!(30)));
        assert!(loosely_equal(&json!("30.0"), &json!(30)));
        assert!(loosely_equal(&json!(""), &json!(null)));
        assert!(loosely_equal(&json!("true"), &json!(true)));
        assert!(loosely_equal(&json!(1), &json!(1.0)));
        assert!(!loosely_equal(&json!("abc"), &json!(0)));
        assert!(!loosely_equal(&json!("x"), &json!(null)));
        assert!(!loosely_equal(&json!(1), &json!(true)));
    }

    #[test]
    fn numbers_come_from_numbers_and_numeric_strings() {
        assert_eq!(as_number(&json!(" 12 ")), Some(Num::Int(12)));
        assert_eq!(as_number(&json!("1.5")), Some(Num::Float(1.5)));
        assert_eq!(as_number(&json!("inf")), None);
        assert_eq!(as_number(&json!("NaN")), None);
        assert_eq!(as_number(&json!(true)), None);
    }

    #[test]
    fn order_puts_numbers_first_and_compares_them_by_value() {
        assert_eq!(compare(&json!("10"), &json!("9")), Ordering::Greater);
        assert_eq!(compare(&json!(5), &json!("apple")), Ordering::Less);
        assert_eq!(compare(&json!("b"), &json!("a")), Ordering::Greater);
    }

    #[test]
    fn columns_must_be_named_once() {
        let cols = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_columns("source", &cols(&["a", "b"])).is_ok());
        assert!(check_columns("source", &cols(&["a", "a"])).is_err());
        assert!(check_columns("source", &cols(&["a", ""])).is_err());
    }
}
