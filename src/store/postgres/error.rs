//! PostgreSQL's failures in the store's terms: the shared [`StoreError`]
//! for every verb (so callers cannot tell the backends apart), and
//! [`OpenError`] for start-up, where the message must name the variable
//! and the server.
//!
//! The mapping, in one place: a lost or refused connection, a server
//! shutting down or out of connection slots is `Unwritable` ("the database
//! cannot be written: PostgreSQL at HOST:PORT is unavailable: ..."), which
//! the admin socket answers as `unavailable`; a full disk is `Full`; lock
//! and serialization conflicts, a cancelled statement and a pool with no
//! free connection are `Busy`; anything else is the generic database
//! error (`StoreError::Database`, whose text is "database error").

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use super::url::{DATABASE_URL_VAR, SettingsError};
use crate::store::StoreError;

/// Why the PostgreSQL store could not open. No message holds the password.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{DATABASE_URL_VAR}: {0}")]
    Tls(String),
    #[error(
        "cannot connect to the PostgreSQL server at {server} named by {DATABASE_URL_VAR} ({url}): {reason}"
    )]
    Connect {
        server: String,
        url: String,
        reason: String,
    },
    #[error(
        "the database at {url} has schema version {found}, newer than this cronq (it knows up to {known}); upgrade cronq or use another database"
    )]
    TooNew { url: String, found: i64, known: i64 },
    #[error("cannot prepare the database at {url} ({DATABASE_URL_VAR}): {reason}")]
    Migrate { url: String, reason: String },
}

/// A tokio-postgres error as text: the server's message (and detail) for
/// a database error, else the error and its cause.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = db.message().to_string();
        if let Some(detail) = db.detail() {
            text.push_str(" (");
            text.push_str(detail);
            text.push(')');
        }
        return text;
    }
    e.to_string()
}

/// Whether the server cannot be reached or is not taking work: the
/// outcome writer waits such failures out instead of giving up.
pub(super) fn is_outage(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                ]
                .contains(code)
        }
        None => {
            e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

/// A failed statement as the store's error; `server` is `host:port`.
pub(super) fn store_error(e: &tokio_postgres::Error, server: &str) -> StoreError {
    let text = describe(e);
    if is_outage(e) {
        return StoreError::Unwritable(format!("PostgreSQL at {server} is unavailable: {text}"));
    }
    match e.code() {
        Some(code) if *code == SqlState::DISK_FULL => StoreError::Full(text),
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => StoreError::Unwritable(text),
        Some(code)
            if [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::QUERY_CANCELED,
            ]
            .contains(code) =>
        {
            StoreError::Busy(text)
        }
        _ => StoreError::Database(format!("PostgreSQL: {text}")),
    }
}

/// A pool failure as the store's error.
pub(super) fn pool_error(e: PoolError, server: &str) -> StoreError {
    match e {
        PoolError::Backend(e) => store_error(&e, server),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => StoreError::Busy(format!(
            "no connection to PostgreSQL at {server} came free in time"
        )),
        PoolError::Timeout(_) => StoreError::Unwritable(format!(
            "PostgreSQL at {server} is unavailable: it did not answer in time"
        )),
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Unwritable(format!("PostgreSQL at {server} is unavailable: {other}")),
    }
}
