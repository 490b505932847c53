//! Tests of the PostgreSQL store against a real server (one per test
//! binary, a database per test; see `testing`).
//!
//! What every backend must do is the shared suite (`store::conformance`),
//! which runs here too; `cluster` holds what only several nodes on one
//! PostgreSQL database show (races, wake-ups, migrations, clocks), `sql`
//! what an application's own SQL can do (`cronq_enqueue`, plain INSERTs),
//! `round_trips` what the idle minute and a claim cost in statements.

mod cluster;
mod round_trips;
mod sql;

use std::sync::Arc;

use super::testing;
use super::{ClockSync, PgOptions, PgSettings, PgStore};
use crate::clock::{Clock, Millis};
use crate::store::JobDefaults;
use crate::store::instance::InstanceRow;
use crate::store::job::NewJob;

/// The URL of a fresh database on the shared server; `None` (skipped
/// loudly) without PostgreSQL.
fn fresh_url() -> Option<String> {
    let server = testing::shared()?;
    let db = server.create_database().expect("create database");
    Some(server.url(&db))
}

fn settings(url: &str) -> PgSettings {
    PgSettings::parse(url, &|_| None).expect("settings")
}

async fn open_at(url: &str, clock: Arc<dyn Clock>, sync: ClockSync) -> PgStore {
    PgStore::open(
        settings(url),
        PgOptions {
            defaults: JobDefaults::default(),
            clock,
            clock_sync: sync,
        },
    )
    .await
    .expect("open")
}

fn job(name: &str) -> NewJob {
    NewJob::new(name, "noop", serde_json::Map::new())
}

fn types() -> Vec<String> {
    vec!["noop".to_string()]
}

fn instance(id: &str, at: Millis) -> InstanceRow {
    InstanceRow {
        id: id.into(),
        host: "host".into(),
        boot_id: "boot:ns".into(),
        pid: 42,
        start_ticks: 7,
        version: "0.1.0".into(),
        started: at,
        heartbeat_at: at,
        workers_max: 5,
        workers_busy: 0,
        clock_offset_ms: 0,
    }
}
