//! The `transform` step: filter, limit, select and rename, applied to each
//! row as it streams past.
//!
//! Design choice: field names are resolved against the source's columns
//! once, when the columns are announced, and rows are then handled by
//! position. A name the source lacks is therefore reported before any row
//! is written, naming the option at fault; and renames are applied all at
//! once from the original names, so `{"a": "b", "b": "a"}` swaps two
//! columns instead of depending on the order they are listed in.

use serde_json::Value;

use super::error::DataError;
use super::payload::TransformSpec;
use super::rows::{Flow, Row, RowSink, loosely_equal};

pub struct Transform<'a> {
    spec: &'a TransformSpec,
    inner: &'a mut dyn RowSink,
    /// Column position and the value it must equal.
    filter: Vec<(usize, &'a Value)>,
    /// Positions of the output's columns in the input, in output order;
    /// `None` while every column passes in place.
    keep: Option<Vec<usize>>,
    passed: u64,
}

impl<'a> Transform<'a> {
    pub fn new(spec: &'a TransformSpec, inner: &'a mut dyn RowSink) -> Transform<'a> {
        Transform {
            spec,
            inner,
            filter: Vec::new(),
            keep: None,
            passed: 0,
        }
    }

    fn limit_reached(&self) -> bool {
        self.spec.limit.is_some_and(|limit| self.passed >= limit)
    }
}

impl RowSink for Transform<'_> {
    fn begin(&mut self, columns: Vec<String>) -> Result<(), DataError> {
        let spec = self.spec;
        for (name, wanted) in &spec.filter {
            let at = position(&columns, name, || format!("options.filter.{name}"))?;
            self.filter.push((at, wanted));
        }
        let keep: Vec<usize> = match &spec.select {
            Some(select) => select
                .iter()
                .enumerate()
                .map(|(i, name)| position(&columns, name, || format!("options.select[{i}]")))
                .collect::<Result<_, _>>()?,
            None => (0..columns.len()).collect(),
        };
        for (old, _) in &spec.rename {
            if !keep.iter().any(|&i| &columns[i] == old) {
                return Err(DataError::invalid(
                    format!("options.rename.{old}"),
                    format!(
                        "no field {old:?} among the fields kept ({})",
                        listed(keep.iter().map(|&i| &columns[i]))
                    ),
                ));
            }
        }
        let names: Vec<String> = keep
            .iter()
            .map(|&i| {
                let original = &columns[i];
                spec.rename
                    .iter()
                    .find(|(old, _)| old == original)
                    .map_or_else(|| original.clone(), |(_, new)| new.clone())
            })
            .collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(DataError::invalid(
                    "options.rename",
                    format!("the output would have two columns named {name:?}"),
                ));
            }
        }
        let in_place = keep.len() == columns.len() && keep.iter().enumerate().all(|(i, &k)| i == k);
        self.keep = (!in_place).then_some(keep);
        self.inner.begin(names)
    }

    fn row(&mut self, mut row: Row) -> Result<Flow, DataError> {
        if self.limit_reached() {
            return Ok(Flow::Stop);
        }
        if !self
            .filter
            .iter()
            .all(|(at, wanted)| loosely_equal(&row[*at], wanted))
        {
            return Ok(Flow::Continue);
        }
        self.passed += 1;
        let out = match &self.keep {
            None => row,
            Some(keep) => keep.iter().map(|&i| std::mem::take(&mut row[i])).collect(),
        };
        let flow = self.inner.row(out)?;
        Ok(if self.limit_reached() {
            Flow::Stop
        } else {
            flow
        })
    }

    fn finish(&mut self) -> Result<(), DataError> {
        self.inner.finish()
    }
}

/// Where `name` is among `columns`; the error names the option at fault and
/// lists what the source has.
pub fn position(
    columns: &[String],
    name: &str,
    at: impl FnOnce() -> String,
) -> Result<usize, DataError> {
    columns.iter().position(|c| c == name).ok_or_else(|| {
        DataError::invalid(
            at(),
            format!(
                "no field {name:?} in the source; it has {}",
                listed(columns.iter())
            ),
        )
    })
}

/// Up to ten names, for an error message.
fn listed<'s>(names: impl Iterator<Item = &'s String>) -> String {
    let names: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    match names.len() {
        0 => "no fields".to_string(),
        n if n > 10 => format!("{}, and {} more", names[..10].join(", "), n - 10),
        _ => names.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::data::rows::Collect;
    use serde_json::json;

    fn run(spec: TransformSpec, columns: &[&str], rows: Vec<Row>) -> Result<Collect, DataError> {
        let mut out = Collect::default();
        let mut t = Transform::new(&spec, &mut out);
        t.begin(columns.iter().map(|c| c.to_string()).collect())?;
        for row in rows {
            if t.row(row)? == Flow::Stop {
                break;
            }
        }
        t.finish()?;
        Ok(out)
    }

    fn people() -> Vec<Row> {
        vec![
            vec![json!("ann"), json!("30"), json!("x")],
            vec![json!("bob"), json!("41"), json!("y")],
            vec![json!("cy"), json!("30"), json!("")],
        ]
    }

    #[test]
    fn filter_select_rename_and_limit() {
        let spec = TransformSpec {
            select: Some(vec!["age".into(), "name".into()]),
            rename: vec![("name".into(), "who".into())],
            filter: vec![("age".into(), json!(30))],
            limit: Some(5),
        };
        let out = run(spec, &["name", "age", "tag"], people()).unwrap();
        assert_eq!(out.columns.unwrap(), vec!["age", "who"]);
        assert_eq!(
            out.rows,
            vec![
                vec![json!("30"), json!("ann")],
                vec![json!("30"), json!("cy")]
            ]
        );
    }

    #[test]
    fn a_null_filter_matches_an_empty_csv_field() {
        let spec = TransformSpec {
            filter: vec![("tag".into(), json!(null))],
            ..TransformSpec::default()
        };
        let out = run(spec, &["name", "age", "tag"], people()).unwrap();
        assert_eq!(out.rows, vec![vec![json!("cy"), json!("30"), json!("")]]);
    }

    #[test]
    fn limit_stops_the_source() {
        let spec = TransformSpec {
            limit: Some(1),
            ..TransformSpec::default()
        };
        let out = run(spec, &["name", "age", "tag"], people()).unwrap();
        assert_eq!(out.rows.len(), 1);
        let spec = TransformSpec {
            limit: Some(0),
            ..TransformSpec::default()
        };
        let out = run(spec, &["name", "age", "tag"], people()).unwrap();
        assert!(out.rows.is_empty());
        assert_eq!(out.columns.unwrap().len(), 3);
    }

    #[test]
    fn renames_apply_at_once_so_a_swap_works() {
        let spec = TransformSpec {
            rename: vec![("name".into(), "age".into()), ("age".into(), "name".into())],
            ..TransformSpec::default()
        };
        let out = run(spec, &["name", "age", "tag"], vec![]).unwrap();
        assert_eq!(out.columns.unwrap(), vec!["age", "name", "tag"]);
    }

    #[test]
    fn unknown_fields_name_the_option() {
        let select = TransformSpec {
            select: Some(vec!["name".into(), "nope".into()]),
            ..TransformSpec::default()
        };
        let err = run(select, &["name", "age"], vec![])
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "options.select[1]: no field \"nope\" in the source; it has \"name\", \"age\""
        );
        let rename = TransformSpec {
            select: Some(vec!["name".into()]),
            rename: vec![("age".into(), "x".into())],
            ..TransformSpec::default()
        };
        let err = run(rename, &["name", "age"], vec![])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("options.rename.age: no field \"age\" among the fields kept"),
            "{err}"
        );
        let clash = TransformSpec {
            rename: vec![("name".into(), "age".into())],
            ..TransformSpec::default()
        };
        let err = run(clash, &["name", "age"], vec![])
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            err,
            "options.rename: the output would have two columns named \"age\""
        );
        let filter = TransformSpec {
            filter: vec![("zzz".into(), json!(1))],
            ..TransformSpec::default()
        };
        assert!(run(filter, &["name"], vec![]).is_err());
    }
}
