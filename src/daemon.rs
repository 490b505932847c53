//! Wiring, start-up order, signals and shutdown.
//!
//! Start-up goes from the inside out: the store (migrations), this
//! instance's registration and the recovery of what a dead predecessor held,
//! the scheduler's table, then the socket, and only then the tasks. The
//! daemon is "ready" once all of that stands. Shutdown goes the other way
//! and is a drain: stop accepting and claiming, let running jobs finish
//! within their timeouts, hand back what never started, close the database.
//! The socket stays open through the drain, answering read-only commands
//! (`status` says what the drain waits for); signals are `signals`' part.

mod signals;

pub use signals::Stopped;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::cmd::{Ctx, LevelSetter};
use crate::admin::rate::RateLimiter;
use crate::admin::server::{self, BindError, Limits};
use crate::admin::{Access, textfile};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::cron::file::{self, LoadContext};
use crate::cron::schedule::{ScheduleError, default_timezone};
use crate::cron::scheduler::{Loader, Pulse, Scheduler, SchedulerError};
use crate::cron::spec::CronSpec;
use crate::handlers::command::{self, Containment};
use crate::queue::handler::{Handler, Registration, Registry};
use crate::queue::instance::Instance;
use crate::queue::job::JobStatus;
use crate::queue::{Queue, QueueError};
use crate::store::{JobDefaults, OpenError, StoreError};
use crate::systemd::Notifier;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("CRON_TZ: {0}")]
    TimeZone(#[from] ScheduleError),
    #[error("{0}")]
    Crons(String),
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("CRONQ_POCKETBASE_URL: {0}")]
    PocketBase(String),
}

/// Builds a daemon: the configuration, the handlers, the clock.
pub struct Builder {
    config: Config,
    registrations: Vec<Registration>,
    clock: Arc<dyn Clock>,
    log_level: Option<LevelSetter>,
    crons: Option<Loader>,
    notifier: Notifier,
    listener: Option<std::os::unix::net::UnixListener>,
}

impl Builder {
    /// Adds (or replaces, by job type) an enabled handler.
    pub fn handler(mut self, handler: impl Handler) -> Builder {
        self.registrations.push(Registration::new(handler));
        self
    }

    /// Adds a registration as built, enabled or not.
    pub fn register(mut self, registration: Registration) -> Builder {
        self.registrations.push(registration);
        self
    }

    /// Replaces the wall clock; for tests that move time by hand.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Builder {
        self.clock = clock;
        self
    }

    /// Lets the `log_level` command change the log filter.
    pub fn log_level(mut self, setter: LevelSetter) -> Builder {
        self.log_level = Some(setter);
        self
    }

    /// Talks to systemd (READY, STATUS, WATCHDOG, STOPPING).
    pub fn notifier(mut self, notifier: Notifier) -> Builder {
        self.notifier = notifier;
        self
    }

    /// Serves this listener (socket activation) instead of binding
    /// CRONQ_SOCKET; the socket file then belongs to systemd.
    pub fn listener(mut self, listener: std::os::unix::net::UnixListener) -> Builder {
        self.listener = Some(listener);
        self
    }

    /// Reads file crons with `loader`, at start-up and on every reload,
    /// instead of the crons file the configuration names.
    pub fn crons(mut self, loader: Loader) -> Builder {
        self.crons = Some(loader);
        self
    }

    /// Starts everything and returns once the daemon is ready.
    pub async fn start(self) -> Result<Daemon, DaemonError> {
        let config = Arc::new(self.config);
        config.check_db_outside_data_dir()?;
        let defaults = JobDefaults {
            max_retries: config.max_retries,
            timeout_s: config.job_timeout.as_secs() as u32,
            history: config.history,
        };
        let store = crate::store::open(&config.database, defaults, self.clock.clone()).await?;
        sweep_data_dir(config.data_dir.clone()).await;
        let instance = Instance::current(self.clock.now_ms());

        for warning in command::allow_warnings(&config.command_allow) {
            tracing::warn!("{warning}; jobs that run it will fail");
        }
        // Only a daemon that may run commands divides its cgroup.
        let containment = if config.command_allow.is_empty() {
            Containment::process_group("the command handler is off")
        } else {
            tokio::task::spawn_blocking(Containment::detect)
                .await
                .unwrap_or_else(|e| Containment::process_group(format!("detection panicked: {e}")))
        };
        let mut registry = Registry::new();
        for registration in crate::handlers::builtin(&config, containment)
            .into_iter()
            .chain(self.registrations)
        {
            if !registration.enabled {
                let reason = registration
                    .disabled_reason
                    .as_deref()
                    .unwrap_or("switched off");
                tracing::info!(
                    job_type = registration.job_type(),
                    reason,
                    "handler {} disabled: {reason}",
                    registration.job_type()
                );
            }
            registry.register(registration);
        }

        let shutdown = CancellationToken::new();
        let queue = Queue::new(
            store.clone(),
            registry,
            config.clone(),
            self.clock.clone(),
            instance,
            shutdown.clone(),
        );
        queue.register().await?;
        let recovered = queue.recover().await?;
        if !recovered.is_empty() {
            tracing::info!(
                jobs = recovered.len(),
                "recovered jobs held by a dead daemon"
            );
        }

        let crons = self
            .crons
            .unwrap_or_else(|| file_loader(config.clone(), queue.registry().clone()));
        let zone = default_timezone(config.cron_tz.as_deref())?;
        let builtins = CronSpec::builtins(&config, &zone);
        let file = crons().map_err(DaemonError::Crons)?;
        tracing::info!(crons = file.len(), path = %config.crons_path.display(), "crons file loaded");
        let scheduler = Scheduler::new(queue.clone(), builtins, file, Some(crons)).await?;

        let (listener, group, owned_socket) = match self.listener {
            Some(listener) => {
                tracing::info!("serving the admin socket passed by systemd");
                let group = match config.socket_group.as_deref() {
                    Some(name) => Some(
                        crate::admin::group_id(name)
                            .ok_or_else(|| BindError::UnknownGroup(name.to_string()))?,
                    ),
                    None => None,
                };
                (listener, group, None)
            }
            None => {
                let (listener, group) =
                    server::bind(&config.socket_path, config.socket_group.as_deref())?;
                (listener, group, Some(config.socket_path.clone()))
            }
        };
        listener.set_nonblocking(true)?;
        let listener = UnixListener::from_std(listener)?;

        let ready = Arc::new(AtomicBool::new(false));
        let tasks = TaskTracker::new();
        // A producer like the socket; it waits for nothing of the daemon.
        let pocketbase = match &config.pocketbase {
            Some(settings) => Some(
                crate::bridge::pocketbase::start(
                    settings,
                    &queue,
                    scheduler.ticks(),
                    &tasks,
                    shutdown.clone(),
                )
                .map_err(|e| DaemonError::PocketBase(e.to_string()))?,
            ),
            None => None,
        };
        let ctx = Arc::new(Ctx {
            queue: queue.clone(),
            scheduler: scheduler.clone(),
            log_level: self.log_level,
            rate: config.enqueue_rate.map(RateLimiter::new),
            ready: ready.clone(),
            pocketbase,
        });
        // Closed after the drain, not at its start: see `Daemon::stop`.
        let socket_open = CancellationToken::new();
        let limits = Limits {
            max_request_bytes: config.max_request_bytes,
            max_connections: config.max_connections,
            max_connections_per_uid: config.max_connections_per_uid,
            idle_timeout: config.idle_timeout,
        };
        tasks.spawn(server::serve(
            listener,
            ctx,
            limits,
            Access::new(group),
            socket_open.clone(),
        ));
        // It claims nothing while automatic processing is off (the
        // system_queue cron disabled), and starts when it is switched on.
        queue.spawn_dispatcher();
        if !queue.automatic() {
            tracing::warn!(
                "the system_queue cron is off (ENABLE_SYSTEM_QUEUE_CRON=false or `disable system_queue`): \
                 jobs are not processed automatically; `cronq trigger system_queue` drains a batch"
            );
        }
        queue.spawn_heartbeat();
        queue.spawn_relay();
        let notifier = self.notifier;
        // The scheduler's turns heartbeat and feed the watchdog, so they
        // come at least as often as either needs.
        let mut turn_every =
            crate::clock::MAX_WALL_SLEEP.min(crate::queue::heartbeat_every(&config));
        let pulse: Option<Pulse> = notifier.watchdog_interval().map(|every| {
            turn_every = turn_every.min(every);
            let pinger = notifier.clone();
            Arc::new(move || pinger.watchdog()) as Pulse
        });
        scheduler.spawn(pulse, turn_every);
        if notifier.is_enabled() {
            tasks.spawn(status_line(
                queue.clone(),
                notifier.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(path) = config.metrics_textfile.clone() {
            tasks.spawn(textfile::run(
                path,
                queue.clone(),
                scheduler.clone(),
                shutdown.clone(),
            ));
        }
        ready.store(true, Ordering::Relaxed);
        notifier.ready();
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            database = %config.database,
            socket = %config.socket_path.display(),
            workers = config.max_workers,
            instance = %queue.instance().id,
            "cronq is ready"
        );
        Ok(Daemon {
            queue,
            scheduler,
            shutdown,
            socket_open,
            tasks,
            socket: owned_socket,
            notifier,
        })
    }

    /// Starts, then runs until SIGTERM or SIGINT, reloading crons on
    /// SIGHUP, and drains; a second SIGTERM or SIGINT forces the stop.
    pub async fn run(self) -> Result<Stopped, DaemonError> {
        let mut signals = signals::Signals::new()?;
        let daemon = self.start().await?;
        Ok(signals.serve(daemon).await)
    }
}

/// Deletes what data jobs killed mid-write left in DATA_DIR, before any job
/// of this process runs; a failure is logged, not fatal.
async fn sweep_data_dir(data_dir: PathBuf) {
    let shown = data_dir.display().to_string();
    match tokio::task::spawn_blocking(move || crate::handlers::data::sweep_temp_files(&data_dir))
        .await
    {
        Ok(Ok(report)) if report.files_deleted > 0 || report.failures > 0 => tracing::info!(
            data_dir = shown,
            files_deleted = report.files_deleted,
            bytes_freed = report.bytes_freed,
            failures = report.failures,
            "deleted {} temporary files that data jobs killed mid-write left in DATA_DIR",
            report.files_deleted
        ),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(data_dir = shown, error = %e, "could not sweep DATA_DIR for temporary files")
        }
        Err(e) => tracing::warn!(error = %e, "the sweep of DATA_DIR panicked"),
    }
}

/// Reads the crons file (and `crons.d/`) named by the configuration.
fn file_loader(config: Arc<Config>, registry: Registry) -> Loader {
    Arc::new(move || {
        let ctx = LoadContext::new(&config, &registry).map_err(|e| format!("CRON_TZ: {e}"))?;
        let defs = file::load(&config.crons_path, &ctx).map_err(|e| e.to_string())?;
        Ok(defs.into_iter().map(CronSpec::from).collect())
    })
}

/// A running daemon.
pub struct Daemon {
    queue: Queue,
    scheduler: Scheduler,
    shutdown: CancellationToken,
    /// The admin socket's life: it answers through the drain.
    socket_open: CancellationToken,
    tasks: TaskTracker,
    /// The socket file this daemon created (not one systemd passed).
    socket: Option<PathBuf>,
    notifier: Notifier,
}

impl Daemon {
    pub fn builder(config: Config) -> Builder {
        Builder {
            config,
            registrations: Vec::new(),
            clock: Arc::new(SystemClock),
            log_level: None,
            crons: None,
            notifier: Notifier::disabled(),
            listener: None,
        }
    }

    /// The queue, for enqueueing from Rust code.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Drains and stops: no new claims, running jobs finish within their
    /// timeouts, jobs never started are handed back; the socket answers
    /// read-only commands until then. [`Queue::halt`] during the drain
    /// (a second signal) cuts it short.
    pub async fn stop(self) {
        self.notifier.stopping();
        self.shutdown.cancel();
        let running = self.queue.busy();
        if running > 0 {
            tracing::info!(running, "waiting for running jobs to finish");
            // Ask systemd for the time the longest job may still take, so a
            // stop does not cut a job off (TimeoutStopSec is only a default).
            if let Some(left) = self.queue.longest_remaining() {
                self.notifier.extend_timeout(left + Duration::from_secs(10));
            }
        }
        self.tasks.close();
        self.scheduler.wait_stopped().await;
        self.queue.wait_stopped().await;
        self.socket_open.cancel();
        self.tasks.wait().await;
        // Commands of jobs that were abandoned are being ended on threads of
        // their own; an exit now would cut their grace period short.
        let ended = tokio::task::spawn_blocking(|| {
            command::wait_until_ended(command::KILL_GRACE + Duration::from_secs(2))
        });
        if !matches!(ended.await, Ok(true)) {
            tracing::warn!("some command jobs' processes were still being ended at exit");
        }
        if let Some(socket) = &self.socket {
            let _ = std::fs::remove_file(socket);
        }
        let store = self.queue.store();
        if let Err(e) = store
            .remove_instances(vec![self.queue.instance().id.clone()])
            .await
        {
            tracing::warn!(error = %e, "could not unregister this instance: {e}");
        }
        store.close().await;
        tracing::info!("cronq stopped");
    }
}

/// `cronq daemon`: reads the environment and runs until SIGTERM/SIGINT.
pub fn main_from_env() -> ExitCode {
    // Before any thread exists: taking the listener clears LISTEN_* only in
    // a single-threaded process.
    let listener = match crate::systemd::listener_from_env() {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cronq: socket activation: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cronq: {e}");
            return ExitCode::FAILURE;
        }
    };
    let log = match crate::logging::init(config.log_format, &config.log_level) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("cronq: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cronq: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = Daemon::builder(config)
        .log_level(Arc::new(move |level: &str| log.set_level(level)))
        .notifier(Notifier::from_env());
    if let Some(listener) = listener {
        builder = builder.listener(listener);
    }
    match runtime.block_on(builder.run()) {
        Ok(Stopped::Drained) => ExitCode::SUCCESS,
        // The man page: a forced stop exits 1, so it never passes for clean.
        Ok(Stopped::Forced) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!(error = %e, "cronq could not start: {e}");
            eprintln!("cronq: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Keeps systemd's STATUS= line current ("2/5 busy, 120 pending, 0 dead"),
/// recomputed at most once a second and only after something changed: the
/// queue's figures, or the state of the backend's wake-up channel (which
/// notices a database server going away). While the database cannot be
/// read the line says so, and why, and is looked at again every
/// [`OUTAGE_RECHECK`] until it answers: that, and the log, is how an outage
/// shows, since it does not stop the watchdog (see `Backend::responsive`).
async fn status_line(queue: Queue, notifier: Notifier, shutdown: CancellationToken) {
    let mut activity = queue.activity();
    let mut wakeups = queue.store().wakeups();
    let mut last = String::new();
    let mut down = false;
    loop {
        let now = queue.clock().now_ms();
        let line = match queue.store().counts(now).await {
            Ok(counts) => {
                if down {
                    tracing::info!("the database answers again");
                    down = false;
                }
                let total = |status: JobStatus| -> u64 {
                    counts.values().filter_map(|by| by.get(&status)).sum()
                };
                Some(format!(
                    "{}/{} busy, {} pending, {} scheduled, {} dead",
                    queue.busy(),
                    queue.max_workers(),
                    total(JobStatus::Pending),
                    total(JobStatus::Scheduled),
                    total(JobStatus::Dead)
                ))
            }
            Err(e) if e.is_unavailable() => {
                if !down {
                    tracing::warn!(error = %e, "the database is unavailable: {e}; running jobs go on and their outcomes are kept until it is back");
                    down = true;
                }
                Some(outage_line(queue.busy(), queue.max_workers(), &e))
            }
            Err(e) => {
                tracing::debug!(error = %e, "could not count jobs for the status line");
                None
            }
        };
        if let Some(line) = line
            && line != last
        {
            notifier.status(&line);
            last = line;
        }
        let recheck = async {
            match down {
                true => tokio::time::sleep(OUTAGE_RECHECK).await,
                false => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = activity.changed() => if changed.is_err() { break },
            changed = changed_or_never(&mut wakeups) => if !changed { wakeups = None },
            () = recheck => {}
            () = shutdown.cancelled() => break,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => break,
        }
    }
}

/// How often the status line looks at a database that did not answer.
const OUTAGE_RECHECK: Duration = Duration::from_secs(5);

/// The STATUS= line while the database is unavailable.
fn outage_line(busy: usize, max: usize, error: &StoreError) -> String {
    format!("{busy}/{max} busy; database unavailable ({error}), reconnecting")
}

/// Whether the channel changed (false once it closed); never returns
/// without one.
async fn changed_or_never(
    rx: &mut Option<tokio::sync::watch::Receiver<crate::store::Wakeups>>,
) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_shows_in_the_status_line_with_its_cause() {
        let e = StoreError::Unwritable(
            "PostgreSQL at db:5432 is unavailable: connection refused".into(),
        );
        assert_eq!(
            outage_line(2, 5, &e),
            "2/5 busy; database unavailable (the database cannot be written: PostgreSQL at \
             db:5432 is unavailable: connection refused), reconnecting"
        );
    }
}
