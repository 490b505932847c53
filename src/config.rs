//! Settings from the environment, validated once at start-up.
//!
//! Every variable is read here and nowhere else, so a bad value stops the
//! daemon before it touches the database, with a message that names the
//! variable. The names and defaults are those of the system cronq replaces
//! (`JOB_MAX_WORKERS`, `ENABLE_SYSTEM_QUEUE_CRON`, ...), plus cronq's own.
//! Settings are read from a map rather than `std::env` directly so that
//! tests and embedders can build a `Config` without touching the process.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::handlers::command::never_allowed;
use crate::store::limits::{ByteSize, MAX_TASKS};
use crate::store::postgres::{DATABASE_URL_VAR, PgSettings, SettingsError};

/// A bad setting: which variable, what it held, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: String,
        value: String,
        reason: String,
    },
    /// The queue's database (or its WAL, shared-memory or journal file)
    /// would lie inside the data handler's folder.
    #[error(
        "CRONQ_DB={db:?} lies inside DATA_DIR={data_dir:?}{part}: a data_processing job could read or overwrite the queue's own database there; move CRONQ_DB or DATA_DIR so that neither holds the other"
    )]
    DbInsideDataDir {
        db: String,
        data_dir: String,
        /// Which of the database's files, when not the database itself.
        part: String,
    },
    /// `CRONQ_DATABASE_URL`, or the password behind it, cannot be used; the
    /// message names the variable and never holds the password.
    #[error(transparent)]
    DatabaseUrl(#[from] SettingsError),
    /// Several bad settings of one part (the SMTP ones), all named at once.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<ConfigError>),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// journald when running under it, else text.
    Auto,
    Text,
    Json,
    Journald,
}

/// How the email handler talks to its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    None,
    StartTls,
    Tls,
}

/// The email handler's settings. The password is kept out of `Debug`.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: SmtpTls,
    /// `MAIL_FROM`, or `SMTP_FROM_NAME <SMTP_FROM_EMAIL>` from the replaced system.
    pub from: Option<String>,
    pub templates_dir: PathBuf,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("from", &self.from)
            .field("templates_dir", &self.templates_dir)
            .finish()
    }
}

/// Which database holds the queue: `CRONQ_DATABASE_URL` names a
/// PostgreSQL server, else the SQLite file `CRONQ_DB` (the default).
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(PgSettings),
}

/// The file, or the URL without its password: what logs may show.
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(settings) => write!(f, "{settings}"),
        }
    }
}

/// The PocketBase the bridge follows and the data handler reads
/// (`CRONQ_POCKETBASE_*`). The password is kept out of `Debug`.
#[derive(Clone)]
pub struct PocketBaseConfig {
    /// `CRONQ_POCKETBASE_URL`, e.g. `http://127.0.0.1:8090`.
    pub url: url::Url,
    /// A superuser's email (`CRONQ_POCKETBASE_EMAIL`).
    pub email: String,
    /// From `CRONQ_POCKETBASE_PASSWORD`, `CRONQ_POCKETBASE_PASSWORD_FILE`
    /// or the systemd credential `pocketbase_password`.
    pub password: String,
    /// `CRONQ_POCKETBASE_COLLECTION`, the collection followed (`queues`).
    pub collection: String,
    /// `CRONQ_POCKETBASE_FOLLOW`: whether the daemon takes the collection
    /// over (default true); false leaves only the data handler's source.
    pub follow: bool,
}

impl fmt::Debug for PocketBaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PocketBaseConfig")
            .field("url", &self.url.as_str())
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("collection", &self.collection)
            .field("follow", &self.follow)
            .finish()
    }
}

/// A token bucket setting: `rate` jobs per second with room for `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub rate: f64,
    pub burst: u32,
}

/// A per-type start rate (JOB_TYPE_RATE): at most `starts` in any
/// rolling window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeRate {
    pub starts: u32,
    pub per: Duration,
}

impl TypeRate {
    /// "second", "minute" or "hour".
    pub fn unit(&self) -> &'static str {
        match self.per.as_secs() {
            1 => "second",
            60 => "minute",
            _ => "hour",
        }
    }

    /// "s", "m" or "h", as written in JOB_TYPE_RATE.
    pub fn unit_letter(&self) -> &'static str {
        &self.unit()[..1]
    }
}

/// Everything the daemon reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    // Queue.
    pub system_queue_cron: bool,
    pub max_workers: usize,
    pub batch_size: usize,
    pub max_retries: u32,
    pub job_timeout: Duration,
    pub reservation_timeout: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_pending: u64,
    pub enqueue_rate: Option<RateLimit>,

    // Finished jobs and per-type limits (issue 14).
    /// JOB_HISTORY: whether jobs that end leave a record.
    pub history: bool,
    /// JOB_HISTORY_RETENTION: how long a record is kept.
    pub history_retention: Duration,
    /// JOB_HISTORY_MAX: records kept at most.
    pub history_max: u64,
    /// JOB_DEAD_RETENTION: how long a dead job stays in the queue; `None`
    /// (the default) until it is retried, cancelled or purged.
    pub dead_retention: Option<Duration>,
    /// JOB_TYPE_CONCURRENCY: at most this many jobs of a type at once.
    pub type_concurrency: std::collections::BTreeMap<String, usize>,
    /// JOB_TYPE_RATE: at most so many starts of a type per window.
    pub type_rate: std::collections::BTreeMap<String, TypeRate>,

    // Logging.
    pub log_level: String,
    pub log_format: LogFormat,

    // Paths.
    pub database: Database,
    pub socket_path: PathBuf,
    pub crons_path: PathBuf,
    pub data_dir: PathBuf,

    // Crons.
    pub cron_tz: Option<String>,
    pub clear_exports_cron: bool,
    pub export_retention_days: u32,
    /// Every `ENABLE_*` variable as given; a file cron `my_job` is switched
    /// by `ENABLE_MY_JOB`, read when the crons file is loaded.
    pub enable_vars: HashMap<String, String>,

    // Handlers.
    pub smtp: SmtpConfig,
    pub command_allow: Vec<PathBuf>,
    /// DATA_MAX_BYTES: what DATA_DIR may hold.
    pub data_max_bytes: u64,
    /// DATA_MAX_GROUPS: the groups one `aggregate` may hold in memory.
    pub data_max_groups: usize,
    /// The variables a command job may set (JOB_COMMAND_ENV_ALLOW).
    pub command_env_allow: Vec<String>,
    /// Each command job's caps (JOB_COMMAND_MEMORY_MAX, JOB_COMMAND_TASKS_MAX).
    pub command_memory_max: Option<ByteSize>,
    pub command_tasks_max: Option<u64>,

    // Admin socket.
    pub max_request_bytes: usize,
    pub max_payload_bytes: usize,
    pub max_connections: usize,
    /// Of `max_connections`, how many one uid may hold (root and the
    /// daemon's own user have a reserve beyond both; see `admin::slots`).
    pub max_connections_per_uid: usize,
    pub idle_timeout: Duration,
    pub socket_group: Option<String>,
    pub metrics_textfile: Option<PathBuf>,

    // Bridge.
    /// Set when `CRONQ_POCKETBASE_URL` is.
    pub pocketbase: Option<PocketBaseConfig>,
}

/// Largest batch of jobs one `enqueue` request may carry.
pub const MAX_BATCH_JOBS: usize = 10_000;

/// DATA_MAX_BYTES when unset: 10 GiB. (Whatever it says, a data job also
/// stops before DATA_DIR's disk drops below 5% free, at most 1 GiB.)
pub const DEFAULT_DATA_MAX_BYTES: u64 = 10 << 30;

/// JOB_HISTORY_RETENTION when unset: 7 days.
pub const DEFAULT_HISTORY_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// JOB_HISTORY_MAX when unset.
pub const DEFAULT_HISTORY_MAX: u64 = 1_000_000;

/// DATA_MAX_GROUPS when unset.
pub const DEFAULT_DATA_MAX_GROUPS: usize = 100_000;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Reads settings from a map of variables, as tests and embedders that
    /// keep settings elsewhere have them.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let env = Env { vars };
        let state_dir = env
            .raw("STATE_DIRECTORY")
            .map(|s| first_path(&s))
            .unwrap_or_else(|| PathBuf::from("cronq-data"));
        let runtime_dir = env
            .raw("RUNTIME_DIRECTORY")
            .map(|s| first_path(&s))
            .unwrap_or_else(|| PathBuf::from("cronq-data"));
        let config_dir = env
            .raw("CONFIGURATION_DIRECTORY")
            .map(|s| first_path(&s))
            .unwrap_or_else(|| PathBuf::from("."));

        let socket_path = env
            .path("CRONQ_SOCKET")?
            .unwrap_or_else(|| runtime_dir.join("admin.sock"));
        check_socket_path(&socket_path)?;

        // Every bad SMTP setting is reported at once: fixing them one
        // restart at a time is how an operator learns to hate a daemon.
        let mut smtp_faults = Vec::new();
        let smtp = SmtpConfig {
            host: env.string("SMTP_HOST"),
            port: kept(
                &mut smtp_faults,
                env.parse_range("SMTP_PORT", 1, u16::MAX as u64),
            )
            .flatten()
            .map(|p| p as u16),
            username: env.string("SMTP_USERNAME"),
            password: match env.raw("SMTP_PASSWORD").filter(|p| !p.is_empty()) {
                Some(password) => Some(password),
                None => kept(&mut smtp_faults, env.credential("smtp_password")).flatten(),
            },
            tls: kept(&mut smtp_faults, env.smtp_tls("SMTP_TLS")).unwrap_or(SmtpTls::StartTls),
            from: env.string("MAIL_FROM").or_else(|| {
                let email = env.string("SMTP_FROM_EMAIL")?;
                Some(match env.string("SMTP_FROM_NAME") {
                    Some(name) => format!("{name} <{email}>"),
                    None => email,
                })
            }),
            templates_dir: env
                .path("EMAIL_TEMPLATES_DIR")?
                .unwrap_or_else(|| config_dir.join("templates")),
        };
        match smtp_faults.len() {
            0 => {}
            1 => return Err(smtp_faults.remove(0)),
            _ => return Err(ConfigError::Several(smtp_faults)),
        }

        let max_retries = env.parse_range("JOB_MAX_RETRIES", 0, 100)?.unwrap_or(3) as u32;
        let backoff_base = Duration::from_millis(
            env.parse_range("JOB_BACKOFF_BASE_MS", 1, 86_400_000)?
                .unwrap_or(10_000),
        );
        let backoff_max = Duration::from_millis(
            env.parse_range("JOB_BACKOFF_MAX_MS", 1, 7 * 86_400_000)?
                .unwrap_or(3_600_000),
        );

        let max_connections = env
            .parse_range("CRONQ_MAX_CONNECTIONS", 1, 65_536)?
            .unwrap_or(128) as usize;
        let max_connections_per_uid = env
            .parse_range("CRONQ_MAX_CONNECTIONS_PER_UID", 1, max_connections as u64)?
            .map_or((max_connections / 2).max(1), |n| n as usize);

        Ok(Config {
            system_queue_cron: env.bool("ENABLE_SYSTEM_QUEUE_CRON")?.unwrap_or(true),
            max_workers: env.parse_range("JOB_MAX_WORKERS", 1, 10_000)?.unwrap_or(5) as usize,
            batch_size: env.parse_range("JOB_BATCH_SIZE", 1, 10_000)?.unwrap_or(50) as usize,
            max_retries,
            job_timeout: Duration::from_secs(
                env.parse_range("JOB_TIMEOUT_SECONDS", 1, 86_400)?
                    .unwrap_or(30),
            ),
            reservation_timeout: Duration::from_secs(
                60 * env
                    .parse_range("JOB_RESERVATION_TIMEOUT", 1, 7 * 24 * 60)?
                    .unwrap_or(5),
            ),
            backoff_base,
            backoff_max,
            max_pending: env
                .parse_range("JOB_MAX_PENDING", 1, i64::MAX as u64)?
                .unwrap_or(1_000_000),
            enqueue_rate: env.rate("JOB_ENQUEUE_RATE")?,

            history: env.on_off("JOB_HISTORY")?.unwrap_or(true),
            history_retention: env
                .duration("JOB_HISTORY_RETENTION")?
                .unwrap_or(DEFAULT_HISTORY_RETENTION),
            history_max: env
                .parse_range("JOB_HISTORY_MAX", 1, 1_000_000_000)?
                .unwrap_or(DEFAULT_HISTORY_MAX),
            dead_retention: match env.string("JOB_DEAD_RETENTION") {
                Some(v) if v.eq_ignore_ascii_case("off") => None,
                _ => env.duration("JOB_DEAD_RETENTION")?,
            },
            type_concurrency: env.per_type(
                "JOB_TYPE_CONCURRENCY",
                crate::queue::limits::parse_concurrency,
            )?,
            type_rate: env.per_type("JOB_TYPE_RATE", crate::queue::limits::parse_rate)?,

            log_level: env
                .log_level("LOG_LEVEL")?
                .unwrap_or_else(|| "info".to_string()),
            log_format: env.log_format("LOG_FORMAT")?,

            database: match env.string(DATABASE_URL_VAR) {
                Some(url) => Database::Postgres(PgSettings::parse(&url, &|var| env.string(var))?),
                None => Database::Sqlite(
                    env.path("CRONQ_DB")?
                        .unwrap_or_else(|| state_dir.join("cronq.db")),
                ),
            },
            socket_path,
            crons_path: env
                .path("CRONQ_CRONS")?
                .unwrap_or_else(|| config_dir.join("crons.toml")),
            data_dir: env
                .path("DATA_DIR")?
                .unwrap_or_else(|| state_dir.join("data")),

            cron_tz: env.string("CRON_TZ"),
            clear_exports_cron: env
                .bool("ENABLE_CLEAR_EXPORTS_CRON")?
                .or(env.bool("ENABLE_CLEAR_EXPORT_FILES_CRON")?)
                .unwrap_or(false),
            export_retention_days: match env.parse_range("EXPORT_RETENTION_DAYS", 1, 36_500)? {
                Some(days) => days as u32,
                None => env
                    .parse_range("EXPORT_FILE_EXPIRATION_DAYS", 1, 36_500)?
                    .unwrap_or(7) as u32,
            },
            enable_vars: vars
                .iter()
                .filter(|(k, _)| k.starts_with("ENABLE_"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),

            smtp,
            command_allow: env.path_list("JOB_COMMAND_ALLOW")?,
            data_max_bytes: env
                .bytes("DATA_MAX_BYTES")?
                .unwrap_or(DEFAULT_DATA_MAX_BYTES),
            data_max_groups: env
                .parse_range("DATA_MAX_GROUPS", 1, 100_000_000)?
                .map_or(DEFAULT_DATA_MAX_GROUPS, |n| n as usize),
            command_env_allow: env.env_names("JOB_COMMAND_ENV_ALLOW")?,
            command_memory_max: env.size("JOB_COMMAND_MEMORY_MAX")?,
            command_tasks_max: env.parse_range("JOB_COMMAND_TASKS_MAX", 1, MAX_TASKS)?,

            max_request_bytes: env
                .parse_range("CRONQ_MAX_REQUEST_BYTES", 1024, 1 << 30)?
                .unwrap_or(1 << 20) as usize,
            max_payload_bytes: env
                .parse_range("CRONQ_MAX_PAYLOAD_BYTES", 64, 1 << 30)?
                .unwrap_or(256 << 10) as usize,
            max_connections,
            max_connections_per_uid,
            idle_timeout: Duration::from_secs(
                env.parse_range("CRONQ_IDLE_TIMEOUT_SECONDS", 1, 86_400)?
                    .unwrap_or(300),
            ),
            socket_group: env.string("CRONQ_SOCKET_GROUP"),
            metrics_textfile: env.path("CRONQ_METRICS_TEXTFILE")?,

            pocketbase: pocketbase(&env)?,
        })
    }

    /// The daemon's defaults with the given paths, for tests and embedders.
    /// The defaults, with every file inside `dir`: for tests and embedders.
    pub fn for_dir(dir: &Path) -> Config {
        let mut config = Self::from_vars(&HashMap::new()).expect("the defaults are valid");
        config.database = Database::Sqlite(dir.join("cronq.db"));
        config.socket_path = dir.join("admin.sock");
        config.crons_path = dir.join("crons.toml");
        config.data_dir = dir.join("data");
        config.smtp.templates_dir = dir.join("templates");
        config
    }

    /// `ENABLE_<ID>=false` turns off the cron `id`, as in the replaced system.
    pub fn cron_switch(&self, id: &str) -> Result<Option<bool>, ConfigError> {
        let var = format!("ENABLE_{}", id.to_ascii_uppercase());
        match self.enable_vars.get(&var).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(value) => parse_bool(value)
                .map(Some)
                .ok_or_else(|| ConfigError::Invalid {
                    var,
                    value: value.to_string(),
                    reason: "expected true or false".to_string(),
                }),
        }
    }

    /// Refuses a queue database inside DATA_DIR, where a `data_processing`
    /// job could reach it. Compared by real location: symlinks are resolved
    /// as far as the paths exist, the rest taken as written. Touches the
    /// file system, so the daemon calls it at start-up, not `from_vars`.
    /// A PostgreSQL database is on its server, out of any job's reach.
    pub fn check_db_outside_data_dir(&self) -> Result<(), ConfigError> {
        let Database::Sqlite(db_path) = &self.database else {
            return Ok(());
        };
        let data_dir = real_path(&self.data_dir);
        for part in ["", "-wal", "-shm", "-journal"] {
            let mut file = db_path.as_os_str().to_owned();
            file.push(part);
            if real_path(Path::new(&file)).starts_with(&data_dir) {
                return Err(ConfigError::DbInsideDataDir {
                    db: db_path.display().to_string(),
                    data_dir: self.data_dir.display().to_string(),
                    part: if part.is_empty() {
                        String::new()
                    } else {
                        format!(" (its {part} file)")
                    },
                });
            }
        }
        Ok(())
    }

    /// Attempts a job gets in all: the first plus its retries.
    pub fn max_attempts(&self, retry_count: Option<u32>) -> u32 {
        1 + retry_count.unwrap_or(self.max_retries)
    }
}

/// `path` made absolute, with symlinks resolved in the part of it that
/// exists and `.`/`..` applied to the rest.
fn real_path(path: &Path) -> PathBuf {
    let absolute = match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => cwd.join(path),
        _ => path.to_path_buf(),
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let mut real = loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            break real;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => break existing.to_path_buf(),
        }
    };
    for name in rest.iter().rev() {
        match name.to_str() {
            Some(".") => {}
            Some("..") => {
                real.pop();
            }
            _ => real.push(name),
        }
    }
    real
}

/// The value of `result`, or `None` with its error added to `faults`.
fn kept<T>(faults: &mut Vec<ConfigError>, result: Result<T, ConfigError>) -> Option<T> {
    result.map_err(|e| faults.push(e)).ok()
}

/// systemd passes colon-separated lists in `*_DIRECTORY`; the first entry is ours.
fn first_path(value: &str) -> PathBuf {
    PathBuf::from(value.split(':').next().unwrap_or(value))
}

/// `sun_path` holds 108 bytes including the terminating NUL.
fn check_socket_path(path: &Path) -> Result<(), ConfigError> {
    let len = path.as_os_str().len();
    if len > 107 {
        return Err(ConfigError::Invalid {
            var: "CRONQ_SOCKET".to_string(),
            value: path.display().to_string(),
            reason: format!("a Unix socket path holds at most 107 bytes, this one has {len}"),
        });
    }
    Ok(())
}

struct Env<'a> {
    vars: &'a HashMap<String, String>,
}

impl Env<'_> {
    fn raw(&self, var: &str) -> Option<String> {
        self.vars.get(var).cloned()
    }

    /// A non-empty value, trimmed; an empty variable counts as unset, as in
    /// systemd environment files where `VAR=` clears a setting.
    fn string(&self, var: &str) -> Option<String> {
        let value = self.raw(var)?;
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_string())
    }

    fn invalid(var: &str, value: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            var: var.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// A systemd credential (`LoadCredential=`), read from
    /// `$CREDENTIALS_DIRECTORY`; a trailing newline is not part of it.
    fn credential(&self, name: &str) -> Result<Option<String>, ConfigError> {
        let Some(dir) = self.string("CREDENTIALS_DIRECTORY") else {
            return Ok(None);
        };
        let path = Path::new(&dir).join(name);
        match std::fs::read_to_string(&path) {
            Ok(value) => Ok(Some(value.trim_end_matches(['\r', '\n']).to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::invalid(
                "CREDENTIALS_DIRECTORY",
                &dir,
                format!("cannot read the credential {}: {e}", path.display()),
            )),
        }
    }

    fn path(&self, var: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(var).map(PathBuf::from))
    }

    fn path_list(&self, var: &'static str) -> Result<Vec<PathBuf>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(Vec::new());
        };
        let mut paths = Vec::new();
        for entry in value.split(':').filter(|e| !e.is_empty()) {
            let path = PathBuf::from(entry);
            if !path.is_absolute() {
                return Err(Self::invalid(
                    var,
                    &value,
                    format!("every entry must be an absolute path, {entry:?} is not"),
                ));
            }
            paths.push(path);
        }
        Ok(paths)
    }

    /// Colon-separated variable names, each one a job may be allowed to set.
    fn env_names(&self, var: &'static str) -> Result<Vec<String>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        for name in value.split(':').filter(|e| !e.is_empty()) {
            if let Some(why) = never_allowed(name) {
                return Err(Self::invalid(
                    var,
                    &value,
                    format!("{name:?} can never be allowed: {why}"),
                ));
            }
            names.push(name.to_string());
        }
        Ok(names)
    }

    /// A size such as `512M` (bytes, or K, M, G, T: powers of 1024).
    fn size(&self, var: &'static str) -> Result<Option<ByteSize>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        ByteSize::parse(&value)
            .map(Some)
            .map_err(|reason| Self::invalid(var, &value, reason))
    }

    fn bool(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        parse_bool(&value)
            .map(Some)
            .ok_or_else(|| Self::invalid(var, &value, "expected true or false"))
    }

    fn parse_range(
        &self,
        var: &'static str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        let n: u64 = value.parse().map_err(|_| {
            Self::invalid(
                var,
                &value,
                format!("expected a whole number from {min} to {max}"),
            )
        })?;
        if n < min || n > max {
            return Err(Self::invalid(
                var,
                &value,
                format!("expected a whole number from {min} to {max}"),
            ));
        }
        Ok(Some(n))
    }

    /// A size in bytes: a whole number, optionally followed by K, M, G or T
    /// (powers of 1024; `KiB`, `MB` and the like read the same), at least 1.
    fn bytes(&self, var: &'static str) -> Result<Option<u64>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        match crate::store::limits::parse_size(&value) {
            Ok(0) => Err(Self::invalid(
                var,
                &value,
                "a size of 0 bytes leaves no room",
            )),
            Ok(bytes) => Ok(Some(bytes)),
            Err(reason) => Err(Self::invalid(var, &value, reason)),
        }
    }

    /// `on`/`off` (or true/false, yes/no, 1/0).
    fn on_off(&self, var: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        parse_bool(&value)
            .map(Some)
            .ok_or_else(|| Self::invalid(var, &value, "expected on or off"))
    }

    /// A span of time: whole seconds (`604800`), or a whole number followed
    /// by `s`, `m`, `h` or `d` (`90s`, `30m`, `12h`, `7d`); 1 second to
    /// 10 years.
    fn duration(&self, var: &'static str) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        parse_span(&value)
            .map(Some)
            .ok_or_else(|| Self::invalid(var, &value, "expected a time such as 7d, 12h, 30m, 90s or a number of seconds, from 1 second to 3650 days"))
    }

    /// `TYPE=VALUE,TYPE=VALUE` (spaces around either allowed), each VALUE
    /// read by `parse`; a type named twice is refused.
    fn per_type<T>(
        &self,
        var: &'static str,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<std::collections::BTreeMap<String, T>, ConfigError> {
        let mut out = std::collections::BTreeMap::new();
        let Some(value) = self.string(var) else {
            return Ok(out);
        };
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((job_type, setting)) = entry.split_once('=') else {
                return Err(Self::invalid(
                    var,
                    &value,
                    format!("{entry:?} is not TYPE=VALUE, e.g. email=2"),
                ));
            };
            let job_type = job_type.trim();
            if job_type.is_empty() {
                return Err(Self::invalid(
                    var,
                    &value,
                    format!("{entry:?} names no type"),
                ));
            }
            let setting = parse(setting.trim())
                .map_err(|reason| Self::invalid(var, &value, format!("{job_type}: {reason}")))?;
            if out.insert(job_type.to_string(), setting).is_some() {
                return Err(Self::invalid(
                    var,
                    &value,
                    format!("the type {job_type:?} is named twice"),
                ));
            }
        }
        Ok(out)
    }

    fn log_level(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        let level = value.to_ascii_lowercase();
        match level.as_str() {
            "error" | "warn" | "info" | "debug" | "trace" => Ok(Some(level)),
            _ => Err(Self::invalid(
                var,
                &value,
                "expected one of error, warn, info, debug, trace",
            )),
        }
    }

    fn log_format(&self, var: &'static str) -> Result<LogFormat, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(LogFormat::Auto);
        };
        match value.to_ascii_lowercase().as_str() {
            "auto" => Ok(LogFormat::Auto),
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            "journald" => Ok(LogFormat::Journald),
            _ => Err(Self::invalid(
                var,
                &value,
                "expected one of auto, text, json, journald",
            )),
        }
    }

    fn smtp_tls(&self, var: &'static str) -> Result<SmtpTls, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(SmtpTls::StartTls);
        };
        match value.to_ascii_lowercase().as_str() {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Tls),
            _ => Err(Self::invalid(
                var,
                &value,
                "expected one of none, starttls, tls",
            )),
        }
    }

    /// `RATE` or `RATE/BURST`, e.g. `100` or `100/500`; the burst defaults to
    /// one second's worth.
    fn rate(&self, var: &'static str) -> Result<Option<RateLimit>, ConfigError> {
        let Some(value) = self.string(var) else {
            return Ok(None);
        };
        let bad = || {
            Self::invalid(
                var,
                &value,
                "expected RATE or RATE/BURST, e.g. 100 or 100/500 (jobs per second)",
            )
        };
        let (rate, burst) = match value.split_once('/') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (value.as_str(), None),
        };
        let rate: f64 = rate.trim().parse().map_err(|_| bad())?;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(bad());
        }
        let burst = match burst {
            Some(b) => b.trim().parse::<u32>().map_err(|_| bad())?,
            None => rate.ceil().max(1.0) as u32,
        };
        if burst == 0 {
            return Err(bad());
        }
        Ok(Some(RateLimit { rate, burst }))
    }
}

/// `7d`, `12h`, `30m`, `90s` or whole seconds, 1 s to 3650 days.
pub fn parse_span(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let secs = n.checked_mul(scale)?;
    (1..=3650 * 86_400)
        .contains(&secs)
        .then(|| Duration::from_secs(secs))
}

/// A span as people say it: "7 days", "12 hours", "90 seconds".
pub fn describe_span(span: Duration) -> String {
    let secs = span.as_secs();
    let (n, unit) = if secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs.is_multiple_of(3600) {
        (secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The `CRONQ_POCKETBASE_*` settings: none without a URL; with one, the
/// email and exactly one source of the password are required.
fn pocketbase(env: &Env) -> Result<Option<PocketBaseConfig>, ConfigError> {
    let Some(text) = env.string("CRONQ_POCKETBASE_URL") else {
        for var in [
            "CRONQ_POCKETBASE_EMAIL",
            "CRONQ_POCKETBASE_PASSWORD",
            "CRONQ_POCKETBASE_PASSWORD_FILE",
        ] {
            if env.string(var).is_some() {
                return Err(Env::invalid(
                    var,
                    &env.raw(var).unwrap_or_default(),
                    "CRONQ_POCKETBASE_URL is not set, so nothing would use it",
                ));
            }
        }
        return Ok(None);
    };
    let url = url::Url::parse(&text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .filter(|u| u.query().is_none() && u.fragment().is_none())
        .ok_or_else(|| {
            Env::invalid(
                "CRONQ_POCKETBASE_URL",
                &text,
                "expected an http:// or https:// URL such as http://127.0.0.1:8090",
            )
        })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Env::invalid(
            "CRONQ_POCKETBASE_URL",
            url.host_str().unwrap_or_default(),
            "must not hold credentials; set CRONQ_POCKETBASE_EMAIL and CRONQ_POCKETBASE_PASSWORD",
        ));
    }
    let email = env.string("CRONQ_POCKETBASE_EMAIL").ok_or_else(|| {
        Env::invalid(
            "CRONQ_POCKETBASE_EMAIL",
            "",
            "required with CRONQ_POCKETBASE_URL: a superuser's email",
        )
    })?;
    let password = match (
        env.raw("CRONQ_POCKETBASE_PASSWORD")
            .filter(|p| !p.is_empty()),
        env.path("CRONQ_POCKETBASE_PASSWORD_FILE")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(Env::invalid(
                "CRONQ_POCKETBASE_PASSWORD_FILE",
                "",
                "CRONQ_POCKETBASE_PASSWORD is set too; set one of them",
            ));
        }
        (Some(password), None) => password,
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|p| p.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| {
                Env::invalid(
                    "CRONQ_POCKETBASE_PASSWORD_FILE",
                    &path.display().to_string(),
                    format!("cannot read it: {e}"),
                )
            })?,
        (None, None) => env.credential("pocketbase_password")?.ok_or_else(|| {
            Env::invalid(
                "CRONQ_POCKETBASE_PASSWORD",
                "",
                "required with CRONQ_POCKETBASE_URL: set it, CRONQ_POCKETBASE_PASSWORD_FILE, \
                 or the systemd credential pocketbase_password",
            )
        })?,
    };
    if password.is_empty() {
        return Err(Env::invalid(
            "CRONQ_POCKETBASE_PASSWORD_FILE",
            "",
            "the password file is empty",
        ));
    }
    let collection = env
        .string("CRONQ_POCKETBASE_COLLECTION")
        .unwrap_or_else(|| "queues".to_string());
    let plain = collection.len() <= 100
        && collection
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain || collection.starts_with('_') {
        return Err(Env::invalid(
            "CRONQ_POCKETBASE_COLLECTION",
            &collection,
            "expected a collection name of letters, digits and _, not starting with _",
        ));
    }
    Ok(Some(PocketBaseConfig {
        url,
        email,
        password,
        collection,
        follow: env.bool("CRONQ_POCKETBASE_FOLLOW")?.unwrap_or(true),
    }))
}

/// The replaced system compared against the string "false"; cronq also
/// accepts the usual spellings and refuses anything else, so a typo such as
/// `flase` is an error rather than silently "on".
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_vars(&map)
    }

    #[test]
    fn defaults_are_the_replaced_systems() {
        let c = config(&[]).unwrap();
        assert!(c.system_queue_cron);
        assert_eq!(c.max_workers, 5);
        assert_eq!(c.batch_size, 50);
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.job_timeout, Duration::from_secs(30));
        assert_eq!(c.reservation_timeout, Duration::from_secs(300));
        assert_eq!(c.log_level, "info");
        assert_eq!(c.database.to_string(), "cronq-data/cronq.db");
        assert_eq!(c.socket_path, PathBuf::from("cronq-data/admin.sock"));
        assert_eq!(c.crons_path, PathBuf::from("./crons.toml"));
        assert_eq!(c.data_dir, PathBuf::from("cronq-data/data"));
        assert_eq!(c.smtp.templates_dir, PathBuf::from("./templates"));
        assert_eq!(c.max_request_bytes, 1 << 20);
        assert_eq!(c.max_payload_bytes, 256 << 10);
        assert_eq!(c.max_connections, 128);
        assert_eq!(c.max_connections_per_uid, 64);
        assert_eq!(c.max_pending, 1_000_000);
        assert_eq!(c.export_retention_days, 7);
        assert!(!c.clear_exports_cron);
        assert_eq!(c.max_attempts(None), 4);
        assert_eq!(c.max_attempts(Some(0)), 1);
    }

    #[test]
    fn systemd_directories_place_state_socket_and_config() {
        let c = config(&[
            ("STATE_DIRECTORY", "/var/lib/cronq"),
            ("RUNTIME_DIRECTORY", "/run/cronq:/run/other"),
            ("CONFIGURATION_DIRECTORY", "/etc/cronq"),
        ])
        .unwrap();
        assert_eq!(c.database.to_string(), "/var/lib/cronq/cronq.db");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/cronq/data"));
        assert_eq!(c.socket_path, PathBuf::from("/run/cronq/admin.sock"));
        assert_eq!(c.crons_path, PathBuf::from("/etc/cronq/crons.toml"));
        assert_eq!(c.smtp.templates_dir, PathBuf::from("/etc/cronq/templates"));
    }

    #[test]
    fn the_per_uid_connection_share_defaults_to_half_and_fits_the_total() {
        let c = config(&[("CRONQ_MAX_CONNECTIONS", "9")]).unwrap();
        assert_eq!(c.max_connections_per_uid, 4);
        let c = config(&[("CRONQ_MAX_CONNECTIONS", "1")]).unwrap();
        assert_eq!(c.max_connections_per_uid, 1);
        let c = config(&[("CRONQ_MAX_CONNECTIONS_PER_UID", "128")]).unwrap();
        assert_eq!(c.max_connections_per_uid, 128);
        let err = config(&[
            ("CRONQ_MAX_CONNECTIONS", "10"),
            ("CRONQ_MAX_CONNECTIONS_PER_UID", "11"),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "CRONQ_MAX_CONNECTIONS_PER_UID=\"11\" is invalid: expected a whole number from 1 to 10"
        );
    }

    #[test]
    fn explicit_variables_win() {
        let c = config(&[
            ("STATE_DIRECTORY", "/var/lib/cronq"),
            ("CRONQ_DB", "/tmp/x.db"),
            ("DATA_DIR", "/srv/data"),
        ])
        .unwrap();
        assert_eq!(c.database.to_string(), "/tmp/x.db");
        assert_eq!(c.data_dir, PathBuf::from("/srv/data"));
    }

    #[test]
    fn a_database_url_selects_postgresql_and_never_shows_its_password() {
        let c = config(&[
            (
                "CRONQ_DATABASE_URL",
                "postgresql://cronq:hunter2@db.example/jobs",
            ),
            ("CRONQ_DB", "/tmp/ignored.db"),
        ])
        .unwrap();
        let Database::Postgres(settings) = &c.database else {
            panic!("not PostgreSQL: {}", c.database);
        };
        assert_eq!(settings.server(), "db.example:5432");
        assert_eq!(
            c.database.to_string(),
            "postgres://cronq@db.example:5432/jobs?sslmode=prefer"
        );
        assert!(!format!("{c:?}").contains("hunter2"));
        // Empty means unset: SQLite at CRONQ_DB.
        let c = config(&[("CRONQ_DATABASE_URL", " "), ("CRONQ_DB", "/tmp/x.db")]).unwrap();
        assert!(matches!(c.database, Database::Sqlite(_)));
        let err = config(&[("CRONQ_DATABASE_URL", "mysql://u:hunter2@h/d")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("CRONQ_DATABASE_URL is not a PostgreSQL URL"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        // The password file is looked up in the same variables.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("database_password"), "from-credential\n").unwrap();
        let creds = dir.path().display().to_string();
        let c = config(&[
            ("CRONQ_DATABASE_URL", "postgres://cronq@db/jobs"),
            ("CREDENTIALS_DIRECTORY", &creds),
        ])
        .unwrap();
        let Database::Postgres(settings) = &c.database else {
            panic!("not PostgreSQL");
        };
        assert_eq!(
            settings.password_source,
            Some("the credential database_password")
        );
    }

    #[test]
    fn a_postgresql_database_is_not_checked_against_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::for_dir(dir.path());
        c.data_dir = dir.path().to_path_buf();
        assert!(c.check_db_outside_data_dir().is_err());
        c.database =
            Database::Postgres(PgSettings::parse("postgres://cronq@db/jobs", &|_| None).unwrap());
        c.check_db_outside_data_dir().unwrap();
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = config(&[("JOB_MAX_WORKERS", "lots")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("JOB_MAX_WORKERS=\"lots\" is invalid"),
            "{err}"
        );
        let err = config(&[("JOB_MAX_WORKERS", "0")]).unwrap_err().to_string();
        assert!(err.contains("from 1 to 10000"), "{err}");
        let err = config(&[("ENABLE_SYSTEM_QUEUE_CRON", "flase")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ENABLE_SYSTEM_QUEUE_CRON"), "{err}");
        let err = config(&[("LOG_LEVEL", "loud")]).unwrap_err().to_string();
        assert!(err.contains("LOG_LEVEL"), "{err}");
        let err = config(&[("SMTP_TLS", "ssl")]).unwrap_err().to_string();
        assert!(err.contains("SMTP_TLS"), "{err}");
        // Every bad SMTP setting at once, not one per restart.
        let err = config(&[("SMTP_TLS", "ssl"), ("SMTP_PORT", "99999")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SMTP_PORT=\"99999\" is invalid")
                && err.contains("SMTP_TLS=\"ssl\" is invalid"),
            "{err}"
        );
        let err = config(&[("JOB_COMMAND_ALLOW", "/bin/true:ls")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("JOB_COMMAND_ALLOW"), "{err}");
        let err = config(&[("JOB_COMMAND_ENV_ALLOW", "TZ:LD_PRELOAD")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("JOB_COMMAND_ENV_ALLOW=\"TZ:LD_PRELOAD\" is invalid: \"LD_PRELOAD\" can never be allowed"),
            "{err}"
        );
        let err = config(&[("JOB_COMMAND_ENV_ALLOW", "BASH_FUNC_x%%")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a plain variable name"), "{err}");
        let err = config(&[("JOB_COMMAND_MEMORY_MAX", "512")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("JOB_COMMAND_MEMORY_MAX=\"512\" is invalid"),
            "{err}"
        );
        let err = config(&[("JOB_COMMAND_MEMORY_MAX", "lots")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("e.g. 512M"), "{err}");
        let err = config(&[("JOB_COMMAND_TASKS_MAX", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("JOB_COMMAND_TASKS_MAX"), "{err}");
        let long = format!("/tmp/{}/admin.sock", "x".repeat(120));
        let err = config(&[("CRONQ_SOCKET", &long)]).unwrap_err().to_string();
        assert!(err.contains("CRONQ_SOCKET"), "{err}");
    }

    #[test]
    fn command_settings() {
        let c = config(&[]).unwrap();
        assert!(c.command_env_allow.is_empty());
        assert_eq!(c.command_memory_max, None);
        assert_eq!(c.command_tasks_max, None);
        let c = config(&[
            ("JOB_COMMAND_ENV_ALLOW", "TZ::BACKUP_TARGET"),
            ("JOB_COMMAND_MEMORY_MAX", "512M"),
            ("JOB_COMMAND_TASKS_MAX", "64"),
        ])
        .unwrap();
        assert_eq!(c.command_env_allow.join(":"), "TZ:BACKUP_TARGET");
        assert_eq!(c.command_memory_max, Some(ByteSize(512 << 20)));
        assert_eq!(c.command_tasks_max, Some(64));
    }

    #[test]
    fn empty_means_unset() {
        let c = config(&[("JOB_MAX_WORKERS", ""), ("SMTP_HOST", "  ")]).unwrap();
        assert_eq!(c.max_workers, 5);
        assert_eq!(c.smtp.host, None);
    }

    #[test]
    fn replaced_system_aliases_are_accepted() {
        let c = config(&[
            ("ENABLE_CLEAR_EXPORT_FILES_CRON", "true"),
            ("EXPORT_FILE_EXPIRATION_DAYS", "3"),
            ("SMTP_FROM_EMAIL", "noreply@example.com"),
            ("SMTP_FROM_NAME", "Acme"),
        ])
        .unwrap();
        assert!(c.clear_exports_cron);
        assert_eq!(c.export_retention_days, 3);
        assert_eq!(c.smtp.from.as_deref(), Some("Acme <noreply@example.com>"));
        let c = config(&[
            ("MAIL_FROM", "ops@example.com"),
            ("SMTP_FROM_EMAIL", "noreply@example.com"),
            ("EXPORT_RETENTION_DAYS", "9"),
            ("EXPORT_FILE_EXPIRATION_DAYS", "3"),
        ])
        .unwrap();
        assert_eq!(c.smtp.from.as_deref(), Some("ops@example.com"));
        assert_eq!(c.export_retention_days, 9);
    }

    #[test]
    fn rate_limit_forms() {
        let c = config(&[("JOB_ENQUEUE_RATE", "100/500")]).unwrap();
        assert_eq!(
            c.enqueue_rate,
            Some(RateLimit {
                rate: 100.0,
                burst: 500
            })
        );
        let c = config(&[("JOB_ENQUEUE_RATE", "2.5")]).unwrap();
        assert_eq!(
            c.enqueue_rate,
            Some(RateLimit {
                rate: 2.5,
                burst: 3
            })
        );
        assert!(config(&[("JOB_ENQUEUE_RATE", "0")]).is_err());
        assert!(config(&[("JOB_ENQUEUE_RATE", "10/x")]).is_err());
    }

    #[test]
    fn enable_switches_follow_the_cron_id() {
        let c = config(&[
            ("ENABLE_NIGHTLY_REPORT", "false"),
            ("ENABLE_OTHER", "maybe"),
        ])
        .unwrap();
        assert_eq!(c.cron_switch("nightly_report").unwrap(), Some(false));
        assert_eq!(c.cron_switch("absent").unwrap(), None);
        let err = c.cron_switch("other").unwrap_err().to_string();
        assert!(err.contains("ENABLE_OTHER"), "{err}");
    }

    #[test]
    fn smtp_password_from_a_systemd_credential() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("smtp_password"), "s3cret\n").unwrap();
        let creds = dir.path().display().to_string();
        let c = config(&[("CREDENTIALS_DIRECTORY", &creds)]).unwrap();
        assert_eq!(c.smtp.password.as_deref(), Some("s3cret"));
        let c = config(&[("CREDENTIALS_DIRECTORY", &creds), ("SMTP_PASSWORD", "env")]).unwrap();
        assert_eq!(c.smtp.password.as_deref(), Some("env"));
    }

    #[test]
    fn password_is_not_in_debug_output() {
        let c = config(&[("SMTP_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn pocketbase_settings_need_a_url_an_email_and_one_password() {
        assert!(config(&[]).unwrap().pocketbase.is_none());
        let url = ("CRONQ_POCKETBASE_URL", "http://127.0.0.1:8090");
        let email = ("CRONQ_POCKETBASE_EMAIL", "admin@example.com");
        let c = config(&[url, email, ("CRONQ_POCKETBASE_PASSWORD", "s3cret")]).unwrap();
        let pb = c.pocketbase.clone().unwrap();
        assert_eq!(pb.url.as_str(), "http://127.0.0.1:8090/");
        assert_eq!(
            (pb.password.as_str(), pb.collection.as_str()),
            ("s3cret", "queues")
        );
        assert!(pb.follow);
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pb_password");
        std::fs::write(&file, "from-file\n").unwrap();
        let shown = file.display().to_string();
        let c = config(&[url, email, ("CRONQ_POCKETBASE_PASSWORD_FILE", &shown)]).unwrap();
        assert_eq!(c.pocketbase.unwrap().password, "from-file");
        std::fs::write(dir.path().join("pocketbase_password"), "from-credential\n").unwrap();
        let creds = dir.path().display().to_string();
        let c = config(&[url, email, ("CREDENTIALS_DIRECTORY", &creds)]).unwrap();
        assert_eq!(c.pocketbase.unwrap().password, "from-credential");

        let err = |vars: &[(&str, &str)]| config(vars).unwrap_err().to_string();
        assert!(
            err(&[url, email]).starts_with("CRONQ_POCKETBASE_PASSWORD=\"\" is invalid: required")
        );
        assert!(
            err(&[url, ("CRONQ_POCKETBASE_PASSWORD", "x")]).starts_with("CRONQ_POCKETBASE_EMAIL=")
        );
        assert!(err(&[email]).contains("CRONQ_POCKETBASE_URL is not set"));
        let both = [
            url,
            email,
            ("CRONQ_POCKETBASE_PASSWORD", "x"),
            ("CRONQ_POCKETBASE_PASSWORD_FILE", &shown),
        ];
        assert!(err(&both).contains("set one of them"));
        for bad in ["127.0.0.1:8090", "ftp://x", "http://u:p@x", "http://x/?a=1"] {
            let e = err(&[
                ("CRONQ_POCKETBASE_URL", bad),
                email,
                ("CRONQ_POCKETBASE_PASSWORD", "x"),
            ]);
            assert!(e.starts_with("CRONQ_POCKETBASE_URL="), "{bad}: {e}");
            assert!(!e.contains(":p@"), "{e}");
        }
        let e = err(&[
            url,
            email,
            ("CRONQ_POCKETBASE_PASSWORD", "x"),
            ("CRONQ_POCKETBASE_COLLECTION", "_superusers"),
        ]);
        assert!(e.starts_with("CRONQ_POCKETBASE_COLLECTION="), "{e}");
        let c = config(&[
            url,
            email,
            ("CRONQ_POCKETBASE_PASSWORD", "x"),
            ("CRONQ_POCKETBASE_FOLLOW", "false"),
        ])
        .unwrap();
        assert!(!c.pocketbase.unwrap().follow);
    }

    #[test]
    fn data_limits_take_sizes_with_units() {
        let c = config(&[]).unwrap();
        assert_eq!(c.data_max_bytes, 10 << 30);
        assert_eq!(c.data_max_groups, 100_000);
        for (value, bytes) in [
            ("1048576", 1 << 20),
            ("512M", 512 << 20),
            ("10G", 10 << 30),
            ("2 GiB", 2 << 30),
            ("3kb", 3 << 10),
            ("1T", 1 << 40),
        ] {
            let c = config(&[("DATA_MAX_BYTES", value)]).unwrap();
            assert_eq!(c.data_max_bytes, bytes, "{value}");
        }
        for bad in ["0", "-1", "10X", "G", "1.5G", "99999999999T"] {
            let err = config(&[("DATA_MAX_BYTES", bad)]).unwrap_err().to_string();
            assert!(err.starts_with("DATA_MAX_BYTES="), "{bad}: {err}");
        }
        let c = config(&[("DATA_MAX_GROUPS", "500")]).unwrap();
        assert_eq!(c.data_max_groups, 500);
        assert!(config(&[("DATA_MAX_GROUPS", "0")]).is_err());
    }

    #[test]
    fn a_database_inside_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let with = |db: PathBuf, data: PathBuf| {
            let mut c = Config::for_dir(dir.path());
            c.database = Database::Sqlite(db);
            c.data_dir = data;
            c.check_db_outside_data_dir()
        };
        let root = dir.path();
        with(root.join("cronq.db"), root.join("data")).unwrap();
        with(root.join("data.db"), root.join("data")).unwrap();
        let err = with(root.join("data/q.db"), root.join("data")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "CRONQ_DB={:?} lies inside DATA_DIR={:?}: a data_processing job could read or \
                 overwrite the queue's own database there; move CRONQ_DB or DATA_DIR so that \
                 neither holds the other",
                root.join("data/q.db").display().to_string(),
                root.join("data").display().to_string()
            )
        );
        // Not yet existing, with `..`, or reached through a symlink.
        assert!(with(root.join("data/../data/sub/q.db"), root.join("data")).is_err());
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("alias")).unwrap();
        assert!(with(root.join("real/q.db"), root.join("alias")).is_err());
        assert!(with(root.join("alias/x/q.db"), root.join("real/x")).is_err());
        // DATA_DIR that is the database's WAL file's name.
        let err = with(root.join("q.db"), root.join("q.db-wal")).unwrap_err();
        assert!(err.to_string().contains("(its -wal file)"), "{err}");
    }

    #[test]
    fn the_history_settings_read_their_formats() {
        let c = config(&[]).unwrap();
        assert!(c.history);
        assert_eq!(c.history_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.history_max, 1_000_000);
        assert_eq!(c.dead_retention, None);
        let c = config(&[
            ("JOB_HISTORY", "off"),
            ("JOB_HISTORY_RETENTION", "12h"),
            ("JOB_HISTORY_MAX", "5"),
            ("JOB_DEAD_RETENTION", "30d"),
        ])
        .unwrap();
        assert!(!c.history);
        assert_eq!(c.history_retention, Duration::from_secs(12 * 3600));
        assert_eq!(c.history_max, 5);
        assert_eq!(c.dead_retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(
            config(&[("JOB_DEAD_RETENTION", "off")])
                .unwrap()
                .dead_retention,
            None
        );
        for (text, secs) in [("90", 90), ("90s", 90), ("30m", 1800), ("7d", 604_800)] {
            assert_eq!(parse_span(text), Some(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["0", "7w", "d", "-1", "3651d", "1.5h"] {
            assert_eq!(parse_span(bad), None, "{bad}");
            let err = config(&[("JOB_HISTORY_RETENTION", bad)])
                .unwrap_err()
                .to_string();
            assert!(err.contains("JOB_HISTORY_RETENTION"), "{err}");
        }
        assert_eq!(describe_span(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(describe_span(Duration::from_secs(3600)), "1 hour");
        assert_eq!(describe_span(Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn per_type_limits_read_type_value_pairs_and_name_what_is_wrong() {
        let c = config(&[
            ("JOB_TYPE_CONCURRENCY", " email=2, data_processing = 1 "),
            ("JOB_TYPE_RATE", "email=14/s,report=600/m"),
        ])
        .unwrap();
        assert_eq!(c.type_concurrency["email"], 2);
        assert_eq!(c.type_concurrency["data_processing"], 1);
        assert_eq!(c.type_rate["email"].starts, 14);
        assert_eq!(c.type_rate["report"].per, Duration::from_secs(60));
        for (var, value, says) in [
            ("JOB_TYPE_CONCURRENCY", "email", "is not TYPE=VALUE"),
            (
                "JOB_TYPE_CONCURRENCY",
                "email=0",
                "email: \"0\" is not a number",
            ),
            ("JOB_TYPE_CONCURRENCY", "email=1,email=2", "named twice"),
            ("JOB_TYPE_CONCURRENCY", "=2", "names no type"),
            ("JOB_TYPE_RATE", "email=14", "email: \"14\" is not a rate"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(
                err.contains(var) && err.contains(says),
                "{var}={value}: {err}"
            );
        }
    }
}
