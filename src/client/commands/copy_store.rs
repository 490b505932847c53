//! `cronq copy-store --from DB --to DB`: moves a queue from one machine's
//! SQLite file to a PostgreSQL database many share, or back, without a
//! daemon. Both databases are opened through the store (`store::open`, the
//! daemon's own way in, which also gives a new database its tables) and
//! `store::copy` does the copying; this module checks that it is safe,
//! and reports.
//!
//! Safe means no job can run on both sides: running jobs belong to a live
//! daemon, so the copy refuses while the source has any, and daemons alive
//! on either database would claim what is being copied, so it refuses
//! while there are any unless `--force`.
//!
//! Exit codes: 0 when everything was copied (or was there already); 1 when
//! the copy was refused, or some jobs could not be copied (the report
//! names them); 2 for a bad `--from` or `--to`; 3 when a database cannot
//! be opened or fails during the copy.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use super::super::args::{CopyStoreArgs, GlobalArgs};
use super::super::{exit, print};
use crate::clock::{Clock, SystemClock};
use crate::config::Database;
use crate::queue::instance::Instance;
use crate::store::copy::{self, CopyReport};
use crate::store::instance::InstanceRow;
use crate::store::job::JobStatus;
use crate::store::postgres::{DATABASE_URL_VAR, PgSettings};
use crate::store::{JobDefaults, Store, StoreError};

/// Why a copy did not happen, or did not finish.
#[derive(Debug, thiserror::Error)]
enum CopyError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Store(String),
}

impl CopyError {
    fn exit_code(&self) -> u8 {
        match self {
            CopyError::Usage(_) => exit::USAGE,
            CopyError::Refused(_) => exit::REFUSED,
            CopyError::Store(_) => exit::UNREACHABLE,
        }
    }
}

pub fn run(global: &GlobalArgs, args: &CopyStoreArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cronq: cannot start the async runtime: {e}");
            return ExitCode::from(exit::UNREACHABLE);
        }
    };
    match runtime.block_on(copy_store(args)) {
        Ok((report, from, to)) => {
            if global.json {
                print(&to_json(&report, &from, &to).to_string());
            } else {
                print(&render(&report, &from, &to));
            }
            match report.invalid.is_empty() {
                true => ExitCode::SUCCESS,
                false => ExitCode::from(exit::REFUSED),
            }
        }
        Err(e) => {
            eprintln!("cronq: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Opens both, checks, copies; the report and both databases as shown.
async fn copy_store(args: &CopyStoreArgs) -> Result<(CopyReport, String, String), CopyError> {
    let from_db = endpoint("--from", &args.from)?;
    let to_db = endpoint("--to", &args.to)?;
    if same_database(&from_db, &to_db) {
        return Err(CopyError::Usage(format!(
            "--from and --to name the same database ({from_db})"
        )));
    }
    if let Database::Sqlite(path) = &from_db
        && !path.exists()
    {
        return Err(CopyError::Usage(format!(
            "--from: there is no database file {}",
            path.display()
        )));
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let from = open("--from", &from_db, &clock).await?;
    // A dry run creates no file: a target that does not exist yet is as
    // good as an empty one, so it runs against an empty scratch file.
    let scratch = match &to_db {
        Database::Sqlite(path) if args.dry_run && !path.exists() => Some(Scratch::new()?),
        _ => None,
    };
    let to = match &scratch {
        Some(dir) => open("--to", &Database::Sqlite(dir.0.join("cronq.db")), &clock).await?,
        None => open("--to", &to_db, &clock).await?,
    };
    let result = checked_copy(&from, &to, &from_db, &to_db, args, clock.now_ms()).await;
    from.close().await;
    to.close().await;
    drop(scratch);
    Ok((result?, from_db.to_string(), to_db.to_string()))
}

/// A directory of this process's own under the temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, CopyError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("cronq-copy-store-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| {
            CopyError::Store(format!(
                "cannot make a scratch directory {}: {e}",
                dir.display()
            ))
        })?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn checked_copy(
    from: &Store,
    to: &Store,
    from_db: &Database,
    to_db: &Database,
    args: &CopyStoreArgs,
    now: i64,
) -> Result<CopyReport, CopyError> {
    let failed = |e: StoreError| CopyError::Store(e.to_string());
    let running: u64 = from
        .counts(now)
        .await
        .map_err(failed)?
        .values()
        .filter_map(|by| by.get(&JobStatus::Running))
        .sum();
    if running > 0 {
        return Err(CopyError::Refused(format!(
            "{running} jobs are running on {from_db}; copy-store copies only jobs that wait or \
             are dead, so that no job runs on both databases: stop the daemons first (they hand \
             back the jobs they hold as they stop; the jobs of a daemon that was killed are \
             handed back when cronq next starts on this database)"
        )));
    }
    if !args.force {
        for (store, db, which) in [(from, from_db, "--from"), (to, to_db, "--to")] {
            let alive = alive(store, now).await.map_err(failed)?;
            if !alive.is_empty() {
                return Err(CopyError::Refused(format!(
                    "{} daemon(s) are alive on {db} ({which}): {}; they would claim jobs as they \
                     are copied, and a job would run on both databases: stop them first, or pass \
                     --force",
                    alive.len(),
                    alive
                        .iter()
                        .map(|r| format!("{} pid {} (instance {})", r.host, r.pid, r.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    copy::copy(from, to, args.dry_run, now)
        .await
        .map_err(failed)
}

/// The registered daemons of `store` that are alive, judged as a daemon
/// would judge them (heartbeat within JOB_RESERVATION_TIMEOUT, and on this
/// host a live process).
async fn alive(store: &Store, now: i64) -> Result<Vec<InstanceRow>, StoreError> {
    let me = Instance::current(now);
    let timeout_ms = reservation_timeout_ms();
    let shared = store.shared();
    Ok(store
        .instances()
        .await?
        .into_iter()
        .filter(|row| !me.judges_dead(row, now, timeout_ms, shared))
        .collect())
}

/// JOB_RESERVATION_TIMEOUT (minutes, default 5), as the daemons read it;
/// a value they would refuse counts as the default.
fn reservation_timeout_ms() -> i64 {
    let minutes = std::env::var("JOB_RESERVATION_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|m| (1..=7 * 24 * 60).contains(m))
        .unwrap_or(5);
    minutes * 60_000
}

/// A `--from` or `--to`: a postgres:// URL, else a SQLite file's path.
fn endpoint(flag: &str, text: &str) -> Result<Database, CopyError> {
    if text.trim().is_empty() {
        return Err(CopyError::Usage(format!(
            "{flag}: give a database file or a postgres:// URL"
        )));
    }
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        return PgSettings::parse(text, &env)
            .map(Database::Postgres)
            .map_err(|e| CopyError::Usage(e.to_string().replace(DATABASE_URL_VAR, flag)));
    }
    if text.contains("://") {
        return Err(CopyError::Usage(format!(
            "{flag}: {text:?} is neither a file nor a postgres:// URL"
        )));
    }
    Ok(Database::Sqlite(PathBuf::from(text)))
}

fn same_database(a: &Database, b: &Database) -> bool {
    match (a, b) {
        (Database::Sqlite(a), Database::Sqlite(b)) => {
            a == b
                || (a.canonicalize().ok().is_some()
                    && a.canonicalize().ok() == b.canonicalize().ok())
        }
        (Database::Postgres(_), Database::Postgres(_)) => a.to_string() == b.to_string(),
        _ => false,
    }
}

async fn open(flag: &str, db: &Database, clock: &Arc<dyn Clock>) -> Result<Store, CopyError> {
    crate::store::open(db, JobDefaults::default(), clock.clone())
        .await
        .map_err(|e| {
            CopyError::Store(format!(
                "{flag}: {}",
                e.to_string().replace(DATABASE_URL_VAR, flag)
            ))
        })
}

/// The report as `--json` prints it.
fn to_json(report: &CopyReport, from: &str, to: &str) -> serde_json::Value {
    json!({
        "ok": true,
        "from": from,
        "to": to,
        "dry_run": report.dry_run,
        "jobs": report.jobs,
        "switches": report.switches,
        "runs": report.runs,
        "history": report.history,
        "invalid": report.invalid,
    })
}

/// The report at a terminal.
pub fn render(report: &CopyReport, from: &str, to: &str) -> String {
    let (verb, done) = match report.dry_run {
        true => ("would copy", "would be copied"),
        false => ("copied", "copied"),
    };
    let j = &report.jobs;
    let mut out = format!(
        "{verb} from {from} to {to}:\n  jobs: {} {done} ({} pending, {} scheduled, {} dead); \
         {} there already",
        j.copied.total(),
        j.copied.pending,
        j.copied.scheduled,
        j.copied.dead,
        j.present
    );
    if j.key_held > 0 {
        out.push_str(&format!(
            "; {} not copied: a waiting or running job there holds its unique key",
            j.key_held
        ));
    }
    if j.invalid > 0 {
        out.push_str(&format!(
            "; {} not copied, as they are not jobs:",
            j.invalid
        ));
        for why in &report.invalid {
            out.push_str(&format!("\n    {why}"));
        }
    }
    let s = &report.switches;
    out.push_str(&format!(
        "\n  cron switches: {} {done}; {} there already",
        s.copied, s.present
    ));
    if s.kept > 0 {
        out.push_str(&format!(
            "; {} kept as the target has them the other way",
            s.kept
        ));
    }
    out.push_str(&format!(
        "\n  cron runs: {} {done}; {} there already",
        report.runs.copied, report.runs.present
    ));
    out.push_str(&format!(
        "\n  finished jobs (history): {} {done}; {} there already\n",
        report.history.copied, report.history.present
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn endpoints_are_files_or_postgres_urls() {
        assert!(matches!(
            endpoint("--from", "cronq.db"),
            Ok(Database::Sqlite(p)) if p == Path::new("cronq.db")
        ));
        assert!(matches!(
            endpoint("--to", "postgres://cronq@db.example:5432/cronq"),
            Ok(Database::Postgres(_))
        ));
        let bad = endpoint(
            "--to",
            "postgres://cronq@db.example:5432/cronq?sslmode=sometimes",
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("--to") && !bad.contains(DATABASE_URL_VAR),
            "{bad}"
        );
        let other = endpoint("--to", "mysql://x/y").unwrap_err().to_string();
        assert!(other.contains("neither a file nor"), "{other}");
    }

    #[test]
    fn a_report_says_what_was_copied() {
        let mut report = CopyReport::default();
        report.jobs.copied.pending = 2;
        report.jobs.copied.dead = 1;
        report.jobs.key_held = 1;
        report.runs.copied = 4;
        report.switches.present = 1;
        report.history.copied = 7;
        report.history.present = 2;
        assert_eq!(
            render(&report, "cronq.db", "postgres://cronq@db:5432/cronq"),
            "copied from cronq.db to postgres://cronq@db:5432/cronq:\n  jobs: 3 copied (2 pending, \
             0 scheduled, 1 dead); 0 there already; 1 not copied: a waiting or running job there \
             holds its unique key\n  cron switches: 0 copied; 1 there already\n  cron runs: 4 \
             copied; 0 there already\n  finished jobs (history): 7 copied; 2 there already\n"
        );
        report.dry_run = true;
        assert!(
            render(&report, "a", "b")
                .starts_with("would copy from a to b:\n  jobs: 3 would be copied")
        );
    }
}
