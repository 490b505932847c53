//! A listing's `WHERE` clause built from its optional filters: each value
//! bound becomes the next `$n`, so a statement binds only the parameters
//! its conditions use (PostgreSQL cannot type one it does not use).

use tokio_postgres::types::ToSql;

#[derive(Default)]
pub(super) struct Where {
    conditions: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    /// Binds `value`; its placeholder, for a condition.
    pub(super) fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    pub(super) fn push(&mut self, condition: impl Into<String>) {
        self.conditions.push(condition.into());
    }

    /// `LHS $n`, with `value` bound as `$n` (as `"created >="`).
    pub(super) fn compare(&mut self, lhs: &str, value: impl ToSql + Sync + Send + 'static) {
        let placeholder = self.bind(value);
        self.push(format!("{lhs} {placeholder}"));
    }

    /// The conditions joined by `AND`, for a statement that has some.
    pub(super) fn joined(&self) -> String {
        self.conditions.join(" AND ")
    }

    /// `WHERE ...`, or nothing when there are no conditions.
    pub(super) fn clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.joined())
        }
    }

    pub(super) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}
