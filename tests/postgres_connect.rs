//! Opening the PostgreSQL store against a real server: a wrong password and
//! an unreachable port fail naming CRONQ_DATABASE_URL and the server, never
//! the password; TLS through rustls in each sslmode, against a server with
//! a test CA.

use std::sync::Arc;

use cronq::clock::SystemClock;
use cronq::store::JobDefaults;
use cronq::store::postgres::testing::{self, PgServer, ServerOptions};
use cronq::store::postgres::{OpenError, PgOptions, PgSettings, PgStore};

async fn open(url: &str) -> Result<PgStore, OpenError> {
    let settings = PgSettings::parse(url, &|_| None)?;
    PgStore::open(
        settings,
        PgOptions::new(JobDefaults::default(), Arc::new(SystemClock)),
    )
    .await
}

#[tokio::test]
async fn a_wrong_password_names_the_variable_and_the_server_but_not_the_password() {
    let Some(server) = testing::shared() else {
        return;
    };
    let db = server.create_database().unwrap();
    let url = format!(
        "postgres://{}:wrong-secret-42@127.0.0.1:{}/{db}?sslmode=disable",
        testing::USER,
        server.port()
    );
    let err = open(&url).await.err().expect("refused").to_string();
    assert!(err.contains("CRONQ_DATABASE_URL"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", server.port())),
        "{err}"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(err.contains("the password came from the URL"), "{err}");
    assert!(!err.contains("wrong-secret-42"), "{err}");
    // The right one opens.
    open(&server.url(&db)).await.expect("opens").close().await;
}

#[tokio::test]
async fn an_unreachable_server_names_the_variable_and_the_server() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("postgres://cronq:hush-hush@127.0.0.1:{port}/cronq?connect_timeout=5");
    let err = open(&url).await.err().expect("refused").to_string();
    assert!(err.contains("CRONQ_DATABASE_URL"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hush-hush"), "{err}");
}

#[tokio::test]
async fn a_bad_url_is_refused_before_connecting() {
    let err = open("postgres://cronq:hush@db/x?sslmode=maybe")
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.starts_with("CRONQ_DATABASE_URL"), "{err}");
    assert!(!err.contains("hush"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_check_what_libpq_checks() {
    if !testing::available() || !have_openssl() {
        return;
    }
    let server = PgServer::start(ServerOptions {
        tls: true,
        ..ServerOptions::default()
    })
    .unwrap();
    let db = server.create_database().unwrap();
    let tls = server.tls().unwrap().clone();
    let port = server.port();
    let user = format!("{}:{}", testing::USER, testing::PASSWORD);
    let url = |host: &str, params: &str| format!("postgres://{user}@{host}:{port}/{db}?{params}");
    let ca = tls.ca.display().to_string();
    let other = tls.other_ca.display().to_string();

    // Encrypted, and SCRAM's channel binding works over rustls.
    for params in [
        "sslmode=require".to_string(),
        "sslmode=prefer".to_string(),
        format!("sslmode=verify-full&sslrootcert={ca}"),
        format!("sslmode=verify-ca&sslrootcert={ca}"),
    ] {
        let host = if params.contains("verify-full") {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let store = open(&url(host, &params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert_eq!(listen_ssl(&server, &store, &db).await, "t", "{params}");
        store.close().await;
    }
    // The certificate names localhost, not 127.0.0.1: verify-full refuses,
    // verify-ca (the chain only) accepts.
    let err = open(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .err()
    .expect("the name does not match")
    .to_string();
    assert!(
        err.contains("CRONQ_DATABASE_URL") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    // A CA that did not sign it: refused by both verifying modes, and by
    // require, which verifies when sslrootcert is given (as libpq does).
    for mode in ["verify-full", "verify-ca", "require"] {
        let err = open(&url(
            "localhost",
            &format!("sslmode={mode}&sslrootcert={other}"),
        ))
        .await
        .err()
        .unwrap_or_else(|| panic!("{mode} with the wrong CA was accepted"))
        .to_string();
        assert!(err.contains("CRONQ_DATABASE_URL"), "{mode}: {err}");
    }
    // A CA file that is not there is named.
    let err = open(&url(
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .await
    .err()
    .expect("no CA file")
    .to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    // Plain TCP still works where the server allows it.
    let store = open(&url("127.0.0.1", "sslmode=disable")).await.unwrap();
    assert_eq!(listen_ssl(&server, &store, &db).await, "f");
    store.close().await;
}

/// Whether the store's LISTEN connection is encrypted, as the server sees it.
async fn listen_ssl(server: &PgServer, store: &PgStore, db: &str) -> String {
    let mut wakeups = store.wakeups();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        wakeups.wait_for(|w| w.connected),
    )
    .await
    .expect("LISTEN connected")
    .unwrap();
    server
        .psql(&format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.datname = '{db}' AND a.application_name = 'cronq listen'"
        ))
        .unwrap()
}

fn have_openssl() -> bool {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CRONQ_TEST_REQUIRE_TOOLS").is_none(),
            "openssl is required (CRONQ_TEST_REQUIRE_TOOLS is set) but not installed"
        );
        eprintln!("SKIPPED: openssl is not installed; .ci/run installs it");
    }
    found
}
