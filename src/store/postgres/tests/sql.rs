//! Jobs written by an application's own SQL: a plain `INSERT` with the
//! defaults, and `cronq_enqueue`, each inside the application's
//! transaction; the job exists if and only if that transaction commits,
//! and the daemons wake at its commit.

use std::sync::Arc;
use std::time::Duration;

use super::{fresh_url, open_at};
use crate::clock::{Clock, SystemClock};
use crate::store::postgres::ClockSync;

async fn app_connection(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect as the application");
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_inserted_in_a_committed_transaction_wakes_the_node_and_a_rolled_back_one_never_exists()
 {
    let Some(url) = fresh_url() else { return };
    let store = open_at(&url, Arc::new(SystemClock), ClockSync::Measure).await;
    let mut wakeups = store.wakeups();
    tokio::time::timeout(Duration::from_secs(30), wakeups.wait_for(|w| w.connected))
        .await
        .expect("LISTEN connected")
        .unwrap();
    let before = wakeups.borrow().notifications;
    let mut app = app_connection(&url).await;

    let tx = app.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO queues (name, payload) VALUES ('rolled back', '{\"type\": \"noop\"}')",
        &[],
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    let tx = app.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO queues (name, payload) VALUES ('plain', '{\"type\": \"noop\", \"options\": {\"retry_count\": 7}}')",
        &[],
    )
    .await
    .unwrap();
    let id: String = tx
        .query_one(
            "SELECT cronq_enqueue('by function', '{\"type\": \"noop\", \"data\": {\"n\": 1}}',
                                  priority => 5, unique_key => 'k1')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let again: String = tx
        .query_one(
            "SELECT cronq_enqueue('again', '{\"type\": \"noop\"}', unique_key => 'k1')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(again, id, "a held unique key answers the holder");
    tx.commit().await.unwrap();

    tokio::time::timeout(
        Duration::from_secs(30),
        wakeups.wait_for(|w| w.notifications > before),
    )
    .await
    .expect("the commit woke the node")
    .unwrap();
    let claimed = store
        .claim("me", &["noop".to_string()], 10, SystemClock.now_ms())
        .await
        .unwrap();
    let names: Vec<&str> = claimed.iter().map(|c| c.job.name.as_str()).collect();
    assert_eq!(
        names,
        ["by function", "plain"],
        "priority first; the rollback left nothing"
    );
    assert_eq!(claimed[0].job.priority, 5);
    assert_eq!(claimed[0].job.data(), serde_json::json!({"n": 1}));
    assert_eq!(claimed[1].job.max_attempts, 8, "options.retry_count 7");
    assert_eq!(claimed[1].job.timeout_s, 30, "the default timeout");
    assert_eq!(claimed[1].job.id.len(), 15);
    store.close().await;
}

#[tokio::test]
async fn cronq_enqueue_refuses_what_a_socket_enqueue_refuses() {
    let Some(url) = fresh_url() else { return };
    let store = open_at(&url, Arc::new(SystemClock), ClockSync::Measure).await;
    let app = app_connection(&url).await;
    for (call, needle) in [
        (
            "cronq_enqueue('n', '\"text\"')",
            "payload must be a JSON object",
        ),
        ("cronq_enqueue('n', '{}')", "payload.type"),
        ("cronq_enqueue('n', '{\"type\": \"\"}')", "payload.type"),
        (
            "cronq_enqueue('', '{\"type\": \"noop\"}')",
            "name must be 1 to 200",
        ),
        (
            "cronq_enqueue(repeat('x', 201), '{\"type\": \"noop\"}')",
            "name must be 1 to 200",
        ),
        (
            "cronq_enqueue('n', '{\"type\": \"noop\", \"data\": [1]}')",
            "payload.data",
        ),
        (
            "cronq_enqueue('n', '{\"type\": \"noop\", \"options\": {\"retry_count\": 101}}')",
            "retry_count must be from 0 to 100",
        ),
        (
            "cronq_enqueue('n', '{\"type\": \"noop\", \"options\": {\"timeout\": 0}}')",
            "timeout must be from 1 to 86400",
        ),
        (
            "cronq_enqueue('n', '{\"type\": \"noop\"}', priority => 4294967296)",
            "priority must be within",
        ),
        (
            "cronq_enqueue('n', '{\"type\": \"noop\"}', unique_key => '')",
            "unique_key must be 1 to 200",
        ),
    ] {
        let err = app
            .query_one(&format!("SELECT {call}"), &[])
            .await
            .expect_err(call);
        let text = err
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default();
        assert!(text.contains(needle), "{call}: {text}");
    }
    let raw = app
        .execute(
            "INSERT INTO queues (name, payload) VALUES ('bad', '{\"no\": \"type\"}')",
            &[],
        )
        .await;
    assert!(raw.is_err(), "a row without payload.type is refused");
    let counts = store.counts(SystemClock.now_ms()).await.unwrap();
    assert!(
        counts.values().all(|s| s.values().all(|n| *n == 0)),
        "{counts:?}"
    );
    let version = store.server_version().await.unwrap();
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "{version}"
    );
    store.close().await;
}

/// Ids the database makes begin with their creation time, as the daemon's
/// do: a plain `INSERT`'s default and `cronq_enqueue` alike.
#[tokio::test]
async fn ids_made_by_the_database_grow_with_time() {
    let Some(url) = fresh_url() else { return };
    let store = open_at(&url, Arc::new(SystemClock), ClockSync::Measure).await;
    let app = app_connection(&url).await;
    let first: String = app
        .query_one(
            "INSERT INTO queues (name, payload) VALUES ('first', '{\"type\": \"noop\"}') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second: String = app
        .query_one(
            "SELECT cronq_enqueue('second', '{\"type\": \"noop\"}')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let daemons = crate::store::job::new_id();
    for id in [&first, &second] {
        assert_eq!(id.len(), 15, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()),
            "{id}"
        );
    }
    assert!(first < second, "{first} then {second}");
    // The same clock as an id the daemon makes now: the first 8 characters
    // are milliseconds since 2020 in base 36.
    let ms = |id: &str| i64::from_str_radix(&id[..8], 36).unwrap();
    let apart = (ms(&second) - ms(&daemons)).abs();
    assert!(
        apart < 10_000,
        "{second} against {daemons}: {apart} ms apart"
    );
    store.close().await;
}
