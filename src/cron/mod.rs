//! Crons: schedules (parsing, time zones, next fire times) and the crons file; the scheduler joins them here.

pub mod file;
pub mod schedule;
