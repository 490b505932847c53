//! Crons: schedules (parsing, time zones, next fire times), the crons file,
//! the cron table and the scheduler that fires it.

pub mod file;
pub mod schedule;
pub mod scheduler;
pub mod spec;
