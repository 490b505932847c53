//! The command line: every subcommand and flag, as clap derive types.
//!
//! The definitions live in the library rather than in `main.rs` so that
//! `cronq completions` can build its scripts from the same `clap::Command`
//! and unit tests can parse argument lists without running the binary.
//! Flags are named after the protocol's arguments (`--unique-key` for
//! `unique_key`, `--older-than` for `older_than`) so a reader of PROTOCOL.md
//! can guess them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// cronq: scheduled tasks and a persistent job queue on SQLite.
#[derive(Debug, Parser)]
#[command(name = "cronq", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every client command understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Admin socket of the daemon [default: $RUNTIME_DIRECTORY/admin.sock,
    /// else /run/cronq/admin.sock if it exists, else ./cronq-data/admin.sock]
    #[arg(long, global = true, env = "CRONQ_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the daemon's answer line as it is, instead of a table
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for the daemon's answer; 0 waits forever
    /// [default: 30, or 300 for `trigger`]. Give it before the subcommand:
    /// after `enqueue`, `--timeout` is the job's own timeout.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (reads its settings from the environment)
    Daemon,
    /// Validate a crons file without a daemon [default: the daemon's crons file]
    Check {
        /// The crons file to check [default: $CRONQ_CRONS, else
        /// $CONFIGURATION_DIRECTORY/crons.toml, else /etc/cronq/crons.toml if
        /// /etc/cronq exists, else ./crons.toml]
        file: Option<PathBuf>,
    },
    /// Check that the daemon answers
    Ping,
    /// Show the daemon's version, uptime, workers and queue counts
    Status,
    /// Add a job to the queue (or a batch of jobs with --file)
    Enqueue(EnqueueArgs),
    /// Take a PocketBase collection's records over as jobs, from its data.db
    /// (each record once, however often this runs)
    ImportPocketbase(ImportPocketbaseArgs),
    /// Copy the waiting and dead jobs, cron switches, run history and
    /// history of finished jobs of one database into another (SQLite file
    /// to PostgreSQL, or back), without a daemon; again, it copies nothing
    /// twice
    CopyStore(CopyStoreArgs),
    /// List jobs, newest first
    Jobs(JobsArgs),
    /// Show one job and its last failures
    Job {
        /// The job's id
        id: String,
    },
    /// Say why a job is not running now
    Explain {
        /// The job's id
        id: String,
    },
    /// Make a dead or scheduled job pending again, with its attempts reset;
    /// or, with filter flags instead of an id, up to 10,000 such jobs
    Retry {
        /// The job's id
        #[arg(required_unless_present_any = FILTER_FLAGS)]
        id: Option<String>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete a job that is not running (--force stops a running one); or,
    /// with filter flags instead of an id, up to 10,000 waiting jobs
    Cancel {
        /// The job's id
        #[arg(required_unless_present_any = FILTER_FLAGS)]
        id: Option<String>,
        /// Stop the job if it is running: its handler is told to stop (a
        /// command's processes are ended) and the job ends cancelled
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Delete dead jobs (their history records stay)
    Purge {
        /// Only those last updated at least this many seconds ago
        #[arg(long, value_name = "SECS")]
        older_than: Option<u64>,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Stop claiming jobs of a type, or of every type (running jobs finish;
    /// the pause outlives restarts)
    Pause {
        /// The job type [default: every type]
        job_type: Option<String>,
    },
    /// Claim jobs of a paused type again, or lift every pause
    Resume {
        /// The job type [default: every pause]
        job_type: Option<String>,
    },
    /// List the crons with their next and last runs
    Crons,
    /// Show one cron and its recent runs
    Cron {
        /// The cron's id
        id: String,
        /// How many runs to show (the daemon's default is 20)
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Run a cron now, whether it is enabled or not
    Trigger {
        /// The cron's id
        id: String,
        /// Then wait until the job the run enqueued has ended; the exit
        /// code says how it ended (0 succeeded, 1 dead or cancelled, 4
        /// still not ended at the timeout)
        #[arg(long)]
        wait: bool,
        /// With --wait: seconds to wait for the job, 1 to 86400
        #[arg(long, value_name = "SECS", requires = "wait", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
    },
    /// Wait until jobs have ended; the exit code says how (0 all succeeded,
    /// 1 one went dead or was cancelled, 4 one had not ended at the timeout)
    Wait {
        /// The jobs' ids
        #[arg(required = true)]
        ids: Vec<String>,
        /// Seconds to wait for all of them together, 1 to 86400
        #[arg(long, value_name = "SECS", default_value_t = 60,
              value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout: u64,
    },
    /// Print what happens to jobs and crons, one line per event, until
    /// interrupted (--json: the event lines as the daemon sends them)
    Watch(WatchArgs),
    /// Enable a cron (persists across restarts)
    Enable {
        /// The cron's id
        id: String,
    },
    /// Disable a cron (persists across restarts)
    Disable {
        /// The cron's id
        id: String,
    },
    /// Show the next fire times of a cron expression (needs no daemon)
    Next(NextArgs),
    /// Show per-type queue figures and latencies
    Stats,
    /// Print the metrics in Prometheus text format
    Metrics,
    /// List the daemons sharing the database, with their workers and clocks
    Instances,
    /// Re-read the crons file
    Reload,
    /// Change the daemon's log level without a restart
    LogLevel {
        /// The new level
        level: LogLevel,
    },
    /// A live dashboard of the queue, workers and crons (`?` lists the keys, `q` quits)
    Top,
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct EnqueueArgs {
    /// The job's type: the handler that runs it (email, data_processing, command, noop, ...)
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub job_type: Option<String>,

    /// The job's data, a JSON object; `-` reads it from stdin [default: {}]
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,

    /// A JSON-lines file of whole jobs ({"name", "payload", ...} per line),
    /// stored all or nothing; `-` reads stdin
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["data", "name", "description", "delay", "at", "priority", "retries", "timeout_s", "unique_key"]
    )]
    pub file: Option<PathBuf>,

    /// The job's name [default: its type]
    #[arg(long)]
    pub name: Option<String>,

    /// A description for people reading the queue
    #[arg(long)]
    pub description: Option<String>,

    /// Run no sooner than this many seconds from now
    #[arg(long, value_name = "SECS", conflicts_with = "at")]
    pub delay: Option<u64>,

    /// Run no sooner than this time (RFC 3339, e.g. 2026-01-01T02:00:00Z)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,

    /// Higher runs first [default: 0]
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub priority: Option<i64>,

    /// Retries after the first attempt [default: the daemon's JOB_MAX_RETRIES]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,

    /// Seconds one attempt may take [default: the daemon's JOB_TIMEOUT_SECONDS]
    #[arg(long = "timeout", value_name = "SECS")]
    pub timeout_s: Option<u32>,

    /// Store nothing if a job with this key is pending, scheduled or running
    #[arg(long, value_name = "K")]
    pub unique_key: Option<String>,

    /// With --file: a line per job besides the summary
    #[arg(long, short = 'v', requires = "file")]
    pub verbose: bool,

    /// Then wait until the job has ended; the exit code says how it ended
    /// (0 succeeded, 1 dead or cancelled, 4 still not ended at the wait's
    /// timeout)
    #[arg(long, conflicts_with = "file")]
    pub wait: bool,

    /// With --wait: seconds to wait, 1 to 86400 (--timeout is the job's
    /// own timeout)
    #[arg(long, value_name = "SECS", requires = "wait", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub wait_timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Only events of jobs of this type (repeat for several)
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only events of this job
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,
    /// Only events of this cron and of the jobs it enqueued
    #[arg(long, value_name = "ID")]
    pub cron: Option<String>,
    /// Only these events (repeat for several): enqueued, started, progress,
    /// succeeded, failed, dead, cancelled, cron_fired, cron_skipped,
    /// paused, resumed
    #[arg(long = "event", value_name = "NAME")]
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CopyStoreArgs {
    /// The database to copy from: a SQLite file (cronq.db), or a
    /// postgres:// URL as CRONQ_DATABASE_URL takes it
    #[arg(long, value_name = "DB")]
    pub from: String,
    /// The database to copy into, in the same forms (a file is created if
    /// missing; a PostgreSQL database gets cronq's tables)
    #[arg(long, value_name = "DB")]
    pub to: String,
    /// Count what would be copied, changing nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Copy even though daemons are alive on either database
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImportPocketbaseArgs {
    /// PocketBase's database, PATH/pb_data/data.db (PocketBase may be running)
    pub file: PathBuf,
    /// The collection holding the jobs
    #[arg(long, default_value = "queues", value_name = "NAME")]
    pub collection: String,
    /// Check every record and report, storing and deleting nothing
    #[arg(long, conflicts_with = "delete")]
    pub dry_run: bool,
    /// Also take records PocketBase reserved less than JOB_RESERVATION_TIMEOUT
    /// ago, which may still be running there
    #[arg(long)]
    pub include_reserved: bool,
    /// Delete each record from the file once cronq has stored it (opens the
    /// file for writing)
    #[arg(long)]
    pub delete: bool,
    /// Minutes after which a PocketBase reservation has lapsed
    #[arg(long, env = "JOB_RESERVATION_TIMEOUT", default_value_t = 5, value_name = "MIN",
          value_parser = clap::value_parser!(u64).range(1..=10080))]
    pub reservation_timeout: u64,
}

#[derive(Debug, Clone, Args)]
pub struct JobsArgs {
    /// Only jobs of this type
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: Option<String>,
    /// Only jobs in this state
    #[arg(long)]
    pub status: Option<JobStatus>,
    /// Only jobs created at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only jobs created before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// At most this many jobs (the daemon's default is 50, its maximum 1000)
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// The cursor printed after the previous page
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
    /// Only jobs of this name
    #[arg(long)]
    pub name: Option<String>,
    /// Only jobs this cron enqueued
    #[arg(long = "cron-id", value_name = "CRON")]
    pub cron_id: Option<String>,
}

/// The filter flags of `retry`, `cancel` and `purge` (PROTOCOL.md's
/// `filter`), used instead of a job id.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct FilterArgs {
    /// Only jobs in this state (retry: dead, scheduled; cancel: pending,
    /// scheduled, dead; purge: dead)
    #[arg(long)]
    pub status: Option<JobStatus>,
    /// Only jobs of this type
    #[arg(long = "type", value_name = "TYPE")]
    pub job_type: Option<String>,
    /// Only jobs of this name
    #[arg(long)]
    pub name: Option<String>,
    /// Only jobs this cron enqueued
    #[arg(long = "cron-id", value_name = "CRON")]
    pub cron_id: Option<String>,
    /// Only jobs created at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only jobs created before this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The cursor printed after the previous call, to go on
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
}

/// The flags that make `retry` and `cancel` take a filter instead of an id.
pub const FILTER_FLAGS: [&str; 6] = ["status", "job_type", "name", "cron_id", "since", "until"];

impl FilterArgs {
    /// Whether any filter flag (not counting `--after`) was given.
    pub fn any(&self) -> bool {
        self.status.is_some()
            || self.job_type.is_some()
            || self.name.is_some()
            || self.cron_id.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }
}

#[derive(Debug, Clone, Args)]
pub struct NextArgs {
    /// A cron expression (5 fields, or @hourly, @daily, ...); quote it
    pub expr: String,
    /// How many fire times to show
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub count: u32,
    /// Time zone to evaluate in [default: CRON_TZ, else the system's]
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Start after this time instead of now (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub after: Option<String>,
}

/// The job states of PROTOCOL.md, so a typo is a usage error here rather
/// than a round trip to the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobStatus {
    Pending,
    Scheduled,
    Running,
    Dead,
    /// Finished: from the history.
    Succeeded,
    /// Finished: from the history.
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Scheduled => "scheduled",
            JobStatus::Running => "running",
            JobStatus::Dead => "dead",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// The levels `log_level` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn enqueue_needs_a_type_or_a_file_not_both() {
        assert!(Cli::try_parse_from(["cronq", "enqueue"]).is_err());
        assert!(Cli::try_parse_from(["cronq", "enqueue", "noop"]).is_ok());
        assert!(Cli::try_parse_from(["cronq", "enqueue", "--file", "x.jsonl"]).is_ok());
        assert!(Cli::try_parse_from(["cronq", "enqueue", "noop", "--file", "x"]).is_err());
        assert!(
            Cli::try_parse_from(["cronq", "enqueue", "noop", "--delay", "1", "--at", "x"]).is_err()
        );
    }

    #[test]
    fn timeout_before_the_subcommand_waits_after_enqueue_limits_the_job() {
        let cli = Cli::try_parse_from([
            "cronq",
            "--timeout",
            "9",
            "enqueue",
            "noop",
            "--timeout",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.global.timeout, Some(9));
        let Command::Enqueue(args) = cli.command else {
            panic!("not enqueue")
        };
        assert_eq!(args.timeout_s, Some(5));
    }

    #[test]
    fn top_takes_the_socket_like_every_command() {
        let cli = Cli::try_parse_from(["cronq", "top", "--socket", "/tmp/s"]).unwrap();
        assert!(matches!(cli.command, Command::Top));
        assert_eq!(cli.global.socket, Some(PathBuf::from("/tmp/s")));
    }

    #[test]
    fn import_pocketbase_takes_a_file_and_never_deletes_on_a_dry_run() {
        let cli = Cli::try_parse_from(["cronq", "import-pocketbase", "pb_data/data.db", "--json"])
            .unwrap();
        let Command::ImportPocketbase(args) = cli.command else {
            panic!("not import-pocketbase")
        };
        assert_eq!(args.file, PathBuf::from("pb_data/data.db"));
        assert_eq!(args.collection, "queues");
        assert!(cli.global.json && !args.delete && !args.dry_run);
        assert!(
            Cli::try_parse_from(["cronq", "import-pocketbase", "x", "--dry-run", "--delete"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["cronq", "import-pocketbase"]).is_err());
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["cronq", "jobs", "--json", "--socket", "/tmp/s"]).unwrap();
        assert!(cli.global.json);
        assert_eq!(cli.global.socket, Some(PathBuf::from("/tmp/s")));
    }
}
