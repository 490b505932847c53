//! A real parser of the Prometheus text format: Python's
//! `prometheus_client.parser.text_string_to_metric_families`, run in a
//! child. Python is `CRONQ_TEST_PYTHON` (the CI venv), else `python3`.
//! Without prometheus_client the caller skips loudly; under
//! `CRONQ_TEST_REQUIRE_TOOLS` (or with `CRONQ_TEST_PYTHON` set but unable
//! to import it) the test fails, so CI cannot skip silently.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// Reads exposition text on stdin; prints the families as JSON, or the
/// parser's error on stderr with a non-zero exit.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({"name": f.name, "type": f.type, "help": f.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(families))
"#;

/// A Python that can import prometheus_client, found once per test binary.
pub fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let explicit = std::env::var_os("CRONQ_TEST_PYTHON").filter(|p| !p.is_empty());
            let candidate = explicit.clone().unwrap_or_else(|| "python3".into());
            let works = Command::new(&candidate)
                .args(["-c", "import prometheus_client"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !works
                && (explicit.is_some() || std::env::var_os("CRONQ_TEST_REQUIRE_TOOLS").is_some())
            {
                panic!(
                    "{} cannot import prometheus_client; create a venv with: \
                     python3 -m venv V && V/bin/pip install prometheus_client, \
                     and set CRONQ_TEST_PYTHON=V/bin/python",
                    PathBuf::from(candidate).display()
                );
            }
            works.then(|| PathBuf::from(candidate))
        })
        .as_deref()
}

/// Says loudly, past the harness's output capture, that `test` did not run.
pub fn skip(test: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED {test}: no Python with prometheus_client. Set CRONQ_TEST_PYTHON \
         to a venv's python (python3 -m venv V && V/bin/pip install prometheus_client). ***\n"
    );
}

/// The families of `text` as the parser sees them; panics on a parse error.
pub fn parse(python: &Path, text: &str) -> Vec<Value> {
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the parser script prints JSON")
}

/// The family named `name` (counters lose their `_total` in the parser).
pub fn family<'a>(families: &'a [Value], name: &str) -> &'a Value {
    families
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no family {name} in {families:?}"))
}

/// The value of the sample `name` whose labels include `labels`.
pub fn sample(families: &[Value], family_name: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    family(families, family_name)["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {family_name}"))
}
