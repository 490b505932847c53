//! Crons: schedules (parsing, time zones, next fire times); the crons file and the scheduler join them here.

pub mod schedule;
