//! The `data_processing` handler end to end, through its public API, on
//! real files and a real data database in a temporary DATA_DIR.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use cronq::handlers::data::{DataProcessing, clear_exports};
use cronq::store::data as store;
use cronq::{Handler, JobContext, JobError};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn context(id: &str, data: Value) -> JobContext {
    JobContext {
        id: id.to_string(),
        name: "test".to_string(),
        job_type: "data_processing".to_string(),
        data,
        attempt: 1,
        max_attempts: 4,
        timeout: Duration::from_secs(30),
        cron_id: None,
        limits: Default::default(),
        shutdown: CancellationToken::new(),
        cancel: CancellationToken::new(),
        reporter: Default::default(),
        result: Default::default(),
    }
}

/// Checks the payload as an enqueue would, then runs it.
async fn run(dir: &Path, id: &str, data: Value) -> Result<(), JobError> {
    let handler = DataProcessing::new(dir);
    handler.validate(&data).map_err(JobError::Permanent)?;
    handler.run(context(id, data)).await
}

/// Runs without the enqueue-time check, as a row inserted by another
/// program would be.
async fn run_unchecked(dir: &Path, id: &str, data: Value) -> Result<(), JobError> {
    DataProcessing::new(dir).run(context(id, data)).await
}

fn op(operation: &str, source: &str, target: &str, options: Value) -> Value {
    json!({"operation": operation, "source": source, "target": target, "options": options})
}

/// A table's columns and rows, or `None` when it does not exist.
fn table(dir: &Path, name: &str) -> Option<(Vec<String>, Vec<Vec<Value>>)> {
    let conn = store::open(&dir.join("data.db")).unwrap();
    let mut cursor = store::select_all(&conn, name).unwrap()?;
    let columns = cursor.columns().to_vec();
    let mut rows = Vec::new();
    cursor
        .for_each(|row| {
            rows.push(row);
            true
        })
        .unwrap();
    Some((columns, rows))
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// No temporary file was left anywhere under `dir`.
fn assert_no_temp_files(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temporary file left: {name}");
        if entry.file_type().unwrap().is_dir() {
            assert_no_temp_files(&entry.path());
        }
    }
}

const PEOPLE_JSONL: &str = r#"{"id": 1, "name": "Ann", "score": 9.5, "active": true, "note": null, "tags": ["a", "b"]}
{"id": 2, "name": "Bob, Jr.", "score": 7, "active": false, "note": "said \"hi\"\nthen left", "tags": []}
{"id": 3, "name": "Çelik", "score": -1.25, "active": true, "note": "", "tags": {"k": 1}}
"#;

/// DATA_DIR with the `people` table imported from JSON lines.
async fn with_people() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "in/people.jsonl", PEOPLE_JSONL);
    run(
        dir.path(),
        "seed",
        op("import", "file:in/people.jsonl", "table:people", json!({})),
    )
    .await
    .unwrap();
    dir
}

#[tokio::test]
async fn import_jsonl_keeps_json_types_in_the_table() {
    let dir = with_people().await;
    let (columns, rows) = table(dir.path(), "people").unwrap();
    assert_eq!(columns, ["id", "name", "score", "active", "note", "tags"]);
    assert_eq!(
        rows[0],
        vec![
            json!(1),
            json!("Ann"),
            json!(9.5),
            json!(1),
            json!(null),
            json!("[\"a\",\"b\"]")
        ]
    );
    assert_eq!(rows[1][2], json!(7));
    assert_eq!(rows[2][5], json!("{\"k\":1}"));
}

#[tokio::test]
async fn export_a_table_to_csv_json_and_jsonl() {
    let dir = with_people().await;
    for target in [
        "file:exports/p.csv",
        "file:exports/p.json",
        "file:exports/p.jsonl",
    ] {
        run(
            dir.path(),
            target,
            op("export", "table:people", target, json!({})),
        )
        .await
        .unwrap();
    }
    assert_eq!(
        read(dir.path(), "exports/p.csv"),
        "id,name,score,active,note,tags\n\
         1,Ann,9.5,1,,\"[\"\"a\"\",\"\"b\"\"]\"\n\
         2,\"Bob, Jr.\",7,0,\"said \"\"hi\"\"\nthen left\",[]\n\
         3,Çelik,-1.25,1,,\"{\"\"k\"\":1}\"\n"
    );
    let json: Value = serde_json::from_str(&read(dir.path(), "exports/p.json")).unwrap();
    assert_eq!(
        json[0],
        json!({"id": 1, "name": "Ann", "score": 9.5, "active": 1, "note": null, "tags": "[\"a\",\"b\"]"})
    );
    assert_eq!(json.as_array().unwrap().len(), 3);
    let lines: Vec<Value> = read(dir.path(), "exports/p.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, json.as_array().unwrap().clone());
    // Columns keep the table's order, not alphabetical order.
    assert!(read(dir.path(), "exports/p.jsonl").starts_with("{\"id\":1,\"name\":\"Ann\","));
    assert_no_temp_files(dir.path());
}

#[tokio::test]
async fn every_format_round_trips_through_a_table() {
    let dir = with_people().await;
    let original = table(dir.path(), "people").unwrap();
    for ext in ["json", "jsonl"] {
        let file = format!("file:rt/people.{ext}");
        let copy = format!("table:from_{ext}");
        run(
            dir.path(),
            &format!("e{ext}"),
            op("export", "table:people", &file, json!({})),
        )
        .await
        .unwrap();
        run(
            dir.path(),
            &format!("i{ext}"),
            op("import", &file, &copy, json!({})),
        )
        .await
        .unwrap();
        assert_eq!(table(dir.path(), &copy[6..]).unwrap(), original, "{ext}");
    }
    // CSV carries no types: the same text comes back, as TEXT.
    run(
        dir.path(),
        "ecsv",
        op("export", "table:people", "file:rt/people.csv", json!({})),
    )
    .await
    .unwrap();
    run(
        dir.path(),
        "icsv",
        op("import", "file:rt/people.csv", "table:from_csv", json!({})),
    )
    .await
    .unwrap();
    let (columns, rows) = table(dir.path(), "from_csv").unwrap();
    assert_eq!(columns, original.0);
    assert_eq!(
        rows[1],
        vec![
            json!("2"),
            json!("Bob, Jr."),
            json!("7"),
            json!("0"),
            json!("said \"hi\"\nthen left"),
            json!("[]")
        ]
    );
    assert_eq!(rows[0][4], json!(""));
}

#[tokio::test]
async fn import_csv_json_and_jsonl_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", "x,y\n1,one\n2,\"t,w\"\"o\"\n");
    write(
        dir.path(),
        "a.json",
        r#"[{"x": 1, "y": "one"}, {"x": 2, "y": "t,w\"o"}]"#,
    );
    write(
        dir.path(),
        "a.jsonl",
        "{\"x\": 1, \"y\": \"one\"}\n{\"x\": 2, \"y\": \"t,w\\\"o\"}\n",
    );
    for ext in ["csv", "json", "jsonl"] {
        run(
            dir.path(),
            ext,
            op(
                "import",
                &format!("file:a.{ext}"),
                &format!("table:t_{ext}"),
                json!({}),
            ),
        )
        .await
        .unwrap();
    }
    let expected_typed = vec![
        vec![json!(1), json!("one")],
        vec![json!(2), json!("t,w\"o")],
    ];
    assert_eq!(table(dir.path(), "t_json").unwrap().1, expected_typed);
    assert_eq!(table(dir.path(), "t_jsonl").unwrap().1, expected_typed);
    assert_eq!(
        table(dir.path(), "t_csv").unwrap().1,
        vec![
            vec![json!("1"), json!("one")],
            vec![json!("2"), json!("t,w\"o")]
        ]
    );
}

#[tokio::test]
async fn append_adds_rows_and_replace_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.csv", "k,v\n1,a\n2,b\n");
    write(dir.path(), "b.csv", "other\nz\n");
    let import = |id: &'static str, file: &'static str, mode: Option<&str>| {
        let options = mode.map_or(json!({}), |m| json!({"mode": m}));
        run(dir.path(), id, op("import", file, "table:t", options))
    };
    import("1", "file:a.csv", None).await.unwrap();
    import("2", "file:a.csv", Some("append")).await.unwrap();
    assert_eq!(table(dir.path(), "t").unwrap().1.len(), 4);
    // Appending columns the table does not have is refused, permanently.
    let err = import("3", "file:b.csv", Some("append")).await.unwrap_err();
    assert_eq!(
        err,
        JobError::Permanent("target: table \"t\" has no column \"other\"".into())
    );
    assert_eq!(table(dir.path(), "t").unwrap().1.len(), 4);
    import("4", "file:b.csv", Some("replace")).await.unwrap();
    assert_eq!(
        table(dir.path(), "t").unwrap(),
        (vec!["other".to_string()], vec![vec![json!("z")]])
    );
}

#[tokio::test]
async fn a_retried_table_write_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.jsonl", "{\"n\": 1}\n{\"n\": 2}\n");
    let import = op(
        "import",
        "file:a.jsonl",
        "table:t",
        json!({"mode": "append"}),
    );
    run(dir.path(), "job-1", import.clone()).await.unwrap();
    // The queue lost the completion (a crash after our commit): the same
    // job runs again and must not append twice.
    run(dir.path(), "job-1", import.clone()).await.unwrap();
    assert_eq!(table(dir.path(), "t").unwrap().1.len(), 2);
    // Another job with the same payload is a new append.
    run(dir.path(), "job-2", import).await.unwrap();
    assert_eq!(table(dir.path(), "t").unwrap().1.len(), 4);
    // A late retry of a replace does not wipe out later appends either.
    let replace = op(
        "import",
        "file:a.jsonl",
        "table:r",
        json!({"mode": "replace"}),
    );
    run(dir.path(), "job-3", replace.clone()).await.unwrap();
    run(
        dir.path(),
        "job-4",
        op("import", "file:a.jsonl", "table:r", json!({})),
    )
    .await
    .unwrap();
    run(dir.path(), "job-3", replace).await.unwrap();
    assert_eq!(table(dir.path(), "r").unwrap().1.len(), 4);
}

#[tokio::test]
async fn a_retry_after_the_commit_succeeds_even_without_its_source() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "upload.csv", "a\n1\n");
    let import = op("import", "file:upload.csv", "table:t", json!({}));
    run(dir.path(), "job-1", import.clone()).await.unwrap();
    fs::remove_file(dir.path().join("upload.csv")).unwrap();
    run(dir.path(), "job-1", import).await.unwrap();
    assert_eq!(table(dir.path(), "t").unwrap().1, vec![vec![json!("1")]]);
}

#[tokio::test]
async fn a_rerun_file_export_gives_the_same_file() {
    let dir = with_people().await;
    let export = op("export", "table:people", "file:exports/p.csv", json!({}));
    run(dir.path(), "x", export.clone()).await.unwrap();
    let first = read(dir.path(), "exports/p.csv");
    run(dir.path(), "x", export).await.unwrap();
    assert_eq!(read(dir.path(), "exports/p.csv"), first);
}

#[tokio::test]
async fn transform_file_to_file_in_every_direction() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in/orders.csv",
        "id,customer,status,total\n1,ann,paid,10\n2,bob,open,5\n3,cy,paid,7.5\n4,dee,paid,1\n",
    );
    let options = json!({
        "filter": {"status": "paid"},
        "select": ["id", "customer", "total"],
        "rename": {"customer": "who"},
        "limit": 2
    });
    run(
        dir.path(),
        "1",
        op(
            "transform",
            "file:in/orders.csv",
            "file:out/o.json",
            options,
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        read(dir.path(), "out/o.json"),
        "[\n{\"id\":\"1\",\"who\":\"ann\",\"total\":\"10\"},\n{\"id\":\"3\",\"who\":\"cy\",\"total\":\"7.5\"}\n]\n"
    );
    run(
        dir.path(),
        "2",
        op(
            "transform",
            "file:out/o.json",
            "file:out/o.jsonl",
            json!({"select": ["who"]}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        read(dir.path(), "out/o.jsonl"),
        "{\"who\":\"ann\"}\n{\"who\":\"cy\"}\n"
    );
    run(
        dir.path(),
        "3",
        op(
            "transform",
            "file:out/o.jsonl",
            "file:out/o.csv",
            json!({"rename": {"who": "name"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(read(dir.path(), "out/o.csv"), "name\nann\ncy\n");
    // In place: the source is read from its open file while the output is
    // written beside it and renamed over it.
    run(
        dir.path(),
        "4",
        op(
            "transform",
            "file:out/o.csv",
            "file:out/o.csv",
            json!({"limit": 1}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(read(dir.path(), "out/o.csv"), "name\nann\n");
}

#[tokio::test]
async fn transform_between_tables_and_files() {
    let dir = with_people().await;
    // A JSON filter value matches the table's typed values.
    let options = json!({"filter": {"active": 1}, "select": ["name", "score"], "mode": "replace"});
    run(
        dir.path(),
        "1",
        op("transform", "table:people", "table:active", options),
    )
    .await
    .unwrap();
    assert_eq!(
        table(dir.path(), "active").unwrap().1,
        vec![
            vec![json!("Ann"), json!(9.5)],
            vec![json!("Çelik"), json!(-1.25)]
        ]
    );
    run(
        dir.path(),
        "2",
        op(
            "transform",
            "table:active",
            "file:a.csv",
            json!({"rename": {"score": "points"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        read(dir.path(), "a.csv"),
        "name,points\nAnn,9.5\nÇelik,-1.25\n"
    );
    // A CSV string "1" matches the number 1: CSV carries no types.
    run(
        dir.path(),
        "3",
        op(
            "transform",
            "file:a.csv",
            "table:from_csv",
            json!({"filter": {"points": 9.5}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        table(dir.path(), "from_csv").unwrap().1,
        vec![vec![json!("Ann"), json!("9.5")]]
    );
}

#[tokio::test]
async fn transform_names_a_missing_field_at_run_time() {
    let dir = with_people().await;
    let err = run(
        dir.path(),
        "1",
        op(
            "transform",
            "table:people",
            "file:x.csv",
            json!({"select": ["name", "age"]}),
        ),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent());
    assert!(
        err.message()
            .starts_with("options.select[1]: no field \"age\" in the source"),
        "{err}"
    );
    assert!(!dir.path().join("x.csv").exists());
    assert_no_temp_files(dir.path());
}

#[tokio::test]
async fn aggregate_with_and_without_group_by() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sales.csv",
        "region,amount\nnorth,10\nsouth,2.5\nnorth,\nnorth,5\nsouth,4\n",
    );
    let metrics = json!([
        {"op": "count"},
        {"op": "count", "field": "amount", "as": "with_amount"},
        {"op": "sum", "field": "amount"},
        {"op": "avg", "field": "amount"},
        {"op": "min", "field": "amount"},
        {"op": "max", "field": "amount"}
    ]);
    run(
        dir.path(),
        "1",
        op(
            "aggregate",
            "file:sales.csv",
            "file:by_region.json",
            json!({"group_by": ["region"], "metrics": metrics}),
        ),
    )
    .await
    .unwrap();
    let got: Value = serde_json::from_str(&read(dir.path(), "by_region.json")).unwrap();
    assert_eq!(
        got,
        json!([
            {"region": "north", "count": 3, "with_amount": 2, "sum_amount": 15, "avg_amount": 7.5, "min_amount": "5", "max_amount": "10"},
            {"region": "south", "count": 2, "with_amount": 2, "sum_amount": 6.5, "avg_amount": 3.25, "min_amount": "2.5", "max_amount": "4"}
        ])
    );
    run(
        dir.path(),
        "2",
        op(
            "aggregate",
            "file:sales.csv",
            "table:totals",
            json!({"metrics": metrics}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        table(dir.path(), "totals").unwrap().1,
        vec![vec![
            json!(5),
            json!(4),
            json!(21.5),
            json!(5.375),
            json!("2.5"),
            json!("10")
        ]]
    );
}

#[tokio::test]
async fn aggregate_a_table_into_json_lines() {
    let dir = with_people().await;
    let options = json!({"group_by": ["active"], "metrics": [
        {"op": "count"}, {"op": "max", "field": "score", "as": "best"}
    ]});
    run(
        dir.path(),
        "1",
        op("aggregate", "table:people", "file:by_active.jsonl", options),
    )
    .await
    .unwrap();
    assert_eq!(
        read(dir.path(), "by_active.jsonl"),
        "{\"active\":1,\"count\":2,\"best\":9.5}\n{\"active\":0,\"count\":1,\"best\":7}\n"
    );
}

#[tokio::test]
async fn empty_inputs() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "empty.csv", "");
    write(dir.path(), "header.csv", "a,b\n");
    write(dir.path(), "empty.json", "[]");
    write(dir.path(), "empty.jsonl", "");
    // No columns at all: nothing to create a table with.
    run(
        dir.path(),
        "1",
        op("import", "file:empty.csv", "table:t", json!({})),
    )
    .await
    .unwrap();
    assert!(table(dir.path(), "t").is_none());
    // A header alone creates the table, empty.
    run(
        dir.path(),
        "2",
        op("import", "file:header.csv", "table:t", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(
        table(dir.path(), "t").unwrap(),
        (vec!["a".into(), "b".into()], vec![])
    );
    run(
        dir.path(),
        "3",
        op("export", "table:t", "file:t.csv", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(read(dir.path(), "t.csv"), "a,b\n");
    run(
        dir.path(),
        "4",
        op("export", "table:t", "file:t.json", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(read(dir.path(), "t.json"), "[]\n");
    run(
        dir.path(),
        "5",
        op("transform", "file:empty.json", "file:e.jsonl", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(read(dir.path(), "e.jsonl"), "");
    // Replacing with an empty file empties the table.
    write(dir.path(), "one.csv", "a,b\n1,2\n");
    run(
        dir.path(),
        "6",
        op("import", "file:one.csv", "table:t", json!({})),
    )
    .await
    .unwrap();
    run(
        dir.path(),
        "7",
        op(
            "import",
            "file:empty.jsonl",
            "table:t",
            json!({"mode": "replace"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(table(dir.path(), "t").unwrap().1.len(), 0);
}

#[tokio::test]
async fn utf8_names_for_files_folders_and_columns() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "données/clients é.csv",
        "nom,âge,城市\nZoë,33,東京\n",
    );
    run(
        dir.path(),
        "1",
        op(
            "import",
            "file:données/clients é.csv",
            "table:clients",
            json!({}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        table(dir.path(), "clients").unwrap().0,
        ["nom", "âge", "城市"]
    );
    run(
        dir.path(),
        "2",
        op(
            "export",
            "table:clients",
            "file:exports/日本/クライアント.jsonl",
            json!({}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        read(dir.path(), "exports/日本/クライアント.jsonl"),
        "{\"nom\":\"Zoë\",\"âge\":\"33\",\"城市\":\"東京\"}\n"
    );
}

#[tokio::test]
async fn csv_fields_with_commas_quotes_and_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let csv =
        "id,text\r\n1,\"a, b\"\r\n2,\"she said \"\"no\"\"\"\r\n3,\"two\r\nlines\"\r\n4,plain\r\n";
    write(dir.path(), "in.csv", csv);
    run(
        dir.path(),
        "1",
        op("import", "file:in.csv", "table:t", json!({})),
    )
    .await
    .unwrap();
    let texts: Vec<Value> = table(dir.path(), "t")
        .unwrap()
        .1
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("a, b"),
            json!("she said \"no\""),
            json!("two\r\nlines"),
            json!("plain")
        ]
    );
    run(
        dir.path(),
        "2",
        op("export", "table:t", "file:out.csv", json!({})),
    )
    .await
    .unwrap();
    assert_eq!(
        read(dir.path(), "out.csv"),
        "id,text\n1,\"a, b\"\n2,\"she said \"\"no\"\"\"\n3,\"two\r\nlines\"\n4,plain\n"
    );
}

#[tokio::test]
async fn validate_refuses_bad_payloads_naming_the_field() {
    let handler = DataProcessing::new("/nonexistent");
    let check = |data: Value| handler.validate(&data).unwrap_err();
    assert_eq!(
        check(op("import", "file:/etc/passwd.csv", "table:t", json!({}))),
        "source: absolute paths are not allowed; give a path relative to DATA_DIR"
    );
    assert_eq!(
        check(op("import", "file:../outside.csv", "table:t", json!({}))),
        "source: `..` is not allowed in a path"
    );
    assert_eq!(
        check(op(
            "import",
            "file:a.csv",
            "table:users; DROP TABLE x",
            json!({})
        )),
        "target: table name \"users; DROP TABLE x\" is not a plain identifier (letters, digits and _, not starting with a digit)"
    );
    assert_eq!(
        check(op("export", "table:t", "file:report.xlsx", json!({}))),
        "target: unknown format: extension \".xlsx\"; expected .csv, .json or .jsonl"
    );
    assert_eq!(
        check(op(
            "import",
            "file:a.csv",
            "table:t",
            json!({"mode": "append", "delimiter": ";"})
        )),
        "options.delimiter: unknown option for import; expected one of mode"
    );
    assert_eq!(
        check(op("copy", "table:t", "file:a.csv", json!({}))),
        "operation: expected one of export, import, transform, aggregate, got \"copy\""
    );
    assert_eq!(
        check(op(
            "aggregate",
            "table:t",
            "file:a.csv",
            json!({"metrics": [{"op": "count"}, {"op": "sum"}]})
        )),
        "options.metrics[1].field: required for op sum"
    );
    assert!(
        handler
            .validate(&op("export", "table:t", "file:a.csv", json!({})))
            .is_ok()
    );
}

#[tokio::test]
async fn a_bad_payload_that_skipped_validation_fails_permanently() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_unchecked(
        dir.path(),
        "1",
        op("import", "file:../x.csv", "table:t", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        JobError::Permanent("source: `..` is not allowed in a path".into())
    );
}

#[tokio::test]
async fn symlinks_out_of_data_dir_are_refused_permanently() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.csv", "a\n1\n");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.csv"),
        dir.path().join("secret.csv"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("elsewhere")).unwrap();

    let err = run(
        dir.path(),
        "1",
        op("import", "file:secret.csv", "table:t", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        JobError::Permanent("source: the path leads out of DATA_DIR through a symlink".into())
    );
    write(dir.path(), "in.csv", "a\n1\n");
    let err = run(
        dir.path(),
        "2",
        op(
            "transform",
            "file:in.csv",
            "file:elsewhere/new/out.csv",
            json!({}),
        ),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(!outside.path().join("new").exists());
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn a_missing_source_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let err = run(
        dir.path(),
        "1",
        op("import", "file:later.csv", "table:t", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        JobError::Retry("source: file \"later.csv\" does not exist".into())
    );
    let err = run(
        dir.path(),
        "2",
        op("export", "table:nope", "file:x.csv", json!({})),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        JobError::Retry("source: table \"nope\" does not exist".into())
    );
    assert!(!dir.path().join("x.csv").exists());
    assert_no_temp_files(dir.path());
}

#[tokio::test]
async fn bad_input_fails_permanently_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.jsonl", "{\"a\": 1}\n{\"a\": 2\n");
    let err = run(
        dir.path(),
        "1",
        op("import", "file:bad.jsonl", "table:t", json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent());
    assert!(err.message().starts_with("source: line 2"), "{err}");
    // The first line was inserted, then rolled back with the rest.
    assert!(table(dir.path(), "t").is_none());
    let err = run(
        dir.path(),
        "2",
        op("transform", "file:bad.jsonl", "file:out.csv", json!({})),
    )
    .await
    .unwrap_err();
    assert!(err.is_permanent());
    assert!(!dir.path().join("out.csv").exists());
    assert_no_temp_files(dir.path());
}

/// A job abandoned at its timeout stops and leaves no output: the runtime's
/// drop waits for the blocking thread, then nothing may be there.
#[test]
fn an_abandoned_job_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut big = String::from("n,text\n");
    for i in 0..300_000 {
        big.push_str(&format!("{i},row number {i}\n"));
    }
    write(dir.path(), "big.csv", &big);
    for (id, target) in [("1", "file:out/big.jsonl"), ("2", "table:big")] {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let handler = DataProcessing::new(dir.path());
        let data = op("import", "file:big.csv", target, json!({}));
        let data = if target.starts_with("file:") {
            op("transform", "file:big.csv", target, json!({}))
        } else {
            data
        };
        let result = runtime.block_on(async {
            tokio::time::timeout(Duration::from_millis(5), handler.run(context(id, data))).await
        });
        assert!(
            result.is_err(),
            "the job finished before its timeout; make the input larger"
        );
        drop(runtime);
    }
    assert!(!dir.path().join("out/big.jsonl").exists());
    assert_no_temp_files(dir.path());
    assert!(table(dir.path(), "big").is_none());
}

#[tokio::test]
async fn clear_exports_deletes_old_exports_only() {
    let dir = with_people().await;
    run(
        dir.path(),
        "1",
        op(
            "export",
            "table:people",
            "file:exports/old/p.csv",
            json!({}),
        ),
    )
    .await
    .unwrap();
    run(
        dir.path(),
        "2",
        op("export", "table:people", "file:exports/new.csv", json!({})),
    )
    .await
    .unwrap();
    let old = fs::File::options()
        .write(true)
        .open(dir.path().join("exports/old/p.csv"))
        .unwrap();
    old.set_modified(SystemTime::now() - Duration::from_secs(8 * 86_400))
        .unwrap();
    drop(old);
    let report = clear_exports(dir.path(), 7, SystemTime::now()).unwrap();
    assert_eq!(
        (
            report.files_deleted,
            report.folders_deleted,
            report.files_kept
        ),
        (1, 1, 1)
    );
    assert!(!dir.path().join("exports/old").exists());
    assert!(dir.path().join("exports/new.csv").exists());
    assert!(dir.path().join("in/people.jsonl").exists());
}

#[tokio::test]
async fn a_finished_job_leaves_its_rows_and_endpoints_as_its_result() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "in/users.csv",
        "id,name\n1,Ada\n2,Grace\n3,Linus\n",
    );
    let data = op("import", "file:in/users.csv", "table:users", json!({}));
    let handler = DataProcessing::new(dir.path());
    let ctx = context("result-1", data);
    let result = ctx.result.clone();
    handler.run(ctx).await.unwrap();
    assert_eq!(
        result.take(),
        Some(json!({"operation": "import", "source": "file:in/users.csv",
            "target": "table:users", "rows_read": 3, "rows_written": 3,
            "already_applied": false}))
    );
}
