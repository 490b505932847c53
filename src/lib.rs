//! cronq: scheduled tasks and a persistent job queue on SQLite.

pub mod config;
pub mod cron;
pub mod handlers;
pub mod queue;

pub use config::Config;
pub use queue::handler::{Handler, JobContext, JobError, Registration};
