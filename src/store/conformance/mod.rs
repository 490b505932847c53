//! The conformance suite: what every backend must do, as store-level cases
//! run against each one (River's driver test suite is the model).
//!
//! A case is an `async fn(&Fixture)` in one of the files below, grouped by
//! verb. [`suite!`] lists every case once and instantiates it per backend,
//! so a backend cannot quietly skip one: `store::conformance::sqlite::*`
//! and `store::conformance::postgres::*` run the same list. The PostgreSQL
//! cases run on a server the test binary starts (`postgres::testing`).

mod copy;
mod crons;
mod definitions;
mod history;
mod import;
mod instances;
mod jobs;
mod manage;

use std::any::Any;

use super::{JobDefaults, Store};

/// A store on a fresh, empty database, and a way to open a second handle on
/// the same database (another daemon).
pub struct Fixture {
    pub store: Store,
    reopen: Reopen,
    _guard: Box<dyn Any + Send + Sync>,
}

type Reopen = Box<dyn Fn() -> BoxFuture<Store> + Send + Sync>;
type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl std::ops::Deref for Fixture {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Fixture {
    /// Another handle on the same database, as a second daemon would hold.
    pub async fn another(&self) -> Store {
        (self.reopen)().await
    }
}

async fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cronq.db");
    let open = move || -> BoxFuture<Store> {
        let path = path.clone();
        Box::pin(async move { Store::sqlite(&path, JobDefaults::default()).expect("open") })
    };
    Some(Fixture {
        store: open().await,
        reopen: Box::new(open),
        _guard: Box::new(dir),
    })
}

/// A fresh database on the test binary's PostgreSQL server; `None` (skipped
/// loudly, or failed under CRONQ_TEST_REQUIRE_TOOLS) without PostgreSQL. The
/// clock offset is pinned at 0, so the cases' fixed instants mean what they
/// say.
async fn postgres() -> Option<Fixture> {
    use super::postgres::{ClockSync, PgOptions, PgSettings, PgStore, testing};
    let server = testing::shared()?;
    let url = server.url(&server.create_database().expect("create database"));
    let open = move || -> BoxFuture<Store> {
        let url = url.clone();
        Box::pin(async move {
            let settings = PgSettings::parse(&url, &|_| None).expect("settings");
            let options = PgOptions {
                defaults: JobDefaults::default(),
                clock: std::sync::Arc::new(crate::clock::SystemClock),
                clock_sync: ClockSync::Fixed(0),
            };
            Store::new(PgStore::open(settings, options).await.expect("open"))
        })
    };
    Some(Fixture {
        store: open().await,
        reopen: Box::new(open),
        _guard: Box::new(()),
    })
}

/// Every case, once; each backend's module runs them all.
macro_rules! suite {
    ($($group:ident :: $case:ident),* $(,)?) => {
        suite!(@backend sqlite: $($group::$case),*);
        suite!(@backend postgres: $($group::$case),*);
    };
    (@backend $backend:ident: $($group:ident :: $case:ident),*) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fixture) = super::$backend().await else { return };
                    super::$group::$case(&fixture).await;
                    fixture.store.close().await;
                }
            )*
        }
    };
}

suite! {
    jobs::enqueue_claim_complete_deletes_the_row,
    jobs::a_batch_is_all_or_nothing_and_the_cap_holds,
    jobs::unique_key_holds_while_waiting_or_running_only,
    jobs::claim_orders_by_priority_then_run_at_and_skips_future_and_other_types,
    jobs::claim_merges_types_within_a_priority_and_fills_from_lower_ones,
    jobs::claim_respects_the_limit,
    jobs::claim_batches_claims_in_batches_up_to_the_limit_and_stops_when_dry,
    jobs::two_stores_claiming_at_once_never_share_a_job,
    jobs::a_stale_lease_cannot_complete_fail_or_extend_a_newer_attempt,
    jobs::failure_schedules_a_retry_then_buries_and_keeps_errors,
    jobs::release_gives_the_attempt_back,
    jobs::recovery_of_a_last_attempt_buries_the_job,
    jobs::list_filters_and_pages_newest_first,
    jobs::counts_split_scheduled_from_either_side_of_now,
    jobs::finish_answers_after_the_commit_and_runs_then,
    manage::retry_revives_a_dead_job_with_fresh_attempts,
    manage::retry_respects_a_held_unique_key,
    manage::cancel_refuses_running_jobs_and_purge_counts,
    manage::cancel_running_is_fenced_records_its_end_and_fails_the_cron_run,
    crons::a_scheduled_run_is_claimed_once,
    crons::two_stores_record_a_scheduled_run_once,
    crons::finish_records_status_and_duration,
    crons::history_keeps_the_last_hundred,
    crons::switches_persist,
    crons::a_cron_job_settles_its_run,
    definitions::definitions_are_replaced_whole_and_listed_for_registered_instances,
    definitions::definitions_go_with_their_instance,
    definitions::the_cluster_read_is_the_switches_and_the_definitions,
    copy::export_reads_waiting_and_dead_jobs_as_stored,
    copy::import_stores_jobs_as_given_once,
    copy::switches_and_runs_copy_once,
    copy::finished_job_records_copy_once_oldest_first,
    instances::instances_register_heartbeat_and_go,
    instances::a_tick_recovers_a_dead_instance_and_claims,
    instances::a_tick_of_a_run_another_store_fired_only_heartbeats,
    instances::tick_heartbeats_recovers_and_claims_once_per_run,
    history::a_success_leaves_a_record_in_the_outcomes_transaction,
    history::a_stale_lease_leaves_no_record,
    history::a_dead_job_is_recorded_when_it_dies_and_a_later_end_replaces_it,
    history::a_purged_dead_job_keeps_its_record,
    history::recovery_and_cancel_record_their_ends,
    history::finished_jobs_list_latest_first_with_filters_and_pages,
    history::queue_listings_filter_by_name_and_cron,
    history::pruning_keeps_the_newest_under_the_cap_and_drops_the_expired,
    history::pruning_drops_dead_jobs_past_their_retention,
    history::a_pause_stops_every_claim_of_its_type_until_resumed,
    history::pauses_of_single_types_stop_at_their_cap,
    history::claim_quotas_takes_each_type_up_to_its_number,
    history::a_tick_claims_quotas_and_prunes,
    history::bulk_retry_revives_matching_jobs_in_pages_and_skips_held_keys,
    history::bulk_cancel_never_touches_running_jobs,
    history::bulk_purge_deletes_matching_dead_jobs_only,
    history::a_cron_runs_job_status_follows_its_job,
    import::a_record_becomes_one_job_even_after_it_finished,
    import::a_record_named_twice_in_one_batch_is_one_job,
    import::attempts_carry_over_and_a_used_up_record_is_stored_dead,
    import::an_import_over_the_cap_stores_nothing,
    import::two_stores_importing_at_once_take_each_record_once,
}
