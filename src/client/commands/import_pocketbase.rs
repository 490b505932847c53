//! `cronq import-pocketbase FILE`: sends the records of a PocketBase
//! `data.db` to the daemon in `import` requests
//! (`bridge::pocketbase::import`) and prints what became of them: a
//! summary and every refused, skipped or dead record, or with `--json`
//! the report as one JSON object.
//!
//! Exit codes: 0 when no record was refused; 1 when some were (the report
//! names them) or the daemon refused a batch; 2 when the file cannot be
//! read as a PocketBase database; 3 when the daemon cannot be reached.

use std::process::ExitCode;
use std::time::Duration;

use super::super::args::{GlobalArgs, ImportPocketbaseArgs};
use super::super::request::{Cmd, ImportArgs};
use super::super::{exit, print, socket};
use crate::bridge::pocketbase::import::{self, ImportError, Options, Report};

/// How long one batch may take to be answered unless `--timeout` says.
const BATCH_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(global: &GlobalArgs, args: &ImportPocketbaseArgs) -> ExitCode {
    let path = match socket::resolve(global.socket.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("cronq: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let timeout = match global.timeout {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None => Some(BATCH_TIMEOUT),
    };
    let options = Options {
        file: args.file.clone(),
        collection: args.collection.clone(),
        dry_run: args.dry_run,
        include_reserved: args.include_reserved,
        delete: args.delete,
        reservation: Duration::from_secs(60 * args.reservation_timeout),
    };
    let mut send = |args: &ImportArgs| {
        let answer = socket::request(&path, Cmd::Import(args.clone()), timeout)
            .map_err(|e| ImportError::Daemon(e.to_string()))?;
        if !answer.ok() {
            let (code, message) = answer.error();
            return Err(ImportError::Refused { code, message });
        }
        Ok(answer.value)
    };
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let (report, result) = import::run(&options, now, &mut send, &mut |warning| {
        eprintln!("cronq: warning: {warning}")
    });
    if global.json {
        print(&serde_json::to_string(&report).unwrap_or_default());
    } else if report.read > 0 || result.is_ok() {
        print(&render(&report));
    }
    match result {
        Err(e) => {
            eprintln!("cronq: {e}");
            ExitCode::from(match e {
                ImportError::File(_) => exit::USAGE,
                ImportError::Refused { .. } => exit::REFUSED,
                ImportError::Daemon(_) => exit::UNREACHABLE,
            })
        }
        Ok(()) if report.refused > 0 => ExitCode::from(exit::REFUSED),
        Ok(()) => ExitCode::SUCCESS,
    }
}

/// The report at a terminal.
pub fn render(report: &Report) -> String {
    let stored = if report.dry_run {
        "would be stored"
    } else {
        "stored as jobs"
    };
    let mut out = format!(
        "{}, collection {}{}:\n",
        report.file,
        report.collection,
        if report.dry_run {
            " (dry run: nothing stored or deleted)"
        } else {
            ""
        }
    );
    let mut line = |n: u64, what: &str| out.push_str(&format!("  {n:>7} {what}\n"));
    line(report.read, "records read");
    line(report.stored, stored);
    if report.dead > 0 {
        line(
            report.dead,
            "of them dead: their attempts were used up in PocketBase (`cronq retry` runs one again)",
        );
    }
    line(
        report.already,
        "taken over before (by an earlier import or the follower)",
    );
    line(report.refused, "refused (left in PocketBase)");
    line(
        report.skipped,
        "skipped: reserved in PocketBase a moment ago (--include-reserved takes them)",
    );
    if !report.dry_run {
        line(report.deleted, "deleted from the file");
    }
    for (title, notes) in [
        ("refused", &report.refusals),
        ("dead", &report.deaths),
        ("skipped", &report.skips),
    ] {
        if !notes.is_empty() {
            out.push_str(&format!("{title}:\n"));
            for note in notes {
                out.push_str(&format!("  {}: {}\n", note.id, note.reason));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::pocketbase::import::Note;

    #[test]
    fn the_summary_names_every_refusal() {
        let report = Report {
            file: "pb_data/data.db".into(),
            collection: "queues".into(),
            read: 3,
            stored: 1,
            refused: 1,
            skipped: 1,
            deleted: 1,
            refusals: vec![Note {
                id: "a2".into(),
                reason: "payload: missing".into(),
            }],
            skips: vec![Note {
                id: "a3".into(),
                reason: "reserved".into(),
            }],
            ..Report::default()
        };
        let text = render(&report);
        assert!(
            text.starts_with("pb_data/data.db, collection queues:\n"),
            "{text}"
        );
        assert!(text.contains("        1 stored as jobs\n"), "{text}");
        assert!(
            text.contains("refused:\n  a2: payload: missing\n"),
            "{text}"
        );
        assert!(text.contains("skipped:\n  a3: reserved\n"), "{text}");
        assert!(!text.contains("dead"), "{text}");
    }
}
