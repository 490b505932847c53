//! The data handler's one error type, and which of its kinds a retry can
//! cure.
//!
//! Design choice: retry-or-not is decided here, by the kind of error, and
//! not where each error is raised. A bad payload, a refused path or input
//! that is not valid CSV/JSON will fail the same way every time, so they are
//! permanent; a missing source, an I/O error or a busy database may clear up,
//! so they are retried. A job that would take DATA_DIR past its size cap,
//! or hold more aggregate groups than allowed, is permanent too: retried, it
//! would take the same room again.

use std::io;

use rusqlite::ErrorCode;

use crate::queue::handler::JobError;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The payload is wrong; `field` is a path below `data`, e.g.
    /// `options.metrics[1].field`.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },

    /// A path that leads out of DATA_DIR, or to something that is not a
    /// regular file or folder.
    #[error("{field}: {reason}")]
    Refused { field: String, reason: String },

    /// The source cannot be read as rows: malformed CSV or JSON, a record
    /// too large, a field the first row did not have.
    #[error("{location}: {reason}")]
    BadInput { location: String, reason: String },

    /// DATA_DIR reached DATA_MAX_BYTES, or its disk the free space kept for
    /// the queue; or an aggregate needs more groups than it may hold.
    /// Permanent: the same job would take the same room again.
    #[error("DATA_DIR is full: {0}")]
    Full(String),

    /// More than memory allows: an aggregate's groups past DATA_MAX_GROUPS.
    #[error("{location}: {reason}")]
    TooLarge { location: String, reason: String },

    /// The source file or table does not exist (yet: it may be uploaded or
    /// exported by another job later, so this is retried).
    #[error("{field}: {what} does not exist")]
    Missing { field: &'static str, what: String },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    #[error("data database: {context}: {source}")]
    Sqlite {
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    /// The job's time ran out and the queue stopped waiting; the work was
    /// abandoned without leaving any output.
    #[error("abandoned when the job's time ran out; nothing was written")]
    Cancelled,

    /// The blocking task ended without an answer (it panicked).
    #[error("the data task failed: {0}")]
    Task(String),

    /// A PocketBase source failed: unreachable or slow (retried), or
    /// refusing (not).
    #[error("source: {reason}")]
    Remote { reason: String, retry: bool },
}

impl DataError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DataError {
        DataError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn refused(field: impl Into<String>, reason: impl Into<String>) -> DataError {
        DataError::Refused {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn bad_input(location: impl Into<String>, reason: impl Into<String>) -> DataError {
        DataError::BadInput {
            location: location.into(),
            reason: reason.into(),
        }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> DataError {
        DataError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> DataError {
        DataError::Sqlite {
            context: context.into(),
            source,
        }
    }

    /// Whether another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            DataError::Invalid { .. }
            | DataError::Refused { .. }
            | DataError::BadInput { .. }
            | DataError::Full(_)
            | DataError::TooLarge { .. } => false,
            DataError::Missing { .. }
            | DataError::Io { .. }
            | DataError::Cancelled
            | DataError::Task(_) => true,
            DataError::Remote { retry, .. } => *retry,
            DataError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::DiskFull
                        | ErrorCode::CannotOpen
                        | ErrorCode::OutOfMemory
                )
            ),
        }
    }
}

impl From<DataError> for JobError {
    fn from(err: DataError) -> JobError {
        if err.is_retryable() {
            JobError::retry(&err)
        } else {
            JobError::permanent(&err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_retried_and_a_bad_statement_is_not() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(DataError::sqlite("insert", busy).is_retryable());
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(!DataError::sqlite("insert", constraint).is_retryable());
        let err: JobError = DataError::invalid("operation", "bad").into();
        assert_eq!(err, JobError::Permanent("operation: bad".to_string()));
        let err: JobError = DataError::io("reading", io::Error::other("eio")).into();
        assert!(!err.is_permanent());
    }
}
