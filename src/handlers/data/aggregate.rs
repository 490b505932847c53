//! The `aggregate` step: group rows by some fields and compute count, sum,
//! avg, min and max per group, streaming over the input.
//!
//! Memory is proportional to the number of *groups*, not of rows: each
//! group keeps its key values and one small accumulator per metric (min and
//! max keep one value). An aggregate over a billion rows in twelve groups
//! holds twelve groups. Groups come out in the order they were first seen.
//!
//! Design choice: the same in-memory aggregation runs for a table source as
//! for a file, instead of handing tables to SQL's GROUP BY, so a metric
//! means the same thing whatever the source: numeric strings (all of CSV)
//! count as numbers, an empty string counts as null, and a value that is
//! not a number stops a sum or an average with an error instead of being
//! read as 0, as SQLite would.

use std::collections::HashMap;

use serde_json::{Number, Value};

use super::error::DataError;
use super::payload::{AggregateSpec, MetricOp};
use super::rows::{Flow, Num, Row, RowSink, as_number, compare, is_missing};
use super::transform::position;

pub struct Aggregate<'a> {
    spec: &'a AggregateSpec,
    inner: &'a mut dyn RowSink,
    group_at: Vec<usize>,
    /// Each metric's input column, `None` for a `count` of rows.
    metric_at: Vec<Option<usize>>,
    /// A group's key, as the JSON text of its values, to its place in `groups`.
    index: HashMap<Vec<u8>, usize>,
    groups: Vec<Group>,
    key: Vec<u8>,
    rows: u64,
}

struct Group {
    key: Vec<Value>,
    accumulators: Vec<Acc>,
}

enum Acc {
    Count(u64),
    Sum(Option<Num>),
    Avg { total: f64, n: u64 },
    Min(Option<Value>),
    Max(Option<Value>),
}

impl Acc {
    fn new(op: MetricOp) -> Acc {
        match op {
            MetricOp::Count => Acc::Count(0),
            MetricOp::Sum => Acc::Sum(None),
            MetricOp::Avg => Acc::Avg { total: 0.0, n: 0 },
            MetricOp::Min => Acc::Min(None),
            MetricOp::Max => Acc::Max(None),
        }
    }

    fn result(&self) -> Value {
        match self {
            Acc::Count(n) => Value::from(*n),
            Acc::Sum(None) => Value::Null,
            Acc::Sum(Some(Num::Int(i))) => Value::from(*i),
            Acc::Sum(Some(Num::Float(f))) => float(*f),
            Acc::Avg { n: 0, .. } => Value::Null,
            Acc::Avg { total, n } => float(total / *n as f64),
            Acc::Min(v) | Acc::Max(v) => v.clone().unwrap_or(Value::Null),
        }
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

impl<'a> Aggregate<'a> {
    pub fn new(spec: &'a AggregateSpec, inner: &'a mut dyn RowSink) -> Aggregate<'a> {
        Aggregate {
            spec,
            inner,
            group_at: Vec::new(),
            metric_at: Vec::new(),
            index: HashMap::new(),
            groups: Vec::new(),
            key: Vec::new(),
            rows: 0,
        }
    }

    fn new_group(&self, key: Vec<Value>) -> Group {
        Group {
            key,
            accumulators: self.spec.metrics.iter().map(|m| Acc::new(m.op)).collect(),
        }
    }
}

impl RowSink for Aggregate<'_> {
    fn begin(&mut self, columns: Vec<String>) -> Result<(), DataError> {
        let spec = self.spec;
        self.group_at = spec
            .group_by
            .iter()
            .enumerate()
            .map(|(i, name)| position(&columns, name, || format!("options.group_by[{i}]")))
            .collect::<Result<_, _>>()?;
        self.metric_at = spec
            .metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.field
                    .as_ref()
                    .map(|name| position(&columns, name, || format!("options.metrics[{i}].field")))
                    .transpose()
            })
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<Flow, DataError> {
        self.rows += 1;
        self.key.clear();
        for &at in &self.group_at {
            // JSON text escapes control characters, so a NUL separator
            // cannot occur inside a value: distinct keys stay distinct.
            serde_json::to_writer(&mut self.key, &row[at])
                .map_err(|e| DataError::bad_input("source", e.to_string()))?;
            self.key.push(0);
        }
        let g = match self.index.get(self.key.as_slice()) {
            Some(&g) => g,
            None => {
                let key = self.group_at.iter().map(|&at| row[at].clone()).collect();
                let group = self.new_group(key);
                self.groups.push(group);
                self.index.insert(self.key.clone(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[g];
        for (m, (acc, at)) in group
            .accumulators
            .iter_mut()
            .zip(&self.metric_at)
            .enumerate()
        {
            let Some(at) = *at else {
                if let Acc::Count(n) = acc {
                    *n += 1;
                }
                continue;
            };
            let value = &row[at];
            if is_missing(value) {
                continue;
            }
            let number = || {
                as_number(value).ok_or_else(|| {
                    DataError::bad_input(
                        format!("source: row {}", self.rows),
                        format!(
                            "options.metrics[{m}] needs numbers, but field {:?} holds {}",
                            self.spec.metrics[m].field.as_deref().unwrap_or_default(),
                            short(value)
                        ),
                    )
                })
            };
            match acc {
                Acc::Count(n) => *n += 1,
                Acc::Sum(total) => {
                    *total = Some(match (*total, number()?) {
                        (None, x) => x,
                        (Some(Num::Int(a)), Num::Int(b)) => match a.checked_add(b) {
                            Some(sum) => Num::Int(sum),
                            // Past i64, keep going in floating point, as SQLite's total() does.
                            None => Num::Float(a as f64 + b as f64),
                        },
                        (Some(a), b) => Num::Float(a.as_f64() + b.as_f64()),
                    });
                }
                Acc::Avg { total, n } => {
                    *total += number()?.as_f64();
                    *n += 1;
                }
                Acc::Min(best) => {
                    if best.as_ref().is_none_or(|b| compare(value, b).is_lt()) {
                        *best = Some(value.clone());
                    }
                }
                Acc::Max(best) => {
                    if best.as_ref().is_none_or(|b| compare(value, b).is_gt()) {
                        *best = Some(value.clone());
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn finish(&mut self) -> Result<(), DataError> {
        let spec = self.spec;
        let columns = spec
            .group_by
            .iter()
            .cloned()
            .chain(spec.metrics.iter().map(|m| m.name.clone()))
            .collect();
        self.inner.begin(columns)?;
        // Without group_by there is always one result row, as in SQL:
        // count 0 and null for the rest over an empty input.
        if self.groups.is_empty() && spec.group_by.is_empty() {
            let group = self.new_group(Vec::new());
            self.groups.push(group);
        }
        for group in std::mem::take(&mut self.groups) {
            let mut row = group.key;
            row.extend(group.accumulators.iter().map(Acc::result));
            if self.inner.row(row)? == Flow::Stop {
                break;
            }
        }
        self.index.clear();
        self.inner.finish()
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::data::payload::Metric;
    use crate::handlers::data::rows::Collect;
    use serde_json::json;

    fn metric(op: MetricOp, field: Option<&str>, name: &str) -> Metric {
        Metric {
            op,
            field: field.map(str::to_string),
            name: name.to_string(),
        }
    }

    fn all_metrics() -> Vec<Metric> {
        vec![
            metric(MetricOp::Count, None, "rows"),
            metric(MetricOp::Count, Some("amount"), "amounts"),
            metric(MetricOp::Sum, Some("amount"), "sum"),
            metric(MetricOp::Avg, Some("amount"), "avg"),
            metric(MetricOp::Min, Some("amount"), "min"),
            metric(MetricOp::Max, Some("amount"), "max"),
        ]
    }

    fn run(group_by: &[&str], metrics: Vec<Metric>, rows: Vec<Row>) -> Result<Collect, DataError> {
        let spec = AggregateSpec {
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            metrics,
        };
        let mut out = Collect::default();
        let mut a = Aggregate::new(&spec, &mut out);
        a.begin(vec!["shop".into(), "amount".into()])?;
        for row in rows {
            a.row(row)?;
        }
        a.finish()?;
        Ok(out)
    }

    fn sales() -> Vec<Row> {
        vec![
            vec![json!("north"), json!("10")],
            vec![json!("south"), json!(2.5)],
            vec![json!("north"), json!("")],
            vec![json!("north"), json!(5)],
            vec![json!("south"), json!(null)],
        ]
    }

    #[test]
    fn every_op_with_group_by() {
        let out = run(&["shop"], all_metrics(), sales()).unwrap();
        assert_eq!(
            out.columns.unwrap(),
            vec!["shop", "rows", "amounts", "sum", "avg", "min", "max"]
        );
        assert_eq!(
            out.rows,
            vec![
                vec![
                    json!("north"),
                    json!(3),
                    json!(2),
                    json!(15),
                    json!(7.5),
                    json!(5),
                    json!("10")
                ],
                vec![
                    json!("south"),
                    json!(2),
                    json!(1),
                    json!(2.5),
                    json!(2.5),
                    json!(2.5),
                    json!(2.5)
                ],
            ]
        );
    }

    #[test]
    fn every_op_without_group_by() {
        let out = run(&[], all_metrics(), sales()).unwrap();
        assert_eq!(
            out.columns.unwrap(),
            vec!["rows", "amounts", "sum", "avg", "min", "max"]
        );
        assert_eq!(
            out.rows,
            vec![vec![
                json!(5),
                json!(3),
                json!(17.5),
                json!(17.5 / 3.0),
                json!(2.5),
                json!("10")
            ]]
        );
    }

    #[test]
    fn an_empty_input_gives_one_row_without_groups_and_none_with() {
        let out = run(&[], all_metrics(), vec![]).unwrap();
        assert_eq!(
            out.rows,
            vec![vec![
                json!(0),
                json!(0),
                json!(null),
                json!(null),
                json!(null),
                json!(null)
            ]]
        );
        let out = run(&["shop"], all_metrics(), vec![]).unwrap();
        assert!(out.rows.is_empty());
        assert_eq!(out.columns.unwrap().len(), 7);
    }

    #[test]
    fn a_sum_past_i64_goes_on_in_floating_point() {
        let rows = vec![
            vec![json!("a"), json!(i64::MAX)],
            vec![json!("a"), json!(1)],
        ];
        let out = run(&[], vec![metric(MetricOp::Sum, Some("amount"), "s")], rows).unwrap();
        assert_eq!(out.rows[0][0], json!(i64::MAX as f64 + 1.0));
    }

    #[test]
    fn a_non_number_stops_a_sum_but_not_a_max() {
        let rows = vec![vec![json!("a"), json!("ten")]];
        let err = run(
            &[],
            vec![metric(MetricOp::Sum, Some("amount"), "s")],
            rows.clone(),
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "source: row 1: options.metrics[0] needs numbers, but field \"amount\" holds \"ten\""
        );
        let out = run(&[], vec![metric(MetricOp::Max, Some("amount"), "m")], rows).unwrap();
        assert_eq!(out.rows[0][0], json!("ten"));
    }

    #[test]
    fn groups_of_different_types_stay_apart() {
        let rows = vec![
            vec![json!("1"), json!(1)],
            vec![json!(1), json!(1)],
            vec![json!(null), json!(1)],
            vec![json!("1"), json!(1)],
        ];
        let out = run(&["shop"], vec![metric(MetricOp::Count, None, "n")], rows).unwrap();
        assert_eq!(
            out.rows,
            vec![
                vec![json!("1"), json!(2)],
                vec![json!(1), json!(1)],
                vec![json!(null), json!(1)]
            ]
        );
    }

    #[test]
    fn an_unknown_field_names_the_option() {
        let err = run(
            &["region"],
            vec![metric(MetricOp::Count, None, "n")],
            vec![],
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .starts_with("options.group_by[0]: no field \"region\""),
            "{err}"
        );
        let err = run(&[], vec![metric(MetricOp::Sum, Some("price"), "n")], vec![])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("options.metrics[0].field: no field \"price\""),
            "{err}"
        );
    }
}
