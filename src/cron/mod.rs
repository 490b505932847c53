//! Crons: schedules (parsing, time zones, next fire times), the cron table
//! and the scheduler that fires it.

pub mod schedule;
pub mod scheduler;
pub mod spec;
