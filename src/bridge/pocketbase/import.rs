//! `cronq import-pocketbase`: the one-shot import of a PocketBase
//! collection from its `data.db`, through the daemon's `import` command
//! (the CLI never writes the queue itself).
//!
//! The file is read a page at a time, newest first (`store::pocketbase`),
//! each record decided (`record`), and the records taken sent in batches
//! of at most 1,000 and half a megabyte, under the daemon's request limit.
//! The daemon's ledger makes a second run store nothing new, even after
//! the first run's jobs finished. With `--delete`, the records cronq holds
//! (stored now or before) are deleted from the file after each batch is
//! answered, which is after the daemon committed them: a run cut short
//! anywhere leaves each record either in the file or in cronq, or both,
//! and the next run settles the "both".

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::record::{self, Decision};
use crate::admin::protocol::request::{ImportArgs, ImportRecord};
use crate::clock::Millis;
use crate::queue::import::MAX_IMPORT_RECORDS;
use crate::store::pocketbase::{PbFile, PbFileError};

/// Records read from the file at a time.
const PAGE: usize = 1_000;
/// A batch's records, as JSON, at most: half the daemon's default request
/// limit (CRONQ_MAX_REQUEST_BYTES), leaving room for the envelope.
const MAX_BATCH_BYTES: usize = 512 << 10;
/// How long to wait when the daemon's rate limit refuses a batch, and how
/// many times.
const RATE_WAIT: Duration = Duration::from_secs(1);
const RATE_TRIES: u32 = 300;

/// What to import and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub file: PathBuf,
    pub collection: String,
    pub dry_run: bool,
    pub include_reserved: bool,
    pub delete: bool,
    /// JOB_RESERVATION_TIMEOUT: a record reserved less than this ago may
    /// still be running in PocketBase.
    pub reservation: Duration,
}

/// Why the import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] PbFileError),
    /// The daemon refused a whole batch.
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// The daemon could not be asked, or answered nonsense.
    #[error("{0}")]
    Daemon(String),
}

/// A record and what was said about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub id: String,
    pub reason: String,
}

/// What the import did; `--json` prints it as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub file: String,
    pub collection: String,
    pub dry_run: bool,
    /// Records in the file.
    pub read: u64,
    /// Stored as jobs now (on a dry run: would be).
    pub stored: u64,
    /// Of those, stored dead: their attempts were used up in PocketBase.
    pub dead: u64,
    /// Taken over before (by an earlier import or the follower).
    pub already: u64,
    pub refused: u64,
    /// Left for now: reserved in PocketBase a moment ago.
    pub skipped: u64,
    /// Deleted from the file (`--delete`).
    pub deleted: u64,
    pub refusals: Vec<Note>,
    pub skips: Vec<Note>,
    /// The dead ones and why.
    pub deaths: Vec<Note>,
}

/// Sends one `import` request and returns the answer's fields, or the
/// daemon's refusal as [`ImportError::Refused`].
pub type Send<'a> = dyn FnMut(&ImportArgs) -> Result<Value, ImportError> + 'a;

/// Imports `options.file` at `now`, sending through `send`; `warn` is
/// told of every record skipped. The report says what was done, also
/// when an error stopped the import part way.
pub fn run(
    options: &Options,
    now: Millis,
    send: &mut Send<'_>,
    warn: &mut dyn FnMut(&str),
) -> (Report, Result<(), ImportError>) {
    let mut import = Import {
        options,
        send,
        report: Report {
            file: options.file.display().to_string(),
            collection: options.collection.clone(),
            dry_run: options.dry_run,
            ..Report::default()
        },
        held: Vec::new(),
    };
    let result = import.all(now, warn);
    (import.report, result)
}

impl Import<'_, '_, '_> {
    fn all(&mut self, now: Millis, warn: &mut dyn FnMut(&str)) -> Result<(), ImportError> {
        let options = self.options;
        let mut file = PbFile::open(&options.file, &options.collection, options.delete)?;
        let import = self;
        let mut cursor: Option<(String, String)> = None;
        loop {
            let page = file.page(cursor.as_ref(), PAGE)?;
            let next = page.last().map(|r| {
                let text = |key| r.get(key).and_then(Value::as_str).unwrap_or("").to_string();
                (text("created"), text("id"))
            });
            import.report.read += page.len() as u64;
            let mut taken = Vec::with_capacity(page.len());
            for value in &page {
                match record::decide(value, now, options.reservation, options.include_reserved) {
                    Decision::Take(record) => taken.push(record),
                    Decision::Skip { id, reason } => {
                        warn(&format!(
                            "record {id} skipped: {reason}; --include-reserved takes it"
                        ));
                        import.report.skipped += 1;
                        import.report.skips.push(Note { id, reason });
                    }
                    Decision::Refuse { id, reason } => import.refuse(id, reason),
                }
            }
            let sent = batches(taken)
                .into_iter()
                .try_for_each(|batch| import.send(batch));
            // What cronq holds is deleted even when a later batch failed.
            if options.delete && !options.dry_run && !import.held.is_empty() {
                let held = std::mem::take(&mut import.held);
                import.report.deleted += file.delete(&held)? as u64;
            }
            sent?;
            if page.len() < PAGE || next == cursor {
                break;
            }
            cursor = next;
        }
        Ok(())
    }
}

struct Import<'o, 's, 'a> {
    options: &'o Options,
    send: &'s mut Send<'a>,
    report: Report,
    /// Records cronq now holds, to delete from the file.
    held: Vec<String>,
}

impl Import<'_, '_, '_> {
    fn refuse(&mut self, id: String, reason: String) {
        self.report.refused += 1;
        self.report.refusals.push(Note { id, reason });
    }

    /// Sends `batch`, halving it when the daemon finds it too large, and
    /// waiting when its rate limit says so.
    fn send(&mut self, batch: Vec<ImportRecord>) -> Result<(), ImportError> {
        let mut todo = VecDeque::from([batch]);
        let mut waits = 0;
        while let Some(batch) = todo.pop_front() {
            let args = ImportArgs {
                source: format!("pocketbase:{}", self.options.collection),
                records: batch,
                dry_run: self.options.dry_run.then_some(true),
            };
            match (self.send)(&args) {
                Ok(answer) => self.tally(&args.records, &answer)?,
                Err(ImportError::Refused { code, message }) if code == "too_large" => {
                    let mut records = args.records;
                    if records.len() == 1 {
                        let id = records.remove(0).id;
                        self.refuse(id, format!("the daemon refused it as too large: {message}"));
                    } else {
                        let back = records.split_off(records.len() / 2);
                        todo.push_front(back);
                        todo.push_front(records);
                    }
                }
                Err(ImportError::Refused { code, message }) if code == "rate_limited" => {
                    waits += 1;
                    if waits > RATE_TRIES {
                        return Err(ImportError::Refused { code, message });
                    }
                    std::thread::sleep(RATE_WAIT);
                    let mut records = args.records;
                    if records.len() > 1 {
                        let back = records.split_off(records.len() / 2);
                        todo.push_front(back);
                    }
                    todo.push_front(records);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Counts the daemon's answer to `sent`, record by record.
    fn tally(&mut self, sent: &[ImportRecord], answer: &Value) -> Result<(), ImportError> {
        let answers = answer
            .get("records")
            .and_then(Value::as_array)
            .filter(|a| a.len() == sent.len())
            .ok_or_else(|| {
                ImportError::Daemon(format!(
                    "the daemon's import answer does not list the {} records sent",
                    sent.len()
                ))
            })?;
        for (record, answer) in sent.iter().zip(answers) {
            let text = |key| answer.get(key).and_then(Value::as_str).unwrap_or_default();
            match text("outcome") {
                "stored" => {
                    self.report.stored += 1;
                    if text("status") == "dead" {
                        self.report.dead += 1;
                        self.report.deaths.push(Note {
                            id: record.id.clone(),
                            reason: text("error").to_string(),
                        });
                    }
                    self.held.push(record.id.clone());
                }
                "already" => {
                    self.report.already += 1;
                    self.held.push(record.id.clone());
                }
                "refused" => self.refuse(record.id.clone(), text("error").to_string()),
                other => {
                    return Err(ImportError::Daemon(format!(
                        "the daemon answered record {} with the outcome {other:?}",
                        record.id
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Splits records into batches of at most [`MAX_IMPORT_RECORDS`] and
/// about [`MAX_BATCH_BYTES`] (a single larger record goes alone).
fn batches(records: Vec<ImportRecord>) -> Vec<Vec<ImportRecord>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut bytes = 0;
    for record in records {
        let size = serde_json::to_string(&record).map_or(0, |s| s.len()) + 1;
        if !batch.is_empty()
            && (batch.len() == MAX_IMPORT_RECORDS || bytes + size > MAX_BATCH_BYTES)
        {
            out.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += size;
        batch.push(record);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::protocol::request::{JobOptions, Payload};
    use serde_json::json;

    fn record(id: &str, data_bytes: usize) -> ImportRecord {
        let mut data = serde_json::Map::new();
        data.insert("x".into(), Value::String("y".repeat(data_bytes)));
        ImportRecord {
            id: id.into(),
            name: "n".into(),
            description: None,
            payload: Payload {
                job_type: "noop".into(),
                data,
                options: JobOptions::default(),
            },
            attempts: None,
            created: None,
        }
    }

    #[test]
    fn batches_hold_a_thousand_records_or_half_a_megabyte() {
        let small: Vec<_> = (0..2500).map(|i| record(&format!("r{i}"), 10)).collect();
        let sizes: Vec<usize> = batches(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        let big: Vec<_> = (0..5)
            .map(|i| record(&format!("b{i}"), 200 << 10))
            .collect();
        let sizes: Vec<usize> = batches(big).iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let huge = vec![record("h", 600 << 10), record("s", 1)];
        let sizes: Vec<usize> = batches(huge).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1, 1]);
    }

    fn file_with(dir: &std::path::Path, rows: &[(&str, &str, &str)]) -> PathBuf {
        let path = dir.join("data.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE _collections (id TEXT);
             CREATE TABLE queues (id TEXT PRIMARY KEY, name TEXT DEFAULT '' NOT NULL,
                 description TEXT DEFAULT '' NOT NULL, payload JSON DEFAULT NULL,
                 attempts NUMERIC DEFAULT 0 NOT NULL, reserved_at TEXT DEFAULT '' NOT NULL,
                 created TEXT DEFAULT '' NOT NULL, updated TEXT DEFAULT '' NOT NULL)",
        )
        .unwrap();
        for (id, payload, reserved_at) in rows {
            conn.execute(
                "INSERT INTO queues (id, name, payload, reserved_at, created) VALUES (?1, 'n', ?2, ?3, '2026-12-01 09:00:00.000Z')",
                rusqlite::params![id, payload, reserved_at],
            )
            .unwrap();
        }
        path
    }

    #[test]
    fn a_too_large_batch_is_halved_and_a_too_large_record_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(String, &str, &str)> = (0..4)
            .map(|i| (format!("r{i}"), r#"{"type":"noop"}"#, ""))
            .collect();
        let rows: Vec<(&str, &str, &str)> =
            rows.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
        let path = file_with(dir.path(), &rows);
        let options = Options {
            file: path,
            collection: "queues".into(),
            dry_run: false,
            include_reserved: false,
            delete: true,
            reservation: Duration::from_secs(300),
        };
        let mut sizes = Vec::new();
        let mut send = |args: &ImportArgs| -> Result<Value, ImportError> {
            sizes.push(args.records.len());
            if args.records.len() > 1 || args.records[0].id == "r0" {
                return Err(ImportError::Refused {
                    code: "too_large".into(),
                    message: "the request is too large".into(),
                });
            }
            Ok(
                json!({"records": [{"id": args.records[0].id, "outcome": "stored", "job_id": "j", "status": "pending", "error": null}]}),
            )
        };
        let (report, result) = run(&options, crate::clock::MAX_MS / 2, &mut send, &mut |_| {});
        result.unwrap();
        assert_eq!(sizes, [4, 2, 1, 1, 2, 1, 1]);
        assert_eq!(
            (report.read, report.stored, report.refused, report.deleted),
            (4, 3, 1, 3)
        );
        assert_eq!(report.refusals[0].id, "r0");
        assert!(
            report.refusals[0]
                .reason
                .starts_with("the daemon refused it as too large")
        );
        // What was deleted is what cronq holds; the refused one stays.
        let file = PbFile::open(&options.file, "queues", false).unwrap();
        let left: Vec<Value> = file.page(None, 10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["id"], "r0");
    }

    #[test]
    fn skipped_and_refused_records_are_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_with(
            dir.path(),
            &[
                ("good", r#"{"type":"noop"}"#, ""),
                ("digits", "123", ""),
                ("busy", r#"{"type":"noop"}"#, "2026-12-01 09:58:00.000Z"),
            ],
        );
        let options = Options {
            file: path,
            collection: "queues".into(),
            dry_run: false,
            include_reserved: false,
            delete: true,
            reservation: Duration::from_secs(300),
        };
        let mut send = |args: &ImportArgs| -> Result<Value, ImportError> {
            let records: Vec<Value> = args
                .records
                .iter()
                .map(|r| json!({"id": r.id, "outcome": "already", "job_id": "j", "status": null, "error": null}))
                .collect();
            Ok(json!({"records": records}))
        };
        let mut warnings = Vec::new();
        let now = 1_796_119_200_000; // 2026-12-01T10:00:00Z
        let (report, result) = run(&options, now, &mut send, &mut |w| {
            warnings.push(w.to_string())
        });
        result.unwrap();
        assert_eq!(
            (
                report.already,
                report.refused,
                report.skipped,
                report.deleted
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(report.refusals[0].id, "digits");
        assert!(report.refusals[0].reason.contains("got the number 123"));
        assert_eq!(report.skips[0].id, "busy");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with("record busy skipped: reserved in PocketBase at"),
            "{}",
            warnings[0]
        );
    }
}
