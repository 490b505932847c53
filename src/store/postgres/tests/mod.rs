//! Tests of the PostgreSQL store against a real server (one per test
//! binary, a database per test; see `testing`).
//!
//! `conformance` mirrors the SQLite store's unit tests as functions taking
//! a store handle, so they can become the shared suite once the store
//! interface exists; `cluster` holds what only several nodes on one
//! database show (races, wake-ups, migrations, clocks).

mod cluster;
mod conformance;
mod sql;

use std::sync::Arc;

use super::testing;
use super::{ClockSync, PgOptions, PgSettings, PgStore};
use crate::clock::{Clock, SystemClock};
use crate::store::JobDefaults;

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

/// A store on a fresh database, its offset pinned at 0 so the tests' fixed
/// instants mean what they say.
async fn fresh() -> Option<(PgStore, String)> {
    let url = fresh_url()?;
    let store = open_at(&url, Arc::new(SystemClock), ClockSync::Fixed(0)).await;
    Some((store, url))
}

/// `#[tokio::test]`s that run a conformance function on a fresh store.
macro_rules! on_fresh_store {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((store, _url)) = fresh().await else { return };
                conformance::$name(&store).await;
                store.close().await;
            }
        )*
    };
}

on_fresh_store!(
    claim_batches_claims_in_batches_up_to_the_limit_and_stops_when_dry,
    enqueue_claim_complete_deletes_the_row,
    claim_orders_by_priority_then_run_at_and_skips_future_and_other_types,
    claim_merges_types_within_a_priority_and_fills_from_lower_ones,
    counts_split_scheduled_from_either_side_of_now,
    claim_respects_the_limit,
    a_stale_lease_cannot_complete_fail_or_extend_a_newer_attempt,
    failure_schedules_a_retry_then_buries_and_keeps_errors,
    release_gives_the_attempt_back,
    recovery_of_a_last_attempt_buries_the_job,
    unique_key_holds_while_waiting_or_running_only,
    a_batch_is_all_or_nothing_and_the_cap_holds,
    list_filters_and_pages_newest_first,
    a_scheduled_run_is_claimed_once,
    finish_records_status_and_duration,
    history_keeps_the_last_hundred,
    switches_persist,
    retry_revives_a_dead_job_with_fresh_attempts,
    retry_respects_a_held_unique_key,
    cancel_refuses_running_jobs_and_purge_counts,
    instances_register_heartbeat_and_go,
    a_cron_job_settles_its_run,
    tick_heartbeats_recovers_and_claims_once_per_run,
    finish_answers_after_the_commit_and_runs_then,
);
