//! Reading one value of a cron table: strings, bounded integers, one of a
//! few words, and `data` converted to the JSON a job payload carries. Each
//! reader reports its own fault (expected type, range, JSON limits) at the
//! value's line, so `Document::cron` reads as a list of keys.

use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Document, display_key};

impl Document<'_> {
    /// A string value, with its line; a fault if present but not a string.
    pub(super) fn string<'v>(
        &mut self,
        value: Option<&'v Spanned<DeValue<'_>>>,
        key: &str,
    ) -> Option<(&'v str, usize)> {
        let value = value?;
        let line = self.line(value.span());
        match value.get_ref() {
            DeValue::String(s) => Some((s, line)),
            other => {
                self.fault(
                    Some(line),
                    key,
                    format!("expected a string, got {}", article(other)),
                );
                None
            }
        }
    }

    /// An integer within `range`: `None` on a fault, `Some(None)` when absent.
    pub(super) fn integer(
        &mut self,
        value: Option<&Spanned<DeValue<'_>>>,
        key: &str,
        (min, max): (i64, i64),
    ) -> Option<Option<i64>> {
        let Some(value) = value else {
            return Some(None);
        };
        let line = self.line(value.span());
        let n = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            other => {
                self.fault(
                    Some(line),
                    key,
                    format!("expected an integer, got {}", article(other)),
                );
                return None;
            }
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(Some(n)),
            _ => {
                let shown = match value.get_ref() {
                    DeValue::Integer(i) => i.to_string(),
                    _ => String::new(),
                };
                self.fault(
                    Some(line),
                    key,
                    format!("{shown} is out of range {min}..={max}"),
                );
                None
            }
        }
    }

    /// One of a few words: `None` on a fault, `Some(None)` when absent.
    pub(super) fn choice<T: Copy>(
        &mut self,
        value: Option<&Spanned<DeValue<'_>>>,
        key: &str,
        choices: &[(&str, T)],
    ) -> Option<Option<T>> {
        let Some(value) = value else {
            return Some(None);
        };
        let (word, line) = self.string(Some(value), key)?;
        match choices.iter().find(|(name, _)| *name == word) {
            Some((_, choice)) => Some(Some(*choice)),
            None => {
                let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
                self.fault(
                    Some(line),
                    key,
                    format!("{word:?} is not one of {}", names.join(", ")),
                );
                None
            }
        }
    }

    /// `data` as JSON, the form the job's payload carries. Every value that
    /// JSON cannot hold is a fault at its own key.
    pub(super) fn json_object(
        &mut self,
        table: &DeTable<'_>,
        path: &[&str],
    ) -> Option<Map<String, Value>> {
        let mut object = Map::new();
        let mut ok = true;
        for (name, value) in table {
            let mut sub = path.to_vec();
            sub.push(name.get_ref());
            match self.json(value, &sub) {
                Some(json) => {
                    object.insert(name.get_ref().to_string(), json);
                }
                None => ok = false,
            }
        }
        ok.then_some(object)
    }

    fn json(&mut self, value: &Spanned<DeValue<'_>>, path: &[&str]) -> Option<Value> {
        match value.get_ref() {
            DeValue::String(s) => Some(Value::String(s.to_string())),
            DeValue::Boolean(b) => Some(Value::Bool(*b)),
            DeValue::Datetime(dt) => Some(Value::String(dt.to_string())),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Value::from(n)),
                Err(_) => {
                    let line = self.line(value.span());
                    self.fault(Some(line), display_key(path), "integer out of range");
                    None
                }
            },
            DeValue::Float(f) => {
                let number = f
                    .as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64);
                match number {
                    Some(n) => Some(Value::Number(n)),
                    None => {
                        let line = self.line(value.span());
                        self.fault(
                            Some(line),
                            display_key(path),
                            format!("{} cannot be carried in JSON job data", f.as_str()),
                        );
                        None
                    }
                }
            }
            DeValue::Array(items) => {
                let mut array = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let index = i.to_string();
                    let mut sub = path.to_vec();
                    sub.push(&index);
                    match self.json(item, &sub) {
                        Some(json) => array.push(json),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Array(array))
            }
            DeValue::Table(table) => self.json_object(table, path).map(Value::Object),
        }
    }
}

pub(super) fn article(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}
