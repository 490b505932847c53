//! A `WHERE` clause built a condition at a time, with its named
//! parameters: the listing of jobs, the history's listing and the bulk
//! verbs filter alike (as `store::postgres::filter` does there).

use rusqlite::ToSql;

#[derive(Default)]
pub(super) struct Where {
    conditions: Vec<&'static str>,
    values: Vec<(&'static str, Box<dyn ToSql>)>,
}

impl Where {
    /// A condition whose parameters, if any, are bound apart.
    pub(super) fn push(&mut self, condition: &'static str) {
        self.conditions.push(condition);
    }

    /// Binds `key` (`:name`) for a condition or for the statement around.
    pub(super) fn bind(&mut self, key: &'static str, value: impl ToSql + 'static) {
        self.values.push((key, Box::new(value)));
    }

    /// A condition on one parameter, `key`, when there is a value.
    pub(super) fn when<T: ToSql + 'static>(
        &mut self,
        condition: &'static str,
        key: &'static str,
        value: Option<T>,
    ) {
        if let Some(value) = value {
            self.push(condition);
            self.bind(key, value);
        }
    }

    pub(super) fn mentions(&self, key: &str) -> bool {
        self.conditions.iter().any(|c| c.contains(key))
    }

    /// The conditions joined with `AND`.
    pub(super) fn joined(&self) -> String {
        self.conditions.join(" AND ")
    }

    /// `WHERE` and the conditions, or nothing when there are none.
    pub(super) fn clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.joined())
        }
    }

    pub(super) fn params(&self) -> Vec<(&str, &dyn ToSql)> {
        self.values.iter().map(|(k, v)| (*k, v.as_ref())).collect()
    }
}
