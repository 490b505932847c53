//! cronq: scheduled tasks and a persistent job queue on SQLite.

pub mod admin;
pub(crate) mod atomic_file;
pub mod bridge;
pub mod client;
pub mod clock;
pub mod config;
pub mod cron;
pub mod daemon;
pub mod handlers;
pub mod logging;
pub mod queue;
pub mod store;
pub mod systemd;

pub use config::Config;
pub use daemon::{Daemon, DaemonError};
pub use queue::Queue;
pub use queue::handler::{Handler, JobContext, JobError, Registration};
pub use queue::job::NewJob;
