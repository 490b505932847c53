//! What an idle daemon and a dispatcher's claim cost in statements, on a
//! server of their own with `pg_stat_statements`: each statement is a
//! round trip, and each round trip a wake-up of the daemon (benches/idle.rs
//! counts those), or time between a notification and a started job.

use std::sync::Arc;

use super::{instance, job, open_at, types};
use crate::clock::{Clock, SystemClock};
use crate::store::history::{PRUNE_BATCH, Prune};
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
    // The LISTEN connection's own statements come before any counting.
    let mut wakeups = store.wakeups();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        wakeups.wait_for(|w| w.connected),
    )
    .await
    .expect("LISTEN connected")
    .expect("the listener runs");
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
        // A real minute's: one limited type, and a round of pruning.
        quotas: vec![("limited".into(), 2)],
        prune: Some(Prune {
            history_before: Some(now - 7 * 86_400_000),
            history_max: Some(1_000_000),
            dead_before: Some(now - 30 * 86_400_000),
            batch: PRUNE_BATCH,
        }),
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

/// Pages `sql` read in its sixth run on one connection (past plpgsql's
/// compiling and its first plans, which read the catalogs), from
/// `EXPLAIN (ANALYZE, BUFFERS)`: the work of the plan the server chose,
/// without a clock. Rolled back.
async fn pages_read(url: &str, sql: &str) -> u64 {
    let (mut client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let tx = client.transaction().await.unwrap();
    for _ in 0..5 {
        tx.batch_execute(sql).await.unwrap();
    }
    let row = tx
        .query_one(
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"),
            &[],
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let plan: serde_json::Value = row.get(0);
    let top = &plan[0]["Plan"];
    top["Shared Hit Blocks"].as_u64().unwrap_or(0) + top["Shared Read Blocks"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_for_a_type_with_nothing_ready_does_not_walk_the_others_backlog() {
    let Some(server) = testing::shared() else {
        return;
    };
    let db = server.create_database().expect("a database");
    let url = server.url(&db);
    let store = open_at(&url, Arc::new(SystemClock), ClockSync::Fixed(0)).await;
    server
        .psql_in(
            &db,
            "INSERT INTO queues (name, payload, run_at)
             SELECT 'n', '{\"type\": \"noop\"}', now() - interval '1 hour' + g * interval '1 ms'
               FROM generate_series(1, 50000) AS g;
             ANALYZE queues",
        )
        .expect("a backlog");
    // A daemon claims for all its enabled types; one with nothing ready is
    // one empty range of queues_ready, not a walk of 50,000 noop entries of
    // queues_due (about 190 pages more: 113 against 37 at 20,000).
    let absent = pages_read(
        &url,
        "SELECT * FROM cronq_claim('me', ARRAY['email'], 50, now())",
    )
    .await;
    assert!(absent < 80, "{absent} pages for a claim that finds nothing");
    let both = pages_read(
        &url,
        "SELECT * FROM cronq_claim('me', ARRAY['noop', 'email'], 50, now())",
    )
    .await;
    assert!(both < 2_000, "{both} pages for a claim of 50");
    eprintln!("pages: {absent} for nothing, {both} for 50");
    store.close().await;
}
