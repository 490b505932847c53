//! The `aggregate` step: group rows by some fields and compute count, sum,
//! avg, min and max per group, streaming over the input.
//!
//! Memory is proportional to the number of *groups*, not of rows: each
//! group keeps its key values and one small accumulator per metric (min and
//! max keep one value). An aggregate over a billion rows in twelve groups
//! holds twelve groups. Groups come out in the order they were first seen.
//! Groups are bounded twice: by count (`DATA_MAX_GROUPS`, the limit an
//! operator tunes) and by the bytes their keys and kept values take
//! ([`MAX_GROUP_BYTES`]), since a few thousand groups keyed by long text
//! would pass any count a person would pick. Either ends the job with an
//! error naming the row, before the daemon's memory is at risk.
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
use super::quota::value_bytes;
use super::rows::{Flow, Num, Row, RowSink, as_number, compare, is_missing};
use super::transform::position;

/// The most memory the groups of one aggregate may take, roughly counted:
/// keys twice (as values and as the index's text) and min/max values.
pub const MAX_GROUP_BYTES: u64 = 256 << 20;

/// What one group costs besides its key: the entry, the index slot and
/// the accumulators, roughly.
const GROUP_OVERHEAD: u64 = 96;

pub struct Aggregate<'a> {
    spec: &'a AggregateSpec,
    inner: &'a mut dyn RowSink,
    max_groups: usize,
    max_bytes: u64,
    /// Bytes the groups hold, as counted against `max_bytes`.
    held: u64,
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
    /// An aggregate holding at most `max_groups` groups.
    pub fn new(
        spec: &'a AggregateSpec,
        inner: &'a mut dyn RowSink,
        max_groups: usize,
    ) -> Aggregate<'a> {
        Aggregate {
            spec,
            inner,
            max_groups,
            max_bytes: MAX_GROUP_BYTES,
            held: 0,
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

    /// Counts `bytes` more held, refusing to pass [`MAX_GROUP_BYTES`].
    fn hold(&mut self, bytes: u64) -> Result<(), DataError> {
        self.held += bytes;
        if self.held <= self.max_bytes {
            return Ok(());
        }
        Err(DataError::TooLarge {
            location: format!("source: row {}", self.rows),
            reason: format!(
                "the groups of this aggregate take more than {} MiB of memory; \
                 group by fewer or shorter fields",
                self.max_bytes >> 20
            ),
        })
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
                if self.groups.len() >= self.max_groups {
                    return Err(DataError::TooLarge {
                        location: format!("source: row {}", self.rows),
                        reason: format!(
                            "options.group_by makes more than {} groups (DATA_MAX_GROUPS); \
                             group by fewer fields, or raise DATA_MAX_GROUPS",
                            self.max_groups
                        ),
                    });
                }
                self.hold(2 * self.key.len() as u64 + GROUP_OVERHEAD)?;
                let key = self.group_at.iter().map(|&at| row[at].clone()).collect();
                let group = self.new_group(key);
                self.groups.push(group);
                self.index.insert(self.key.clone(), self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let (mut kept, mut freed) = (0u64, 0u64);
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
                        freed += best.as_ref().map_or(0, value_bytes);
                        kept += value_bytes(value);
                        *best = Some(value.clone());
                    }
                }
                Acc::Max(best) => {
                    if best.as_ref().is_none_or(|b| compare(value, b).is_gt()) {
                        freed += best.as_ref().map_or(0, value_bytes);
                        kept += value_bytes(value);
                        *best = Some(value.clone());
                    }
                }
            }
        }
        self.held = self.held.saturating_sub(freed);
        self.hold(kept)?;
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
        let mut a = Aggregate::new(&spec, &mut out, 1000);
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

    fn distinct(n: usize, width: usize) -> Vec<Row> {
        (0..n)
            .map(|i| vec![json!(format!("{i:0width$}")), json!(1)])
            .collect()
    }

    fn run_capped(max_groups: usize, max_bytes: u64, rows: Vec<Row>) -> Result<Collect, DataError> {
        let spec = AggregateSpec {
            group_by: vec!["shop".to_string()],
            metrics: vec![metric(MetricOp::Max, Some("shop"), "top")],
        };
        let mut out = Collect::default();
        let mut a = Aggregate::new(&spec, &mut out, max_groups);
        a.max_bytes = max_bytes;
        a.begin(vec!["shop".into(), "amount".into()])?;
        for row in rows {
            a.row(row)?;
        }
        a.finish()?;
        Ok(out)
    }

    #[test]
    fn groups_past_the_cap_are_refused_naming_the_row() {
        let out = run_capped(100, MAX_GROUP_BYTES, distinct(100, 3)).unwrap();
        assert_eq!(out.rows.len(), 100);
        let err = run_capped(100, MAX_GROUP_BYTES, distinct(101, 3))
            .err()
            .unwrap();
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            "source: row 101: options.group_by makes more than 100 groups (DATA_MAX_GROUPS); \
             group by fewer fields, or raise DATA_MAX_GROUPS"
        );
        // Repeats of known groups cost nothing.
        let mut rows = distinct(100, 3);
        rows.extend(distinct(100, 3));
        assert_eq!(
            run_capped(100, MAX_GROUP_BYTES, rows).unwrap().rows.len(),
            100
        );
    }

    #[test]
    fn groups_past_the_memory_cap_are_refused() {
        // 50 groups of 10 kB keys: well under any count, over 1 MiB.
        let err = run_capped(1000, 1 << 20, distinct(50, 10_000))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("the groups of this aggregate take more than 1 MiB of memory"),
            "{err}"
        );
        // A max replaced row after row holds one value, not all of them.
        let rows: Vec<Row> = (0..10_000)
            .map(|i| vec![json!("g"), json!(format!("{i:0200}"))])
            .collect();
        let spec = AggregateSpec {
            group_by: vec!["shop".to_string()],
            metrics: vec![metric(MetricOp::Max, Some("amount"), "top")],
        };
        let mut out = Collect::default();
        let mut a = Aggregate::new(&spec, &mut out, 10);
        a.max_bytes = 1 << 20;
        a.begin(vec!["shop".into(), "amount".into()]).unwrap();
        for row in rows {
            a.row(row).unwrap();
        }
        a.finish().unwrap();
        assert_eq!(out.rows.len(), 1);
    }
}
