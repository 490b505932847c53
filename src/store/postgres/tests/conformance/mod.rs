//! The SQLite store's unit tests (src/store/jobs.rs, crons.rs, manage.rs,
//! and the tick and instance verbs the scheduler and queue use), as
//! functions taking a store handle: the shared conformance suite once the
//! store interface exists, run here against PostgreSQL.

mod crons;
mod jobs;
mod manage;
mod node;

pub use crons::*;
pub use jobs::*;
pub use manage::*;
pub use node::*;

use serde_json::Map;

use crate::clock::Millis;
use crate::store::job::NewJob;

pub const NOW: Millis = 1_800_000_000_000;

pub fn job(name: &str) -> NewJob {
    NewJob::new(name, "noop", Map::new())
}

pub fn types() -> Vec<String> {
    vec!["noop".to_string()]
}
