//! A `data_processing` job's `data`, parsed into a typed [`Request`] and
//! checked field by field.
//!
//! Design choice: parsing is written out by hand rather than derived with
//! serde, because every error must name its exact path below `data`
//! (`options.metrics[1].field: required for op sum`) and say what was
//! expected and what was given; the same function serves `validate` at
//! enqueue time and the run, so the two can never disagree.

use serde_json::{Map, Value};

use super::endpoint::Endpoint;
use super::error::DataError;
use crate::store::data::WriteMode;

/// The four operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Export,
    Import,
    Transform,
    Aggregate,
}

impl Operation {
    pub const NAMES: &'static str = "export, import, transform, aggregate";

    pub fn name(self) -> &'static str {
        match self {
            Operation::Export => "export",
            Operation::Import => "import",
            Operation::Transform => "transform",
            Operation::Aggregate => "aggregate",
        }
    }

    /// The option keys the operation accepts.
    fn options(self) -> &'static [&'static str] {
        match self {
            Operation::Export => &[FORMULA_ESCAPE],
            Operation::Import => &["mode"],
            Operation::Transform => &[
                "select",
                "rename",
                "filter",
                "limit",
                "mode",
                FORMULA_ESCAPE,
            ],
            Operation::Aggregate => &["group_by", "metrics", "mode", FORMULA_ESCAPE],
        }
    }
}

/// The option that turns off the escaping of formula-like CSV cells.
const FORMULA_ESCAPE: &str = "csv_formula_escape";

/// A parsed and checked job.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub operation: Operation,
    pub source: Endpoint,
    pub target: Endpoint,
    /// How a table target is written; append unless `options.mode` says.
    pub mode: WriteMode,
    /// Whether a CSV target's formula-like cells get a leading `'`; true
    /// unless `options.csv_formula_escape` is false.
    pub csv_formula_escape: bool,
    pub step: Step,
}

/// What happens to rows between source and target.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Export and import: rows pass unchanged.
    Copy,
    Transform(TransformSpec),
    Aggregate(AggregateSpec),
}

/// `transform`'s options. Applied in this order: filter, limit, select,
/// rename; so filter and select name the source's fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransformSpec {
    pub select: Option<Vec<String>>,
    /// Old name to new name, in the order given.
    pub rename: Vec<(String, String)>,
    /// Field and the value it must equal; all must hold.
    pub filter: Vec<(String, Value)>,
    pub limit: Option<u64>,
}

/// `aggregate`'s options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateSpec {
    pub group_by: Vec<String>,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub op: MetricOp,
    /// Required except for `count`, which then counts rows.
    pub field: Option<String>,
    /// The output column: `as`, else `count` or `OP_FIELD`.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricOp {
    Count,
    Sum,
    Avg,
    Min,
    Max,
}

impl MetricOp {
    const NAMES: &'static str = "count, sum, avg, min, max";

    fn parse(name: &str) -> Option<MetricOp> {
        Some(match name {
            "count" => MetricOp::Count,
            "sum" => MetricOp::Sum,
            "avg" => MetricOp::Avg,
            "min" => MetricOp::Min,
            "max" => MetricOp::Max,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            MetricOp::Count => "count",
            MetricOp::Sum => "sum",
            MetricOp::Avg => "avg",
            MetricOp::Min => "min",
            MetricOp::Max => "max",
        }
    }
}

const TOP_LEVEL: &[&str] = &["operation", "source", "target", "options"];

/// Parses and checks `data`.
pub fn parse(data: &Value) -> Result<Request, DataError> {
    let Some(data) = data.as_object() else {
        return Err(DataError::invalid(
            "data",
            format!("expected an object, got {}", shown(data)),
        ));
    };
    let operation = match data.get("operation") {
        None => return Err(DataError::invalid("operation", "required")),
        Some(Value::String(s)) => match s.as_str() {
            "export" => Operation::Export,
            "import" => Operation::Import,
            "transform" => Operation::Transform,
            "aggregate" => Operation::Aggregate,
            _ => {
                return Err(expected_one_of(
                    "operation",
                    Operation::NAMES,
                    &data["operation"],
                ));
            }
        },
        Some(other) => return Err(expected_one_of("operation", Operation::NAMES, other)),
    };
    let source = endpoint(data, "source")?;
    let target = endpoint(data, "target")?;
    if let Some(key) = data.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(DataError::invalid(
            key.as_str(),
            format!("unknown field; expected one of {}", TOP_LEVEL.join(", ")),
        ));
    }
    check_directions(operation, &source, &target)?;

    let empty = Map::new();
    let options = match data.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(DataError::invalid(
                "options",
                format!("expected an object, got {}", shown(other)),
            ));
        }
    };
    let allowed = operation.options();
    if let Some(key) = options.keys().find(|k| !allowed.contains(&k.as_str())) {
        let expected = if allowed.is_empty() {
            "it takes no options".to_string()
        } else {
            format!("expected one of {}", allowed.join(", "))
        };
        return Err(DataError::invalid(
            format!("options.{key}"),
            format!("unknown option for {}; {expected}", operation.name()),
        ));
    }

    let mode = match options.get("mode") {
        None => WriteMode::Append,
        Some(_) if !target.is_table() => {
            return Err(DataError::invalid(
                "options.mode",
                "only applies when the target is a table (a file is always written whole)",
            ));
        }
        Some(Value::String(s)) if s == "append" => WriteMode::Append,
        Some(Value::String(s)) if s == "replace" => WriteMode::Replace,
        Some(other) => return Err(expected_one_of("options.mode", "append, replace", other)),
    };

    let csv_formula_escape = match options.get(FORMULA_ESCAPE) {
        None => true,
        Some(_) if !target.is_csv_file() => {
            return Err(DataError::invalid(
                format!("options.{FORMULA_ESCAPE}"),
                "only applies when the target is a CSV file (file:PATH.csv)",
            ));
        }
        Some(Value::Bool(escape)) => *escape,
        Some(other) => {
            return Err(DataError::invalid(
                format!("options.{FORMULA_ESCAPE}"),
                format!("expected true or false, got {}", shown(other)),
            ));
        }
    };

    let step = match operation {
        Operation::Export | Operation::Import => Step::Copy,
        Operation::Transform => Step::Transform(transform(options)?),
        Operation::Aggregate => Step::Aggregate(aggregate(options)?),
    };
    Ok(Request {
        operation,
        source,
        target,
        mode,
        csv_formula_escape,
        step,
    })
}

fn endpoint(data: &Map<String, Value>, field: &'static str) -> Result<Endpoint, DataError> {
    match data.get(field) {
        None => Err(DataError::invalid(field, "required")),
        Some(Value::String(s)) => {
            Endpoint::parse(s).map_err(|reason| DataError::invalid(field, reason))
        }
        Some(other) => Err(DataError::invalid(
            field,
            format!(
                "expected a string such as table:NAME, file:PATH.csv or pocketbase:COLLECTION, got {}",
                shown(other)
            ),
        )),
    }
}

/// Export reads a table (or a PocketBase collection) into a file, import a
/// file into a table; a PocketBase collection is only ever read; and a
/// table cannot be both source and target, since it would be read while it
/// is replaced or appended to.
fn check_directions(
    operation: Operation,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<(), DataError> {
    if target.is_pocketbase() {
        return Err(DataError::invalid(
            "target",
            "a PocketBase collection is read, never written; write to table:NAME or file:PATH",
        ));
    }
    match operation {
        Operation::Export if !source.is_table() && !source.is_pocketbase() => {
            return Err(DataError::invalid(
                "source",
                "export reads a table (table:NAME) or a PocketBase collection (pocketbase:NAME); to copy a file, use transform",
            ));
        }
        Operation::Export if target.is_table() => {
            return Err(DataError::invalid(
                "target",
                "export writes a file (file:PATH); to copy a table, use transform",
            ));
        }
        Operation::Import if !matches!(source, Endpoint::File(_)) => {
            return Err(DataError::invalid(
                "source",
                "import reads a file (file:PATH)",
            ));
        }
        Operation::Import if !target.is_table() => {
            return Err(DataError::invalid(
                "target",
                "import writes a table (table:NAME)",
            ));
        }
        _ => {}
    }
    if let (Endpoint::Table(s), Endpoint::Table(t)) = (source, target)
        && s.same_table(t)
    {
        return Err(DataError::invalid("target", "must not be the source table"));
    }
    Ok(())
}

fn transform(options: &Map<String, Value>) -> Result<TransformSpec, DataError> {
    let select = match options.get("select") {
        None => None,
        Some(value) => {
            let fields = field_list("options.select", value)?;
            if fields.is_empty() {
                return Err(DataError::invalid(
                    "options.select",
                    "must name at least one field",
                ));
            }
            Some(fields)
        }
    };
    let mut rename = Vec::new();
    if let Some(value) = options.get("rename") {
        let map = object("options.rename", value)?;
        for (old, new) in map {
            let field = format!("options.rename.{old}");
            let new = non_empty_string(&field, new)?;
            if rename.iter().any(|(_, n)| n == &new) {
                return Err(DataError::invalid(
                    field,
                    format!("{new:?} is already the new name of another field"),
                ));
            }
            rename.push((old.clone(), new));
        }
    }
    let mut filter = Vec::new();
    if let Some(value) = options.get("filter") {
        for (name, wanted) in object("options.filter", value)? {
            if wanted.is_object() || wanted.is_array() {
                return Err(DataError::invalid(
                    format!("options.filter.{name}"),
                    format!(
                        "expected a string, number, boolean or null, got {}",
                        shown(wanted)
                    ),
                ));
            }
            filter.push((name.clone(), wanted.clone()));
        }
    }
    let limit = match options.get("limit") {
        None => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            DataError::invalid(
                "options.limit",
                format!("expected a whole number, 0 or more, got {}", shown(value)),
            )
        })?),
    };
    Ok(TransformSpec {
        select,
        rename,
        filter,
        limit,
    })
}

fn aggregate(options: &Map<String, Value>) -> Result<AggregateSpec, DataError> {
    let group_by = match options.get("group_by") {
        None => Vec::new(),
        Some(value) => field_list("options.group_by", value)?,
    };
    let Some(value) = options.get("metrics") else {
        return Err(DataError::invalid(
            "options.metrics",
            "required: a list such as [{\"op\": \"count\"}, {\"op\": \"sum\", \"field\": \"amount\"}]",
        ));
    };
    let Value::Array(items) = value else {
        return Err(DataError::invalid(
            "options.metrics",
            format!("expected a list, got {}", shown(value)),
        ));
    };
    if items.is_empty() {
        return Err(DataError::invalid(
            "options.metrics",
            "must hold at least one metric",
        ));
    }
    let mut metrics: Vec<Metric> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("options.metrics[{i}]");
        let metric = metric(&at, item)?;
        if group_by.contains(&metric.name) || metrics.iter().any(|m| m.name == metric.name) {
            return Err(DataError::invalid(
                format!("{at}.as"),
                format!(
                    "the output column {:?} is already taken; give this metric its own \"as\"",
                    metric.name
                ),
            ));
        }
        metrics.push(metric);
    }
    Ok(AggregateSpec { group_by, metrics })
}

fn metric(at: &str, item: &Value) -> Result<Metric, DataError> {
    let map = object(at, item)?;
    if let Some(key) = map
        .keys()
        .find(|k| !["op", "field", "as"].contains(&k.as_str()))
    {
        return Err(DataError::invalid(
            format!("{at}.{key}"),
            "unknown key; expected one of op, field, as",
        ));
    }
    let op_field = format!("{at}.op");
    let op = match map.get("op") {
        None => {
            return Err(DataError::invalid(
                op_field,
                format!("required: one of {}", MetricOp::NAMES),
            ));
        }
        Some(value) => value
            .as_str()
            .and_then(MetricOp::parse)
            .ok_or_else(|| expected_one_of(&op_field, MetricOp::NAMES, value))?,
    };
    let field = match map.get("field") {
        None if op == MetricOp::Count => None,
        None => {
            return Err(DataError::invalid(
                format!("{at}.field"),
                format!("required for op {}", op.name()),
            ));
        }
        Some(value) => Some(non_empty_string(&format!("{at}.field"), value)?),
    };
    let name = match map.get("as") {
        Some(value) => non_empty_string(&format!("{at}.as"), value)?,
        None => match &field {
            None => "count".to_string(),
            Some(field) => format!("{}_{field}", op.name()),
        },
    };
    Ok(Metric { op, field, name })
}

/// A list of distinct, non-empty field names.
fn field_list(at: &str, value: &Value) -> Result<Vec<String>, DataError> {
    let Value::Array(items) = value else {
        return Err(DataError::invalid(
            at,
            format!("expected a list of field names, got {}", shown(value)),
        ));
    };
    let mut fields: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("{at}[{i}]");
        let name = non_empty_string(&field, item)?;
        if fields.contains(&name) {
            return Err(DataError::invalid(
                field,
                format!("{name:?} is listed twice"),
            ));
        }
        fields.push(name);
    }
    Ok(fields)
}

fn object<'v>(at: &str, value: &'v Value) -> Result<&'v Map<String, Value>, DataError> {
    value
        .as_object()
        .ok_or_else(|| DataError::invalid(at, format!("expected an object, got {}", shown(value))))
}

fn non_empty_string(at: &str, value: &Value) -> Result<String, DataError> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(DataError::invalid(
            at,
            format!("expected a non-empty string, got {}", shown(value)),
        )),
    }
}

fn expected_one_of(at: &str, names: &str, got: &Value) -> DataError {
    DataError::invalid(at, format!("expected one of {names}, got {}", shown(got)))
}

/// A value as JSON, cut short: enough to recognise, never a whole payload.
fn shown(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    if text.len() <= MAX {
        return text;
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(data: Value) -> String {
        parse(&data).unwrap_err().to_string()
    }

    #[test]
    fn a_full_transform_parses() {
        let req = parse(&json!({
            "operation": "transform",
            "source": "file:in/a.csv",
            "target": "table:out",
            "options": {
                "select": ["a", "b"],
                "rename": {"a": "x"},
                "filter": {"b": 3, "c": null},
                "limit": 10,
                "mode": "replace"
            }
        }))
        .unwrap();
        assert_eq!(req.operation, Operation::Transform);
        assert_eq!(req.mode, WriteMode::Replace);
        assert_eq!(
            req.step,
            Step::Transform(TransformSpec {
                select: Some(vec!["a".into(), "b".into()]),
                rename: vec![("a".into(), "x".into())],
                filter: vec![("b".into(), json!(3)), ("c".into(), json!(null))],
                limit: Some(10),
            })
        );
    }

    #[test]
    fn metric_names_default_from_op_and_field() {
        let req = parse(&json!({
            "operation": "aggregate", "source": "table:t", "target": "file:o.json",
            "options": {"group_by": ["g"], "metrics": [
                {"op": "count"}, {"op": "sum", "field": "v"}, {"op": "max", "field": "v", "as": "top"}
            ]}
        }))
        .unwrap();
        let Step::Aggregate(spec) = req.step else {
            panic!()
        };
        let names: Vec<&str> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["count", "sum_v", "top"]);
    }

    #[test]
    fn errors_name_the_path_below_data() {
        let base = json!({"operation": "export", "source": "table:t", "target": "file:o.csv"});
        let with = |key: &str, value: Value| {
            let mut data = base.clone();
            data[key] = value;
            err(data)
        };
        assert_eq!(
            with("operation", json!("copy")),
            "operation: expected one of export, import, transform, aggregate, got \"copy\""
        );
        assert_eq!(
            with("target", json!("file:/etc/x.csv")),
            "target: absolute paths are not allowed; give a path relative to DATA_DIR"
        );
        assert_eq!(
            with("target", json!("file:../x.csv")),
            "target: `..` is not allowed in a path"
        );
        assert!(
            with("source", json!("table:no-dash"))
                .starts_with("source: table name \"no-dash\" is not a plain identifier")
        );
        assert!(with("target", json!("file:x.xlsx")).starts_with("target: unknown format"));
        assert_eq!(
            with("colour", json!(1)),
            "colour: unknown field; expected one of operation, source, target, options"
        );
        assert_eq!(
            with("options", json!({"limit": 1})),
            "options.limit: unknown option for export; expected one of csv_formula_escape"
        );
        assert_eq!(err(json!({"source": "table:t"})), "operation: required");
        assert_eq!(err(json!("x")), "data: expected an object, got \"x\"");
    }

    #[test]
    fn directions_and_modes_are_checked() {
        assert_eq!(
            err(json!({"operation": "export", "source": "file:a.csv", "target": "file:b.csv"})),
            "source: export reads a table (table:NAME) or a PocketBase collection (pocketbase:NAME); to copy a file, use transform"
        );
        let users = json!({"operation": "export", "source": "pocketbase:users", "target": "file:exports/users.csv"});
        assert!(parse(&users).is_ok());
        assert_eq!(
            err(
                json!({"operation": "transform", "source": "table:t", "target": "pocketbase:users"})
            ),
            "target: a PocketBase collection is read, never written; write to table:NAME or file:PATH"
        );
        assert_eq!(
            err(json!({"operation": "import", "source": "pocketbase:users", "target": "table:t"})),
            "source: import reads a file (file:PATH)"
        );
        assert_eq!(
            err(json!({"operation": "import", "source": "file:a.csv", "target": "file:b.csv"})),
            "target: import writes a table (table:NAME)"
        );
        assert_eq!(
            err(
                json!({"operation": "import", "source": "file:a.csv", "target": "table:t", "options": {"mode": "upsert"}})
            ),
            "options.mode: expected one of append, replace, got \"upsert\""
        );
        assert!(err(json!({"operation": "transform", "source": "file:a.csv", "target": "file:b.csv", "options": {"mode": "replace"}}))
            .starts_with("options.mode: only applies when the target is a table"));
        assert_eq!(
            err(json!({"operation": "transform", "source": "table:T", "target": "table:t"})),
            "target: must not be the source table"
        );
    }

    #[test]
    fn csv_formula_escape_is_on_unless_turned_off_and_only_for_csv_targets() {
        let export = |target: &str, options: Value| {
            parse(
                &json!({"operation": "export", "source": "table:t", "target": target, "options": options}),
            )
        };
        assert!(export("file:o.csv", json!({})).unwrap().csv_formula_escape);
        assert!(
            !export("file:o.CSV", json!({"csv_formula_escape": false}))
                .unwrap()
                .csv_formula_escape
        );
        assert_eq!(
            export("file:o.csv", json!({"csv_formula_escape": "no"}))
                .unwrap_err()
                .to_string(),
            "options.csv_formula_escape: expected true or false, got \"no\""
        );
        assert_eq!(
            export("file:o.json", json!({"csv_formula_escape": false}))
                .unwrap_err()
                .to_string(),
            "options.csv_formula_escape: only applies when the target is a CSV file (file:PATH.csv)"
        );
        assert!(
            err(
                json!({"operation": "import", "source": "file:a.csv", "target": "table:t",
                           "options": {"csv_formula_escape": false}})
            )
            .starts_with("options.csv_formula_escape: unknown option for import")
        );
        let agg = parse(&json!({"operation": "aggregate", "source": "table:t", "target": "file:o.csv",
                                "options": {"metrics": [{"op": "count"}], "csv_formula_escape": false}}))
            .unwrap();
        assert!(!agg.csv_formula_escape);
    }

    #[test]
    fn transform_options_are_checked() {
        let t = |options: Value| {
            err(
                json!({"operation": "transform", "source": "table:a", "target": "file:b.csv", "options": options}),
            )
        };
        assert_eq!(
            t(json!({"select": ["a", "a"]})),
            "options.select[1]: \"a\" is listed twice"
        );
        assert_eq!(
            t(json!({"select": []})),
            "options.select: must name at least one field"
        );
        assert_eq!(
            t(json!({"select": "a"})),
            "options.select: expected a list of field names, got \"a\""
        );
        assert_eq!(
            t(json!({"rename": {"a": 1}})),
            "options.rename.a: expected a non-empty string, got 1"
        );
        assert!(
            t(json!({"rename": {"a": "x", "b": "x"}}))
                .starts_with("options.rename.b: \"x\" is already")
        );
        assert!(
            t(json!({"filter": {"a": [1]}}))
                .starts_with("options.filter.a: expected a string, number")
        );
        assert_eq!(
            t(json!({"limit": -1})),
            "options.limit: expected a whole number, 0 or more, got -1"
        );
        assert!(
            t(json!({"group_by": ["a"]}))
                .starts_with("options.group_by: unknown option for transform")
        );
    }

    #[test]
    fn aggregate_options_are_checked() {
        let a = |options: Value| {
            err(
                json!({"operation": "aggregate", "source": "table:a", "target": "file:b.csv", "options": options}),
            )
        };
        assert!(a(json!({})).starts_with("options.metrics: required"));
        assert_eq!(
            a(json!({"metrics": []})),
            "options.metrics: must hold at least one metric"
        );
        assert_eq!(
            a(json!({"metrics": [{"op": "count"}, {"op": "sum"}]})),
            "options.metrics[1].field: required for op sum"
        );
        assert_eq!(
            a(json!({"metrics": [{"op": "median", "field": "x"}]})),
            "options.metrics[0].op: expected one of count, sum, avg, min, max, got \"median\""
        );
        assert_eq!(
            a(json!({"metrics": [{"op": "count", "colour": 1}]})),
            "options.metrics[0].colour: unknown key; expected one of op, field, as"
        );
        assert!(
            a(json!({"group_by": ["count"], "metrics": [{"op": "count"}]}))
                .starts_with("options.metrics[0].as: the output column \"count\" is already taken")
        );
        assert!(a(json!({"metrics": [{"op": "sum", "field": "x"}, {"op": "max", "field": "y", "as": "sum_x"}]}))
            .starts_with("options.metrics[1].as"));
    }

    #[test]
    fn a_long_value_is_cut_short_in_messages() {
        let long = "é".repeat(100);
        let message = err(json!({"operation": long}));
        assert!(message.len() < 200, "{message}");
        assert!(message.ends_with('…'));
    }
}
