//! Throughput and memory of the `data_processing` handler on a large table.
//!
//! `cargo bench --bench data_export` builds a table of 5,000,000 rows with
//! mixed types (integer, text, real, boolean, null), exports it to CSV and to
//! JSON lines (and a JSON array), imports each file back into a new table,
//! and reports rows/s and memory for each step. `DATA_BENCH_ROWS=100000` makes a quick run;
//! `DATA_BENCH_DIR` puts the files somewhere other than a temp folder.
//!
//! Memory: before each step the peak RSS is reset (`5` written to
//! /proc/self/clear_refs), so VmHWM after the step is that step's own peak;
//! "growth" is that peak minus the RSS the step started with. The target is
//! a peak of at most 50 MB whatever the row count, i.e. streaming.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use cronq::handlers::data::DataProcessing;
use serde_json::{Value, json};

const DEFAULT_ROWS: u64 = 5_000_000;
const RSS_TARGET_KB: u64 = 50 * 1024;

fn main() {
    let rows = match std::env::var("DATA_BENCH_ROWS") {
        Ok(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("DATA_BENCH_ROWS={v:?} is not a whole number");
            std::process::exit(2);
        }),
        Err(_) => DEFAULT_ROWS,
    };
    let temp;
    let dir = match std::env::var_os("DATA_BENCH_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir().expect("a temporary folder");
            temp.path().to_path_buf()
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let handler = DataProcessing::new(&dir);

    println!("data_export: {rows} rows in {}", dir.display());
    let started = Instant::now();
    generate(&dir.join("source.jsonl"), rows);
    println!(
        "generated source.jsonl ({:.0} MB) in {:.1} s; RSS now {} kB",
        size_mb(&dir.join("source.jsonl")),
        started.elapsed().as_secs_f64(),
        status_kb("VmRSS")
    );

    let steps: [(&str, Value, Option<&str>); 7] = [
        (
            "create table (import jsonl)",
            job("import", "file:source.jsonl", "table:bench"),
            None,
        ),
        (
            "export table -> csv",
            job("export", "table:bench", "file:exports/bench.csv"),
            Some("exports/bench.csv"),
        ),
        (
            "export table -> jsonl",
            job("export", "table:bench", "file:exports/bench.jsonl"),
            Some("exports/bench.jsonl"),
        ),
        (
            "import csv -> table",
            job("import", "file:exports/bench.csv", "table:from_csv"),
            None,
        ),
        (
            "import jsonl -> table",
            job("import", "file:exports/bench.jsonl", "table:from_jsonl"),
            None,
        ),
        // Not asked for, but the one reader that must stream a single JSON
        // value (the array) deserves its memory figure too.
        (
            "export table -> json array",
            job("export", "table:bench", "file:exports/bench.json"),
            Some("exports/bench.json"),
        ),
        (
            "import json array -> table",
            job("import", "file:exports/bench.json", "table:from_json"),
            None,
        ),
    ];
    println!(
        "{:<28} {:>10} {:>8} {:>12} {:>9} {:>14} {:>12}",
        "step", "rows", "secs", "rows/s", "out MB", "peak RSS kB", "growth kB"
    );
    let mut worst_peak = 0;
    for (i, (name, data, output)) in steps.iter().enumerate() {
        let reset = reset_peak();
        let before = status_kb("VmRSS");
        let started = Instant::now();
        let outcome = runtime
            .block_on(handler.execute(&format!("bench-{i}"), data))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let secs = started.elapsed().as_secs_f64();
        let peak = status_kb("VmHWM");
        worst_peak = worst_peak.max(peak);
        assert_eq!(
            outcome.rows_written, rows,
            "{name} wrote the wrong number of rows"
        );
        let out = output.map_or(String::from("-"), |p| {
            format!("{:.0}", size_mb(&dir.join(p)))
        });
        println!(
            "{:<28} {:>10} {:>8.2} {:>12.0} {:>9} {:>14} {:>12}{}",
            name,
            outcome.rows_read,
            secs,
            outcome.rows_read as f64 / secs,
            out,
            peak,
            peak.saturating_sub(before),
            if reset {
                ""
            } else {
                "  (peak not reset: lifetime peak)"
            }
        );
    }
    println!(
        "data.db {:.0} MB; process peak RSS (VmHWM, worst step) {worst_peak} kB; target <= {RSS_TARGET_KB} kB: {}",
        size_mb(&dir.join("data.db")),
        if worst_peak <= RSS_TARGET_KB {
            "ok"
        } else {
            "EXCEEDED"
        }
    );
}

fn job(operation: &str, source: &str, target: &str) -> Value {
    json!({"operation": operation, "source": source, "target": target})
}

/// Writes `rows` JSON lines of mixed types without holding them.
fn generate(path: &Path, rows: u64) {
    let file = File::create(path).expect("creating source.jsonl");
    let mut out = BufWriter::with_capacity(1 << 16, file);
    for i in 0..rows {
        let note = if i % 10 == 0 {
            "null".to_string()
        } else {
            format!("\"note, \\\"quoted\\\" {}\"", i % 977)
        };
        writeln!(
            out,
            "{{\"id\":{i},\"name\":\"user {i}\",\"score\":{:.3},\"active\":{},\"note\":{note}}}",
            (i % 10_000) as f64 / 7.0,
            i % 3 == 0
        )
        .expect("writing source.jsonl");
    }
    out.flush().expect("writing source.jsonl");
}

/// Resets VmHWM to the current RSS; false where the kernel refuses.
fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` line of /proc/self/status, e.g. VmHWM.
fn status_kb(key: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn size_mb(path: &Path) -> f64 {
    fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1e6)
}
