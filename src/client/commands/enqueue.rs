//! `enqueue`: one job from flags, or a batch from a JSON-lines file.
//!
//! Flags map one to one onto the protocol's job fields (`--retries` is
//! `payload.options.retry_count`, `--timeout` is `payload.options.timeout`);
//! anything the user leaves out is left out of the request, so the daemon's
//! defaults apply and the CLI never guesses them. The CLI checks only what
//! it must to build the request (JSON that parses, a time that reads); the
//! daemon validates the rest and its message names the field.

use std::io::Read;
use std::path::Path;

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{opt_str, text};
use crate::client::args::EnqueueArgs;
use crate::client::request::{Cmd, EnqueueBatch, EnqueueJob, JobOptions, Payload};
use crate::client::table::Table;
use crate::client::{ClientError, timefmt};

/// Builds the `enqueue` request; `stdin` is read for `--data -` or `--file -`.
pub fn request(args: &EnqueueArgs, stdin: &mut dyn Read) -> Result<Cmd, ClientError> {
    if let Some(file) = &args.file {
        let (source, content) = if file == Path::new("-") {
            ("stdin".to_string(), read_all(stdin, "stdin")?)
        } else {
            let name = file.display().to_string();
            let content = std::fs::read_to_string(file)
                .map_err(|e| ClientError::Usage(format!("--file: cannot read {name}: {e}")))?;
            (name, content)
        };
        return Ok(Cmd::EnqueueBatch(EnqueueBatch {
            jobs: batch(&content, &source)?,
        }));
    }
    let job_type = args
        .job_type
        .clone()
        .ok_or_else(|| ClientError::Usage("a job TYPE or --file is required".to_string()))?;
    let data = match args.data.as_deref() {
        None => Map::new(),
        Some("-") => json_object(&read_all(stdin, "stdin")?, "--data (stdin)")?,
        Some(text) => json_object(text, "--data")?,
    };
    let run_at = match args.at.as_deref() {
        None => None,
        Some(text) => Some(timestamp_arg(text, "--at")?),
    };
    Ok(Cmd::Enqueue(EnqueueJob {
        name: args.name.clone().unwrap_or_else(|| job_type.clone()),
        description: args.description.clone(),
        payload: Payload {
            job_type,
            data,
            options: JobOptions {
                retry_count: args.retries,
                timeout: args.timeout_s,
                ..JobOptions::default()
            },
        },
        run_at,
        delay: args.delay,
        priority: args.priority,
        unique_key: args.unique_key.clone(),
    }))
}

/// An RFC 3339 time from the command line, in the protocol's form.
pub fn timestamp_arg(text: &str, flag: &str) -> Result<String, ClientError> {
    timefmt::parse(text).map(timefmt::protocol).ok_or_else(|| {
        ClientError::Usage(format!(
            "{flag}: {text:?} is not an RFC 3339 time such as 2026-01-01T02:00:00Z"
        ))
    })
}

fn read_all(input: &mut dyn Read, what: &str) -> Result<String, ClientError> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|e| ClientError::Usage(format!("cannot read {what}: {e}")))?;
    Ok(text)
}

fn json_object(text: &str, what: &str) -> Result<Map<String, Value>, ClientError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ClientError::Usage(format!("{what}: must be a JSON object"))),
        Err(e) => Err(ClientError::Usage(format!("{what}: not valid JSON: {e}"))),
    }
}

/// One job object per non-blank line, as PROTOCOL.md's `enqueue` takes it.
fn batch(content: &str, source: &str) -> Result<Vec<Value>, ClientError> {
    let mut jobs = Vec::new();
    for (i, line) in content.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let job = json_object(line, &format!("--file {source}, line {}", i + 1))?;
        jobs.push(Value::Object(job));
    }
    if jobs.is_empty() {
        return Err(ClientError::Usage(format!(
            "--file {source}: no jobs in it"
        )));
    }
    if jobs.len() > crate::config::MAX_BATCH_JOBS {
        return Err(ClientError::Usage(format!(
            "--file {source}: {} jobs, more than the {} one request may carry; split the file",
            jobs.len(),
            crate::config::MAX_BATCH_JOBS
        )));
    }
    Ok(jobs)
}

/// One job's line, or a batch's summary: how many were stored and how
/// many were duplicates (`--verbose` adds a line per job).
pub fn render(a: &Value, now: Timestamp) -> String {
    if a.get("job").is_some() {
        return render_one(a, now);
    }
    summary(super::items(a, "jobs"))
}

/// As [`render`], with a batch's jobs listed one per line first.
pub fn render_verbose(a: &Value, now: Timestamp) -> String {
    if a.get("job").is_some() {
        return render_one(a, now);
    }
    let jobs = super::items(a, "jobs");
    let mut t = Table::new(&["ID", "TYPE", "NAME", "STATUS", "RUNS", "NOTE"]);
    for job in jobs {
        t.row(vec![
            text(job, "id"),
            text(job, "type"),
            text(job, "name"),
            text(job, "status"),
            timefmt::relative_text(opt_str(job, "run_at"), now),
            if is_duplicate(job) {
                "duplicate".into()
            } else {
                String::new()
            },
        ]);
    }
    format!("{t}{}", summary(jobs))
}

fn is_duplicate(job: &Value) -> bool {
    job.get("duplicate").and_then(Value::as_bool) == Some(true)
}

/// "10 jobs: 9 stored, 1 duplicate not stored again".
fn summary(jobs: &[Value]) -> String {
    let duplicates = jobs.iter().filter(|j| is_duplicate(j)).count();
    let stored = jobs.len() - duplicates;
    let mut line = format!("{} jobs: {stored} stored", jobs.len());
    match duplicates {
        0 => {}
        1 => line.push_str(", 1 duplicate not stored again (its unique key is taken)"),
        n => line.push_str(&format!(
            ", {n} duplicates not stored again (their unique keys are taken)"
        )),
    }
    line
}

fn render_one(a: &Value, now: Timestamp) -> String {
    let job = a.get("job").unwrap_or(&Value::Null);
    if a.get("duplicate").and_then(Value::as_bool) == Some(true) {
        return format!(
            "duplicate: job {} with unique key {} is already {}; nothing stored",
            text(job, "id"),
            text(job, "unique_key"),
            text(job, "status")
        );
    }
    format!(
        "enqueued job {} ({}), {}, runs {}",
        text(job, "id"),
        text(job, "type"),
        text(job, "status"),
        timefmt::relative_text(opt_str(job, "run_at"), now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::args::{Cli, Command};
    use crate::client::request::Request;
    use clap::Parser;
    use serde_json::json;

    fn wire(argv: &[&str], stdin: &str) -> Result<Value, ClientError> {
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::Enqueue(args) = cli.command else {
            panic!("not enqueue")
        };
        let command = request(&args, &mut stdin.as_bytes())?;
        Ok(serde_json::to_value(Request::new(1, command)).unwrap())
    }

    #[test]
    fn the_least_is_a_type() {
        assert_eq!(
            wire(&["cronq", "enqueue", "noop"], "").unwrap(),
            json!({"cmd": "enqueue", "id": 1, "name": "noop",
                   "payload": {"type": "noop", "data": {}, "options": {}}})
        );
    }

    #[test]
    fn every_flag_lands_in_its_field() {
        let got = wire(
            &[
                "cronq",
                "enqueue",
                "email",
                "--data",
                r#"{"to":"a@b.c"}"#,
                "--name",
                "welcome_email",
                "--description",
                "Send welcome email",
                "--at",
                "2026-01-01T03:00:00+01:00",
                "--priority",
                "-5",
                "--retries",
                "2",
                "--timeout",
                "60",
                "--unique-key",
                "user-7",
            ],
            "",
        )
        .unwrap();
        assert_eq!(
            got,
            json!({"cmd": "enqueue", "id": 1, "name": "welcome_email",
                   "description": "Send welcome email",
                   "payload": {"type": "email", "data": {"to": "a@b.c"},
                               "options": {"retry_count": 2, "timeout": 60}},
                   "run_at": "2026-01-01T02:00:00.000Z", "priority": -5, "unique_key": "user-7"})
        );
        let got = wire(&["cronq", "enqueue", "noop", "--delay", "30"], "").unwrap();
        assert_eq!(got["delay"], json!(30));
        assert!(got.get("run_at").is_none());
    }

    #[test]
    fn data_from_stdin() {
        let got = wire(&["cronq", "enqueue", "noop", "--data", "-"], "{\"n\": 1}\n").unwrap();
        assert_eq!(got["payload"]["data"], json!({"n": 1}));
    }

    #[test]
    fn bad_input_is_a_usage_error_naming_the_flag() {
        for (argv, needle) in [
            (
                &["cronq", "enqueue", "noop", "--data", "[1]"][..],
                "--data: must be a JSON object",
            ),
            (
                &["cronq", "enqueue", "noop", "--data", "{"][..],
                "--data: not valid JSON",
            ),
            (
                &["cronq", "enqueue", "noop", "--at", "tomorrow"][..],
                "--at: \"tomorrow\"",
            ),
        ] {
            let err = wire(argv, "").unwrap_err();
            assert!(matches!(err, ClientError::Usage(_)));
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn a_file_is_a_batch() {
        let lines = "{\"name\":\"a\",\"payload\":{\"type\":\"noop\",\"data\":{}}}\n\n\
                     {\"name\":\"b\",\"payload\":{\"type\":\"noop\",\"data\":{}},\"priority\":3}\n";
        let got = wire(&["cronq", "enqueue", "--file", "-"], lines).unwrap();
        assert_eq!(
            got,
            json!({"cmd": "enqueue", "id": 1, "jobs": [
                {"name": "a", "payload": {"type": "noop", "data": {}}},
                {"name": "b", "payload": {"type": "noop", "data": {}}, "priority": 3}]})
        );
        let err = wire(&["cronq", "enqueue", "--file", "-"], "{}\nnope\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        let err = wire(&["cronq", "enqueue", "--file", "-"], "\n").unwrap_err();
        assert!(err.to_string().contains("no jobs"), "{err}");
    }

    #[test]
    fn rendering() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let job = json!({"id": "k3j9x0c2m1q8z7a", "type": "email", "status": "scheduled",
                         "run_at": "2026-01-01T00:00:42.000Z", "unique_key": "u"});
        assert_eq!(
            render(&json!({"ok": true, "job": job}), now),
            "enqueued job k3j9x0c2m1q8z7a (email), scheduled, runs in 42s"
        );
        assert_eq!(
            render(&json!({"ok": true, "job": job, "duplicate": true}), now),
            "duplicate: job k3j9x0c2m1q8z7a with unique key u is already scheduled; nothing stored"
        );
        let mut dup = job.clone();
        dup["duplicate"] = json!(true);
        let batch = json!({"ok": true, "jobs": [job, job, dup]});
        assert_eq!(
            render(&batch, now),
            "3 jobs: 2 stored, 1 duplicate not stored again (its unique key is taken)"
        );
        let out = render_verbose(&batch, now);
        assert_eq!(
            out.lines().count(),
            5,
            "a header, a line per job, the summary: {out}"
        );
        assert!(out.lines().nth(3).unwrap().ends_with("duplicate"), "{out}");
        assert!(
            out.ends_with(
                "3 jobs: 2 stored, 1 duplicate not stored again (its unique key is taken)"
            ),
            "{out}"
        );
        assert_eq!(
            render(&json!({"ok": true, "jobs": [job, dup.clone(), dup]}), now),
            "3 jobs: 1 stored, 2 duplicates not stored again (their unique keys are taken)"
        );
    }
}
