//! What an idle daemon and a dispatcher's claim cost in statements, on a
//! server of their own with `pg_stat_statements`: each statement is a
//! round trip, and each round trip a wake-up of the daemon (benches/idle.rs
//! counts those), or time between a notification and a started job.

use std::sync::Arc;

use super::{instance, job, open_at, types};
use crate::clock::{Clock, SystemClock};
use crate::store::postgres::{ClockSync, PgStore, testing};
use crate::store::run::{NewRun, RunStatus, RunTrigger};
use crate::store::tick::Tick;

/// A server with statement statistics, a fresh database and a store on it.
async fn counted() -> Option<(testing::PgServer, String, PgStore)> {
    if !testing::available() {
        return None;
    }
    let server = testing::PgServer::start(testing::ServerOptions {
        settings: &["shared_preload_libraries=pg_stat_statements"],
        ..testing::ServerOptions::default()
    })
    .expect("start PostgreSQL");
    server
        .psql("CREATE EXTENSION pg_stat_statements")
        .expect("pg_stat_statements");
    let db = server.create_database().expect("a database");
    let store = open_at(&server.url(&db), Arc::new(SystemClock), ClockSync::Measure).await;
    Some((server, db, store))
}

/// The statements the clients sent to `db` since the last reset.
fn statements(server: &testing::PgServer, db: &str) -> Vec<String> {
    server
        .psql(&format!(
            "SELECT calls || ' ' || regexp_replace(query, '\\s+', ' ', 'g')
               FROM pg_stat_statements
              WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = '{db}')"
        ))
        .expect("pg_stat_statements")
        .lines()
        .map(str::to_string)
        .collect()
}

fn reset(server: &testing::PgServer) {
    server
        .psql("SELECT pg_stat_statements_reset()")
        .expect("reset");
}

fn minute(now: i64) -> Tick {
    Tick {
        now,
        instance: instance("me", now),
        leases: Vec::new(),
        run: Some(NewRun {
            cron_id: "system_queue".into(),
            scheduled_for: now,
            trigger: RunTrigger::Schedule,
            status: RunStatus::Running,
            now,
            instance: "me".into(),
            error: None,
        }),
        stale_before: now - 300_000,
        judge: Box::new(|_| false),
        types: types(),
        limit: 50,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_minute_is_one_statement_and_the_cluster_read_another() {
    let Some((server, db, store)) = counted().await else {
        return;
    };
    let now = SystemClock.now_ms();
    // The first of each prepares its statement on the connection.
    store.tick(minute(now - 60_000)).await.unwrap();
    store.cron_cluster().await.unwrap();
    reset(&server);
    let ticked = store.tick(minute(now)).await.unwrap();
    assert!(ticked.fired);
    let run = ticked.run.expect("the minute's run");
    assert_eq!(run.status, RunStatus::Ok, "nothing to claim: ended at once");
    let sent = statements(&server, &db);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].starts_with("1 SELECT"), "{sent:#?}");
    reset(&server);
    store.cron_cluster().await.unwrap();
    let sent = statements(&server, &db);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatchers_claim_of_many_batches_is_one_statement() {
    let Some((server, db, store)) = counted().await else {
        return;
    };
    let now = SystemClock.now_ms();
    let jobs = (0..120).map(|i| job(&i.to_string())).collect();
    store.enqueue(jobs, now, 1000).await.unwrap();
    store
        .claim_batches("me", &types(), 1, 1, now)
        .await
        .unwrap();
    reset(&server);
    let claimed = store
        .claim_batches("me", &types(), 100, 30, now)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 100);
    let sent = statements(&server, &db);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert!(sent[0].contains("cronq_claim_batches"), "{sent:#?}");
    store.close().await;
}
